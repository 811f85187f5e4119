"""The checkpoints shipped inside the package (vrlvr/checkpoints/<name>) and the command that
makes each. No torch here: configuration help texts and the command line name them without
importing a model."""

from __future__ import annotations

from pathlib import Path

__all__ = ["SHIPPED_DIR", "SHIPPED_RECIPES", "shipped_names"]

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
#: the command that makes each shipped checkpoint (README: "Checkpoints")
SHIPPED_RECIPES = {
    "maze-tiny": "vrlvr sft --config configs/maze-tiny-sft.yaml",
    "flowfree-tiny": "vrlvr sft --config configs/flowfree-tiny-sft.yaml",
    "sokoban-tiny": "vrlvr sft --config configs/sokoban-tiny-sft.yaml",
    # maze-tiny / flowfree-tiny / sokoban-tiny grown to 8 blocks (starting as exactly its function),
    # then SFT: RL gains more from them
    "maze-deep8": "vrlvr sft --config configs/maze-tiny-sft.yaml out_dir=runs/maze-deep8-sft "
    "model.path=maze-tiny model.deepen_to=8 optim.steps=700 optim.lr=3e-4 optim.warmup_steps=10 "
    "data.seed=7000000 eval.n=8 max_minutes=0",
    "flowfree-deep8": "vrlvr sft --config configs/flowfree-tiny-sft.yaml out_dir=runs/flowfree-deep8-sft "
    "model.path=flowfree-tiny model.deepen_to=8 optim.steps=700 optim.lr=3e-4 optim.warmup_steps=10 "
    "data.seed=7000000 eval.n=8 max_minutes=0",
    "sokoban-deep8": "vrlvr sft --config configs/sokoban-tiny-sft.yaml out_dir=runs/sokoban-deep8-sft "
    "model.path=sokoban-tiny model.deepen_to=8 optim.steps=700 optim.lr=3e-4 optim.warmup_steps=10 "
    "data.seed=7000000 eval.n=8 max_minutes=0",
    # maze-deep8 grown again, to 12 blocks, on another fresh puzzle stream: the best maze RL start
    "maze-deep12": "vrlvr sft --config configs/maze-tiny-sft.yaml out_dir=runs/maze-deep12-sft "
    "model.path=maze-deep8 model.deepen_to=12 optim.steps=700 optim.lr=3e-4 optim.warmup_steps=10 "
    "data.seed=8000000 eval.n=8 max_minutes=0",
}


def shipped_names() -> str:
    """The shipped names as one line ("maze-tiny, flowfree-tiny, ..."), for help texts and errors."""
    return ", ".join(SHIPPED_RECIPES)
