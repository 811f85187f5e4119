"""SDE-GRPO with Early-Step Focus over LoRA: the main job (`vrlvr-train`).

One step, for B = ``grpo.prompts_per_step`` puzzles and G = ``grpo.group_size`` rollouts each:

1. draw B training puzzles (held-out keys rejected; puzzle i takes task i mod len(data.task));
   every process draws the same B and owns puzzles i = rank, rank + world, ...;
2. roll out G videos per puzzle (vrlvr.train.rollout): SDE with log-probs on the window
   [start, end) of the T sampling steps, Euler ODE elsewhere, noise from (seed, step, puzzle,
   rollout) alone (``grpo.shared_start``: one initial noise per puzzle, from (seed, step, puzzle));
3. decode and verify each bucket of groups with one ``verify_batch``; the reward is the verifier's
   dense reward or its success as 0/1 (``reward.kind``);
4. advantages normalised within each group and clipped to +-adv_clip; groups whose rewards do not
   vary carry no signal and are skipped (counted as ``frac_zero_std``);
5. for each inner epoch: for every window step k and micro-batch, v_theta(x_k) with the adapters
   on, ``sde_logprob`` of the recorded x_{k+1} (of its block coefficients with ``grpo.noise_block``
   > 1: vrlvr.train.exploration), ratio = exp(logp - logp_old), the clipped PPO loss,
   plus beta x ``sde_kl`` to v_ref (the same transformer with adapters disabled, no grad); the
   loss is normalised by the global number of contributing samples x window steps, so N processes
   give the gradient of one; backward per micro-batch (memory), one all-reduce of the gradients,
   clip, AdamW;
   ``grpo.loss=awm`` replaces the log-prob ratio by advantage-weighted flow matching on each
   rollout's final latent, re-noised at the window's sigmas (``backward_awm_loss``);
6. a non-finite reward, loss or gradient skips the step (logged); ``grpo.max_nonfinite`` in a row
   stop the run with a checkpoint and a message that says what went non-finite.

Run folder: config.yaml, heldout.json, metrics.jsonl (one line per step, plus held-out evaluation
lines), TensorBoard events when tensorboard is installed, samples/ (every ``sample_every`` steps),
checkpoints/step_N/ (adapter, optimizer, scheduler, step, data position; atomic), final/ (what
``vrlvr eval --checkpoint`` takes: policy.json + pytorch_lora_weights.safetensors) and curves.png.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
import warnings
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from vrlvr.models.policy import VideoPolicy, load_policy, resolve_checkpoint
from vrlvr.models.schedule import flow_sigmas
from vrlvr.train.checkpoint import (
    atomic_write_text,
    load_train_state,
    save_checkpoint,
    save_final,
)
from vrlvr.train.data import (
    HELDOUT_FILE,
    EvalPuzzle,
    VideoSpec,
    check_inside_heldout,
    check_options,
    eval_puzzles,
    eval_subset,
)
from vrlvr.train.device import resolve_device
from vrlvr.train.distributed import (
    DistInfo,
    all_reduce_max,
    all_reduce_sum,
    barrier,
    broadcast_flag,
    init_distributed,
    merge_sums,
    threads_per_rank,
)
from vrlvr.train.evaluate import (
    aggregate,
    evaluate_baselines,
    evaluate_samples,
    loose_success,
    verify_group,
)
from vrlvr.train.exploration import step_kl, step_logprob
from vrlvr.train.grpo_config import FROZEN_ON_RESUME, GRPOConfig
from vrlvr.train.logger import MetricsLogger, plot_curves
from vrlvr.train.rollout import GroupBucket, RolloutBatch, matching_seed, sample_rollouts
from vrlvr.train.run_dir import check_checkpoint_meta, checkpoint_meta
from vrlvr.train.sft import lr_lambda

__all__ = [
    "train_grpo",
    "group_advantages",
    "ppo_loss",
    "PuzzleStream",
    "build_rl_policy",
    "reward_config_for",
    "TrainingDiverged",
    "backward_grpo_loss",
    "backward_awm_loss",
    "awm_loss",
]


class TrainingDiverged(RuntimeError):
    """Too many non-finite steps in a row; a checkpoint was written before raising."""


# --- the objective -------------------------------------------------------------------------
def group_advantages(rewards: torch.Tensor, adv_clip: float, eps: float = 1e-6):
    """rewards [n, G] -> (advantages [n, G] clipped to +-adv_clip, keep bool [n]).

    Normalised within each group: (r - mean) / std (population std). A group whose rewards do not
    vary (std <= eps) carries no signal and is dropped (keep False, advantages 0)."""
    mean = rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, unbiased=False, keepdim=True)
    keep = (std > eps).squeeze(1)
    adv = torch.where(keep[:, None], (rewards - mean) / std.clamp_min(eps), torch.zeros_like(rewards))
    return adv.clamp(-adv_clip, adv_clip), keep


def ppo_loss(logp: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, clip_range: float):
    """Per-sample clipped surrogate [m] (to minimise) and the ratio [m]:
    max(-A r, -A clip(r, 1 - eps, 1 + eps)) with r = exp(logp - logp_old)."""
    ratio = torch.exp(logp - logp_old)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    return torch.maximum(unclipped, clipped), ratio


# --- rewards -------------------------------------------------------------------------------
def reward_config_for(task_name: str, settings) -> object | None:
    """The task's reward config for ``reward.preset`` with the ``reward.<task>`` overrides (None for a
    user task without registered rules: its verify_video decides)."""
    from vrlvr.verify import RULES, reward_config

    if task_name not in RULES:
        return None
    overrides = dict(getattr(settings, task_name, {}) or {})
    return reward_config(task_name, preset=settings.preset, **overrides)


# --- puzzles -------------------------------------------------------------------------------
@dataclass
class StepPuzzle:
    index: int  # position within the step (0 .. B - 1)
    task: object
    size: int
    seed: int
    puzzle: object
    theme: int


class PuzzleStream:
    """The training puzzles of each step, identical on every process.

    Puzzle i of step s takes task ``tasks[i % len(tasks)]`` at that task's size
    ``sizes[s % len(sizes)]``; each task draws from seeds ``seed + position`` (position advances on
    every draw; with ``pool`` > 0 from ``seed + position mod pool``) and rejects held-out keys.
    ``state()`` / ``load_state()`` make resume exact."""

    def __init__(
        self,
        tasks: list,
        sizes: dict[str, list[int]],
        heldout: dict[str, set[str]],
        seed: int,
        themes,
        options: dict[str, dict] | None = None,
        pool: int = 0,
    ):
        self.tasks, self.sizes, self.heldout, self.seed = tasks, sizes, heldout, seed
        self.pool = pool  # > 0: only seeds seed .. seed + pool - 1, cycling (data.pool)
        self.options = {t.name: dict((options or {}).get(t.name) or {}) for t in tasks}
        self.themes = list(themes or [0])
        self.position = {t.name: 0 for t in tasks}
        self.rejected = 0

    def state(self) -> dict:
        return {"position": dict(self.position), "rejected": self.rejected}

    def load_state(self, state: dict) -> None:
        self.position = dict(state["position"])
        self.rejected = int(state["rejected"])

    def draw(self, step: int, n: int) -> list[StepPuzzle]:
        out = []
        for i in range(n):
            task = self.tasks[i % len(self.tasks)]
            sizes = self.sizes[task.name]
            size = sizes[step % len(sizes)]
            for _ in range(self.pool or 100_000):
                pos = self.position[task.name]
                s = self.seed + (pos % self.pool if self.pool else pos)
                self.position[task.name] += 1
                p = task.generate(s, size, **self.options[task.name])
                if task.canonical_key(p) not in self.heldout[task.name]:
                    break
                self.rejected += 1
            else:
                raise ValueError(
                    f"{task.name} size {size}: every drawn puzzle is held out; lower heldout.n or use "
                    + ("another data.seed or a larger data.pool" if self.pool else "larger sizes")
                )
            theme = self.themes[(self.position[task.name] - 1) % len(self.themes)]
            out.append(StepPuzzle(i, task, size, s, p, theme))
        return out


def buckets_of(items: list[StepPuzzle], video: VideoSpec) -> list[GroupBucket]:
    """Group a process's puzzles by (task, size): one frame geometry per bucket, so they batch."""
    by: dict[tuple, list[StepPuzzle]] = defaultdict(list)
    for it in items:
        by[(it.task.name, it.size)].append(it)
    out = []
    for group in by.values():
        task = group[0].task
        ps = [g.puzzle for g in group]
        themes = [g.theme for g in group]
        out.append(
            GroupBucket(
                task=task,
                puzzle_index=[g.index for g in group],
                puzzles=ps,
                themes=themes,
                first_frames=video.first_frames(task, ps, themes),
                prompts=[task.prompt(p) for p in ps],
            )
        )
    return out


