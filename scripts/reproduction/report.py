"""Markdown tables from the experiments' JSON: README.md's results block and docs/results.md."""

from __future__ import annotations

import numpy as np

from reproduction import stats, step_timing


def fmt_share(ci: dict | None) -> str:
    """A puzzle_share_ci as a table cell."""
    return f"{ci['mean']:.2f} [{ci['ci95'][0]:.2f}, {ci['ci95'][1]:.2f}]" if ci else "- (undefined)"


def task_label(task: str, entry: dict) -> str:
    """A table row's task: a recipe that starts from another SFT checkpoint than the shipped
    <task>-tiny says so ("flowfree (SFT: flowfree-deep8)"); entries written before the start was
    kept were all from <task>-tiny."""
    start = entry.get("sft_checkpoint", f"{task}-tiny")
    return task if start == f"{task}-tiny" else f"{task} (SFT: {start})"


def fmt(ci: dict, key: str, scale: float = 100.0) -> str:
    m = ci[key]
    return f"{scale * m['mean']:.1f} [{scale * m['ci95'][0]:.1f}, {scale * m['ci95'][1]:.1f}]"


def measured_line(entries: dict) -> str:
    """Which run measured each task's row: rows kept from an earlier invocation (``--tasks``) say so."""
    when = {}
    for task, r in entries.items():
        m = r.get("measured") if isinstance(r, dict) else None
        label = f"{m['date']}, commit {m['commit']}" if m else "an earlier run (no date or commit kept)"
        if m and m.get("reused_runs"):
            label += " (reusing " + ", ".join(f"{k} trained {v}" for k, v in m["reused_runs"].items()) + ")"
        when.setdefault(label, []).append(task)
    return "Measured: " + "; ".join(f"{', '.join(ts)}: {label}" for label, ts in when.items()) + "."


