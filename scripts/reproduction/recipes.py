"""What each experiment trains: (run name, config, overrides) from the shipped configs, and
``planned``, every run a set of experiments needs (the pool trains them up front)."""

from __future__ import annotations

from pathlib import Path

from reproduction.settings import MAZE_EVAL_EVERY, ROOT, SFT_CONTROL, TABLE4_STEPS


def config_of(task: str) -> dict:
    """configs/<task>-tiny.yaml as a dict (what the shipped recipe sets)."""
    import yaml

    return yaml.safe_load((ROOT / "configs" / f"{task}-tiny.yaml").read_text())


def start_of(task: str) -> str:
    """The SFT checkpoint configs/<task>-tiny.yaml starts RL from (its model.init, as the trainer
    resolves the config: a shipped name such as sokoban-deep8, or a folder): table 1's SFT column, the
    reward experiment's and the control's start."""
    from vrlvr.config import load_config
    from vrlvr.train.grpo_config import GRPOConfig

    return load_config(GRPOConfig, ROOT / "configs" / f"{task}-tiny.yaml").model.init


def maze_every(args) -> list[str]:
    return MAZE_EVAL_EVERY["quick" if args.quick else "full"]


def rl_recipe(task: str, args) -> tuple[Path, list[str]]:
    """(config, overrides) of ``rl_run``."""
    return ROOT / "configs" / f"{task}-tiny.yaml", maze_every(args) if task == "maze" else []


def kind_recipe(task: str, kind: str, args) -> tuple[str, Path, list[str]]:
    """(name, config, overrides) of ``kind_run``."""
    if config_of(task).get("reward", {}).get("kind", "dense") == kind:
        return (f"{task}-rl", *rl_recipe(task, args))
    extra = maze_every(args) if task == "maze" else []
    return f"{task}-rl-{kind}", ROOT / "configs" / f"{task}-tiny.yaml", [f"reward.kind={kind}", *extra]


def seed_recipes(task: str, args) -> list[tuple[str, Path, list[str]]]:
    """(name, config, overrides) of each of ``seed_runs``, table 1's run first."""
    base = int(config_of(task).get("seed", 0))
    recipes = [(f"{task}-rl", *rl_recipe(task, args))]
    for k in range(1, args.seeds if task in args.seed_tasks else 1):
        config = ROOT / "configs" / f"{task}-tiny.yaml"
        # eval.n=0: the trainer's own before/after evaluation would only repeat the scoring below
        recipes.append((f"{task}-rl-seed{base + k}", config, [f"seed={base + k}", "eval.n=0"]))
    return recipes


def control_recipe(task: str, args) -> tuple[str, Path, list[str]]:
    """(name, config, overrides) of the control's `vrlvr sft` run."""
    overrides = [f"model.path={start_of(task)}", *([] if args.quick else SFT_CONTROL)]
    return f"{task}-sft-more", ROOT / "configs" / f"{task}-tiny-sft.yaml", overrides


def table4_sampling_steps(args) -> int:
    """Sampling steps of table4's runs: all steps = the window [0, steps), the first half [0, steps // 2)."""
    return config_of("maze")["sampling"]["steps"] if not args.quick else 4


def table4_recipes(args) -> dict[str, tuple[str, Path, list[str]]]:
    """{window: (name, config, overrides)} of table4's two runs."""
    steps = table4_sampling_steps(args)
    n_updates = [] if args.quick else [f"optim.steps={TABLE4_STEPS}"]
    config = ROOT / "configs" / "maze-tiny.yaml"
    return {
        "first_half": ("maze-esf-first-half", config, [f"grpo.sde_window=[0,{steps // 2}]", *n_updates]),
        "all_steps": ("maze-esf-all-steps", config, [f"grpo.sde_window=[0,{steps}]", *n_updates]),
    }


def hack_recipe(args) -> tuple[str, Path, list[str]]:
    """(name, config, overrides) of the hack experiment's run with the paper's preset and no KL."""
    overrides = ["reward.kind=dense", "reward.preset=paper", "grpo.beta=0", *maze_every(args)]
    return "maze-rl-paper-nokl", ROOT / "configs" / "maze-tiny.yaml", overrides


def planned(todo: list[str], args) -> tuple[list[tuple[str, Path, list[str], str]], list[dict]]:
    """The runs the experiments in ``todo`` will ask for, from the same recipes they train: (runs
    that may train beside any other, as (name, config, overrides, command) in the order the
    experiments need them; groups timed side by side, {key: (name, config, overrides)}: table4's)."""
    runs: dict[str, tuple[str, Path, list[str], str]] = {}

    def add(recipe: tuple[str, Path, list[str]], command: str = "train") -> None:
        runs.setdefault(recipe[0], (*recipe, command))

    groups = []
    if "table1" in todo:
        for task in args.tasks:
            for recipe in seed_recipes(task, args):
                add(recipe)
            if task in args.sft_control:
                add(control_recipe(task, args), "sft")
    if "table4" in todo:
        groups.append(table4_recipes(args))
    if "reward" in todo:
        for task in [t for t in ("maze", "flowfree") if t in args.tasks]:
            for kind in ("dense", "sparse"):
                add(kind_recipe(task, kind, args))
    if "hack" in todo:
        add(kind_recipe("maze", "dense", args))
        add(hack_recipe(args))
    return list(runs.values()), groups
