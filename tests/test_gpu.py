"""The policy and the online loop on a CUDA device: the same numbers as on the CPU.

Skipped without a GPU (CI has none); run on a GPU machine with `pytest tests/test_gpu.py`.
"""

import pytest
import torch

from feedbackrl.policy import Policy
from feedbackrl.tasks.arithmetic import ArithmeticTask

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_token_logprobs_match_cpu(tiny_model_dir):
    cpu = Policy.load(tiny_model_dir)
    gpu = Policy.load(tiny_model_dir, device="cuda")
    prompts = ["Compute: 3 + 4 =", "Compute: 12 - 5 ="]
    completions = [" 7", " 7"]
    want = cpu.sequence_logprobs(prompts, completions).detach()
    got = gpu.sequence_logprobs(prompts, completions).detach().cpu()
    assert torch.allclose(got, want, atol=1e-4), (got, want)


def test_greedy_generation_matches_cpu(tiny_model_dir):
    cpu = Policy.load(tiny_model_dir)
    gpu = Policy.load(tiny_model_dir, device="cuda")
    prompts = ["Compute: 3 + 4 =", "Compute: 8 + 1 ="]
    a = cpu.generate(prompts, 1, greedy=True, max_new_tokens=6)
    b = gpu.generate(prompts, 1, greedy=True, max_new_tokens=6)
    assert [s.completion_ids for s in a] == [s.completion_ids for s in b]
    for s in b:  # per-token log-probs come back on the host, one per token
        assert len(s.logprobs) == len(s.completion_ids)


class VariedTask(ArithmeticTask):
    """An untrained model never answers right: all-zero rewards give zero advantages and, with
    policy = reference, a zero gradient. Rewarding the parity of the first token's id instead gives
    every group a spread, so a correct step must move the weights."""

    def reward(self):
        from feedbackrl.rewards.base import RewardResult

        return lambda samples: [RewardResult(float(s.completion_ids[0] % 2) if s.completion_ids else 0.0, {})
                                for s in samples]


@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_online_step_on_cuda_updates_the_weights(tiny_model_dir, tmp_path, algo):
    from test_online import small_config  # the shared config helper (pytest puts tests/ on sys.path)

    from feedbackrl.train.online import OnlineTrainer

    extra = {"algo__name": algo, "algo__kl_coef": 0.05, "model__device": "cuda"}
    cfg = small_config(tmp_path, **extra)
    torch.manual_seed(0)
    policy = Policy.load(tiny_model_dir, value_head=algo == "ppo", device="cuda")
    before = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    trainer = OnlineTrainer(cfg, VariedTask(cfg.arithmetic), policy, tmp_path / "run")
    metrics = trainer.train_step()
    assert all(torch.isfinite(torch.tensor(float(v))) for v in metrics.values() if isinstance(v, (int, float)))
    changed = [k for k, v in policy.state_dict().items() if not torch.equal(v, before[k])]
    assert metrics["reward/std"] > 0, "the test needs rewards with a spread"
    assert changed, "no parameter moved"
    assert next(policy.parameters()).device.type == "cuda"


def test_sft_and_offline_dpo_steps_on_cuda(tiny_model_dir):
    from feedbackrl.algos.preference import dpo_loss
    from feedbackrl.train.sft import train_sft

    policy = Policy.load(tiny_model_dir, device="cuda")
    pairs = [("Compute: 3 + 4 =", " 7"), ("Compute: 2 + 2 =", " 4")] * 4
    before = policy.sequence_logprobs([p for p, _ in pairs], [c for _, c in pairs]).sum().item()
    train_sft(policy, pairs, steps=20, batch_size=8, lr=3e-3, warmup_steps=2)
    after = policy.sequence_logprobs([p for p, _ in pairs], [c for _, c in pairs]).sum().item()
    assert after > before  # imitation raised the demonstrated answers' likelihood on the GPU
    lp = policy.sequence_logprobs(["Compute: 3 + 4 ="] * 2, [" 7", " 8"])
    loss, _ = dpo_loss(lp[:1], lp[1:], lp[:1].detach(), lp[1:].detach(), beta=0.1)
    loss.backward()
    assert loss.device.type == "cuda" and abs(loss.item() - 0.6931) < 1e-3  # log 2 at the reference


def test_a_host_generator_draws_the_same_samples_on_cuda(tiny_model_dir):
    """A seeded host generator on a CUDA policy: the uniforms come from the host, so the GPU
    samples what the CPU samples with the same seed (the logits agree to float rounding)."""
    prompts = ["Compute: 3 + 4 =", "Compute: 12 - 5 ="]
    runs = {}
    for device in ("cpu", "cuda"):
        policy = Policy.load(tiny_model_dir, device=device)
        samples = policy.generate(prompts, 4, max_new_tokens=6, generator=torch.Generator().manual_seed(7))
        runs[device] = [s.completion_ids for s in samples]
    assert runs["cuda"] == runs["cpu"]


def test_grpo_run_resumed_on_cuda_ends_with_identical_weights(tiny_model_dir, tmp_path):
    """The online loop's exact resume on a GPU: the sampling generator lives on the device and
    is checkpointed with the rest; stopped at step 2 and resumed, the run ends where the
    uninterrupted one does."""
    from test_online import small_config, trainer_for

    from feedbackrl.train import checkpoint as ckpt
    from feedbackrl.train.online import OnlineTrainer

    extra = {"algo__kl_coef": 0.05, "model__device": "cuda"}
    cfg = small_config(tmp_path / "a", **extra)
    straight = trainer_for(cfg, tiny_model_dir, tmp_path / "a", VariedTask(cfg.arithmetic), device="cuda")
    straight.run()
    cfg_b = small_config(tmp_path / "b", **extra)
    first = trainer_for(cfg_b, tiny_model_dir, tmp_path / "b", VariedTask(cfg_b.arithmetic), device="cuda")
    assert first.run(stop_after=2)["steps"] == 2
    latest = ckpt.latest_checkpoint(tmp_path / "b")
    resumed = OnlineTrainer(cfg_b, VariedTask(cfg_b.arithmetic), Policy.load(latest, device="cuda"), tmp_path / "b",
                            reference=first.reference)
    resumed.run(resume_state=ckpt.load_trainer_state(latest))
    assert resumed.step == 4
    want, got = straight.policy.state_dict(), resumed.policy.state_dict()
    for k in want:
        assert torch.equal(want[k], got[k]), (k, float((want[k] - got[k]).abs().max()))
