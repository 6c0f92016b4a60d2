"""YAML -> typed dataclasses: every bad input is one clear line naming the key and the file."""

import pytest

from feedbackrl.config import ConfigError, load_config
from feedbackrl.train.config import RunConfig


def write(tmp_path, text):
    p = tmp_path / "run.yaml"
    p.write_text(text)
    return p


def test_loads_nested_sections_and_overrides(tmp_path):
    p = write(tmp_path, "name: x\nalgo:\n  name: grpo\n  group_size: 4\narithmetic:\n  digits: 3\n")
    cfg = load_config(p, RunConfig, ["algo.kl_coef=0.05", "steps=7"])
    assert cfg.algo.group_size == 4 and cfg.arithmetic.digits == 3
    assert cfg.algo.kl_coef == 0.05 and cfg.steps == 7
    assert cfg.prompts_per_step == cfg.batch_size // 4


@pytest.mark.parametrize(
    "text, needle",
    [
        ("algo:\n  nme: grpo\n", "algo.nme: unknown key"),
        ("steps: ten\n", "steps: expected an integer"),
        ("algo:\n  name: grpo\n  group_size: 1\n", "group_size: GRPO needs at least 2"),
        ("batch_size: 100\nalgo:\n  group_size: 8\n", "batch_size: 100 is not a positive multiple"),
        ("algo:\n  name: reinforce\n", "algo.name: must be one of"),
        ("generation:\n  temperature: -1\n", "temperature: must be > 0"),
        ("steps: [1, 2\n", "invalid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("arithmetic:\n  ops: ['/']\n", "ops: must be a non-empty subset"),
        # one-digit sums are 100 problems: 200 held out would leave none to train on (it hung)
        ("arithmetic:\n  digits: 1\n", "eval_size: 200 held-out problems is more than half of the 100"),
        ("optim: 3\n", "optim: expected a mapping"),
    ],
)
def test_bad_configs_give_one_line_naming_file_and_key(tmp_path, text, needle):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p, RunConfig)
    msg = str(e.value)
    assert needle in msg
    assert str(p) in msg
    assert "\n" not in msg


def test_missing_file_and_bad_override(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml", RunConfig)
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, RunConfig, ["steps"])
    with pytest.raises(ConfigError, match="algo.group_size: expected an integer"):
        load_config(None, RunConfig, ["algo.group_size=many"])


def test_cli_prints_one_line_not_a_traceback(tmp_path):
    import subprocess
    import sys

    p = write(tmp_path, "algo:\n  group_size: 1\n")
    r = subprocess.run([sys.executable, "-m", "feedbackrl.cli", "train", str(p)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "group_size" in r.stderr and str(p) in r.stderr


def test_distinct_arithmetic_problems_counted_by_hand():
    from feedbackrl.tasks.arithmetic import ArithmeticConfig

    assert ArithmeticConfig(digits=1, ops=["+"]).distinct_problems() == 100  # a, b in 0..9
    assert ArithmeticConfig(digits=1, ops=["-"]).distinct_problems() == 55  # a >= b: 10 + 9 + ... + 1
    assert ArithmeticConfig(digits=1, ops=["-"], allow_negative=True).distinct_problems() == 100
    assert ArithmeticConfig(digits=2, ops=["+", "*"]).distinct_problems() == 20_000
    ArithmeticConfig(digits=1, eval_size=50).validate()  # exactly half: allowed (the e2e test's setting)
