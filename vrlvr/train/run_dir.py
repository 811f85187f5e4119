"""Run folders shared by every trainer: start new, resume, or refuse.

One rule set for `vrlvr sft` and `vrlvr-train`:

- a new run (``resume="no"``) refuses a non-empty ``out_dir`` unless ``overwrite`` (which empties a
  folder that holds a previous run; it never empties a folder that is not a run folder);
- ``resume="yes"`` loads ``OUT/config.yaml``, applies only what the user gave (``--config`` and
  ``key=value`` overrides), refuses any change under a ``frozen`` prefix (what shapes the model, the
  task or the data: the checkpoint was trained on it) naming each key with its old and new value,
  reports every other change as deliberate (stderr, and a line in ``OUT/resumes.jsonl``), and
  fails when the folder holds no checkpoint;
- ``resume="auto"`` resumes when a checkpoint exists and starts a new run otherwise.

``OUT/config.yaml`` is always the resolved config the run is going with (written atomically).
Checkpoints carry ``checkpoint_meta(cfg)`` (package version, config hash, the resolved config) so a
resume can check the checkpoint itself, not only config.yaml, with ``check_checkpoint_meta``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vrlvr.config import build_config, config_to_dict, merge_trees, parse_overrides, read_yaml_mapping

__all__ = [
    "RunStart",
    "start_run",
    "config_hash",
    "checkpoint_meta",
    "check_checkpoint_meta",
    "add_trainer_arguments",
    "remove_failed_run",
    "frozen_changes",
    "add_run_arguments",
    "run_overrides",
    "CONFIG_FILE",
]

CONFIG_FILE = "config.yaml"
RESUME_LOG = "resumes.jsonl"  # one line per resume: when, from which checkpoint, the changes made
# files a run writes before its first checkpoint: "auto" may clear a folder holding only these
_RUN_BOOKKEEPING = {CONFIG_FILE, "metrics.jsonl", "heldout.json", "tensorboard", "samples", "curves.png"}


@dataclass
class RunStart:
    cfg: Any  # the config dataclass to run with (resolved)
    checkpoint: Path | None  # checkpoint folder to resume from, None for a fresh start
    changes: dict[str, tuple]  # on resume: dotted key -> (old, new) of deliberate (allowed) changes


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively, so dataclass dicts compare and hash like their YAML."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _cfg_dict(cfg: Any) -> dict[str, Any]:
    return _plain(cfg if isinstance(cfg, dict) else config_to_dict(cfg))


def config_hash(cfg: Any) -> str:
    """Stable hash of the resolved config (sorted JSON): 16 hex digits of SHA-256."""
    text = json.dumps(_cfg_dict(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def checkpoint_meta(cfg: Any) -> dict:
    """What a checkpoint records about the code and config that wrote it."""
    from vrlvr import __version__

    return {"vrlvr_version": __version__, "config_hash": config_hash(cfg), "config": _cfg_dict(cfg)}


def _is_frozen(key: str, frozen: Sequence[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in frozen)


def frozen_changes(old: Any, new: Any, frozen: Sequence[str]) -> tuple[list, dict]:
    """Compare two configs (dataclasses or dicts) -> ([(key, old, new)] under a frozen prefix,
    {key: (old, new)} of the other changes). ``out_dir`` is never a change (folders move)."""
    a, b = _flatten(_cfg_dict(old)), _flatten(_cfg_dict(new))
    # a key added to the config since ``old`` was written is no change while it keeps its default
    defaults = _flatten(_cfg_dict(type(new)())) if dataclasses.is_dataclass(new) else {}
    refused, allowed = [], {}
    for key in sorted(set(a) | set(b)):
        if key == "out_dir":
            continue
        va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
        if va == vb or (key not in a and key in defaults and defaults[key] == vb):
            continue
        if _is_frozen(key, frozen):
            refused.append((key, va, vb))
        else:
            allowed[key] = (va, vb)
    return refused, allowed


def _describe(changes: Sequence[tuple]) -> str:
    return "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changes)


def check_checkpoint_meta(meta: dict | None, cfg: Any, frozen: Sequence[str], where: Path, prog: str) -> None:
    """On resume: refuse a checkpoint whose recorded config differs from ``cfg`` on a frozen key
    (e.g. config.yaml edited by hand); warn when another vrlvr version wrote it."""
    from vrlvr import __version__

    if not meta:
        print(f"{prog}: warning: {where} records no config (older vrlvr); not checked", file=sys.stderr)
        return
    if meta.get("config") is not None:
        refused, _ = frozen_changes(meta["config"], cfg, frozen)
        if refused:
            raise ValueError(
                f"checkpoint {where} was trained with another model, task or data than the config "
                f"resumed with: {_describe(refused)}"
            )
    if meta.get("vrlvr_version") not in (None, __version__):
        print(
            f"{prog}: warning: {where} was written by vrlvr {meta['vrlvr_version']}, this is {__version__}",
            file=sys.stderr,
        )


def _latest_checkpoint(out: Path) -> Path | None:
    from vrlvr.train.checkpoint import latest_checkpoint

    return latest_checkpoint(out)


def _out_dir(cfg_cls, config_path: str | None, tree: dict) -> Path:
    """out_dir from the overrides, else the config file, else the dataclass default."""
    if "out_dir" in tree:
        return Path(str(tree["out_dir"]))
    if config_path is not None:
        data = read_yaml_mapping(config_path)
        if "out_dir" in data:
            return Path(str(data["out_dir"]))
    fields = {f.name: f for f in dataclasses.fields(cfg_cls)}
    if "out_dir" not in fields or fields["out_dir"].default is dataclasses.MISSING:
        raise ValueError("no out_dir: pass out_dir=PATH")
    return Path(fields["out_dir"].default)


def _write_config(out: Path, cfg: Any) -> None:
    from vrlvr.train.checkpoint import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / CONFIG_FILE, yaml.safe_dump(_cfg_dict(cfg), sort_keys=False))


def _set_out_dir(cfg: Any, out: Path) -> Any:
    if hasattr(cfg, "out_dir"):
        cfg.out_dir = str(out)
    return cfg


def _empty(out: Path, prog: str) -> None:
    """--overwrite: remove a previous run's files. Refuses folders that are not run folders (no
    config.yaml) and folders holding the working directory, so a typo cannot wipe a project."""
    here = Path.cwd().resolve()
    target = out.resolve()
    if target == here or target in here.parents:
        raise ValueError(f"--overwrite would delete the working directory: out_dir={out} contains it")
    if not (out / CONFIG_FILE).is_file():
        raise ValueError(
            f"out_dir={out} is not empty and holds no {CONFIG_FILE}, so it is not a run folder: "
            "--overwrite only empties run folders; choose another out_dir or remove it yourself"
        )
    for child in out.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    print(f"{prog}: --overwrite: emptied {out}", file=sys.stderr)


def start_run(
    cfg_cls,
    config_path: str | None,
    overrides: list[str],
    *,
    resume: str = "no",
    overwrite: bool = False,
    frozen: Sequence[str] = (),
    prog: str = "vrlvr",
) -> RunStart:
    """resume: "no" (a new run; refuses a non-empty out_dir unless overwrite, which empties it), "yes"
    (must resume: loads OUT/config.yaml, applies only the given overrides (config_path optional; if
    given it must agree on frozen keys), refuses changes to any key under a `frozen` prefix naming
    key, old and new; fails if there is nothing to resume), "auto" (resume if a checkpoint exists,
    else start new). Writes OUT/config.yaml atomically; logs deliberate changes (stderr + returned).
    Errors are ValueError / FileNotFoundError with one line that says what to do."""
    if resume not in ("no", "yes", "auto"):
        raise ValueError(f"resume must be 'no', 'yes' or 'auto', got {resume!r}")
    tree = parse_overrides(overrides)
    out = _out_dir(cfg_cls, config_path, tree)
    ckpt = _latest_checkpoint(out) if out.is_dir() else None

    if resume == "yes" and ckpt is None:
        raise ValueError(
            f"--resume: nothing to resume in {out} (no checkpoint under {out / 'checkpoints'}); "
            "start a new run without --resume, or use --resume auto to resume only if possible"
        )
    if resume == "no" or ckpt is None:  # a new run
        # the config first: a bad override must fail before --overwrite deletes anything
        cfg = _set_out_dir(build_config(cfg_cls, config_path, overrides), out)
        if out.is_dir() and any(out.iterdir()):
            leftovers = {p.name for p in out.iterdir() if not p.name.startswith(".")}
            if resume == "auto" and leftovers <= _RUN_BOOKKEEPING and (out / CONFIG_FILE).is_file():
                _empty(out, prog)  # a run stopped before its first checkpoint: nothing to keep
            elif overwrite:
                _empty(out, prog)
            else:
                shown = ", ".join(sorted(leftovers)[:5]) or "hidden files"
                if ckpt is not None:
                    todo = "pass --resume to continue that run, --overwrite to replace it"
                else:
                    todo = "it holds no checkpoint to resume: --overwrite (or --resume auto) starts afresh"
                raise ValueError(f"out_dir={out} is not empty (holds {shown}): {todo}, or another out_dir")
        elif out.exists() and not out.is_dir():
            raise ValueError(f"out_dir={out} is a file, not a folder")
        _write_config(out, cfg)
        return RunStart(cfg=cfg, checkpoint=None, changes={})

    # resume ("yes", or "auto" with a checkpoint)
    if overwrite:
        raise ValueError("--resume and --overwrite contradict each other: choose one")
    saved_path = out / CONFIG_FILE
    if not saved_path.is_file():
        raise FileNotFoundError(f"cannot resume {out}: {saved_path} is missing")
    saved = read_yaml_mapping(saved_path)
    old_cfg = build_config(cfg_cls, saved, where=str(saved_path))
    data = _cfg_dict(old_cfg)
    if config_path is not None:
        data = merge_trees(data, read_yaml_mapping(config_path))
    data = merge_trees(data, tree)
    data["out_dir"] = str(out)
    cfg = _set_out_dir(build_config(cfg_cls, data, where="the resumed config"), out)
    refused, changes = frozen_changes(old_cfg, cfg, frozen)
    if refused:
        raise ValueError(
            f"cannot resume {out} with changes to what shapes the model, task or data: "
            f"{_describe(refused)} (start a new run with another out_dir, or --overwrite)"
        )
    if changes:
        print(
            f"{prog}: resuming {out} from {ckpt.name} with deliberate changes: "
            + _describe([(k, a, b) for k, (a, b) in changes.items()]),
            file=sys.stderr,
        )
    else:
        print(f"{prog}: resuming {out} from {ckpt.name}", file=sys.stderr)
    _write_config(out, cfg)
    # a lasting record of every resume and what it changed, beside the metrics
    with (out / RESUME_LOG).open("a") as fh:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "checkpoint": ckpt.name}
        fh.write(
            json.dumps({**entry, "changes": {k: list(v) for k, v in changes.items()}}, default=str) + "\n"
        )
    return RunStart(cfg=cfg, checkpoint=ckpt, changes=changes)


class _ResumeAction(argparse.Action):
    """``--resume`` [yes|auto]. argparse's nargs="?" would swallow a following ``key=value``; such a
    value is kept as an override (``run_overrides`` puts it back) instead of failing as a choice."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values in (None, "yes", "auto"):
            setattr(namespace, self.dest, values or "yes")
        elif isinstance(values, str) and "=" in values:
            setattr(namespace, self.dest, "yes")
            namespace._resume_overrides = [*getattr(namespace, "_resume_overrides", []), values]
        else:
            parser.error(f"argument --resume: expected 'yes' or 'auto', got {values!r}")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """--resume [yes|auto] and --overwrite, the same for every trainer."""
    parser.add_argument(
        "--resume",
        nargs="?",
        const="yes",
        default="no",
        action=_ResumeAction,
        metavar="{yes,auto}",
        help="continue OUT/checkpoints/latest with OUT/config.yaml (only the given overrides change; "
        "changes to model, task or data are refused). 'auto': resume if a checkpoint exists, else start new",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="a new run may empty an existing run folder (out_dir)"
    )