# --- the policy ----------------------------------------------------------------------------
def build_rl_policy(cfg: GRPOConfig, device: torch.device) -> tuple[VideoPolicy, VideoPolicy | None]:
    """(policy with LoRA, or full fine-tune; frozen reference copy for a full fine-tune, else None).

    A full fine-tune on a GPU keeps fp32 master weights and runs the transformer under bf16
    autocast; LoRA keeps the base as loaded (bf16 on GPUs) and the adapters in fp32."""
    folder = resolve_checkpoint(cfg.model.init)
    full_ft = cfg.lora.rank == 0
    kwargs = {}
    meta = json.loads((folder / "policy.json").read_text()) if (folder / "policy.json").is_file() else {}
    if meta.get("kind", "wan") == "wan":
        kwargs = {"dtype": torch.float32} if full_ft else {}
    if not meta:  # a plain diffusers-format Wan folder
        from vrlvr.models.wan import WanPolicy

        policy = WanPolicy.from_folder(
            folder, device=device, max_sequence_length=cfg.model.max_sequence_length, **kwargs
        )
    else:
        policy = load_policy(folder, device=device, **kwargs)
    if policy.lora:
        # starting from an adapted policy (e.g. another RL run's final/): fold its adapter into the
        # base, so this run trains one fresh adapter and the KL reference is the starting policy
        policy.merge_lora()
    if full_ft and device.type == "cuda" and policy.kind == "wan":
        policy.autocast_dtype = torch.bfloat16
    ref = None
    if full_ft:
        policy.requires_grad_(False)
        policy.transformer.requires_grad_(True)
        ref = copy.deepcopy(policy).requires_grad_(False).eval()
    else:
        # LoRA's A is random: seed it, so every process (and a rebuilt policy) starts identical
        torch.manual_seed(cfg.seed)
        policy.add_lora(cfg.lora.rank, cfg.lora.alpha, cfg.lora.targets)
    if cfg.model.gradient_checkpointing:
        policy.transformer.enable_gradient_checkpointing()
    return policy, ref


