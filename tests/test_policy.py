"""The policy: loading from a local directory, sampling with the KV cache, log-probs."""

import torch

from feedbackrl.policy import LoraSettings, Policy
from feedbackrl.policy.sampling import top_p_filter
from feedbackrl.policy.tiny import count_parameters


def test_tiny_model_loads_like_any_hf_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert count_parameters(model) <= 5_000_000
    # digits are single tokens; the added SKUs are whole tokens with and without a space
    assert [tok.decode([i]) for i in tok("123", add_special_tokens=False)["input_ids"]] == ["1", "2", "3"]
    assert len(tok(" SKU-A SKU-B", add_special_tokens=False)["input_ids"]) == 2


def test_default_tiny_config_is_under_five_million(tmp_path):
    from feedbackrl.policy.tiny import build_tiny_model

    out = build_tiny_model(tmp_path, ["Q: 1+2=? A: 3"] * 20)
    assert count_parameters(Policy.load(out).model) <= 5_000_000


def test_generate_shapes_groups_and_logprobs_match_forward(tiny_model_dir):
    torch.manual_seed(0)
    policy = Policy.load(tiny_model_dir)
    prompts = ["Q: 1+2=? A:", "Q: 10+20=? A:", "Q: 7+8=? A:"]
    g = torch.Generator().manual_seed(0)
    samples = policy.generate(prompts, 4, temperature=0.9, max_new_tokens=6, generator=g)
    assert len(samples) == 12
    assert [s.group_id for s in samples] == [0] * 4 + [1] * 4 + [2] * 4
    assert all(s.prompt == prompts[s.group_id] for s in samples)
    assert all(1 <= len(s.completion_ids) <= 6 and len(s.logprobs) == len(s.completion_ids) for s in samples)
    # the log-probs recorded while sampling (KV cache, left padding) equal a fresh batched
    # forward pass over prompt + completion (right padding): same distribution, same numbers
    batch = policy.collate(samples)
    with torch.no_grad():
        lp = policy.token_logprobs(batch, temperature=0.9)["logprobs"]
    assert torch.allclose(lp * batch.completion_mask, batch.old_logprobs, atol=1e-4)


def test_sampling_is_reproducible_from_the_generator(tiny_model_dir):
    policy = Policy.load(tiny_model_dir)
    a = policy.generate(["Q: 3+4=? A:"], 5, generator=torch.Generator().manual_seed(1), max_new_tokens=5)
    b = policy.generate(["Q: 3+4=? A:"], 5, generator=torch.Generator().manual_seed(1), max_new_tokens=5)
    assert [s.completion_ids for s in a] == [s.completion_ids for s in b]


def test_greedy_and_constraint(tiny_model_dir):
    policy = Policy.load(tiny_model_dir)
    tok = policy.tokenizer
    sku = tok(" SKU-B", add_special_tokens=False)["input_ids"][0]

    def only_sku_then_eos(row, generated):
        return [sku] if not generated else [policy.eos_id]

    out = policy.generate(["search: phone ->"], 3, max_new_tokens=4, constraint=only_sku_then_eos)
    assert all(s.completion_ids == [sku, policy.eos_id] for s in out)
    assert all(s.completion == " SKU-B" for s in out)
    # a forced token has probability 1 under the masked distribution
    assert all(abs(lp) < 1e-5 for s in out for lp in s.logprobs)


def test_top_p_keeps_smallest_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(top_p_filter(logits, 0.7))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 < 0.7 so the 0.3 token is needed
    assert torch.isfinite(top_p_filter(logits, 0.4)).tolist() == [[True, False, False, False]]


def test_sequence_logprobs_is_differentiable_and_sums_tokens(tiny_model_dir):
    policy = Policy.load(tiny_model_dir)
    lp = policy.sequence_logprobs(["Q: 1+1=? A:", "Q: 2+2=? A:"], [" 2", " 4"])
    assert lp.shape == (2,) and bool((lp < 0).all())
    lp.sum().backward()
    assert any(p.grad is not None for p in policy.parameters())


def test_value_head_and_lora(tiny_model_dir, tmp_path):
    policy = Policy.load(tiny_model_dir, value_head=True, lora=LoraSettings(r=4, alpha=8))
    assert policy.is_lora
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n in trainable) and any("value_head" in n for n in trainable)
    assert not any("embed_tokens" in n for n in trainable)
    s = policy.generate(["Q: 1+2=? A:"], 2, max_new_tokens=3)
    out = policy.token_logprobs(policy.collate(s), with_values=True)
    assert out["values"].shape == out["logprobs"].shape
    policy.save(tmp_path / "saved")
    again = Policy.load(tmp_path / "saved", value_head=True)
    assert not again.is_lora  # merged weights load as a plain HF model
    assert (tmp_path / "saved" / "adapter" / "adapter_config.json").exists()
