"""Held-out evaluation: a checkpoint's per-puzzle values on a run's held-out puzzles (the same
puzzles, samples and noise for every policy, so any two are paired), evaluated here or read from
the pool's evaluation processes (``score_key`` names what decides them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from reproduction.settings import EVAL_SEED, METRICS, PUZZLES, QUICK_PUZZLES, SAMPLES


def per_puzzle(policy, task, puzzles, video, steps, shift, samples: int, seed: int, sde=None) -> np.ndarray:
    """float [n_puzzles, len(METRICS)]: each metric averaged over ``samples`` videos per puzzle
    (Euler sampling, or ``sde``: a vrlvr.models.sampling.SdeWindow)."""
    from vrlvr.train.evaluate import evaluate_samples, loose_success

    rows = np.zeros((samples, len(puzzles), len(METRICS)))
    records = evaluate_samples(
        policy, task, puzzles, video, steps, shift, 48, samples, seed=seed, progress=False, sde=sde
    )
    for j, recs in enumerate(records):
        for i, r in enumerate(recs):
            v = r["verdict"]
            vals = (float(v.success), loose_success(v), v.precision, v.recall, v.f1, float(v.reward))
            rows[j, i] = [np.nan if x is None else x for x in vals]
    return np.nanmean(rows, axis=0)


def samples_per_puzzle(args) -> int:
    """Videos per held-out puzzle every policy is scored with: SAMPLES, one with --quick."""
    return 1 if getattr(args, "quick", False) else SAMPLES


def stored(values: np.ndarray) -> list:
    """Per-puzzle values for the JSON (rows: puzzles, columns: METRICS; None for undefined), so
    that any two policies scored on the same puzzles can be compared later with a paired interval."""
    return [[None if np.isnan(x) else round(float(x), 4) for x in row] for row in values]


def held_out_eval(checkpoint: Path | str, run: Path, args) -> tuple[np.ndarray, dict]:
    """Per-puzzle metrics of a checkpoint on the run's held-out evaluation puzzles (the same puzzles
    for the SFT checkpoint and every RL policy of a task: the held-out set depends only on the
    config's heldout seed), plus the baselines on them. Memoised per invocation on what decides the
    numbers (the checkpoint, the puzzles, the video, the sampler): table4 and the reward experiment
    reuse table1's evaluation of the same policy, and a start shared by several ``--score`` runs is
    evaluated once."""
    memo = args.__dict__.setdefault("evals", {})
    task, puzzles, video, cfg = heldout_set(run, args)
    sampler = eval_sampler(cfg, args)
    where = Path(checkpoint)
    name = str(where.resolve()) if where.exists() else str(checkpoint)  # a path, or a shipped name
    key = (name, task.name, tuple(p.key for p in puzzles), video, sampler)
    if key not in memo:
        memo[key] = _held_out_eval(checkpoint, run, args)
    return memo[key]


def eval_sampler(cfg, args) -> tuple:
    """What of a run's config decides how its held-out videos are sampled: Euler steps and shift, and
    with --rollout-sampler also its SDE window, eta and mode (the evaluation memo's and the score
    cache's key)."""
    sampler = (cfg.sampling.steps, cfg.sampling.shift)
    if getattr(args, "rollout_sampler", False):
        sampler += (tuple(cfg.window()), cfg.sampling.eta, cfg.sampling.mode)
    return sampler


def is_sft_run(run: Path) -> bool:
    """Whether a run folder is a `vrlvr sft` run (its config has no grpo section) rather than a
    `vrlvr-train` run."""
    import yaml

    return "grpo" not in yaml.safe_load((run / "config.yaml").read_text())


def run_config(run: Path):
    """The resolved config of a `vrlvr-train` run (GRPOConfig) or a `vrlvr sft` run (SFTConfig)."""
    import yaml

    from vrlvr.config import build_config
    from vrlvr.train.grpo_config import GRPOConfig
    from vrlvr.train.sft_config import SFTConfig

    kind = SFTConfig if is_sft_run(run) else GRPOConfig
    return build_config(kind, yaml.safe_load((run / "config.yaml").read_text()))


def heldout_set(run: Path, args):
    """(task, puzzles, video, config) a run's policies are scored on: the first PUZZLES of the run's
    held-out puzzles. They depend only on the config's heldout seed and data and the starting
    checkpoint's held-out keys (not on the run's own eval settings), so every run of a task (any
    training seed, any recipe) is scored on the same puzzles as its SFT checkpoint."""
    from vrlvr.train.data import HELDOUT_FILE

    # memoised per invocation: generating the puzzles is the slow part, and the score table, the
    # evaluation memo and --against ask for the same run's set several times. Keyed on the files the
    # set is read from, so a run trained again under the same name is read again.
    memo = args.__dict__.setdefault("heldout_sets", {})
    key = (str(Path(run).resolve()), bool(args.quick)) + tuple(
        (Path(run) / f).read_text() if (Path(run) / f).is_file() else None
        for f in ("config.yaml", HELDOUT_FILE)
    )
    if key not in memo:
        memo[key] = _heldout_set(run, args)
    return memo[key]


def _heldout_set(run: Path, args):
    from vrlvr import tasks
    from vrlvr.train.data import VideoSpec, eval_puzzles, read_heldout

    cfg = run_config(run)
    if not hasattr(cfg, "grpo"):  # a `vrlvr sft` run: one task, its sizes and options
        name, sizes, options = cfg.data.task, cfg.data.sizes, cfg.data.options
    else:
        name = cfg.data.tasks[0]
        sizes, options = cfg.data.sizes_for(name), cfg.data.options_for(name)
    task = tasks.get(name)
    allowed = set(read_heldout(run, name)["keys"])
    n = QUICK_PUZZLES if args.quick else PUZZLES
    puzzles, _ = eval_puzzles(task, sizes, n, cfg.heldout.seed, allowed=allowed, options=options)
    video = VideoSpec(cfg.data.num_frames, cfg.data.cell_px, cfg.data.height, cfg.data.width)
    return task, puzzles, video, cfg


def _held_out_eval(checkpoint: Path | str, run: Path, args) -> tuple[np.ndarray, dict]:
    from vrlvr.train.evaluate import evaluate_baselines

    task, puzzles, video, _ = heldout_set(run, args)
    vals = prescored(checkpoint, run, args)  # evaluated by the pool (--jobs), or None
    if vals is None:
        vals = evaluated(checkpoint, run, args)
    return vals, evaluate_baselines(task, puzzles, video)


def evaluated(checkpoint: Path | str, run: Path, args) -> np.ndarray:
    """float [puzzles, len(METRICS)]: the checkpoint sampled on the run's held-out puzzles
    (samples_per_puzzle videos each, EVAL_SEED's noise), each metric averaged per puzzle."""
    from vrlvr.models import load_policy

    task, puzzles, video, cfg = heldout_set(run, args)
    policy = load_policy(checkpoint).eval()
    samples = samples_per_puzzle(args)
    sde = None
    if getattr(args, "rollout_sampler", False):  # the run's own rollout sampler (--score only)
        from vrlvr.models.sampling import SdeWindow

        sde = SdeWindow(*cfg.window(), cfg.sampling.eta, cfg.sampling.mode)
    return per_puzzle(
        policy, task, puzzles, video, cfg.sampling.steps, cfg.sampling.shift, samples, EVAL_SEED, sde
    )


def prescored(checkpoint: Path | str, run: Path, args) -> np.ndarray | None:
    """The per-puzzle values the pool's evaluation process wrote for this checkpoint on this run's
    puzzles (``--jobs``: the experiments then only read them), or None. The file is named by
    score_key, so it holds exactly the evaluation asked for; it lives for this invocation only."""
    folder = args.__dict__.get("prescored")
    if not folder:
        return None
    path = Path(folder) / f"{score_key(checkpoint, run, args)}.json"
    if not path.is_file():
        return None
    return np.array(json.loads(path.read_text())["values"], dtype=float)  # None (undefined) -> nan


def fingerprint(checkpoint: Path | str) -> str:
    """sha256 over a checkpoint folder's files (names and bytes): a run trained again under the same
    name, or a shipped checkpoint replaced, is a new entry of the score cache, never a stale one."""
    import hashlib

    from vrlvr.models import resolve_checkpoint

    folder = Path(resolve_checkpoint(str(checkpoint)))
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def score_key(checkpoint: Path | str, run: Path, args) -> str:
    """sha256 over everything that decides a checkpoint's held-out values: the checkpoint's bytes,
    the task, the puzzles, the video, the sampler, the samples per puzzle and the sampling seed."""
    import dataclasses
    import hashlib

    task, puzzles, video, cfg = heldout_set(run, args)
    what = {
        "checkpoint": fingerprint(checkpoint),
        "task": task.name,
        "puzzles": [p.key for p in puzzles],
        "video": dataclasses.asdict(video),
        "sampler": eval_sampler(cfg, args),
        "samples": samples_per_puzzle(args),
        "seed": EVAL_SEED,
        "metrics": list(METRICS),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def exact_values(vals: np.ndarray) -> list:
    """Per-puzzle values at full precision for JSON (a float round-trips exactly; nan -> None)."""
    return [[None if np.isnan(x) else float(x) for x in row] for row in vals]


def evaluate_into(checkpoint: str, run: Path, folder: Path, args) -> Path:
    """The pool's evaluation process (``--evaluate``): the checkpoint's per-puzzle values on the run's
    held-out puzzles, written atomically to FOLDER/<score_key>.json for prescored to read."""
    vals = evaluated(checkpoint, run, args)
    path = folder / f"{score_key(checkpoint, run, args)}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"checkpoint": checkpoint, "run": str(run), "values": exact_values(vals)}))
    tmp.replace(path)
    return path
