"""The maths as pure tensor functions: advantages, losses, KL, off-policy weights and estimators.
No models and no I/O live here; loops in `feedbackrl.train` compose these."""

from feedbackrl.algos.advantages import (
    expand_to_tokens, gae, group_advantages, group_reward_to_go_advantages, rewards_to_go, rloo_advantages,
)
from feedbackrl.algos.kl import entropy_from_logits, kl_divergence, logprobs_from_logits
from feedbackrl.algos.masked import aggregate, masked_mean, masked_sum, masked_var, masked_whiten
from feedbackrl.algos.offpolicy import (
    bootstrap_ci, direct_method_estimate, doubly_robust_estimate, effective_sample_size, ips_estimate,
    position_based_ips, snips_estimate,
)
from feedbackrl.algos.policy_loss import clipped_surrogate_loss, clipped_value_loss, policy_gradient_loss
from feedbackrl.algos.preference import bradley_terry_loss, dpo_loss
from feedbackrl.algos.weighted import (
    advantage_weights, importance_weights, offpolicy_pg_loss, prompt_reward_to_go_advantages, token_weighted_nll_loss,
    weighted_nll_loss,
)

__all__ = [
    # masked.py
    "aggregate", "masked_mean", "masked_sum", "masked_var", "masked_whiten",
    # advantages.py
    "expand_to_tokens", "gae", "group_advantages", "group_reward_to_go_advantages", "rewards_to_go", "rloo_advantages",
    # policy_loss.py
    "clipped_surrogate_loss", "clipped_value_loss", "policy_gradient_loss",
    # kl.py
    "entropy_from_logits", "kl_divergence", "logprobs_from_logits",
    # preference.py
    "bradley_terry_loss", "dpo_loss",
    # weighted.py
    "advantage_weights", "importance_weights", "offpolicy_pg_loss", "prompt_reward_to_go_advantages",
    "token_weighted_nll_loss", "weighted_nll_loss",
    # offpolicy.py
    "bootstrap_ci", "direct_method_estimate", "doubly_robust_estimate", "effective_sample_size", "ips_estimate",
    "position_based_ips", "snips_estimate",
]
