"""benchmarks/step_parts.py: the in-place timing behind `grpo_step.py --breakdown`."""

import re
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import grpo_step  # noqa: E402
import step_parts  # noqa: E402
from feedbackrl.policy import fast_decode, replay, sampling  # noqa: E402
from feedbackrl.policy.model import Policy  # noqa: E402


def _originals():
    return {
        "prompt_pass": sampling.llama_prompt_pass, "draw": sampling.draw,
        "init": fast_decode.LlamaDecoder.__dict__["__init__"], "step": fast_decode.LlamaDecoder.__dict__["step"],
        "logprobs": Policy.__dict__["token_logprobs"], "backward": torch.Tensor.__dict__["backward"],
        "clip": torch.nn.utils.clip_grad_norm_,
        **{c.__name__: c.__dict__["backward"] for c in (replay._GivenAttention, replay._GivenMLP,
                                                          replay._GivenLinear, fast_decode._RMSNorm)},
    }


def test_the_breakdown_times_every_part_of_a_real_step_and_puts_everything_back(tiny_model_dir, capsys):
    before = _originals()
    sps = grpo_step.main(["--model", str(tiny_model_dir), "--prompts", "2", "--generations", "2",
                          "--new-tokens", "6", "--steps", "2", "--warmup", "1", "--threads", "1", "--breakdown"])
    out = capsys.readouterr().out
    assert sps > 0
    ms = {m.group(1).strip(): float(m.group(2))
          for m in re.finditer(r"^\s+([a-z ()]+?)\s+(\d+\.\d+)(?:\s+[\d.]+% of .*)?$", out, re.M)}
    for part in ("generate", "prompt pass", "decoder setup", "decode steps", "draw", "update",
                 "forward (replayed)", "backward", "attention", "mlp", "linear", "rms norm", "clip grad norm",
                 "optimizer step"):
        assert ms.get(part, 0) > 0, (part, out)
    # nested parts fit inside their parent (medians of sums over the same steps; a little slack for
    # the medians of different parts coming from different steps)
    assert ms["decode steps"] + ms["prompt pass"] <= 1.05 * ms["generate"]
    assert ms["attention"] + ms["mlp"] + ms["linear"] + ms["rms norm"] <= 1.05 * ms["backward"]
    assert ms["backward"] + ms["forward (replayed)"] <= 1.05 * ms["update"]
    assert _originals() == before  # nothing stays wrapped


def test_a_part_whose_function_is_gone_fails_at_once_and_leaves_nothing_wrapped(monkeypatch):
    before = _originals()
    monkeypatch.setattr(step_parts, "PARTS", step_parts.PARTS + (
        ("update/gone", "feedbackrl.policy.replay", "no_such_function", "function"),))
    with pytest.raises(AttributeError, match="no_such_function is gone"):
        step_parts.StepParts().install()
    assert _originals() == before


def test_medians_and_shares_are_those_of_the_filed_steps():
    parts = step_parts.StepParts()
    for gen, dec in ((0.100, 0.080), (0.120, 0.090), (0.300, 0.100)):
        parts.current["generate/decode steps"] += dec
        parts.end_step({"generate": gen})
    parts.current["generate/decode steps"] += 5.0
    parts.discard_step()  # a warm-up step: not counted
    med = parts.medians()
    assert med == pytest.approx({"generate": 0.120, "generate/decode steps": 0.090})
    report = parts.report()
    assert re.search(r"generate\s+120\.00", report)
    assert re.search(r"decode steps\s+90\.00\s+75\.0% of generate", report)
