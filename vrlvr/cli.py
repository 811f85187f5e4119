"""Command line: `vrlvr <subcommand>` and `vrlvr-train`.

Each subcommand lives in its own module under vrlvr.commands with two functions,
``add_arguments(parser)`` and ``run(args) -> int``. Subcommands whose capability has not been
built yet are listed in NOT_BUILT: their --help works, running them exits with status 2 and says
so; nothing pretends to work.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("vrlvr.commands.data", "generate puzzles, solution videos and metadata.jsonl"),
    "train": ("vrlvr.commands.train", "SDE-GRPO with Early-Step Focus (the main job; same as vrlvr-train)"),
    "sft": ("vrlvr.commands.sft", "supervised flow-matching fine-tuning on solution videos"),
    "sample": ("vrlvr.commands.sample", "generate videos from a checkpoint beside the ground truth"),
    "eval": ("vrlvr.commands.eval", "generate on held-out puzzles, verify, and report metrics as JSON"),
    "window": (
        "vrlvr.commands.window",
        "where sampling noise decides the outcome, step by step (a guide for grpo.sde_window)",
    ),
    "verify": ("vrlvr.commands.verify", "verify one video against one puzzle and print the verdict"),
    "bench": ("vrlvr.commands.bench", "run the packaged micro-benchmarks and print JSON"),
    "info": ("vrlvr.commands.info", "versions and which backends (native, CUDA, Triton) are usable"),
}

# Subcommands whose capability a later issue builds. Remove an entry when its module lands.
NOT_BUILT: dict[str, str] = {}


def _not_built(name: str) -> int:
    print(f"vrlvr {name}: not built yet ({NOT_BUILT[name]}).", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    from vrlvr import __version__

    parser = argparse.ArgumentParser(
        prog="vrlvr",
        description="Teach video diffusion models to reason with verifiable rewards.",
    )
    parser.add_argument("--version", action="version", version=f"vrlvr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        if name in NOT_BUILT:
            p = sub.add_parser(
                name,
                help=f"{help_text} (not built yet)",
                description=f"{help_text}. Not built yet: {NOT_BUILT[name]}.",
            )
            p.set_defaults(_run=lambda args, _n=name: _not_built(_n))
            # accept and ignore any arguments so the message above is what the user sees
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            continue
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip())
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    return _run_parsed(parser, args, extra, f"vrlvr {getattr(args, 'command', '')}")


def _run_parsed(
    parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str], prog: str
) -> int:
    if extra:
        # argparse stops filling a positional `key=value ...` list at the first option, so
        # `vrlvr sft a=1 --no-progress b=2` leaves b=2 over: it is an override all the same
        if isinstance(getattr(args, "overrides", None), list) and all(
            "=" in e and not e.startswith("-") for e in extra
        ):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        # user errors: one clear line, no traceback
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # stdout closed early (`vrlvr info | head -1`): not an error of ours
        try:  # point stdout at /dev/null so the interpreter's final flush does not raise again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. under pytest)
            pass
        return 0
    except OSError as exc:  # the machine, not the input: disk full, an I/O error, ffmpeg failing
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except (MemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError) and type(exc).__name__ != "OutOfMemoryError":
            raise  # a bug: keep the traceback
        print(
            f"{prog}: error: out of memory ({_one_line(exc)[:200]}); lower the batch size or the frame size",
            file=sys.stderr,
        )
        return 1


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (tool output such as ffmpeg's can span many)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 500 else text[:497] + "..."


def train_main(argv: list[str] | None = None) -> int:
    """`vrlvr-train --config configs/X.yaml [--resume] [key=value ...]`: SDE-GRPO, the main job
    (the same command as `vrlvr train`)."""
    from vrlvr.commands import train

    parser = argparse.ArgumentParser(prog="vrlvr-train")
    train.add_arguments(parser)
    parser.set_defaults(_run=train.run, command="train")
    args, extra = parser.parse_known_args(argv)
    return _run_parsed(parser, args, extra, "vrlvr-train")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