def run_overrides(args: argparse.Namespace) -> list[str]:
    """The key=value overrides, including one that followed a bare --resume."""
    return [*getattr(args, "_resume_overrides", []), *(getattr(args, "overrides", None) or [])]


def add_trainer_arguments(parser: argparse.ArgumentParser, cfg_cls, doc: str, config_help: str) -> None:
    """The command line every trainer shares: ``doc`` followed by every config key (default, help),
    --config, --resume [yes|auto], --overwrite, --no-progress and key=value overrides."""
    from vrlvr.config import describe_config

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        doc.strip() + "\n" + "\n".join(f"  {k} = {d}: {h}" for k, d, h in describe_config(cfg_cls))
    )
    parser.add_argument("--config", help=config_help)
    add_run_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.steps=2000"
    )


def remove_failed_run(start: RunStart, prog: str) -> None:
    """After a new run failed before its first checkpoint: remove its folder, so it leaves nothing
    to trip over (a resumed run, or one with a checkpoint, is kept)."""
    from vrlvr.train.checkpoint import latest_checkpoint

    out = Path(start.cfg.out_dir)
    if start.checkpoint is None and out.is_dir() and latest_checkpoint(out) is None:
        shutil.rmtree(out, ignore_errors=True)
        print(f"{prog}: removed {out} (the run failed before its first checkpoint)", file=sys.stderr)
