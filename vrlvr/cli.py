"""Command line: `vrlvr <subcommand>` and `vrlvr-train`.

Each subcommand lives in its own module under vrlvr.commands with two functions,
``add_arguments(parser)`` and ``run(args) -> int``. Subcommands whose capability has not been
built yet are listed in NOT_BUILT: their --help works, running them exits with status 2 and says
so; nothing pretends to work.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("vrlvr.commands.data", "generate puzzles, solution videos and metadata.jsonl"),
    "sft": ("vrlvr.commands.sft", "supervised flow-matching fine-tuning on solution videos"),
    "sample": ("vrlvr.commands.sample", "generate videos from a checkpoint beside the ground truth"),
    "eval": ("vrlvr.commands.eval", "generate on held-out puzzles, verify, and report metrics as JSON"),
    "verify": ("vrlvr.commands.verify", "verify one video against one puzzle and print the verdict"),
    "bench": ("vrlvr.commands.bench", "run the packaged micro-benchmarks and print JSON"),
    "info": ("vrlvr.commands.info", "versions and which backends (native, CUDA, Triton) are usable"),
}

# Subcommands whose capability a later issue builds. Remove an entry when its module lands.
NOT_BUILT: dict[str, str] = {
    "train": "the SDE-GRPO trainer has not been built yet",
}


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
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as exc:
        # user errors: one clear line, no traceback
        print(f"vrlvr {args.command}: error: {exc}", file=sys.stderr)
        return 2


def train_main(argv: list[str] | None = None) -> int:
    """`vrlvr-train --config configs/X.yaml [key=value ...]`: SDE-GRPO, the main job."""
    parser = argparse.ArgumentParser(
        prog="vrlvr-train",
        description="SDE-GRPO with Early-Step Focus over a LoRA-adapted video diffusion transformer. "
        f"Not built yet: {NOT_BUILT['train']}."
        if "train" in NOT_BUILT
        else "SDE-GRPO with Early-Step Focus over a LoRA-adapted video diffusion transformer.",
    )
    parser.add_argument("--config", help="YAML experiment file (see configs/)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    args = parser.parse_args(argv)
    if "train" in NOT_BUILT:
        print(f"vrlvr-train: not built yet ({NOT_BUILT['train']}).", file=sys.stderr)
        return 2
    from vrlvr.train.cli import run_train

    return int(run_train(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
