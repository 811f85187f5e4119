"""Arguments shared by `vrlvr sample` and `vrlvr eval`: which checkpoint, which puzzles, how to sample.

Every video setting defaults to what the checkpoint was trained with (its policy.json records the
data and sampling config), so ``--checkpoint maze-tiny --task maze`` needs nothing else.
"""

from __future__ import annotations

import argparse
import json

from vrlvr.commands.data import add_option_argument
from vrlvr.models.shipped import shipped_names


def add_policy_arguments(parser: argparse.ArgumentParser, n_default: int) -> None:
    # keep the docstring's line breaks: its example command must not run into the next paragraph
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="a checkpoint folder (OUT/final of `vrlvr sft`, a Wan folder) or a shipped name "
        f"({shipped_names()})",
    )
    parser.add_argument("--task", help="maze, flowfree or sokoban (default: the checkpoint's task)")
    parser.add_argument("--n", type=int, default=n_default, help="number of puzzles")
    parser.add_argument(
        "--seed", type=int, default=100000, help="puzzles come from seeds seed, seed + 1, ..."
    )
    parser.add_argument("--sizes", type=int, nargs="+", help="puzzle sizes (default: the checkpoint's)")
    add_option_argument(
        parser,
        "difficulty option passed to the puzzle generator, over the checkpoint's own "
        "(its data.options), e.g. boxes=2, colours=6, distribution=classic",
    )
    parser.add_argument("--num-frames", type=int, help="frames per video (default: the checkpoint's)")
    parser.add_argument("--cell-px", type=int, help="pixels per cell (default: the checkpoint's)")
    parser.add_argument("--height", type=int, help="frame height when not using --cell-px")
    parser.add_argument("--width", type=int, help="frame width when not using --cell-px")
    parser.add_argument("--theme", default=0, help="colour theme (index or name)")
    parser.add_argument("--steps", type=int, help="Euler sampling steps (default: the checkpoint's)")
    parser.add_argument("--shift", type=float, help="schedule shift (default: the checkpoint's)")
    parser.add_argument("--batch-size", type=int, default=32, help="videos generated at once")
    parser.add_argument(
        "--device", default="auto", help="auto (cuda if available, else cpu), cpu or cuda[:N]"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument(
        "--allow-seen", action="store_true", help="do not restrict puzzles to the checkpoint's held-out set"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--force",
        action="store_true",
        help="generate even at a frame size far beyond what the checkpoint was trained on, or when the "
        "work is estimated to exceed the available memory",
    )


def add_sampler_arguments(parser: argparse.ArgumentParser) -> None:
    """--sde-window/--eta/--mode: sample as the SDE-GRPO trainer rolls out instead of Euler steps."""
    parser.add_argument(
        "--sde-window",
        type=int,
        nargs=2,
        metavar=("START", "END"),
        help="sample with SDE steps on sampling steps [START, END) and Euler steps elsewhere (the "
        "trainer's rollout sampler; default: Euler steps only)",
    )
    parser.add_argument("--eta", type=float, help="SDE noise level with --sde-window (default 0.7)")
    parser.add_argument(
        "--mode", choices=["sde", "dance", "cps"], help="SDE formulation with --sde-window (default sde)"
    )


def check_sampler_arguments(args: argparse.Namespace) -> None:
    """Refuse --eta/--mode without the window they apply to (before any model is loaded)."""
    if not args.sde_window and (args.eta is not None or args.mode is not None):
        raise ValueError("--eta and --mode set the SDE steps of --sde-window START END; give the window too")


def resolve_sampler(args: argparse.Namespace, s: dict):
    """The SdeWindow (vrlvr.models.sampling) the arguments ask for, checked against the number of
    sampling steps ``resolve`` gave, or None for Euler steps only."""
    if not args.sde_window:
        return None
    from vrlvr.models.sampling import SdeWindow

    try:
        eta = 0.7 if args.eta is None else args.eta
        return SdeWindow(*args.sde_window, eta, args.mode or "sde").check(s["steps"])
    except ValueError as e:
        raise ValueError(f"--sde-window/--eta: {e}") from None


def sampler_report(sde) -> str | dict:
    """How the videos were sampled, for a JSON report: "ode" or the SDE window's settings."""
    return "ode" if sde is None else {"sde_window": [sde.start, sde.end], "eta": sde.eta, "mode": sde.mode}


# a video of more than this many times the checkpoint's largest trained token count is refused
# (unless --force): the model never saw such inputs and the attention cost grows with its square
MAX_TOKEN_RATIO = 4.0


def check_writable(path: str, flag: str) -> None:
    """Fail before the work, not after it: the file's folder must exist and be writable, and the
    path must not be a folder."""
    import os

    if os.path.isdir(path):
        raise ValueError(f"{flag} {path} is a folder; give a file path")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{flag} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ValueError(f"{flag} {path}: not writable")


def write_atomic(path: str, text: str) -> None:
    """Write via a temporary file and a rename, so a reader never sees half a report."""
    import os

    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _positive(args: argparse.Namespace) -> None:
    """Reject values that used to fall back silently (--steps 0 became 10) or crash later."""
    checks = {
        "--n": args.n,
        "--batch-size": args.batch_size,
        "--steps": args.steps,
        "--num-frames": args.num_frames,
        "--cell-px": args.cell_px,
        "--height": args.height,
        "--width": args.width,
    }
    for flag, value in checks.items():
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if args.num_frames is not None and args.num_frames < 2:
        raise ValueError(f"--num-frames must be >= 2 (frame 0 is the puzzle), got {args.num_frames}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    if args.shift is not None and not args.shift > 0:
        raise ValueError(f"--shift must be > 0, got {args.shift}")
    if args.threads < 0:
        raise ValueError(f"--threads must be >= 0, got {args.threads}")
    if args.sizes is not None and any(z < 1 for z in args.sizes):
        raise ValueError(f"--sizes must be positive, got {args.sizes}")
    if args.cell_px is not None and (args.height is not None or args.width is not None):
        raise ValueError("give either --cell-px or --height/--width, not both")
    if (args.height is None) != (args.width is None):
        raise ValueError("--height and --width go together")


def _frame_hw(task, size: int, video) -> tuple[int, int]:
    """(H, W) of a video of a size-`size` puzzle under `video` (a VideoSpec)."""
    if video.cell_px is None:
        return int(video.height), int(video.width)
    layout = task.render_layout(task.generate(0, size), None, None, video.cell_px)
    return int(layout.height), int(layout.width)


def _tokens(policy, num_frames: int, hw: tuple[int, int]) -> int:
    _, f, h, w = policy.latent_shape(num_frames, *hw)  # ValueError for sides the model cannot take
    pt, ph, pw = policy.patch_size
    return -(-f // pt) * -(-h // ph) * -(-w // pw)


def _available_bytes(device) -> int | None:
    import torch

    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def estimate_work(s: dict, n_videos: int, batch_size: int) -> dict:
    """Tokens per video, the transformer FLOPs of the whole run and the activation memory of one
    batch, for the sizes asked for and for what the checkpoint was trained on."""
    policy, task, video = s["policy"], s["task"], s["video"]
    cfg = policy.transformer.config
    width = int(cfg.num_attention_heads) * int(cfg.attention_head_dim)
    layers = int(cfg.num_layers)
    params = sum(p.numel() for p in policy.transformer.parameters())
    tokens = {z: _tokens(policy, video.num_frames, _frame_hw(task, z, video)) for z in s["sizes"]}
    worst = max(tokens.values())
    b = min(batch_size, n_videos)
    # per model call and video: 2 FLOPs per parameter and token, plus QK^T and AV (4 T^2 d per layer)
    call = 2 * params * worst + 4 * layers * worst**2 * width
    flops = n_videos * s["steps"] * call
    # a batch's live activations: ~16 fp32 tensors of [B, T, d] (attention runs fused, no T^2 scores)
    memory = 16 * b * worst * width * 4
    trained = s.get("trained")
    trained_tokens = None
    if trained:
        trained_tokens = max(
            _tokens(policy, trained.num_frames, _frame_hw(task, z, trained)) for z in s["trained_sizes"]
        )
    return {
        "tokens_per_video": worst,
        "trained_tokens_per_video": trained_tokens,
        "tflop": flops / 1e12,
        "batch_memory_gb": memory / 2**30,
        "available_gb": (lambda a: None if a is None else a / 2**30)(_available_bytes(policy.device)),
        "frame_hw": _frame_hw(task, max(tokens, key=tokens.get), video),
    }


def check_work(s: dict, args: argparse.Namespace, n_videos: int, prog: str) -> dict:
    """Print the estimate; refuse (ValueError, unless --force) what the checkpoint was not trained
    for or what cannot fit in memory, saying why."""
    import sys

    w = estimate_work(s, n_videos, args.batch_size)
    H, W = w["frame_hw"]
    print(
        f"{prog}: {n_videos} videos x {s['video'].num_frames} frames of {H}x{W} px, {s['steps']} steps: "
        f"{w['tokens_per_video']:,} tokens per video, ~{w['tflop']:.3g} TFLOP, "
        f"~{w['batch_memory_gb']:.2g} GB per batch of {min(args.batch_size, n_videos)}",
        file=sys.stderr,
    )
    if args.force:
        return w
    t, t0 = w["tokens_per_video"], w["trained_tokens_per_video"]
    if t0 and t > MAX_TOKEN_RATIO * t0:
        raise ValueError(
            f"{s['folder'].name} was trained on videos of {t0:,} tokens; {H}x{W} px x "
            f"{s['video'].num_frames} frames is {t:,} tokens per video ({t / t0:.0f}x), which it was not "
            f"trained for and which costs ~{w['tflop']:.3g} TFLOP: use the checkpoint's frame size "
            "(leave out --height/--width/--cell-px) or pass --force"
        )
    if w["available_gb"] is not None and w["batch_memory_gb"] > 0.8 * w["available_gb"]:
        raise ValueError(
            f"one batch needs ~{w['batch_memory_gb']:.1f} GB, {w['available_gb']:.1f} GB is available: "
            "lower --batch-size or pass --force"
        )
    return w


def resolve(args: argparse.Namespace) -> dict:
    """Load the policy and merge the checkpoint's recorded settings with the command line."""
    import torch

    from vrlvr import tasks
    from vrlvr.models.policy import load_policy, resolve_checkpoint
    from vrlvr.tasks.themes import theme_index
    from vrlvr.train.data import VideoSpec, read_heldout
    from vrlvr.train.device import resolve_device as pick_device

    _positive(args)
    theme = theme_index(args.theme)  # ValueError naming the themes, before any model is loaded
    device = pick_device(args.device)  # ValueError for tpu, or cuda on a CPU build
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    folder = resolve_checkpoint(args.checkpoint)
    meta = json.loads((folder / "policy.json").read_text()) if (folder / "policy.json").is_file() else {}
    data, sampling = meta.get("data", {}), meta.get("sampling", {})
    task_name = args.task or meta.get("task")
    if not task_name:
        raise ValueError(f"checkpoint {folder} does not record its task; pass --task")
    if meta.get("task") and args.task and args.task != meta["task"]:
        raise ValueError(f"checkpoint {folder} was trained on {meta['task']!r}, not {args.task!r}")
    if meta.get("tasks") and task_name not in meta["tasks"]:  # a mixed-task RL run
        raise ValueError(f"checkpoint {folder} was trained on {meta['tasks']}, not {task_name!r}")
    task = tasks.get(task_name)
    cell_px = args.cell_px if args.cell_px is not None else (None if args.height else data.get("cell_px", 4))
    s = {
        "task": task,
        "folder": folder,
        # a mixed-task RL run records each task's sizes in data.sizes_by_task
        "sizes": args.sizes or (data.get("sizes_by_task") or {}).get(task_name) or data.get("sizes"),
        "video": VideoSpec(
            num_frames=args.num_frames if args.num_frames is not None else data.get("num_frames", 9),
            cell_px=cell_px,
            height=args.height or (None if cell_px else data.get("height")),
            width=args.width or (None if cell_px else data.get("width")),
        ),
        "steps": args.steps if args.steps is not None else sampling.get("steps", 10),
        "shift": args.shift if args.shift is not None else sampling.get("shift", 1.0),
        "theme": theme,
    }
    # the generator options it was trained with (a mixed-task RL run: per task), then --option
    options = (data.get("options_by_task") or {}).get(task_name) or data.get("options") or {}
    s["options"] = {**options, **dict(getattr(args, "option", None) or [])}
    if not s["sizes"]:
        raise ValueError(f"checkpoint {folder} does not record puzzle sizes; pass --sizes")
    if s["video"].cell_px is None and (s["video"].height is None or s["video"].width is None):
        raise ValueError(
            f"checkpoint {folder} does not record its frame size; pass --cell-px or --height/--width"
        )
    for z in s["sizes"]:
        try:  # a size or option the task does not have fails here, in one line
            task.generate(args.seed, z, **s["options"])
        except (TypeError, RuntimeError) as exc:
            raise ValueError(f"{task.name} size {z} with options {s['options']}: {exc}") from None
    if data.get("sizes") and data.get("num_frames"):  # what it was trained on, for check_work
        s["trained"] = VideoSpec(
            num_frames=data["num_frames"],
            cell_px=data.get("cell_px"),
            height=data.get("height"),
            width=data.get("width"),
        )
        s["trained_sizes"] = list((data.get("sizes_by_task") or {}).get(task_name) or data["sizes"])
    heldout = None if args.allow_seen else read_heldout(folder, task_name)
    s["allowed"] = set(heldout["keys"]) if heldout else None
    s["policy"] = load_policy(folder, device=device).eval()
    return s


def resolved_puzzles(s: dict, args: argparse.Namespace) -> tuple[list, dict]:
    """The command line's n held-out puzzles (``vrlvr.train.data.eval_puzzles``) for the settings
    ``resolve`` gave -> (puzzles, draw stats); none at all is a one-line error."""
    from vrlvr.train.data import eval_puzzles

    task = s["task"]
    puzzles, stats = eval_puzzles(
        task, s["sizes"], args.n, args.seed, allowed=s["allowed"], options=s["options"]
    )
    if not puzzles:
        raise ValueError(
            f"no held-out {task.name} puzzles of sizes {s['sizes']} from seed {args.seed}; "
            "use the checkpoint's held-out seed or --allow-seen"
        )
    return puzzles, stats


def evaluate_resolved(
    s: dict, args: argparse.Namespace, puzzles: list, keep_videos: bool = False, samples: int = 1, sde=None
):
    """``vrlvr.train.evaluate.evaluate_samples`` with the settings ``resolve`` gave and the command
    line's batch size, seed and progress flag, after one work estimate for all the videos ->
    (metrics pooled over samples x puzzles, records [samples][n puzzles]). ``sde``: an SdeWindow
    (vrlvr.models.sampling) to sample with, None for Euler steps."""
    from vrlvr.train.evaluate import evaluate_samples, summarise

    check_work(s, args, samples * len(puzzles), f"vrlvr {getattr(args, 'command', None) or 'eval'}")
    records = evaluate_samples(
        s["policy"],
        s["task"],
        puzzles,
        s["video"],
        s["steps"],
        s["shift"],
        args.batch_size,
        samples,
        seed=args.seed,
        theme=s["theme"],
        progress=not args.no_progress,
        keep_videos=keep_videos,
        sde=sde,
    )
    return summarise([r for recs in records for r in recs]), records
