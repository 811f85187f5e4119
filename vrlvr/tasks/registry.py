"""Task registry: built-in tasks by name, user tasks by dotted import path.

``get("maze")`` returns the built-in task; ``get("mypkg.tasks:MyTask")`` (or
``"mypkg.tasks.MyTask"``) imports the module and returns an instance of the class (or the object
itself if it is already a task instance). ``register("mine", "mypkg.tasks:MyTask")`` (or an
instance / class) makes ``get("mine")`` work.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from vrlvr.tasks.base import Task

__all__ = ["get", "register", "available", "REQUIRED_METHODS"]

BUILTIN: dict[str, str] = {
    "maze": "vrlvr.tasks.maze:MazeTask",
    "flowfree": "vrlvr.tasks.flowfree:FlowFreeTask",
    "sokoban": "vrlvr.tasks.sokoban:SokobanTask",
}

#: what a user task must provide (a Task subclass provides defaults for the rendering helpers)
REQUIRED_METHODS = ("generate", "solve", "from_text", "check_solution", "render", "prompt")

_registered: dict[str, Any] = {}
_instances: dict[str, Any] = {}
_lock = threading.Lock()


def _import_path(path: str) -> Any:
    if ":" in path:
        module_name, _, attr = path.partition(":")
    elif "." in path:
        module_name, _, attr = path.rpartition(".")
    else:
        raise ValueError(
            f"unknown task {path!r}: built-in tasks are {sorted(BUILTIN)}; a user task is given as "
            f"'package.module:ClassName' or registered with vrlvr.tasks.register"
        )
    if not module_name or not attr:
        raise ValueError(f"task path {path!r} must look like 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} for task {path!r}: {exc}") from exc
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no attribute {attr!r} (task {path!r})") from None
    return obj


def _instantiate(obj: Any, what: str) -> Any:
    if isinstance(obj, str):
        obj = _import_path(obj)
    if isinstance(obj, type):
        try:
            obj = obj()
        except TypeError as exc:
            raise ValueError(f"task class {what} must be constructible without arguments: {exc}") from exc
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(obj, m, None))]
    if missing:
        raise ValueError(f"{what} is not a task: it lacks {missing} (subclass vrlvr.tasks.Task)")
    return obj


def get(name: str) -> Task:
    """The task instance for a built-in or registered name, or a dotted path 'pkg.module:Class'."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"task name must be a non-empty str, got {name!r}")
    with _lock:
        if name in _instances:
            return _instances[name]
        if name in _registered:
            spec = _registered[name]
        elif name in BUILTIN:
            spec = BUILTIN[name]
        else:
            spec = name
        task = _instantiate(spec, repr(name))
        _instances[name] = task
        return task


def register(name: str, task: Any, overwrite: bool = False) -> None:
    """Make ``get(name)`` return ``task`` (an instance, a class, or a 'pkg.module:Class' path,
    imported lazily on first get). Built-in names cannot be replaced unless ``overwrite``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"task name must be a non-empty str, got {name!r}")
    with _lock:
        if not overwrite and (name in BUILTIN or name in _registered):
            raise ValueError(f"task {name!r} is already registered; pass overwrite=True to replace it")
        if not isinstance(task, str):
            task = _instantiate(task, repr(name))  # fail now, not at first use
        _registered[name] = task
        _instances.pop(name, None)


def available() -> list[str]:
    """Names get() knows without a dotted path: built-ins and registered tasks."""
    return sorted(set(BUILTIN) | set(_registered))