# --- helpers -------------------------------------------------------------------------------
def _heldout_sets(cfg: GRPOConfig, tasks: list) -> dict[str, list[EvalPuzzle]]:
    out = {}
    for t in tasks:
        d = cfg.data
        where = f"data.options_by_task.{t.name}" if t.name in d.options_by_task else "data.options"
        check_options(t, d.sizes_for(t.name), d.options_for(t.name), where)
        out[t.name] = eval_puzzles(
            t, d.sizes_for(t.name), cfg.heldout.n, cfg.heldout.seed, options=d.options_for(t.name)
        )[0]
    return out


def _write_heldout(path: Path, cfg: GRPOConfig, heldout: dict[str, list[EvalPuzzle]]) -> None:
    recs = {
        name: {
            "task": name,
            "sizes": cfg.data.sizes_for(name),
            "n": cfg.heldout.n,
            "seed": cfg.heldout.seed,
            "keys": sorted(p.key for p in ps),
            **({"options": cfg.data.options_for(name)} if cfg.data.options_for(name) else {}),
        }
        for name, ps in heldout.items()
    }
    rec = next(iter(recs.values())) if len(recs) == 1 else {"tasks": recs}
    atomic_write_text(path, json.dumps(rec) + "\n")


def heldout_eval(policy, task, puzzles, video: VideoSpec, cfg: GRPOConfig) -> dict:
    """ODE samples on held-out puzzles, ``eval.samples_per_puzzle`` per puzzle, pooled."""
    records = evaluate_samples(
        policy,
        task,
        puzzles,
        video,
        cfg.sampling.steps,
        cfg.sampling.shift,
        cfg.eval.batch_size,
        cfg.eval.samples_per_puzzle,
        seed=cfg.seed,
        progress=False,
    )
    verdicts = [r["verdict"] for recs in records for r in recs]
    m = aggregate(verdicts)
    m["puzzles"] = len(puzzles)
    return m


def _flat_grads(params: list[torch.nn.Parameter]) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])


