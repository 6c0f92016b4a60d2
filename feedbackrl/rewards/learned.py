"""A learned reward: any Hugging Face backbone with a scalar head, and the scorer that loads it.

The backbone turns `prompt + completion` into one vector, the head (one linear layer) turns the
vector into a score. Which vector depends on the backbone: a causal LM only has seen the whole
text at its last real token, so we read that position; an encoder sees everything everywhere,
so we mean-pool its token states (the pooling all-MiniLM-L6-v2 was trained with) or take CLS.

A saved reward model is a directory:

    config.json, model.safetensors, tokenizer files   the backbone, `save_pretrained` style
    head.safetensors                                   the scalar head's weight and bias
    reward_model.json                                  pooling, max length, what it was trained on
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from feedbackrl.rewards.base import RewardResult
from feedbackrl.sample import Sample

HEAD_FILE = "head.safetensors"
DESCRIPTION_FILE = "reward_model.json"
POOLINGS = ("last", "mean", "cls")
# Architectures whose only sensible summary of a sequence is the final real token.
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def default_pooling(backbone_config) -> str:
    """'last' for decoder-only language models, 'mean' for encoders."""
    architectures = getattr(backbone_config, "architectures", None) or []
    if any(a.endswith(_CAUSAL_SUFFIXES) for a in architectures) or getattr(backbone_config, "is_decoder", False):
        return "last"
    return "mean"


def load_backbone(name_or_path: str | Path, local_files_only: bool = False):
    """(backbone, tokenizer) from a local directory or a hub id, the same way for both.

    `AutoModel` drops the language-model head of a causal LM: only hidden states are needed.
    Tokenizers without a pad token (most causal LMs) pad with their end-of-sequence token;
    the attention mask keeps padding out of the pooled vector either way.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    config = AutoConfig.from_pretrained(name_or_path, local_files_only=local_files_only)
    backbone = AutoModel.from_pretrained(name_or_path, local_files_only=local_files_only)
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local_files_only)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    # Keep the completion, which sits at the end, when a text is longer than max_length.
    tokenizer.truncation_side = "left"
    return backbone, tokenizer, config


def pool_hidden_states(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """hidden: [B, T, H], attention_mask: [B, T] (1 = real token) -> [B, H].

    Works for left or right padding: 'last' takes the highest position whose mask is 1.
    """
    mask = attention_mask.to(hidden.dtype)
    if pooling == "last":
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = (positions * attention_mask).argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    if pooling == "mean":
        summed = (hidden * mask.unsqueeze(-1)).sum(dim=1)
        return summed / mask.sum(dim=1, keepdim=True).clamp(min=1.0)
    if pooling == "cls":
        return hidden[:, 0]
    raise ValueError(f"pooling: must be one of {', '.join(POOLINGS)}, got {pooling!r}")


class ScalarRewardModel(nn.Module):
    """backbone + pooling + Linear(hidden, 1): text -> one score."""

    def __init__(self, backbone: nn.Module, tokenizer, pooling: str, max_length: int = 256):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling: must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_length = max_length
        self.head = nn.Linear(backbone.config.hidden_size, 1)
        # A zero head starts every text at score 0: the first Bradley-Terry loss is exactly log 2.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        device = self.head.weight.device
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra) -> torch.Tensor:
        """input_ids, attention_mask: [B, T] -> scores [B]."""
        return self.scores_and_hidden(input_ids, attention_mask, **extra)[0]

    def scores_and_hidden(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores [B], last hidden states [B, T, H]): the states feed an auxiliary loss in training."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        return self.head(pool_hidden_states(hidden, attention_mask, self.pooling)).squeeze(-1), hidden

    def score_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Scores [len(texts)] for whole texts (prompt and completion already joined)."""
        return self(**self.encode(texts))

    def save(self, out_dir: str | Path, description: dict | None = None) -> Path:
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.head.state_dict().items()}, str(out / HEAD_FILE))
        meta = {"pooling": self.pooling, "max_length": self.max_length, "hidden_size": self.head.in_features}
        meta.update(description or {})
        (out / DESCRIPTION_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return out

    @classmethod
    def load(cls, path: str | Path) -> "ScalarRewardModel":
        """Load a directory written by `save` (or a run directory holding one under model/)."""
        from safetensors.torch import load_file

        model_dir = resolve_model_dir(path)
        meta = json.loads((model_dir / DESCRIPTION_FILE).read_text(encoding="utf-8"))
        backbone, tokenizer, _ = load_backbone(model_dir, local_files_only=True)
        model = cls(backbone, tokenizer, meta["pooling"], meta["max_length"])
        model.head.load_state_dict(load_file(str(model_dir / HEAD_FILE)))
        return model


def resolve_model_dir(path: str | Path) -> Path:
    """A saved reward model directory, given it or the run directory that holds it."""
    path = Path(path)
    for candidate in (path, path / "model"):
        if (candidate / DESCRIPTION_FILE).is_file():
            return candidate
    raise FileNotFoundError(f"{path}: not a reward model directory (no {DESCRIPTION_FILE}; train one with `feedbackrl train-rm`)")


class LearnedReward:
    """A trained reward model as a `RewardFn`: score = head(backbone(prompt + completion)).

    Scores are unnormalised logits of the Bradley-Terry model: only differences between
    completions of the same prompt are meaningful (P(a preferred to b) = sigmoid(r_a - r_b)).
    """

    name = "learned"

    def __init__(self, path: str | Path, batch_size: int = 32, device: str = "cpu"):
        self.model_dir = resolve_model_dir(path)
        self.model = ScalarRewardModel.load(self.model_dir).to(device).eval()
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, samples: Sequence[Sample]) -> list[RewardResult]:
        results: list[RewardResult] = []
        for start in range(0, len(samples), self.batch_size):
            chunk = samples[start : start + self.batch_size]
            scores = self.model.score_texts([s.prompt + s.completion for s in chunk]).tolist()
            for score in scores:
                results.append(RewardResult(float(score), {"raw_score": float(score), "model": str(self.model_dir)}))
        return results
