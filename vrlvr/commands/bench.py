"""Run one of vrlvr's benchmarks (JSON on stdout). `vrlvr bench` lists them;
`vrlvr bench NAME --help` shows a benchmark's own options; anything after NAME is passed to it.
The benchmark scripts live in bench/ of the source tree and ship in the wheel as vrlvr.bench."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import pkgutil
import runpy
import sys


def _benchmarks() -> dict[str, str]:
    """name -> module, for every vrlvr.bench.bench_<name> module (not the pytest-benchmark suites)."""
    try:
        pkg = importlib.import_module("vrlvr.bench")
    except ImportError:
        return {}
    names = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("bench_"):
            names[info.name[len("bench_") :]] = f"vrlvr.bench.{info.name}"
    return dict(sorted(names.items()))


def _summary(module: str) -> str:
    """The first paragraph of a benchmark's docstring, on one line (never cut mid-sentence)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return ""
    import ast

    with open(spec.origin, encoding="utf-8") as fh:
        doc = ast.get_docstring(ast.parse(fh.read())) or ""
    paragraph = doc.strip().split("\n\n")[0]
    return " ".join(paragraph.split())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("name", nargs="?", help="benchmark to run (omit to list them with what they measure)")
    parser.add_argument(
        "args", nargs=argparse.REMAINDER, help="options passed to the benchmark (see vrlvr bench NAME --help)"
    )


def run(args: argparse.Namespace) -> int:
    benches = _benchmarks()
    if not benches:
        print("vrlvr bench: no benchmarks found (vrlvr.bench is missing from this install)", file=sys.stderr)
        return 2
    if args.name is None:
        import shutil
        import textwrap

        width = max(len(n) for n in benches)
        cols = max(60, min(110, shutil.get_terminal_size((100, 20)).columns))
        for name, module in benches.items():
            lines = textwrap.wrap(_summary(module), cols - width - 2) or [""]
            print(f"{name:<{width}}  {lines[0]}")
            for line in lines[1:]:
                print(f"{'':<{width}}  {line}")
        return 0
    if args.name not in benches:
        raise ValueError(f"unknown benchmark {args.name!r}; available: {', '.join(benches)}")
    # Run the module as a script so its own argparse sees exactly the user's options.
    saved = sys.argv
    sys.argv = [f"vrlvr bench {args.name}", *args.args]
    try:
        runpy.run_module(benches[args.name], run_name="__main__", alter_sys=True)
    except SystemExit as exc:  # the benchmark's own exit status (argparse --help, errors)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    return 0