def _all_reduce_grads(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """Sum the gradients over processes (the loss is already normalised by the global count)."""
    if not info.active:
        return
    flat = all_reduce_sum(_flat_grads(params).float(), info)
    o = 0
    for p in params:
        n = p.numel()
        g = flat[o : o + n].view_as(p).to(p.dtype)
        if p.grad is None:
            p.grad = g.clone()
        else:
            p.grad.copy_(g)
        o += n


def _sample_video(path: Path, gen: np.ndarray, truth: np.ndarray) -> None:
    from vrlvr.commands.sample import side_by_side
    from vrlvr.tasks.video_io import write_mp4

    scale = max(1, -(-256 // gen.shape[1]))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, side_by_side(gen, truth, scale), fps=4)


# --- the loop ------------------------------------------------------------------------------
def train_grpo(cfg: GRPOConfig, checkpoint: str | Path | None = None, progress: bool = True) -> dict:
    """Run SDE-GRPO as configured; ``checkpoint``: a checkpoint folder to continue exactly.

    Returns {"step", "before": {task: held-out metrics}, "after": {...}, "minutes"}."""
    from vrlvr import tasks as task_registry

    t_start = time.time()
    device = resolve_device(cfg.device)
    info = init_distributed(device)
    if device.type == "cuda" and info.active:
        device = torch.device("cuda", info.local_rank)
    if device.type == "cpu":
        torch.set_num_threads(threads_per_rank(cfg.threads, info))
    elif cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    P, G = cfg.grpo.prompts_per_step, cfg.grpo.group_size
    if P % info.world:
        raise ValueError(
            f"grpo.prompts_per_step={P} must be a multiple of the number of processes ({info.world}): "
            "each process owns whole groups"
        )
    run = Path(cfg.out_dir)
    task_list = [task_registry.get(t) for t in cfg.data.tasks]
    d = cfg.data
    video = VideoSpec(d.num_frames, d.cell_px, d.height, d.width)
    heldout = _heldout_sets(cfg, task_list)
    init_folder = resolve_checkpoint(cfg.model.init)
    for t in task_list:
        check_inside_heldout(init_folder, t.name, heldout[t.name], "model.init", d.options_for(t.name))
    eval_sets = {name: eval_subset(ps, d.sizes_for(name), cfg.eval.n) for name, ps in heldout.items()}
    rcfg = {t.name: reward_config_for(t.name, cfg.reward) for t in task_list}

    policy, ref_policy = build_rl_policy(cfg, device)
    policy.train()
    params = policy.trainable_parameters()
    o = cfg.optim
    opt = torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(o.warmup_steps, o.steps, o.decay))
    stream = PuzzleStream(
        task_list,
        {t.name: d.sizes_for(t.name) for t in task_list},
        {name: {p.key for p in ps} for name, ps in heldout.items()},
        d.seed,
        d.themes,
        {t.name: d.options_for(t.name) for t in task_list},
        pool=d.pool,
    )
    step, nonfinite_run = 0, 0
    if checkpoint is not None:
        state = load_train_state(checkpoint)
        # the checkpoint itself must match what shapes the model, task and data (not only config.yaml)
        check_checkpoint_meta(state.get("meta"), cfg, FROZEN_ON_RESUME, Path(checkpoint), "vrlvr-train")
        _load_trainable(policy, checkpoint)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        stream.load_state(state["data"])
        step, nonfinite_run = int(state["step"]), int(state.get("nonfinite_run", 0))

    if info.main:
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run / "config.yaml", yaml.safe_dump(asdict(cfg), sort_keys=False))
        _write_heldout(run / HELDOUT_FILE, cfg, heldout)
    logger = MetricsLogger(run, enabled=info.main, resume_step=step if checkpoint is not None else None)
    policy_extra = {
        "task": task_list[0].name if len(task_list) == 1 else None,
        "tasks": [t.name for t in task_list],
        "data": {**asdict(d), "task": task_list[0].name if len(task_list) == 1 else None},
        "sampling": {"steps": cfg.sampling.steps, "shift": cfg.sampling.shift},
        "trainer": "sde-grpo",
        "init": str(cfg.model.init),
    }
    sigmas = flow_sigmas(cfg.sampling.steps, cfg.sampling.shift)  # [T + 1]
    start, end = cfg.window()
    W = end - start
    s_cfg, g_cfg = cfg.sampling, cfg.grpo

    def say(msg: str) -> None:
        if info.main:
            (tqdm.write if progress else print)(msg, file=sys.stderr)

    def run_eval(tag: str) -> dict:
        out = {}
        if info.main and cfg.eval.n > 0:
            policy.eval()
            try:
                for t in task_list:
                    m = heldout_eval(policy, t, eval_sets[t.name], video, cfg)
                    out[t.name] = m
                    logger.log({"step": step, "task": t.name, "tag": tag, "eval": m})
                    say(
                        f"[{tag}] step {step} held-out {t.name}: success {m['success_rate']:.3f}, loose "
                        f"{m['loose_success_rate']:.3f}, reward {m['mean_reward']:.3f} "
                        f"({m['n']} videos of {m['puzzles']} puzzles)"
                    )
            finally:
                policy.train()
        barrier(info)
        return out

    def checkpoint_now() -> None:
        if info.main:
            state = {
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "data": stream.state(),
                "nonfinite_run": nonfinite_run,
                "meta": checkpoint_meta(cfg),
            }
            save_checkpoint(
                run,
                step,
                policy,
                state,
                {**policy_extra, "step": step},
                run / HELDOUT_FILE,
                cfg.keep_checkpoints,
            )
        barrier(info)

    if checkpoint is None and info.main and cfg.eval.n > 0:
        # the trivial baselines (held still, flood, the best cheap hack) on the same held-out puzzles
        for t in task_list:
            bl = evaluate_baselines(t, eval_sets[t.name], video)
            if bl:
                logger.log({"step": 0, "task": t.name, "tag": "baselines", "baselines": bl})
                say(
                    f"[baselines] held-out {t.name}: "
                    + ", ".join(
                        f"{name} success {m['success_rate']:.3f} reward {m['mean_reward']:.3f}"
                        for name, m in bl.items()
                    )
                )
    before = run_eval("before") if checkpoint is None else {}
    bar = tqdm(total=o.steps, initial=step, desc="grpo", unit="step", disable=not (progress and info.main))
    mine = [i for i in range(P) if i % info.world == info.rank]
    while step < o.steps:
        t0 = time.time()
        buckets: list[GroupBucket] = []
        rollouts: list[RolloutBatch] = []
        rewards, advs, keeps = [], [], []
        comp_sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # component -> [sum, count]
        succ = loose = 0.0
        nonfinite_reward = 0
        t_roll = t_verify = 0.0  # seconds spent rolling out and verifying, over all rounds
        rounds = 0
        while True:
            ta = time.time()  # drawing and first frames count as rollout time, as they always did
            # round k draws P more puzzles; their indices k * P + i keep every round's noise distinct
            items = stream.draw(step, P)
            for it in items:
                it.index += rounds * P
            round_buckets = buckets_of([items[i] for i in mine], video)
            round_rollouts = [
                sample_rollouts(
                    policy,
                    b,
                    G,
                    d.num_frames,
                    sigmas,
                    (start, end),
                    s_cfg.eta,
                    s_cfg.mode,
                    cfg.seed,
                    step,
                    g_cfg.micro_batch,
                    shared_start=g_cfg.shared_start,
                    noise_block=g_cfg.noise_block,
                )
                for b in round_buckets
            ]
            tb = time.time()
            t_roll += tb - ta
            for b, r in zip(round_buckets, round_rollouts):
                ps = [p for p in b.puzzles for _ in range(G)]
                th = [t for t in b.themes for _ in range(G)]
                verdicts = verify_group(b.task, ps, r.videos, th, rcfg[b.task.name])
                dense = torch.tensor([float(v.reward) for v in verdicts], dtype=torch.float64)
                success = torch.tensor([float(v.success) for v in verdicts], dtype=torch.float64)
                rew = success if cfg.reward.kind == "sparse" else dense
                nonfinite_reward += int((~torch.isfinite(rew)).sum())
                succ += float(success.sum())
                loose += float(sum(loose_success(v) for v in verdicts))
                for v in verdicts:
                    for k, x in v.components.items():
                        comp_sums[k][0] += float(x)
                        comp_sums[k][1] += 1.0
                rew = rew.view(-1, G)  # [n, G]
                adv, keep = group_advantages(torch.nan_to_num(rew, nan=0.0), g_cfg.adv_clip)
                rewards.append(rew)
                advs.append(adv.float())
                keeps.append(keep)
            buckets += round_buckets
            rollouts += round_rollouts
            t_verify += time.time() - tb
            rounds += 1
            if rounds > g_cfg.resample_rounds:
                break
            # every process decides on the global count (a sync point), so all run the same rounds
            informative = all_reduce_sum(
                torch.tensor([float(sum(int(k.sum()) for k in keeps))], dtype=torch.float64), info
            )
            if float(informative[0]) >= P:
                break
        t_scored = time.time()  # every round rolled out and verified
        # global counts, so the loss (and the logged means) are those of the whole batch
        local = torch.tensor(
            [
                float(sum(int(k.sum()) for k in keeps) * G),  # contributing samples
                float(sum(len(k) for k in keeps)),  # groups
                float(sum(int((~k).sum()) for k in keeps)),  # zero-variance groups
                float(nonfinite_reward),
                float(sum(torch.nan_to_num(r, nan=0.0).sum() for r in rewards)),
                float(sum((torch.nan_to_num(r, nan=0.0) ** 2).sum() for r in rewards)),
                succ,
                loose,
            ],
            dtype=torch.float64,
        )
        n_contrib, n_groups, n_zero, n_bad, r_sum, r_sq, s_sum, l_sum = all_reduce_sum(local, info).tolist()
        n_samples = n_groups * G
        comps = merge_sums(dict(comp_sums), info)  # ranks may hold different tasks' components
        rec = {
            "step": step + 1,
            "reward_mean": r_sum / n_samples,
            "reward_std": math.sqrt(max(0.0, r_sq / n_samples - (r_sum / n_samples) ** 2)),
            "success_rate": s_sum / n_samples,
            "loose_success_rate": l_sum / n_samples,
            # each component's mean over the samples whose verifier reports it (mixed batches)
            **{f"reward/{k}": total / max(1.0, count) for k, (total, count) in sorted(comps.items())},
            "frac_zero_std": n_zero / n_groups,
            "rounds": rounds,
            "groups": int(n_groups),
            "world_size": info.world,
        }

        # --- optimisation ---
        why = []
        if n_bad:
            why.append(f"{int(n_bad)} non-finite reward(s)")
        # pg loss sum, kl sum, clipped count, sample-steps, max |ratio - 1| in epoch 1, loss
        stats = torch.zeros(6, dtype=torch.float64)
        gnorm = float("nan")
        if not why and n_contrib > 0:
            denom = n_contrib * W
            for epoch in range(g_cfg.inner_epochs):
                opt.zero_grad(set_to_none=True)
                for b, r, adv, keep in zip(buckets, rollouts, advs, keeps):
                    if g_cfg.loss == "awm":
                        gens = [
                            torch.Generator().manual_seed(matching_seed(cfg.seed, step, pi, j, epoch))
                            for pi in b.puzzle_index
                            for j in range(G)
                        ]  # one per rollout, in the bucket's row order
                        backward_awm_loss(
                            policy, ref_policy, r, adv, keep, G, sigmas, start, end, cfg, denom, stats, gens
                        )
                    else:
                        backward_grpo_loss(
                            policy, ref_policy, r, adv, keep, G, sigmas, start, end, cfg, denom, stats, epoch
                        )
                _all_reduce_grads(params, info)
                gn = torch.nn.utils.clip_grad_norm_(params, o.grad_clip if o.grad_clip > 0 else float("inf"))
                gnorm = float(gn)
                if not math.isfinite(gnorm):
                    why.append("gradient norm" if math.isfinite(float(stats[5])) else "loss")
                    opt.zero_grad(set_to_none=True)
                    break
                opt.step()
        ratio_dev = all_reduce_max(stats[4:5].clone(), info)  # a maximum, not a sum
        stats = all_reduce_sum(stats, info)
        stats[4] = ratio_dev[0]
        cnt = max(1.0, float(stats[3]))
        # a step that updated nothing (every group without reward variance, or a non-finite reward)
        # measured no loss, KL or clipping: None, not 0, so curves and means skip it rather than
        # read a KL of 0 from a step that never looked
        updated = not why and n_contrib > 0
        rec.update(
            {
                "loss": float(stats[5]) / max(1, g_cfg.inner_epochs) if updated else None,
                "pg_loss": float(stats[0]) / cnt if updated else None,
                "kl": float(stats[1]) / cnt if updated else None,
                "clip_frac": float(stats[2]) / cnt if updated else None,
                "ratio_dev": float(stats[4]) if updated else None,
                "grad_norm": gnorm if math.isfinite(gnorm) else None,
                "lr": sched.get_last_lr()[0],
                "contributing": int(n_contrib),
            }
        )
        with warnings.catch_warnings():  # a skipped step still advances the schedule (by design)
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
            sched.step()
        step += 1
        if why:
            nonfinite_run += 1
            rec["skipped"] = "non-finite " + ", ".join(why)
            say(f"step {step}: skipped: non-finite {', '.join(why)} ({nonfinite_run} in a row)")
        else:
            nonfinite_run = 0
        t_end = time.time()
        rec.update(
            {
                "step_time_s": t_end - t0,
                "rollout_time_s": t_roll,
                "verify_time_s": t_verify,
                "train_time_s": t_end - t_scored,
                "elapsed_s": t_end - t_start,
                "wall_time": t_end,  # seconds since the epoch: lines up runs trained side by side
            }
        )
        logger.log(rec)
        bar.update(1)
        bar.set_postfix(reward=f"{rec['reward_mean']:.3f}", success=f"{rec['success_rate']:.2f}")
        if not progress and step % cfg.log_every == 0:
            say(
                f"step {step}/{o.steps}: reward {rec['reward_mean']:.3f} +- {rec['reward_std']:.3f}, "
                f"success {rec['success_rate']:.3f} (loose {rec['loose_success_rate']:.3f}), "
                f"kl {'-' if rec['kl'] is None else format(rec['kl'], '.2e')}, "
                f"zero-variance groups {rec['frac_zero_std']:.2f}, "
                f"{rec['step_time_s']:.1f} s"
            )
        if info.main and cfg.sample_every and step % cfg.sample_every == 0:
            b0, r0 = buckets[0], rollouts[0]
            truth = video.render(b0.task, [b0.puzzles[0]], [b0.task.solve(b0.puzzles[0])], [b0.themes[0]])[0]
            _sample_video(run / "samples" / f"step_{step:07d}.mp4", r0.videos[0], truth)
        if nonfinite_run >= g_cfg.max_nonfinite:
            checkpoint_now()
            bar.close()
            raise TrainingDiverged(
                f"{nonfinite_run} steps in a row were non-finite ({', '.join(why)}) at step {step}; "
                f"stopped with a checkpoint in {run / 'checkpoints'} (lower optim.lr, check the reward)"
            )
        out_of_time = broadcast_flag(
            cfg.max_minutes > 0 and time.time() - t_start > 60 * cfg.max_minutes, info, device
        )
        if cfg.eval.every and step % cfg.eval.every == 0 and step < o.steps:
            run_eval("periodic")
        if step % cfg.checkpoint_every == 0 or step == o.steps or out_of_time:
            checkpoint_now()
        if out_of_time:
            say(f"vrlvr-train: stopping at step {step}: max_minutes={cfg.max_minutes} reached")
            break
    bar.close()
    after = run_eval("after")
    if info.main:
        save_final(run, policy, {**policy_extra, "step": step}, run / HELDOUT_FILE)
        plot_curves(run / "metrics.jsonl", run / "curves.png")
    logger.close()
    barrier(info)
    return {"step": step, "before": before, "after": after, "minutes": (time.time() - t_start) / 60}


def _load_trainable(policy: VideoPolicy, folder: str | Path) -> None:
    """Put a checkpoint's trained weights (the adapter, or the whole model) into the built policy."""
    if policy.lora:
        policy.set_lora_weights(folder)  # the adapter file only: the base is already loaded
        return
    saved = load_policy(folder, device=policy.device)
    policy.load_state_dict(saved.state_dict())


def _contributing_chunks(keep: torch.Tensor, G: int, micro_batch: int):
    """Yield the rows (int64 [m], m >= 1) of each micro-batch of a bucket's N = n * G rollouts that
    belong to contributing groups (keep bool [n]); the chunks are the rollout's own, so the first
    ratio re-scores each sample in the batch it was sampled in."""
    keep_rows = keep.repeat_interleave(G)  # [N]
    N = keep_rows.shape[0]
    for b0 in range(0, N, micro_batch):
        rows = torch.arange(b0, min(N, b0 + micro_batch))
        rows = rows[keep_rows[rows]]
        if len(rows):
            yield rows


def _window_kl(
    policy, ref_policy, v, x_full, sigma_k, pe, cb, sig, k, start, end, cfg, block
) -> torch.Tensor:
    """fp32 [m] KL between the step Gaussians of v ([m, C, f - 1, h, w], the generated frames of
    v_theta(x_full)) and of v_ref at the same input: the frozen copy (``ref_policy``, full fine-tune)
    or the same transformer with its adapters off. beta > 0: every window step's KL, differentiable
    (the caller adds beta x it to the loss). beta = 0: it is only watched, on the first window step
    of each micro-batch (one reference forward instead of W), detached and counted W times, so the
    division by all terms logs that step's mean; the other steps give zeros."""
    g_cfg, s_cfg = cfg.grpo, cfg.sampling
    watch = g_cfg.beta == 0 and k == start
    if not (g_cfg.beta > 0 or watch):
        return torch.zeros(v.shape[0], dtype=torch.float32, device=v.device)
    m = v.shape[0]
    with torch.no_grad():
        if ref_policy is not None:
            v_ref = ref_policy.velocity(x_full, sigma_k.expand(m), pe, cb)
        else:
            with policy.adapters_disabled():
                v_ref = policy.velocity(x_full, sigma_k.expand(m), pe, cb)
    kl = step_kl(
        v.detach() if watch else v,
        v_ref[:, :, 1:],
        sig[k],
        sig[k + 1],
        eta=s_cfg.eta,
        mode=s_cfg.mode,
        block=block,
    )
    return kl.detach() * (end - start) if watch else kl


def backward_grpo_loss(
    policy, ref_policy, r: RolloutBatch, adv, keep, G, sigmas, start, end, cfg, denom, stats, epoch
):
    """Backward of the GRPO loss of one bucket's contributing samples, micro-batch by micro-batch,
    in the rollout's own chunks (so the first ratio is bit-exact 1 on CPU).

    adv [n, G] (float), keep bool [n] (groups with reward variance), window [start, end) of the T
    steps; each (sample, window step) term is divided by ``denom`` (global contributing samples x
    window steps). Accumulates into ``stats`` (fp64 [6]): surrogate sum, KL sum, clipped count,
    terms, max |ratio - 1| of the first epoch, loss."""
    s_cfg, g_cfg = cfg.sampling, cfg.grpo
    sig = [float(s) for s in sigmas]
    device = policy.device
    sig_dev = sigmas.to(device)
    adv_rows = adv.reshape(-1)  # [N]
    acc = torch.zeros(6, dtype=torch.float64, device=device)  # the same sums as ``stats``
    for rows in _contributing_chunks(keep, G, g_cfg.micro_batch):
        cb, pe = r.cond[rows], r.prompt_embeds[rows]
        a = adv_rows[rows].to(device)
        m = len(rows)
        for k in range(start, end):
            xk = r.states[k - start][rows]  # [m, C, f - 1, h, w]
            xk1 = r.states[k + 1 - start][rows]
            x_full = torch.cat([cb, xk], dim=2)  # [m, C, f, h, w]: the clean frame 0, then x_k
            v = policy.velocity(x_full, sig_dev[k].expand(m), pe, cb)[:, :, 1:]
            logp = step_logprob(
                xk, v, xk1, sig[k], sig[k + 1], eta=s_cfg.eta, mode=s_cfg.mode, block=g_cfg.noise_block
            )  # [m]
            pg, ratio = ppo_loss(logp, r.logp[rows, k - start].to(device), a, g_cfg.clip_range)
            kl = _window_kl(
                policy, ref_policy, v, x_full, sig_dev[k], pe, cb, sig, k, start, end, cfg, g_cfg.noise_block
            )
            loss = pg + g_cfg.beta * kl if g_cfg.beta > 0 else pg
            total = loss.sum() / denom
            total.backward()
            with torch.no_grad():  # on the device: no host sync per micro-batch
                dev = (ratio - 1).abs()
                acc[0] += pg.sum()
                acc[1] += kl.sum()
                acc[2] += (dev > g_cfg.clip_range).sum()
                acc[3] += m
                acc[5] += total.detach()
                if epoch == 0:
                    acc[4] = torch.maximum(acc[4], dev.max())
    acc = acc.cpu()  # one sync per bucket and epoch
    stats[[0, 1, 2, 3, 5]] += acc[[0, 1, 2, 3, 5]]
    stats[4] = max(float(stats[4]), float(acc[4]))


def awm_loss(
    v: torch.Tensor, noise: torch.Tensor, x0: torch.Tensor, adv: torch.Tensor, negative: float = 1.0
) -> torch.Tensor:
    """fp32 [m] advantage-weighted flow-matching loss: w x mean over elements of |v - (noise - x0)|^2,
    w = adv, or ``negative`` x adv where adv < 0.

    v, noise, x0 [m, C, f, h, w]; adv [m]. With x_s = (1 - s) x0 + s noise the flow's velocity is
    noise - x0, so a positive advantage pulls v_theta(x_s) towards the rollout's own x0 and a negative
    one pushes it away; within a group the advantages sum to ~0, so what the whole group shares cancels.
    The push is unbounded (the loss falls as the error grows); ``negative`` < 1 damps it and 0 leaves
    a weighted regression on the above-average rollouts, bounded below by 0. The squared error is
    upcast to fp32 (bf16 policies on GPUs)."""
    err = (v.float() - (noise.float() - x0.float())).pow(2).flatten(1).mean(dim=1)  # [m]
    w = adv if negative == 1.0 else torch.where(adv < 0, negative * adv, adv)
    return w * err


def backward_awm_loss(
    policy, ref_policy, r: RolloutBatch, adv, keep, G, sigmas, start, end, cfg, denom, stats, gens
):
    """Backward of the advantage-weighted matching loss (``grpo.loss=awm``) of one bucket's
    contributing samples, micro-batch by micro-batch: for every window step k, the final latents'
    generated frames x0 are re-noised to sigma_k with fresh noise and v_theta(x_s) is regressed
    towards noise - x0, weighted by the advantage (``awm_loss``). ``gens``: one CPU generator per
    row (``matching_seed``), drawn once per window step in order, so the noise depends neither on
    the micro-batching nor on the device or the number of processes. The KL (beta > 0 in the loss,
    else watched on the first window step) is the step Gaussians' KL between v_theta and v_ref at
    the same x_s. Terms are divided by ``denom`` as in ``backward_grpo_loss``; ``stats`` gets the
    weighted loss in place of the surrogate, no clipped terms and ratio 1."""
    g_cfg = cfg.grpo
    sig = [float(s) for s in sigmas]
    device = policy.device
    sig_dev = sigmas.to(device)
    adv_rows = adv.reshape(-1)  # [N]
    acc = torch.zeros(6, dtype=torch.float64, device=device)
    for rows in _contributing_chunks(keep, G, g_cfg.micro_batch):
        cb, pe = r.cond[rows], r.prompt_embeds[rows]
        a = adv_rows[rows].to(device)
        x0 = r.latents[rows][:, :, 1:].to(device)  # [m, C, f - 1, h, w] generated frames
        m = len(rows)
        for k in range(start, end):
            noise = torch.stack([torch.randn(tuple(x0.shape[1:]), generator=gens[i]) for i in rows.tolist()])
            noise = noise.to(device)  # [m, C, f - 1, h, w]
            xs = (1.0 - sig[k]) * x0 + sig[k] * noise
            x_full = torch.cat([cb, xs], dim=2)  # [m, C, f, h, w]: the clean frame 0, then x_s
            v = policy.velocity(x_full, sig_dev[k].expand(m), pe, cb)[:, :, 1:]
            weighted = awm_loss(v, noise, x0, a, g_cfg.awm_negative)  # [m]
            kl = _window_kl(policy, ref_policy, v, x_full, sig_dev[k], pe, cb, sig, k, start, end, cfg, 1)
            loss = weighted + g_cfg.beta * kl if g_cfg.beta > 0 else weighted
            total = loss.sum() / denom
            total.backward()
            with torch.no_grad():
                acc[0] += weighted.detach().sum()
                acc[1] += kl.sum()
                acc[3] += m
                acc[5] += total.detach()
    acc = acc.cpu()  # one sync per bucket
    stats[[0, 1, 2, 3, 5]] += acc[[0, 1, 2, 3, 5]]
