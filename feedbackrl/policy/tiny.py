"""The embedded default model: a small BPE tokenizer trained on the task's own text and a tiny
Llama-style causal LM built from a config, saved with `save_pretrained` so that everything
downstream loads it exactly like a Hugging Face hub model. Nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"


@dataclass
class TinyModelConfig:
    vocab_size: int = 2048  # upper bound; BPE stops earlier on a small corpus
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 384
    max_positions: int = 256
    seed: int = 0

    def validate(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size: must be divisible by num_heads")
        if min(self.vocab_size, self.hidden_size, self.num_layers, self.num_heads, self.intermediate_size) < 1:
            raise ValueError("sizes must be positive")


def train_tokenizer(corpus: Iterable[str], extra_tokens: Sequence[str] = (), vocab_size: int = 2048):
    """Byte-level BPE with single-digit pre-tokenisation: digits as separate tokens make
    arithmetic learnable by a tiny model (a number is read digit by digit, not as arbitrary
    merged chunks). `extra_tokens` (e.g. product SKUs) become whole tokens, with and without
    a leading space, so a ranked list of k items is k tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    # padding_side as a constructor argument, not an attribute set afterwards: only init
    # arguments reach tokenizer_config.json, and a decoder-only model is padded on the left
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK, padding_side="left"
    )
    if extra_tokens:
        words = []
        for t in dict.fromkeys(extra_tokens):
            words += [AddedToken(t, normalized=False), AddedToken(" " + t, normalized=False)]
        fast.add_tokens(words)
    return fast


def build_tiny_model(
    out_dir: str | Path,
    corpus: Iterable[str],
    extra_tokens: Sequence[str] = (),
    config: TinyModelConfig | None = None,
) -> Path:
    """Train the tokenizer, build a freshly initialised tiny Llama and save both to `out_dir`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = config or TinyModelConfig()
    cfg.validate()
    tokenizer = train_tokenizer(corpus, extra_tokens, cfg.vocab_size)
    torch.manual_seed(cfg.seed)
    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(model_config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
