"""Experiment configs: dataclasses with help text, loaded from YAML plus `key=value` overrides.

A config class is a (possibly nested) dataclass whose fields carry their help text in
``field(metadata={"help": ...})``. ``load_config(Cls, "configs/x.yaml", ["train.lr=1e-4"])``
reads the YAML, applies the overrides (dotted keys, values parsed as YAML scalars) and builds the
dataclass, rejecting unknown keys and wrong types with an error that names the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

__all__ = [
    "load_config",
    "build_config",
    "read_yaml_mapping",
    "merge_trees",
    "config_to_dict",
    "parse_overrides",
    "describe_config",
]


def _yaml_error(exc: yaml.YAMLError, what: str) -> ValueError:
    """One line for a YAML syntax error: where it is and what is wrong (no multi-line dump)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return ValueError(f"{what}: YAML syntax error{at}: {problem}")


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file holding a mapping (empty file -> {}); clear one-line errors otherwise."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"config file {path} is a folder; give a YAML file")
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, f"config file {path}") from None
    except UnicodeDecodeError:
        raise ValueError(f"config file {path} is not UTF-8 text") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"config file {path} must hold a mapping (key: value lines) at the top level")
    return loaded


def parse_overrides(overrides: list[str] | None) -> dict[str, Any]:
    """["a.b=1", "c=x"] -> {"a": {"b": 1}, "c": "x"}; values are YAML scalars (1e-4, true, [1,2])."""
    tree: dict[str, Any] = {}
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ValueError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise _yaml_error(exc, f"override {item!r}") from None
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {part!r} is already set to a value")
        node[parts[-1]] = value
    return tree


def merge_trees(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Nested dict merge: extra's leaves replace base's."""
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_trees(out[k], v)
        else:
            out[k] = v
    return out


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise ValueError(f"{where}: {value!r} fits none of {tp}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return _build(tp, value, where)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        fixed = origin is tuple and args and args[-1] is not Ellipsis
        if not isinstance(value, (list, tuple)):
            # no silent [value]: optim.betas=0.9 must not become [0.9]
            n = f"{len(args)} values" if fixed else "values"
            raise ValueError(f"{where}: expected a list of {n} like [a, b], got {value!r}")
        if fixed and len(value) != len(args):
            raise ValueError(f"{where}: expected {len(args)} values, got {len(value)}: {value!r}")
        elems = args if fixed else [args[0] if args else Any] * len(value)
        items = [_coerce(v, e, f"{where}[{i}]") for i, (v, e) in enumerate(zip(value, elems))]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ValueError(f"{where}: {value!r} is not one of {list(choices)}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if value is None:
            raise ValueError(f"{where}: expected a number, got null")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                return float(value)  # YAML reads "1e-4" without a dot as a string
            except (TypeError, ValueError):
                raise ValueError(f"{where}: expected a number, got {value!r}") from None
        return float(value)
    if tp is str:
        if value is None or isinstance(value, (dict, list)):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        if not isinstance(value, str):
            return str(value)
        return value
    return value


def _leaf_keys(cls: type, prefix: str = "") -> list[str]:
    hints = typing.get_type_hints(cls)
    keys = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys += _leaf_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def _closest(key: str, siblings: list[str], prefix: str, root: type | None) -> str | None:
    """The valid key a mistyped one most likely meant: a sibling (optim.lrr -> optim.lr), else any
    dotted key with that last part (lr -> optim.lr)."""
    near = difflib.get_close_matches(key, siblings, n=1, cutoff=0.6)
    if near:
        return prefix + near[0]
    if root is not None:
        everywhere = _leaf_keys(root)
        same = [k for k in everywhere if k.rsplit(".", 1)[-1] == key]
        if same:
            return same[0]
        near = difflib.get_close_matches(prefix + key, everywhere, n=1, cutoff=0.75)
        if near:
            return near[0]
    return None


def _build(cls: type[T], data: dict[str, Any], where: str = "", root: type | None = None) -> T:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    root = root or cls
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        hints_txt = []
        for u in unknown:
            guess = _closest(str(u), sorted(fields), prefix, root)
            hints_txt.append(f"{prefix}{u}" + (f" (did you mean {guess}?)" if guess else ""))
        raise ValueError(
            f"unknown config key(s) {', '.join(hints_txt)}; "
            f"valid keys{' under ' + where if where else ''}: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(hints[name]):
            if not isinstance(value, dict):
                raise ValueError(f"{key}: expected a mapping of {hints[name].__name__} keys, got {value!r}")
            kwargs[name] = _build(hints[name], value, key, root)
        else:
            kwargs[name] = _coerce(value, hints[name], key)
    obj = cls(**kwargs)
    post = getattr(obj, "validate", None)
    if callable(post):
        post()
    return obj


def build_config(
    cls: type[T],
    source: str | Path | dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    where: str | None = None,
) -> T:
    """The config from a YAML file or an already-read mapping, plus ``key=value`` overrides.
    ``where`` (e.g. a run's config.yaml) prefixes error messages so the user knows which input."""
    if isinstance(source, dict):
        data = source
    else:
        data = read_yaml_mapping(source) if source is not None else {}
    data = merge_trees(data, parse_overrides(overrides))
    try:
        return _build(cls, data)
    except ValueError as exc:
        if where:
            raise ValueError(f"{where}: {exc}") from None
        raise


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    return build_config(cls, path, overrides)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def describe_config(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, help) for every leaf field, for --help texts and docs."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            rows += describe_config(hints[f.name], key + ".")
            continue
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = repr(f.default_factory())  # type: ignore[misc]
        else:
            default = "(required)"
        rows.append((key, default, f.metadata.get("help", "")))
    return rows
