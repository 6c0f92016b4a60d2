"""Policies: a Hugging Face causal LM + tokenizer with sampling, log-probs, value head, LoRA."""

from feedbackrl.policy.model import LoraSettings, Policy
from feedbackrl.policy.tiny import TinyModelConfig, build_tiny_model

__all__ = ["LoraSettings", "Policy", "TinyModelConfig", "build_tiny_model"]