def control_table(controlled: dict, table1: dict) -> list[str]:
    """Table 1's control: more SFT for about the RL run's wall time, against the SFT checkpoint and
    against RL, on the same puzzles (lines of markdown)."""
    lines = [
        "## The control: more SFT for as long as RL trains (success %, points paired on the same puzzles)",
        "",
        "| task | more SFT (steps x videos, lr) | wall time, RL run | SFT | more SFT | gain | F1 gain "
        "| RL - more SFT (table 1's run) | RL - more SFT (over the training seeds) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for task, c in controlled.items():
        rec = c["recipe"]
        wall = (
            f"{c['wall_s'] / 60:.1f} min, {c['rl_wall_s'] / 60:.1f} min"
            if c.get("wall_s") and c.get("rl_wall_s")
            else "-"
        )
        seeds = table1[task].get("seeds", {}).get("seeds", [])
        over = c.get("rl_minus_control_over_seeds")
        over_cell = f"{fmt(over, 'success_rate')} (seeds {', '.join(map(str, seeds))})" if over else "-"
        lines.append(
            f"| {task} | {rec['steps']} x {rec['batch_size']}, {rec['lr']:g} | {wall} "
            f"| {fmt(table1[task]['sft'], 'success_rate')} | {fmt(c['more_sft'], 'success_rate')} "
            f"| {fmt(c['gain'], 'success_rate')} | {fmt(c['gain'], 'f1')} "
            f"| {fmt(c['rl_minus_control'], 'success_rate')} | {over_cell} |"
        )
    return [*lines, "", measured_line(controlled), ""]


def share_table(table1: dict) -> list[str]:
    """Table 1's puzzles again: the puzzle's share of whether a video succeeds (puzzle_share), SFT
    and RL (lines of markdown; none when no entry keeps several samples per puzzle)."""
    rows = []
    for task, r in table1.items():
        pp, k = r.get("per_puzzle"), r.get("samples", 1)
        if not pp or k < 2:
            continue
        col = pp["metrics"].index("success_rate")
        cells = []
        for who in ("sft", "rl"):
            success = np.array([np.nan if x[col] is None else x[col] for x in pp[who]])
            cells.append(fmt_share(stats.puzzle_share_ci(success, k)))
        rows.append(f"| {task_label(task, r)} | {r['puzzles']} x {k} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return [
        "## Whose success: the puzzle's share of whether a video succeeds (table 1's videos)",
        "",
        "Intraclass correlation of success over the samples of each puzzle, [95% bootstrap CI over "
        "puzzles]: 1 if every puzzle is always or never solved, 0 if every puzzle is solved at the "
        "same rate and the noise alone decides which videos succeed.",
        "",
        "| task | puzzles x samples | SFT | RL |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
    ]


def tables(results: dict, quick: bool) -> str:
    """The experiments' JSON entries -> the Markdown of docs/results.md (README.md's results block)."""
    lines = ["# Results (written by scripts/reproduce.py)", ""]
    if quick:
        lines += ["**--quick smoke run: 2 steps and a handful of puzzles; these numbers mean nothing.**", ""]
    if "table1" in results:
        lines += [
            "## SFT vs RL on held-out puzzles (%, mean [95% bootstrap CI over puzzles])",
            "",
            "| task | puzzles x samples | SFT success | RL success | gain | SFT F1 | RL F1 "
            "| SFT reward | RL reward | gain | best baseline: success, F1, reward |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for task, r in results["table1"].items():
            cells = [fmt(r[k], "success_rate") for k in ("sft", "rl", "gain")]
            cells += [fmt(r[k], "f1") for k in ("sft", "rl")]
            cells += [fmt(r[k], "mean_reward") for k in ("sft", "rl", "gain")]
            base = r["baselines"]
            best = max(base, key=lambda b: (base[b]["mean_reward"], base[b]["f1"])) if base else None
            bcell = (
                f"{best}: {100 * base[best]['success_rate']:.1f}, {100 * base[best]['f1']:.1f}, "
                f"{100 * base[best]['mean_reward']:.1f}"
                if best
                else "-"
            )
            head = f"| {task_label(task, r)} | {r['puzzles']} x {r.get('samples', 1)} | "
            lines.append(head + " | ".join(cells) + f" | {bcell} |")
        lines += ["", measured_line(results["table1"]), ""]
        lines += share_table(results["table1"])
        seeded = {t: r["seeds"] for t, r in results["table1"].items() if "seeds" in r}
        if seeded:
            lines += [
                "## Training seeds: the RL gain of table 1's recipe trained again with other seeds "
                "(points, RL - SFT on the same puzzles)",
                "",
                "| task | seeds | success gain per seed | success gain, mean [95% CI over seeds and puzzles] "
                "| F1 gain per seed | F1 gain, mean [CI] | reward gain per seed | reward gain, mean [CI] |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |",
            ]
            for task, sd in seeded.items():
                cells = []
                for key in ("success_rate", "f1", "mean_reward"):
                    cells.append(", ".join(f"{100 * g[key]['mean']:+.1f}" for g in sd["gain_per_seed"]))
                    cells.append(fmt(sd["gain"], key))
                seeds = ", ".join(str(x) for x in sd["seeds"])
                lines.append(f"| {task} | {seeds} | " + " | ".join(cells) + " |")
            lines += ["", measured_line(seeded), ""]
        controlled = {t: r["sft_control"] for t, r in results["table1"].items() if r.get("sft_control")}
        if controlled:
            lines += control_table(controlled, results["table1"])
    if "table4" in results:
        t = results["table4"]
        win = t.get("windows", {})
        lines += [
            "## Early-Step Focus (maze)",
            "",
            f"Median step time, window on the first half{' ' + str(win['first_half']) if win else ''} / all "
            f"steps{' ' + str(win['all_steps']) if win else ''}: {t['step_time_ratio']:.2f} (goal <= 0.6), "
            f"{t['median_step_time_s']['first_half']:.1f} s vs {t['median_step_time_s']['all_steps']:.1f} s"
            + (f" ({t['updates']} updates each)" if t.get("updates") else "")
            + f"; final success {fmt(t['first_half'], 'success_rate')}"
            + f" vs {fmt(t['all_steps'], 'success_rate')}"
            + (
                f", difference {fmt(t['first_half_minus_all'], 'success_rate')}."
                if "first_half_minus_all" in t
                else "."
            ),
        ]
        sbs = t.get("side_by_side")
        if sbs and sbs.get("until") is not None:
            th, n = sbs["threads"], sbs["timed_updates"]
            lines.append(
                f"The two runs trained side by side ({th['first_half']} / {th['all_steps']} CPU threads), "
                "so that whatever the machine did to its speed it did to both; timed on the "
                f"{n['first_half']} / {n['all_steps']} updates after the first that ended while both ran."
            )
        drift = t.get("rollout_drift", {})
        if drift and max(drift.values()) > step_timing.DRIFT_LIMIT:
            lines.append(
                "**Not comparable: the machine's speed drifted during these runs** (their rollouts, the "
                "same work every step, took up to "
                + ", ".join(f"{v:.2f}x ({k.replace('_', ' ')})" for k, v in drift.items())
                + " as long in one fifth of the run as in another; the limit is "
                f"{step_timing.DRIFT_LIMIT}x): rerun table4 on a quiet machine before reading its times."
            )
        if "phase_median_s" in t:
            ph = t["phase_median_s"]
            fh, al = ph["first_half"], ph["all_steps"]
            all_step = max(al["rollout"] + al["update"] + al["verify"], 1e-9)
            update_ratio = fh["update"] / max(al["update"], 1e-9)
            floor = (fh["rollout"] + fh["verify"]) / all_step
            lines.append(
                "Where the time goes (median s per step, first half / all steps): rollouts "
                f"{fh['rollout']:.1f} / {al['rollout']:.1f} (every sampling step of every video; outside "
                "the window with the adapter folded into the weights, a little cheaper), "
                f"update {fh['update']:.1f} / {al['update']:.1f} (ratio {update_ratio:.2f}). "
                "The window mostly shortens the update: with the rollouts as they are, the step ratio "
                f"cannot go below {floor:.2f} (its rollouts and verification over the all-steps step)."
            )
        if "ratio_at_mean_work" in t:
            m, e, sc = t["ratio_at_mean_work"], t["ratio_all_trained"], t["step_cost"]
            mc = t["mean_contributing"]
            fh, al = sc["first_half"], sc["all_steps"]
            lo, hi = t.get("contributing_range", [0, e["samples"]])
            lines.append(
                "At the same training work: a sparse step trains only the groups that vary (here "
                f"{mc['first_half']:.1f} / {mc['all_steps']:.1f} contributing samples a step on average, "
                f"{lo} to {hi} from step to step), so a run's median also follows how many varied in it. "
                "Per run, a step = rollouts and verification + the update per contributing sample n: "
                f"{fh['fixed_s']:.1f} + {fh['per_sample_s']:.2f} n s / {al['fixed_s']:.1f} + "
                f"{al['per_sample_s']:.2f} n s; their ratio is {m['ratio']:.2f} "
                f"[{m['ci95'][0]:.2f}, {m['ci95'][1]:.2f}] at n = {m['samples']:.1f} (both runs' mean) and "
                f"{e['ratio']:.2f} [{e['ci95'][0]:.2f}, {e['ci95'][1]:.2f}] with every sample trained "
                f"(n = {e['samples']:.0f}, as with a dense reward); 95% intervals from resampling each "
                "run's steps."
            )
        if "measured" in t:
            lines.append(measured_line({"maze": t}))
        if "shipped" in t:
            lines.append(
                f"The shipped recipe's window {t['shipped']['sde_window']}: "
                f"{t['shipped']['median_step_time_s']:.1f} s median step (table 1's run)."
            )
        lines.append("")
    if "reward" in results:
        lines += [
            "## Dense vs sparse reward (success %, gains paired against the SFT checkpoint)",
            "",
            "| task | shipped | SFT | dense | gain | sparse | gain |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]

        def cell(r: dict, key: str) -> str:
            return fmt(r[key], "success_rate") if key in r else "-"

        for task, r in results["reward"].items():
            lines.append(
                f"| {task_label(task, r)} | {r.get('shipped', 'dense')} | {cell(r, 'sft')} | "
                f"{cell(r, 'dense')} | {cell(r, 'dense_gain')} | "
                f"{cell(r, 'sparse')} | {cell(r, 'sparse_gain')} |"
            )
        lines += ["", measured_line(results["reward"]), ""]
    if "hack" in results:
        lines += ["## Reward hacking (maze): held-out exact / loose success over training", ""]
        for name, r in results["hack"].items():
            if not isinstance(r, dict) or "step" not in r:
                continue
            pairs = ", ".join(
                f"step {s}: {100 * e:.0f}/{100 * lo:.0f}"
                for s, e, lo in zip(r["step"], r["success_rate"], r["loose_success_rate"])
            )
            lines.append(f"- {name}: {pairs}")
        lines.append("")
    return "\n".join(lines)
