from dataclasses import dataclass, field

import pytest

from vrlvr.config import describe_config, load_config, parse_overrides


@dataclass
class Optim:
    lr: float = field(default=1e-4, metadata={"help": "learning rate"})
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class Exp:
    name: str = "x"
    steps: int = 10
    use_lora: bool = True
    sizes: list[int] = field(default_factory=lambda: [7])
    optim: Optim = field(default_factory=Optim)
    out: str | None = None


def test_yaml_plus_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: maze\nsteps: 5\noptim:\n  lr: 3e-4\n")
    cfg = load_config(Exp, p, ["steps=7", "optim.lr=1e-3", "sizes=[7,9]", "use_lora=false"])
    assert cfg.name == "maze" and cfg.steps == 7 and cfg.optim.lr == 1e-3
    assert cfg.sizes == [7, 9] and cfg.use_lora is False and cfg.optim.betas == (0.9, 0.999)


def test_yaml_string_exponent_becomes_float(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("optim:\n  lr: 1e-4\n")  # PyYAML reads this as a string
    assert load_config(Exp, p).optim.lr == pytest.approx(1e-4)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["stepz=3"], "unknown config key.*stepz"),
        (["optim.lrr=3"], "optim.lrr"),
        (["steps=abc"], "steps: expected an integer"),
        (["use_lora=3"], "use_lora: expected true/false"),
        (["novalue"], "key=value"),
    ],
)
def test_bad_overrides_name_the_key(overrides, match):
    with pytest.raises(ValueError, match=match):
        load_config(Exp, None, overrides)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(Exp, "/nonexistent/x.yaml")


def test_parse_overrides_nesting():
    assert parse_overrides(["a.b.c=1", "a.d=x"]) == {"a": {"b": {"c": 1}, "d": "x"}}


def test_describe_config_lists_leaves():
    keys = {row[0] for row in describe_config(Exp)}
    assert {"name", "optim.lr", "optim.betas"} <= keys
