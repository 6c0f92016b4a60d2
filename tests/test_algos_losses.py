"""Policy, value, KL and preference losses against numbers worked out by hand."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from feedbackrl.algos import (
    aggregate, bradley_terry_loss, clipped_surrogate_loss, clipped_value_loss, dpo_loss, entropy_from_logits,
    kl_divergence, logprobs_from_logits, masked_mean, masked_sum, masked_var, masked_whiten, policy_gradient_loss,
)

MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])


def test_aggregations_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0], [10.0, 99.0, 99.0]])
    # seq_mean: (mean(1,2,3) + mean(10)) / 2 = (2 + 10) / 2 = 6
    assert aggregate(x, MASK, "seq_mean").item() == pytest.approx(6.0)
    # token_mean: (1+2+3+10) / 4 = 4
    assert aggregate(x, MASK, "token_mean").item() == pytest.approx(4.0)
    with pytest.raises(ValueError):
        aggregate(x, MASK, "sum")


def test_clipped_surrogate_by_hand():
    old = torch.zeros(2, 3)
    # ratios: row 0 = [1.5, 0.5, 1.0], row 1 = [0.7, -, -]
    new = torch.log(torch.tensor([[1.5, 0.5, 1.0], [0.7, 1.0, 1.0]]))
    adv = torch.tensor([[1.0, 1.0, -2.0], [-1.0, 0.0, 0.0]])
    loss, stats = clipped_surrogate_loss(new, old, adv, MASK, eps_low=0.2, eps_high=0.2, aggregation="token_mean")
    # token terms min(r A, clip(r) A): 1.5*1 vs 1.2*1 -> 1.2; 0.5*1 vs 0.8*1 -> 0.5;
    # 1.0*-2 -> -2; 0.7*-1 = -0.7 vs 0.8*-1 = -0.8 -> -0.8. loss = -(1.2+0.5-2-0.8)/4 = 0.275
    assert loss.item() == pytest.approx(0.275, abs=1e-6)
    assert stats["clip_fraction"] == pytest.approx(0.5)  # tokens 0 and 3 took the clipped term
    seq, _ = clipped_surrogate_loss(new, old, adv, MASK, aggregation="seq_mean")
    # row 0: -(1.2+0.5-2)/3 = 0.1; row 1: 0.8 -> mean 0.45
    assert seq.item() == pytest.approx(0.45, abs=1e-6)
    # asymmetric clip-higher: eps_high 0.6 lets 1.5 through
    hi, _ = clipped_surrogate_loss(new, old, adv, MASK, eps_low=0.2, eps_high=0.6, aggregation="token_mean")
    assert hi.item() == pytest.approx(-(1.5 + 0.5 - 2 - 0.8) / 4, abs=1e-6)


@pytest.mark.parametrize("aggregation", ["seq_mean", "token_mean"])
def test_clipped_gradient_equals_policy_gradient_at_ratio_one(aggregation):
    torch.manual_seed(0)
    base = torch.randn(3, 5)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=torch.float32)
    adv = torch.randn(3, 5)
    a = base.clone().requires_grad_(True)
    loss, _ = clipped_surrogate_loss(a, base.clone(), adv, mask, aggregation=aggregation)
    loss.backward()
    b = base.clone().requires_grad_(True)
    policy_gradient_loss(b, adv, mask, aggregation=aggregation).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-7)
    assert a.grad.abs().sum() > 0


def test_clipped_value_loss_by_hand():
    values = torch.tensor([[1.0, 0.0, 0.0]])
    old = torch.tensor([[0.5, 0.0, 0.0]])
    returns = torch.tensor([[2.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 0.0, 0.0]])
    # unclipped (1-2)^2 = 1; clipped value 0.5+0.2 = 0.7 -> (0.7-2)^2 = 1.69; max -> 0.5*1.69
    assert clipped_value_loss(values, old, returns, mask, clip=0.2).item() == pytest.approx(0.845)
    # moving toward the return within the clip: value 0.6 -> both terms (0.6-2)^2 = 1.96
    assert clipped_value_loss(values - 0.4, old, returns, mask, clip=0.2).item() == pytest.approx(0.98)


def test_kl_estimators_by_hand():
    lp = torch.tensor([[math.log(0.5)]])
    ref = torch.tensor([[math.log(0.25)]])
    # log r = log(0.25/0.5) = -log 2
    assert kl_divergence(lp, ref, "k1").item() == pytest.approx(math.log(2))
    assert kl_divergence(lp, ref, "k2").item() == pytest.approx(0.5 * math.log(2) ** 2)
    assert kl_divergence(lp, ref, "k3").item() == pytest.approx(0.5 - 1 + math.log(2))
    with pytest.raises(ValueError):
        kl_divergence(lp, ref, "k4")


def test_kl_estimators_are_unbiased_for_the_true_kl():
    p = torch.tensor([0.6, 0.3, 0.1])
    q = torch.tensor([0.2, 0.5, 0.3])
    true_kl = float((p * (p / q).log()).sum())
    lp, lq = p.log(), q.log()
    # exact expectation under p of each estimator
    for est in ("k1", "k3"):
        expectation = float((p * kl_divergence(lp, lq, est)).sum())
        assert expectation == pytest.approx(true_kl, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(st.floats(-20, 0), st.floats(-20, 0))
def test_k3_is_never_negative(a, b):
    assert kl_divergence(torch.tensor([a]), torch.tensor([b]), "k3").item() >= -1e-7


def test_logprobs_and_entropy_from_logits():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25]]]))
    assert logprobs_from_logits(logits, torch.tensor([[1]])).item() == pytest.approx(math.log(0.25))
    # H = -(0.5 ln 0.5 + 2 * 0.25 ln 0.25) = 1.5 ln 2
    assert entropy_from_logits(logits).item() == pytest.approx(1.5 * math.log(2))


def test_bradley_terry_by_hand():
    rc, rr = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0])
    # -log sigmoid(2) = log(1+e^-2) = 0.126928; -log sigmoid(0) = log 2
    expected = (math.log1p(math.exp(-2)) + math.log(2)) / 2
    assert bradley_terry_loss(rc, rr).item() == pytest.approx(expected, abs=1e-6)
    # a margin of 1 on the first pair: log(1+e^-1)
    assert bradley_terry_loss(rc[:1], rr[:1], margin=1.0).item() == pytest.approx(math.log1p(math.exp(-1)), abs=1e-6)
    # centering adds coef * mean((rc+rr)^2) = 0.1 * (4 + 0) / 2 = 0.2
    assert bradley_terry_loss(rc, rr, center_coef=0.1).item() == pytest.approx(expected + 0.2, abs=1e-6)


def test_dpo_and_ipo_by_hand():
    pc, pr = torch.tensor([-1.0]), torch.tensor([-3.0])
    rc, rr = torch.tensor([-2.0]), torch.tensor([-2.0])
    # h = (-1+2) - (-3+2) = 2; beta 0.5 -> -log sigmoid(1) = log(1+e^-1)
    loss, stats = dpo_loss(pc, pr, rc, rr, beta=0.5)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-1)), abs=1e-6)
    assert stats["reward_accuracy"] == 1.0 and stats["reward_margin"] == pytest.approx(1.0)
    assert stats["chosen_reward"] == pytest.approx(0.5) and stats["rejected_reward"] == pytest.approx(-0.5)
    # IPO: (h - 1/(2 beta))^2 = (2 - 1)^2 = 1
    ipo, _ = dpo_loss(pc, pr, rc, rr, beta=0.5, variant="ipo")
    assert ipo.item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        dpo_loss(pc, pr, rc, rr, variant="kto")


def test_masked_reductions_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0], [10.0, 99.0, 99.0]])
    # valid entries 1, 2, 3, 10: sum 16, mean 4, population var (9+4+1+36)/4 = 12.5
    assert masked_sum(x, MASK).item() == pytest.approx(16.0)
    assert masked_mean(x, MASK).item() == pytest.approx(4.0)
    assert torch.allclose(masked_mean(x, MASK, dim=-1), torch.tensor([2.0, 10.0]))
    assert torch.allclose(masked_sum(x, MASK.bool(), dim=-1), torch.tensor([6.0, 10.0]))
    assert masked_var(x, MASK).item() == pytest.approx(12.5)
    white = masked_whiten(x, MASK, eps=0.0)
    assert torch.allclose(white[0], torch.tensor([-3.0, -2.0, -1.0]) / math.sqrt(12.5))
    assert torch.allclose(masked_whiten(x, MASK, shift_mean=False, eps=0.0)[1, 0], torch.tensor(6 / math.sqrt(12.5) + 4))
    # nothing valid: 0, not 0/0; a [B, 1] mask counts every entry of its row
    assert masked_mean(x, torch.zeros(2, 3)).item() == 0.0
    assert masked_mean(x, torch.tensor([[1.0], [0.0]])).item() == pytest.approx(2.0)


def test_seq_mean_leaves_out_empty_sequences():
    x = torch.tensor([[1.0, 3.0], [5.0, 5.0], [7.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    # row means 2 and 7; the empty row is not a zero in the average: (2 + 7) / 2
    assert aggregate(x, mask, "seq_mean").item() == pytest.approx(4.5)
    # token mean (1 + 3 + 7) / 3
    assert aggregate(x, mask, "token_mean").item() == pytest.approx(11 / 3)
    for mode in ("seq_mean", "token_mean"):
        assert aggregate(x, torch.zeros(3, 2), mode).item() == 0.0


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 4), st.integers(1, 5), st.integers(0, 10_000))
def test_seq_and_token_mean_agree_when_lengths_are_equal(b, length, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length + 2, generator=g, dtype=torch.float64)
    mask = torch.zeros(b, length + 2, dtype=torch.float64)
    mask[:, :length] = 1
    assert aggregate(x, mask, "seq_mean").item() == pytest.approx(aggregate(x, mask, "token_mean").item(), abs=1e-12)


def test_clipped_tokens_get_no_gradient_and_stats_by_hand():
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.1]])).requires_grad_(True)
    adv = torch.tensor([[1.0, -1.0, 1.0]])
    loss, stats = clipped_surrogate_loss(new, old, adv, torch.ones(1, 3), aggregation="token_mean")
    loss.backward()
    # token 0: 1.5 > 1.2 with A > 0 -> clipped, no gradient; token 1: 0.5 < 0.8 with A < 0 -> clipped;
    # token 2: inside the range, d(-ratio * A / 3)/d logprob = -ratio * A / 3 = -1.1 / 3
    assert torch.allclose(new.grad, torch.tensor([[0.0, 0.0, -1.1 / 3]]))
    assert stats["clip_fraction"] == pytest.approx(2 / 3)
    # approx_kl = mean((r - 1) - ln r) = (0.5 - ln 1.5 + -0.5 - ln 0.5 + 0.1 - ln 1.1) / 3
    kl = (0.5 - math.log(1.5) - 0.5 - math.log(0.5) + 0.1 - math.log(1.1)) / 3
    assert stats["approx_kl"] == pytest.approx(kl, abs=1e-6)
    assert stats["ratio_mean"] == pytest.approx(3.1 / 3, abs=1e-6)


def test_dual_clip_bounds_negative_advantage_tokens_by_hand():
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[5.0, 5.0]]))
    adv = torch.tensor([[-1.0, 1.0]])
    mask = torch.ones(1, 2)
    # without dual clip: token 0 min(-5, -1.2) = -5; token 1 min(5, 1.2) = 1.2 -> loss -(-5 + 1.2)/2 = 1.9
    plain, _ = clipped_surrogate_loss(new, old, adv, mask, aggregation="token_mean")
    assert plain.item() == pytest.approx(1.9, abs=1e-6)
    # dual clip c = 3: token 0 max(-5, 3 * -1) = -3; positive advantages untouched -> -(-3 + 1.2)/2 = 0.9
    dual, _ = clipped_surrogate_loss(new, old, adv, mask, aggregation="token_mean", dual_clip=3.0)
    assert dual.item() == pytest.approx(0.9, abs=1e-6)
    with pytest.raises(ValueError):
        clipped_surrogate_loss(new, old, adv, mask, dual_clip=1.0)


def test_clipped_value_loss_has_no_gradient_past_the_clip():
    old = torch.tensor([[0.5]])
    returns = torch.tensor([[2.0]])
    # v = 1.0 moved 0.5 from old, past the clip of 0.2: the clipped value 0.7 is further from
    # R = 2 ((0.7-2)^2 = 1.69 > (1-2)^2 = 1), so the max is the constant clipped term: no gradient
    v = torch.tensor([[1.0]], requires_grad=True)
    clipped_value_loss(v, old, returns, torch.ones(1, 1), clip=0.2).backward()
    assert v.grad.item() == 0.0
    # inside the clip both terms are the same: d/dv 0.5 (v - R)^2 = v - R = 0.6 - 2
    v = torch.tensor([[0.6]], requires_grad=True)
    clipped_value_loss(v, old, returns, torch.ones(1, 1), clip=0.2).backward()
    assert v.grad.item() == pytest.approx(-1.4)


@settings(max_examples=100, deadline=None)
@given(st.floats(-20, 0), st.floats(-20, 0))
def test_kl_estimators_vanish_at_equal_policies_and_k2_is_non_negative(a, b):
    x, y = torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)
    assert kl_divergence(x, y, "k2").item() >= 0.0
    for est in ("k1", "k2", "k3"):
        assert kl_divergence(x, x, est).item() == 0.0


def test_entropy_ignores_masked_vocabulary():
    logits = torch.tensor([[[0.0, 0.0, float("-inf")]]], requires_grad=True)
    h = entropy_from_logits(logits)
    assert h.item() == pytest.approx(math.log(2))  # uniform over two tokens
    h.sum().backward()
    assert torch.isfinite(logits.grad).all()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_logprobs_over_the_vocabulary_sum_to_one(seed):
    g = torch.Generator().manual_seed(seed)
    logits = 5 * torch.randn(2, 3, 6, generator=g, dtype=torch.float64)
    every_token = torch.stack([logprobs_from_logits(logits, torch.full((2, 3), v)) for v in range(6)], -1)
    assert torch.allclose(every_token.exp().sum(-1), torch.ones(2, 3, dtype=torch.float64))
    entropy = -(every_token.exp() * every_token).sum(-1)
    assert torch.allclose(entropy_from_logits(logits), entropy)


def test_half_precision_logits_are_reduced_in_float32():
    g = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(2, 3, 50, generator=g)
    tokens = torch.randint(0, 50, (2, 3), generator=g)
    half = logprobs_from_logits(logits.bfloat16(), tokens)
    assert half.dtype == torch.float32
    # only the bf16 rounding of the inputs remains (about 3 significant digits of a logit ~4)
    assert torch.allclose(half, logprobs_from_logits(logits.bfloat16().float(), tokens))
    assert entropy_from_logits(logits.half()).dtype == torch.float32


def test_bradley_terry_per_pair_margin():
    rc, rr = torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0])
    # margins 1 and 0: (-log sigmoid(0) - log sigmoid(1)) / 2 = (ln 2 + ln(1 + e^-1)) / 2
    expected = (math.log(2) + math.log1p(math.exp(-1))) / 2
    assert bradley_terry_loss(rc, rr, margin=torch.tensor([1.0, 0.0])).item() == pytest.approx(expected, abs=1e-6)


def test_dpo_label_smoothing_and_gradient_direction():
    pc = torch.tensor([-1.0], requires_grad=True)
    pr = torch.tensor([-3.0], requires_grad=True)
    ref = torch.tensor([-2.0])
    # h = 2, beta 0.5 -> beta h = 1; ls 0.1: 0.9 ln(1 + e^-1) + 0.1 ln(1 + e^1)
    loss, _ = dpo_loss(pc, pr, ref, ref, beta=0.5, label_smoothing=0.1)
    assert loss.item() == pytest.approx(0.9 * math.log1p(math.exp(-1)) + 0.1 * math.log1p(math.e), abs=1e-6)
    loss.backward()
    assert pc.grad.item() < 0 < pr.grad.item()  # descent raises the chosen, lowers the rejected
    # at h = 0 the sigmoid loss is ln 2 whatever beta and ls
    zero, stats = dpo_loss(ref, ref, ref, ref, beta=3.0, label_smoothing=0.2)
    assert zero.item() == pytest.approx(math.log(2))
    assert stats["reward_accuracy"] == 0.0 and stats["reward_margin"] == 0.0
    for bad in ({"beta": 0.0}, {"label_smoothing": 0.5}):
        with pytest.raises(ValueError):
            dpo_loss(ref, ref, ref, ref, **bad)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.05, 0.5), st.floats(0.05, 0.5))
def test_clipped_surrogate_is_a_pessimistic_bound(seed, eps_low, eps_high):
    # min(rA, clip(r)A) <= rA on every token, so the clipped loss is never below the unclipped one
    g = torch.Generator().manual_seed(seed)
    lp, old, adv = (torch.randn(3, 4, generator=g, dtype=torch.float64) for _ in range(3))
    mask = (torch.rand(3, 4, generator=g) > 0.3).to(torch.float64)
    for aggregation in ("seq_mean", "token_mean"):
        loss, stats = clipped_surrogate_loss(lp, old, adv, mask, eps_low, eps_high, aggregation)
        unclipped = aggregate(-torch.exp(lp - old) * adv, mask, aggregation)
        assert loss.item() >= unclipped.item() - 1e-12
        assert 0.0 <= stats["clip_fraction"] <= 1.0 and stats["approx_kl"] >= 0.0


def test_package_exports_every_public_function():
    import importlib
    import inspect

    import feedbackrl.algos as algos

    for module in ("masked", "advantages", "policy_loss", "kl", "preference", "weighted", "offpolicy"):
        mod = importlib.import_module(f"feedbackrl.algos.{module}")
        public = {n for n, f in inspect.getmembers(mod, inspect.isfunction) if f.__module__ == mod.__name__ and not n.startswith("_")}
        assert public <= set(algos.__all__), f"{module}: {public - set(algos.__all__)} not exported"
    assert all(callable(getattr(algos, name)) for name in algos.__all__)
