"""`Policy`: a Hugging Face causal LM + tokenizer, with what RL needs from it.

- `generate`: G completions per prompt with their per-token log-probs (KV cache);
- `token_logprobs`: log-probs (and optionally values and entropy) of given completions in
  batched forward passes (a prompt shared by several rows runs once);
- an optional scalar value head on the last hidden state (PPO);
- optional LoRA through peft, in which case the frozen reference is the same model with the
  adapters switched off (no second copy in memory).
"""

from __future__ import annotations

import contextlib
import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from feedbackrl.algos.kl import entropy_from_logits, logprobs_from_logits
from feedbackrl.policy.batch import Batch, collate
from feedbackrl.policy.fast_decode import DecodeRecord, llama_prompt_pass
from feedbackrl.policy.replay import replayed_completion_logits
from feedbackrl.policy.sampling import Constraint, sample_tokens
from feedbackrl.policy.shared_prompt import cache_keyword, prompt_pass
from feedbackrl.sample import Sample

VALUE_HEAD_FILE = "value_head.pt"
POLICY_META_FILE = "feedbackrl_policy.json"


@dataclass
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])

    def validate(self) -> None:
        if self.r < 1:
            raise ValueError("r: LoRA rank must be >= 1")


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


class Policy(nn.Module):
    def __init__(self, model, tokenizer, value_head: nn.Module | None = None):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.value_head = value_head
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.pad_id = int(tokenizer.pad_token_id)
        self.eos_id = int(tokenizer.eos_token_id)
        # sample through `LlamaDecoder` where it covers the model (policy/fast_decode.py)
        self.fast_decode = True
        self.decode_record: DecodeRecord | None = None  # the last generate's, with keep_record
        self._record_memory: DecodeRecord | None = None  # the latest record, whose memory the next one reuses

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        value_head: bool = False,
        lora: LoraSettings | None = None,
        device: str = "cpu",
        dtype: str = "float32",
    ) -> "Policy":
        """Load any causal LM by local directory or hub id (same `from_pretrained` code)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        _quiet_transformers()
        path = str(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
        tokenizer = AutoTokenizer.from_pretrained(path)
        if lora is not None and not (Path(path) / "adapter_config.json").exists():
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(
                model,
                LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                           target_modules=list(lora.target_modules), task_type="CAUSAL_LM"),
            )
        head = None
        if value_head:
            hidden = model.config.hidden_size
            head = nn.Linear(hidden, 1)
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
            saved = Path(path) / VALUE_HEAD_FILE
            if saved.exists():
                head.load_state_dict(torch.load(saved, map_location="cpu", weights_only=True))
        policy = cls(model, tokenizer, head).to(device)
        policy.model.config.use_cache = True
        return policy

    @classmethod
    def load_with_adapter(cls, base: str | Path, adapter: str | Path, *, value_head_from: str | Path | None = None,
                          device: str = "cpu", dtype: str = "float32") -> "Policy":
        """The base model with a trained LoRA adapter on top, still trainable: how a LoRA run
        resumes exactly (the merged weights alone would stack a fresh adapter on them)."""
        from peft import PeftModel

        policy = cls.load(base, device=device, dtype=dtype)
        model = PeftModel.from_pretrained(policy.model, str(adapter), is_trainable=True)
        head = None
        if value_head_from is not None:
            head = nn.Linear(model.config.hidden_size, 1)
            head.load_state_dict(torch.load(Path(value_head_from) / VALUE_HEAD_FILE, map_location="cpu", weights_only=True))
        return cls(model, policy.tokenizer, head).to(device)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        model = self.model
        if self.is_lora:
            # merged weights load like any HF model; the adapter alone is kept beside them
            model.save_pretrained(path / "adapter")
            model = copy.deepcopy(model).merge_and_unload()
        model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        if self.value_head is not None:
            torch.save(self.value_head.state_dict(), path / VALUE_HEAD_FILE)
        (path / POLICY_META_FILE).write_text(json.dumps({"lora": self.is_lora, "value_head": self.value_head is not None}))

    @property
    def is_lora(self) -> bool:
        return hasattr(self.model, "disable_adapter") and hasattr(self.model, "peft_config")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def frozen_copy(self) -> "Policy":
        """A detached, frozen copy for the KL reference (not needed with LoRA)."""
        ref = Policy(copy.deepcopy(self.model), self.tokenizer, None)
        ref.requires_grad_(False)
        ref.eval()
        return ref

    @contextlib.contextmanager
    def adapters_disabled(self):
        with self.model.disable_adapter():
            yield

    # ------------------------------------------------------------------ tokenisation
    def encode_prompt(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt)["input_ids"])

    def encode_completion(self, completion: str, add_eos: bool = True) -> list[int]:
        ids = list(self.tokenizer(completion, add_special_tokens=False)["input_ids"])
        return ids + [self.eos_id] if add_eos else ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.decode_many([ids])[0]

    def decode_many(self, rows: Sequence[Sequence[int]]) -> list[str]:
        """`decode` of each row, in one batched call to the tokenizer."""
        drop = (self.eos_id, self.pad_id)
        return list(self.tokenizer.batch_decode([[i for i in ids if i not in drop] for ids in rows],
                                                skip_special_tokens=True))

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        num_samples: int = 1,
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 32,
        greedy: bool = False,
        constraint: Constraint | None = None,
        generator: torch.Generator | None = None,
        mask_logprobs: bool = False,
        fast_decode: bool | None = None,
        keep_record: bool = False,
    ) -> list[Sample]:
        """len(prompts) * num_samples samples; sample k of prompt i sits at i*num_samples + k.
        `mask_logprobs`: the samples' log-probs (and any later forward pass over them) are the
        model's renormalised over the tokens `constraint` allowed (see sampling.py).
        `fast_decode`: None follows `self.fast_decode`.
        `keep_record`: keep the decode's matmul outputs as `self.decode_record` (None where the
        decode does not record them), for `token_logprobs(record=...)`; every call replaces it,
        and the next call with `keep_record` reuses its memory (the earlier record then covers
        nothing)."""
        was_training = self.model.training
        self.model.eval()
        prompt_ids = [self.encode_prompt(p) for p in prompts]
        rows = [ids for ids in prompt_ids for _ in range(num_samples)]
        out = sample_tokens(
            self.model, rows, eos_id=self.eos_id, pad_id=self.pad_id, max_new_tokens=max_new_tokens,
            temperature=temperature, top_p=top_p, greedy=greedy, constraint=constraint, generator=generator,
            mask_logprobs=mask_logprobs, fast_decode=self.fast_decode if fast_decode is None else fast_decode,
            keep_record=(self._record_memory or True) if keep_record else False,
        )
        self.decode_record = out.record
        if out.record is not None:
            self._record_memory = out.record
        self.model.train(was_training)
        # whole tensors to lists once, and one batched decode (per-row slices cost ~3 ms a 128-row batch)
        lengths = out.lengths.tolist()
        tokens = [row[:n] for row, n in zip(out.tokens.tolist(), lengths)]
        logprobs, sampling = out.logprobs.tolist(), out.sampling_logprobs.tolist()
        texts = self.decode_many(tokens)
        return [Sample(
            prompt=prompts[r // num_samples], completion=texts[r], prompt_ids=list(ids), completion_ids=tokens[r],
            logprobs=logprobs[r][:lengths[r]], group_id=r // num_samples, sampling_logprobs=sampling[r][:lengths[r]],
            allowed=out.allowed[r, :lengths[r]] if out.allowed is not None else None,
        ) for r, ids in enumerate(rows)]

    # ------------------------------------------------------------------ scoring given completions
    def collate(self, samples: Sequence[Sample]) -> Batch:
        """Padded tensors of `samples`, on the policy's device."""
        return collate(samples, self.pad_id).to(self.device)

    def token_logprobs(
        self, batch: Batch, *, temperature: float = 1.0, with_values: bool = False, with_entropy: bool = False,
        record: DecodeRecord | None = None, rows: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Batched forward passes: {'logprobs': [B,T], 'values': [B,T]?, 'entropy': [B,T]?}.
        Rows that repeat a prompt (a GRPO group, a DPO pair) share its pass (shared_prompt.py).
        A batch that carries `allowed` (masked sampling) gets log-probs and entropy of the model
        renormalised over the allowed tokens of each position.
        `record`, `rows`: the batch's rows are rows `rows` of the decode that kept `record`
        (`generate(keep_record=True)`); where the record covers them (same weights, prompts and
        tokens) the completion's forward pass is replayed from it (backward cost only), otherwise
        it runs as usual."""
        logits, order = None, None
        if record is not None and rows is not None and not with_values:
            # the record is read fastest as a view, rows in decode order: a minibatch in another
            # order is sorted here and its [B, T] results put back at the end (not the [B, T, V]
            # logits: that gather and its backward cost ~3 ms for 128 x 16 x 262 on a CPU core)
            rows = rows.to(self.device).long()
            order = rows.argsort()
            if bool((order == torch.arange(len(rows), device=order.device)).all()):
                order = None
            sorted_batch = batch if order is None else batch.reordered(order.to(batch.input_ids.device))
            logits = self._replayed_logits(sorted_batch, record, rows if order is None else rows[order])
            if logits is None:
                order = None
            else:
                batch = sorted_batch
        replayed = logits is not None
        if replayed:
            hidden = None
        else:
            logits, hidden = self._completion_logits(batch, with_values)
        logits = logits.float()
        if temperature != 1.0:  # x / 1.0 is x: no pass over [B, T, V] (and none back)
            logits = logits / max(temperature, 1e-6)
        if batch.allowed is not None:
            logits = logits.masked_fill(~batch.allowed.to(logits.device), float("-inf"))
        result = {"logprobs": logprobs_from_logits(logits, batch.completion_ids.to(logits.device))}
        if record is not None:
            result["replayed"] = torch.tensor(replayed)
        if with_entropy:
            result["entropy"] = entropy_from_logits(logits)
        if with_values:
            if self.value_head is None:
                raise ValueError("this policy was loaded without a value head")
            result["values"] = self.value_head(hidden.float()).squeeze(-1)
        if order is not None:
            back = order.argsort()
            result = {k: v[back] if v.dim() else v for k, v in result.items()}
        return result

    def _completion_logits(self, batch: Batch, with_hidden: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits [B, T, V] that predict each completion token (and the last layer's hidden states
        [B, T, H] there): column j from the position before completion token j."""
        dev = self.device
        # Batch rows are prompt + completion, right-padded: the prompt is what precedes the completion
        prompts, prompt_lengths = _batch_prompts(batch)
        if len(set(map(tuple, prompts))) == len(prompts):
            return self._completion_logits_one_pass(batch, with_hidden)
        first = prompt_pass(self.model, prompts, self.pad_id, with_hidden=with_hidden)
        logits, hidden = first.last_logits[:, None], (first.last_hidden[:, None] if with_hidden else None)
        t = batch.completion_ids.shape[1]
        if t > 1:
            # completion tokens 0..T-2 on top of the prompts' cache predict tokens 1..T-1
            comp_ids = batch.completion_ids[:, :t - 1].to(dev)
            comp_mask = batch.completion_mask[:, :t - 1].to(dev).long()
            lengths = torch.tensor(prompt_lengths, device=dev)
            out = self.model(
                input_ids=comp_ids, attention_mask=torch.cat([first.attention_mask, comp_mask], dim=1),
                position_ids=lengths[:, None] + torch.arange(t - 1, device=dev), use_cache=True,
                output_hidden_states=with_hidden, **{cache_keyword(self.model): first.cache},
            )
            logits = torch.cat([logits, out.logits], dim=1)
            if with_hidden:
                hidden = torch.cat([hidden, out.hidden_states[-1]], dim=1)
        return logits, hidden

    def _replayed_logits(self, batch: Batch, record: DecodeRecord, rows: torch.Tensor) -> torch.Tensor | None:
        """`_completion_logits` from a decode's record (replay.replayed_completion_logits);
        None where the record does not cover the batch. Rows in any order; in decode order
        (ascending `rows`) the record is read as a view."""
        dev = self.device
        rows = rows.to(dev).long()
        cmask, completion_ids = batch.completion_mask.to(dev), batch.completion_ids.to(dev)
        prompts, lengths = _batch_prompts(batch)
        prompt_lengths = torch.tensor(lengths, device=dev)
        if not record.covers(self.model, rows, prompts, completion_ids, cmask):
            return None
        first = record.prompt_pass
        if first is not None and len(rows) == len(record.prompts) and bool(
                (rows == torch.arange(len(rows), device=rows.device)).all()):
            record.prompt_pass = None  # a backward pass through it frees it: use it once
        else:  # a record means LlamaDecoder covers the model
            first = llama_prompt_pass(self.model, prompts, self.pad_id)
        logits = first.last_logits[:, None]
        t = completion_ids.shape[1]
        if t > 1:
            keys_values = [(layer.keys, layer.values) for layer in first.cache.layers]
            rest = replayed_completion_logits(self.model, record, rows, keys_values, first.attention_mask,
                                              completion_ids[:, :t - 1], prompt_lengths)
            logits = torch.cat([logits, rest], dim=1)
        return logits

    def _completion_logits_one_pass(self, batch: Batch, with_hidden: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        dev = self.device
        out = self.model(
            input_ids=batch.input_ids.to(dev), attention_mask=batch.attention_mask.to(dev),
            output_hidden_states=with_hidden, use_cache=False,
        )
        idx = batch.positions.to(dev)
        logits = out.logits.gather(1, idx[..., None].expand(-1, -1, out.logits.shape[-1]))
        hidden = None
        if with_hidden:
            hidden = out.hidden_states[-1]
            hidden = hidden.gather(1, idx[..., None].expand(-1, -1, hidden.shape[-1]))
        return logits, hidden

    def completion_token_logprobs(self, prompts: Sequence[str], completions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable per-token log pi of each completion (EOS included) and its mask: [B, T] each."""
        samples = [
            Sample(prompt=p, completion=c, prompt_ids=self.encode_prompt(p), completion_ids=self.encode_completion(c))
            for p, c in zip(prompts, completions)
        ]
        batch = self.collate(samples)
        lp = self.token_logprobs(batch)["logprobs"]
        return lp, batch.completion_mask.to(lp.device)

    def sequence_logprobs(self, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor:
        """Differentiable log pi(completion | prompt) summed over tokens (EOS included): [B]."""
        lp, mask = self.completion_token_logprobs(prompts, completions)
        return (lp * mask).sum(-1)


def _batch_prompts(batch: Batch) -> tuple[list[list[int]], list[int]]:
    """Each row's prompt ids (a row is prompt + completion, right-padded) and their lengths."""
    lengths = (batch.attention_mask.sum(-1) - batch.completion_mask.sum(-1)).long().tolist()
    return [row[:p] for row, p in zip(batch.input_ids.tolist(), lengths)], lengths
