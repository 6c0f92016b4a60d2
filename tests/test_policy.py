"""The policy: loading from a local directory, sampling with the KV cache, log-probs."""

import pytest
import torch

from feedbackrl.policy import LoraSettings, Policy
from feedbackrl.policy import sampling
from feedbackrl.policy.sampling import draw, top_p_filter
from feedbackrl.policy.tiny import count_parameters


def test_tiny_model_loads_like_any_hf_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert count_parameters(model) <= 5_000_000
    # digits are single tokens; the added SKUs are whole tokens with and without a space
    assert [tok.decode([i]) for i in tok("123", add_special_tokens=False)["input_ids"]] == ["1", "2", "3"]
    assert len(tok(" SKU-A SKU-B", add_special_tokens=False)["input_ids"]) == 2
    # a decoder-only model's batches pad on the left, also for whoever loads the saved tokenizer
    assert tok.padding_side == "left"
    batch = tok(["1+2", "10+20="], padding=True)["input_ids"]
    assert batch[0][0] == tok.pad_token_id and batch[1][-1] != tok.pad_token_id


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
    # a forced token has probability 1 under the masked distribution it was drawn from ...
    assert all(abs(lp) < 1e-5 for s in out for lp in s.sampling_logprobs)
    assert all(abs(s.sequence_logprob) < 1e-5 for s in out)
    # ... while `logprobs` (the loss's pi_old) are the model's own, as a forward pass gives them,
    # so the ratio pi_theta / pi_old starts at exactly 1 under a constraint too
    batch = policy.collate(out)
    with torch.no_grad():
        lp = policy.token_logprobs(batch)["logprobs"]
    assert torch.allclose(lp * batch.completion_mask, batch.old_logprobs, atol=1e-4)
    assert float(batch.old_logprobs[0, 0]) < -1e-3  # SKU-B is not certain for the model itself


def test_top_p_keeps_smallest_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(top_p_filter(logits, 0.7))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 < 0.7 so the 0.3 token is needed
    assert torch.isfinite(top_p_filter(logits, 0.4)).tolist() == [[True, False, False, False]]


