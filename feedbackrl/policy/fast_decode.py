"""A lean decode step for Llama-architecture models: one new token per row on top of a KV cache.

Sampling runs one forward pass per generated token. For a small model the Hugging Face forward
spends most of that pass outside the matmuls: mask construction, cache bookkeeping, a `torch.cat`
that copies every row's whole cache each step, an attention kernel built for long queries, output
objects. `LlamaDecoder` runs the same maths from the same weights with none of that:

- the KV cache is preallocated for the prompt plus `max_new_tokens` and written in place;
- q, k and v come from one matmul (the three weights stacked once per generation), as do the
  MLP's gate and up projections; for a model whose stacked copies would pass `STACK_LIMIT_BYTES`
  (a large model on a GPU, where launch overhead matters less than memory) they stay separate;
- attention for a single query is two batched matmuls and a softmax, with grouped-query heads
  read in place (no repeated K/V);
- norms, rotary embedding (and its application), embedding and LM head are the model's own code.

It is inference only (the weights are stacked copies, so no gradient reaches the model) and
covers models whose decoder layer is Llama's (`LlamaDecoder.supports`); anything else, LoRA
wrappers included, decodes through the model's own forward. `tests/test_fast_decode.py` checks
its logits against the Hugging Face forward's, step by step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

# architectures whose decoder layer is Llama's: pre-norm RMSNorm, rotary q/k, SiLU-gated MLP
_LLAMA_LIKE = {"LlamaForCausalLM", "MistralForCausalLM"}
# the most memory the stacked q/k/v and gate/up weights may take; above it they are not stacked
STACK_LIMIT_BYTES = 256 * 2**20


class LlamaDecoder:
    """Decode steps of `model` for N rows whose prompts already sit in `cache` (one row each)."""

    @staticmethod
    def supports(model) -> bool:
        """True for a plain (not adapter-wrapped) Llama-style model whose decode this reproduces."""
        if type(model).__name__ not in _LLAMA_LIKE:
            return False
        cfg = model.config
        if getattr(cfg, "hidden_act", None) != "silu" or getattr(cfg, "pretraining_tp", 1) != 1:
            return False
        if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
            return False
        if getattr(cfg, "sliding_window", None):
            return False
        inner = getattr(model, "model", None)
        layers = getattr(inner, "layers", None)
        if layers is None or not hasattr(inner, "rotary_emb"):
            return False
        for layer in layers:
            attn, mlp = layer.self_attn, layer.mlp
            linears = (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj)
            # exactly nn.Linear: a LoRA or quantised layer computes something else
            if any(type(m) is not nn.Linear or m.bias is not None for m in linears):
                return False
        return type(model.lm_head) is nn.Linear

    @torch.inference_mode()
    def __init__(self, model, cache, attention_mask: torch.Tensor, max_new_tokens: int):
        self.model = model
        cfg = model.config
        inner = model.model
        self.heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self.scaling = self.head_dim ** -0.5
        self.q_size, self.kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
        self.layers = []
        stacked_bytes = sum(
            sum(m.weight.numel() * m.weight.element_size()
                for m in (lay.self_attn.q_proj, lay.self_attn.k_proj, lay.self_attn.v_proj, lay.mlp.gate_proj,
                          lay.mlp.up_proj))
            for lay in inner.layers)
        self.stacked = stacked_bytes <= STACK_LIMIT_BYTES
        for i, layer in enumerate(inner.layers):
            attn, mlp = layer.self_attn, layer.mlp
            qkv = (attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight)
            gate_up = (mlp.gate_proj.weight, mlp.up_proj.weight)
            keys, values = cache.layers[i].keys, cache.layers[i].values  # [N, Hkv, W, D]
            n, _, width, _ = keys.shape
            k_buf = keys.new_empty((n, self.kv_heads, width + max_new_tokens, self.head_dim))
            v_buf = torch.empty_like(k_buf)
            k_buf[:, :, :width] = keys
            v_buf[:, :, :width] = values
            self.layers.append((
                layer.input_layernorm, layer.post_attention_layernorm,
                torch.cat(qkv) if self.stacked else qkv,
                attn.o_proj.weight,
                torch.cat(gate_up) if self.stacked else gate_up,
                mlp.down_proj.weight,
                k_buf, v_buf,
            ))
        self.length = attention_mask.shape[1]
        dtype = next(model.parameters()).dtype
        # additive mask over cache positions: 0 where a row attends, -inf where it does not
        self.bias = torch.full((attention_mask.shape[0], self.length + max_new_tokens), float("-inf"),
                               dtype=dtype, device=attention_mask.device)
        self.bias[:, :self.length] = torch.where(attention_mask.bool(), 0.0, float("-inf"))

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor, positions: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        """Feed `tokens` [N] at `positions` [N, 1]; `attend` [N] bool says which rows later steps
        attend to this token from (False for a finished row). Returns the next logits [N, V]."""
        inner = self.model.model
        t = self.length
        self.bias[:, t] = torch.where(attend, 0.0, float("-inf"))
        self.length = t + 1
        bias = self.bias[:, None, None, :t + 1]
        x = inner.embed_tokens(tokens[:, None])  # [N, 1, H]
        cos, sin = inner.rotary_emb(x, positions)  # [N, 1, D]: the model's own rotary embedding
        n, rep = x.shape[0], self.heads // self.kv_heads
        for norm1, norm2, w_qkv, w_o, w_gu, w_down, k_buf, v_buf in self.layers:
            h = norm1(x)
            if self.stacked:  # [N, 1, (H + 2 Hkv) D]
                q, k, v = F.linear(h, w_qkv).split((self.q_size, self.kv_size, self.kv_size), dim=-1)
            else:
                q, k, v = (F.linear(h, w) for w in w_qkv)
            q = q.reshape(n, self.kv_heads, rep, self.head_dim)
            k = k.reshape(n, self.kv_heads, 1, self.head_dim)
            v = v.reshape(n, self.kv_heads, 1, self.head_dim)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)  # cos/sin broadcast over heads (dim 1)
            k_buf[:, :, t:t + 1] = k
            v_buf[:, :, t:t + 1] = v
            keys, values = k_buf[:, :, :t + 1], v_buf[:, :, :t + 1]
            # each kv head's `rep` query heads against its keys: [N, Hkv, rep, t+1]
            scores = torch.matmul(q, keys.transpose(-1, -2)) * self.scaling + bias
            probs = scores.float().softmax(-1).to(q.dtype)
            out = torch.matmul(probs, values).reshape(n, 1, self.q_size)
            x = x + F.linear(out, w_o)
            h = norm2(x)
            gate, up = F.linear(h, w_gu).chunk(2, dim=-1) if self.stacked else (F.linear(h, w) for w in w_gu)
            x = x + F.linear(F.silu(gate) * up, w_down)
        return self.model.lm_head(inner.norm(x))[:, -1, :]