def test_draw_follows_the_weights_and_never_picks_a_zero_weight_token():
    # 3 rows, 6 tokens; weights need not sum to 1; zeros at the front, middle and end
    weights = torch.tensor([[0.0, 1.0, 0.0, 2.0, 1.0, 0.0],
                            [5.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                            [0.0, 0.0, 0.0, 0.0, 0.0, 3.0]])
    g = torch.Generator().manual_seed(0)
    n = 40_000
    counts = torch.zeros_like(weights)
    for _ in range(n // 1000):
        rows = weights.repeat_interleave(1000, dim=0)
        tok = draw(rows, g).view(3, 1000)
        counts.scatter_add_(1, tok, torch.ones_like(tok, dtype=counts.dtype))
    assert counts[weights == 0].sum() == 0
    assert counts[1, 0] == n and counts[2, 5] == n
    # row 0: shares 1/4, 1/2, 1/4; a binomial standard error at n=40,000 is <= 0.0025
    share = counts[0] / n
    assert torch.allclose(share, torch.tensor([0.0, 0.25, 0.0, 0.5, 0.25, 0.0]), atol=0.0125)
    # the same generator state gives the same draws
    assert torch.equal(draw(weights, torch.Generator().manual_seed(3)), draw(weights, torch.Generator().manual_seed(3)))


def test_draw_at_the_top_of_the_uniform_range_stays_on_a_weighted_token(monkeypatch):
    # u just below 1: u x total rounds up to the total when the total is a float64 subnormal,
    # which would put the draw past the last positive weight
    def top_uniform(shape, generator=None, dtype=None, device=None):
        one = torch.tensor(1.0, dtype=torch.float64)
        return torch.full(shape, torch.nextafter(one, torch.zeros_like(one)).item(), dtype=dtype, device=device)

    monkeypatch.setattr(sampling.torch, "rand", top_uniform)
    assert draw(torch.tensor([[0.0, 5e-324, 0.0, 0.0]], dtype=torch.float64)).tolist() == [1]
    assert draw(torch.tensor([[0.1, 0.7, 0.2, 0.0, 0.0], [1e-30, 0.0, 0.0, 0.0, 0.0]])).tolist() == [2, 0]
    monkeypatch.setattr(sampling.torch, "rand", lambda shape, generator=None, dtype=None, device=None:
                        torch.zeros(shape, dtype=dtype, device=device))
    # u = 0: the first positive weight, not a zero before it
    assert draw(torch.tensor([[0.0, 0.0, 1.0], [0.3, 0.0, 0.7]])).tolist() == [2, 0]


@pytest.mark.parametrize("bad", [[0.0, 0.0, 0.0], [0.5, float("nan"), 0.5], [1.0, float("inf"), 0.0]])
def test_draw_refuses_a_row_without_a_positive_finite_total(bad):
    with pytest.raises(ValueError, match="positive, finite total"):
        draw(torch.tensor([[0.2, 0.8, 0.0], bad]))


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


def test_rows_sharing_a_prompt_equal_each_row_on_its_own(tiny_model_dir):
    # a GRPO group's prompt runs once and its KV cache is gathered out to the group's rows
    # (shared_prompt.py); log-probs, values, entropy and the gradient must be what each row
    # computed alone (one plain forward pass) gives
    torch.manual_seed(0)
    policy = Policy.load(tiny_model_dir, value_head=True)
    torch.nn.init.normal_(policy.value_head.weight)
    samples = policy.generate(["Q: 1+2=? A:", "Q: 10+20=? A:", "Q: 7+8=? A:"], 4, temperature=0.9,
                              max_new_tokens=6, generator=torch.Generator().manual_seed(0))
    samples[1].completion_ids, samples[1].logprobs = samples[1].completion_ids[:2], samples[1].logprobs[:2]
    batch = policy.collate(samples)

    def loss_and_grads(b):
        out = policy.token_logprobs(b, temperature=0.9, with_values=True, with_entropy=True)
        policy.zero_grad()
        ((out["logprobs"] + out["entropy"] + out["values"]) * b.completion_mask).sum().backward()
        return out, {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}

    together, grads = loss_and_grads(batch)
    summed: dict[str, torch.Tensor] = {}
    for i in range(len(batch)):
        row = batch.select(torch.tensor([i]))
        alone, row_grads = loss_and_grads(row)
        t = row.completion_ids.shape[1]
        for k in ("logprobs", "entropy", "values"):
            assert torch.allclose(together[k][i, :t] * row.completion_mask[0], alone[k][0] * row.completion_mask[0],
                                  atol=1e-5), k
        for n, g in row_grads.items():
            summed[n] = summed.get(n, 0) + g
    assert grads.keys() == summed.keys()
    for n in grads:
        assert torch.allclose(grads[n], summed[n], rtol=1e-4, atol=1e-4 * summed[n].abs().max().item()), n


def test_prompt_pass_shares_repeated_prompts(tiny_model_dir):
    from feedbackrl.policy.shared_prompt import prompt_pass

    policy = Policy.load(tiny_model_dir)
    rows = [policy.encode_prompt(p) for p in ["Q: 1+2=? A:", "Q: 10+20=? A:"] for _ in range(3)]
    with torch.no_grad():
        shared, plain = prompt_pass(policy.model, rows, policy.pad_id), prompt_pass(policy.model, rows, policy.pad_id, share=False)
    assert torch.allclose(shared.last_logits, plain.last_logits, atol=1e-5)
    assert torch.equal(shared.attention_mask, plain.attention_mask) and torch.equal(shared.positions, plain.positions)
    for layer_shared, layer_plain in zip(shared.cache.layers, plain.cache.layers):
        assert layer_shared.keys.shape == layer_plain.keys.shape
        assert torch.allclose(layer_shared.keys, layer_plain.keys, atol=1e-5)
        assert torch.allclose(layer_shared.values, layer_plain.values, atol=1e-5)


def test_logit_bias_of_a_constraint_steers_sampling_not_greedy_nor_the_recorded_logprobs(tiny_model_dir):
    policy = Policy.load(tiny_model_dir)
    sku = policy.tokenizer(" SKU-C", add_special_tokens=False)["input_ids"][0]

    class Boost:
        logit_bias = {sku: 60.0}

        def __call__(self, row, generated):
            return None if not generated else [policy.eos_id]

    g = torch.Generator().manual_seed(0)
    out = policy.generate(["search: phone ->"], 4, max_new_tokens=3, constraint=Boost(), generator=g)
    assert all(s.completion_ids[0] == sku for s in out)  # +60 on one logit: always drawn
    assert all(abs(s.sampling_logprobs[0]) < 1e-4 for s in out)  # its probability as drawn: ~1
    batch = policy.collate(out)
    with torch.no_grad():
        lp = policy.token_logprobs(batch)["logprobs"]
    assert torch.allclose(lp * batch.completion_mask, batch.old_logprobs, atol=1e-4)  # the model's own
    assert float(batch.old_logprobs[0, 0]) < -0.5
    (greedy,) = policy.generate(["search: phone ->"], 1, max_new_tokens=3, constraint=Boost(), greedy=True)
    (plain,) = policy.generate(["search: phone ->"], 1, max_new_tokens=3, greedy=True,
                               constraint=lambda row, generated: None if not generated else [policy.eos_id])
    assert greedy.completion_ids == plain.completion_ids  # greedy decoding ignores the bonus


def test_exploration_mixes_a_uniform_pool_into_sampling_and_records_the_mixture(tiny_model_dir):
    import math

    policy = Policy.load(tiny_model_dir)
    pool = [policy.tokenizer(f" SKU-{c}", add_special_tokens=False)["input_ids"][0] for c in "ABC"]
    eps = 0.5

    class Explore:
        explore = eps

        def __init__(self):
            self.calls, self.pooled_rows = [], 4

        def __call__(self, row, generated):
            return None if not generated else [policy.eos_id]

        def explore_pool(self, row, n_rows, generated):
            self.calls.append((row, n_rows))
            return None if generated else (pool if row < self.pooled_rows else None)  # first prompt's rows only

    g = torch.Generator().manual_seed(0)
    c = Explore()
    out = policy.generate(["search: phone ->", "search: tv ->"], 4, max_new_tokens=3, constraint=c, generator=g)
    assert {n for _, n in c.calls} == {8} and {r for r, _ in c.calls} == set(range(8))
    batch = policy.collate(out)
    with torch.no_grad():
        lp = policy.token_logprobs(batch)["logprobs"]
    assert torch.allclose(lp * batch.completion_mask, batch.old_logprobs, atol=1e-4)  # the model's own
    for i, s in enumerate(out):
        tok, model_lp = s.completion_ids[0], s.logprobs[0]
        if i < 4:  # drawn from 0.5 x model + 0.5 x uniform over 3 tokens
            expected = math.log((1 - eps) * math.exp(model_lp) + (eps / 3 if tok in pool else 0.0))
        else:  # no pool: the model's distribution
            expected = model_lp
        assert s.sampling_logprobs[0] == pytest.approx(expected, abs=1e-4)
    # with epsilon 1 every first pick of the pooled rows is from the pool; greedy ignores it
    c.explore, c.pooled_rows = 1.0, 16
    many = policy.generate(["search: phone ->"], 16, max_new_tokens=2, constraint=c, generator=g)
    assert all(s.completion_ids[0] in pool for s in many)
    assert all(s.sampling_logprobs[0] == pytest.approx(math.log(1 / 3), abs=1e-5) for s in many)
    (greedy,) = policy.generate(["search: phone ->"], 1, max_new_tokens=3, constraint=c, greedy=True)
    (plain,) = policy.generate(["search: phone ->"], 1, max_new_tokens=3, greedy=True,
                               constraint=lambda row, generated: None if not generated else [policy.eos_id])
    assert greedy.completion_ids == plain.completion_ids


def test_masked_logprobs_are_the_model_renormalised_over_the_allowed_tokens(tiny_model_dir):
    """`mask_logprobs`: each token's recorded log-prob is log softmax of the model's logits over
    the tokens the constraint allowed at that step (checked against a plain forward pass and a
    hand renormalisation), a forward pass over the collated samples gives the same numbers (the
    ratio starts at 1), the entropy is that of the masked distribution (at most log |allowed|),
    and rows or steps without a constraint keep the whole vocabulary."""
    policy = Policy.load(tiny_model_dir)
    ids = sorted(set(policy.tokenizer(" SKU-A SKU-B SKU-C phone", add_special_tokens=False)["input_ids"]))[:3]
    eos = policy.eos_id

    def two_picks(row, generated):  # row 1 is unconstrained
        if row % 2 == 1:
            return None
        return [t for t in ids if t not in generated] if len(generated) < 2 else [eos]

    g = torch.Generator().manual_seed(0)
    prompts = ["search: phone ->", "search: tv ->"]
    out = policy.generate(prompts, 2, max_new_tokens=3, constraint=two_picks, generator=g, mask_logprobs=True)
    plain = policy.generate(prompts, 2, max_new_tokens=3, constraint=two_picks,
                            generator=torch.Generator().manual_seed(0))
    assert [s.completion_ids for s in out] == [s.completion_ids for s in plain]  # same draws
    for r, (s, p) in enumerate(zip(out, plain)):
        assert s.allowed is not None and s.allowed.shape[0] == len(s.completion_ids)
        # by hand: a forward pass over prompt + completion, softmax restricted to the allowed ids
        full = torch.tensor([s.prompt_ids + s.completion_ids])
        with torch.no_grad():
            logits = policy.model(input_ids=full).logits[0, len(s.prompt_ids) - 1:-1].float()
        for j, tok in enumerate(s.completion_ids):
            allowed = ([t for t in ids if t not in s.completion_ids[:j]] if j < 2 else [eos]) if r % 2 == 0 else None
            if allowed is None:
                assert bool(s.allowed[j].all())
                want = logits[j].log_softmax(-1)[tok]
                assert s.logprobs[j] == pytest.approx(p.logprobs[j], abs=1e-5)
            else:
                assert sorted(torch.nonzero(s.allowed[j]).flatten().tolist()) == sorted(allowed)
                want = logits[j, tok] - logits[j, allowed].logsumexp(-1)
                # the masked log-prob is larger than the whole-vocabulary one (unless forced and certain)
                assert s.logprobs[j] >= p.logprobs[j] - 1e-6
            assert s.logprobs[j] == pytest.approx(float(want), abs=1e-4)
    batch = policy.collate(out)
    assert batch.allowed is not None and batch.allowed.shape[:2] == batch.completion_ids.shape
    with torch.no_grad():
        res = policy.token_logprobs(batch, with_entropy=True)
    assert torch.allclose(res["logprobs"] * batch.completion_mask, batch.old_logprobs, atol=1e-4)
    # the first pick of a constrained row chooses among 3 tokens: entropy <= log 3; an unconstrained
    # row's is over the whole vocabulary, and a forced EOS has entropy 0
    assert float(res["entropy"][0, 0]) <= float(torch.log(torch.tensor(3.0))) + 1e-5
    assert float(res["entropy"][0, 2]) == pytest.approx(0.0, abs=1e-5)
    assert float(res["entropy"][1, 0]) > float(torch.log(torch.tensor(3.0)))
    # select() keeps the rows' masks with them
    mb = batch.select(torch.tensor([2, 1]))
    assert torch.equal(mb.allowed, batch.allowed[[2, 1], :mb.completion_ids.shape[1]])


def test_collate_pads_right_and_places_each_completion_token():
    from feedbackrl.policy.batch import collate
    from feedbackrl.sample import Sample

    samples = [Sample("a", "b", prompt_ids=[5, 6, 7], completion_ids=[8, 9], logprobs=[-0.5, -1.5]),
               Sample("c", "d", prompt_ids=[4], completion_ids=[10, 11, 12]),
               Sample("e", "f", prompt_ids=[3, 3], completion_ids=[], logprobs=[])]
    b = collate(samples, pad_id=0)
    assert b.input_ids.tolist() == [[5, 6, 7, 8, 9], [4, 10, 11, 12, 0], [3, 3, 0, 0, 0]]
    assert b.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 1, 0, 0, 0]]
    # the position whose logits predict completion token j: prompt length - 1 + j
    assert b.positions.tolist() == [[2, 3, 0], [0, 1, 2], [0, 0, 0]]
    assert b.completion_ids.tolist() == [[8, 9, 0], [10, 11, 12], [0, 0, 0]]
    assert b.completion_mask.tolist() == [[1, 1, 0], [1, 1, 1], [0, 0, 0]]
    assert b.old_logprobs.tolist() == [[-0.5, -1.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    assert b.input_ids.dtype == b.completion_ids.dtype == torch.long and b.old_logprobs.dtype == torch.float32
    with pytest.raises(ValueError, match="at least one prompt token"):
        collate([Sample("", "x", prompt_ids=[], completion_ids=[1])], pad_id=0)


def test_decode_many_equals_decode_row_by_row(tiny_model_dir):
    policy = Policy.load(tiny_model_dir)
    rows = [policy.encode_completion(t) for t in ["12", " 7+8", "", "Q: 1+2=? A: 3"]] + [[policy.pad_id] * 3]
    drop = (policy.eos_id, policy.pad_id)
    one_by_one = [policy.tokenizer.decode([i for i in r if i not in drop], skip_special_tokens=True) for r in rows]
    assert policy.decode_many(rows) == one_by_one and [policy.decode(r) for r in rows] == one_by_one
    assert policy.decode_many(rows)[:2] == ["12", " 7+8"]
