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
- rotary cos/sin come from the model's own rotary embedding, computed once per decode as a table by
  position, and q and k rotate together (x cos + roll(x, D/2) sin with the sign folded into sin);
- norms, embedding and LM head are the model's own code.

`llama_prompt_pass` is the prompt pass (each distinct prompt once, its keys and values shared by
the rows that repeat it) for the same models, written out the same way; it is differentiable and
serves both the decode and the replay below.

The decoder is inference only (the weights are stacked copies, so no gradient reaches the model) and
covers models whose decoder layer is Llama's (`LlamaDecoder.supports`); anything else, LoRA
wrappers included, decodes through the model's own forward. `tests/test_fast_decode.py` checks
its logits against the Hugging Face forward's, step by step.

With `record=True` the decoder also keeps every step's matmul outputs, rotated q and its KV cache (`DecodeRecord`), and
`replay.replayed_completion_logits` turns them into the logits of a forward pass over the sampled
completions that autograd can differentiate without running those matmuls again: the RL update's
first minibatch then costs a backward pass only (docs/algorithms.md, "Advantages"). The record also
keeps the prompt pass, run with autograd on, for that replay to back-propagate through.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from feedbackrl.policy.shared_prompt import PromptPass, left_pad, unique_rows


@dataclass
class DecodeRecord:
    """The matmul outputs of a `LlamaDecoder`'s steps, [step, row, width] each: per layer q after
    the rotary embedding, the residual stream after attention (x + o_proj(...), one GEMM), the
    stacked gate/up projection and the residual stream after the MLP (x + down(...), one GEMM);
    and the logits. Per layer also the decode's KV cache, `keys` and
    `values` [row, Hkv, prompt width + steps, D] (the prompt's from position 0, left-padded, then
    the step's k after rotary and v at prompt width + step). `steps` is how many steps ran;
    `versions` the parameters' version counters when they ran (any in-place update of a weight
    changes one)."""

    layers: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]
    logits: torch.Tensor
    keys: list[torch.Tensor] | None = None
    values: list[torch.Tensor] | None = None
    steps: int = 0
    versions: tuple[int, ...] = ()
    tokens: torch.Tensor | None = None  # [row, step] the sampled tokens (step s fed token s)
    prompts: list | None = None  # each row's prompt ids
    # the decode's prompt pass (llama_prompt_pass) run with autograd on: the replay of the whole
    # decode, rows in order, back-propagates through it instead of running it again; used once
    # (a backward pass frees it), then None
    prompt_pass: PromptPass | None = None

    def fresh(self, model) -> bool:
        """True while `model`'s weights are the ones the steps ran with."""
        return self.versions == parameter_versions(model)

    def covers(self, model, rows: torch.Tensor, prompts: list, completion_ids: torch.Tensor,
               completion_mask: torch.Tensor) -> bool:
        """True when `replayed_completion_logits` may stand in for a forward pass over these rows
        of the decode: the weights are unchanged since the steps ran, enough steps ran, and the
        rows' prompts and completion tokens are the decoded ones."""
        t = completion_ids.shape[1]
        if self.tokens is None or self.prompts is None or len(rows) == 0:
            return False
        if t - 1 > self.steps or t > self.tokens.shape[1] or not self.fresh(model):
            return False
        if model.training and getattr(model.config, "attention_dropout", 0.0):
            return False  # the decode ran without dropout
        if int(rows.min()) < 0 or int(rows.max()) >= self.tokens.shape[0]:
            return False
        if any(list(self.prompts[r]) != list(p) for r, p in zip(rows.tolist(), prompts)):
            return False
        sampled = self.tokens[rows.to(self.tokens.device), :t].to(completion_ids.device)
        return bool((sampled == completion_ids)[completion_mask.bool()].all())


def parameter_versions(model) -> tuple[int, ...]:
    return tuple(p._version for p in model.parameters())


class _RMSNorm(torch.autograd.Function):
    """Llama's RMSNorm, w * x / sqrt(mean(x^2) + eps) over the last dimension, with a backward pass
    written out: autograd's graph of the model's own module (pow, mean, add, rsqrt, two products)
    makes about sixteen passes over [rows, H] tensors forward and back, this one ten. Computed in
    float32 (as the model's module does) and returned in the input's dtype."""

    @staticmethod
    def forward(ctx, x, weight, eps):
        dtype = x.dtype
        x = x.float()
        r = torch.rsqrt(torch.linalg.vector_norm(x, dim=-1, keepdim=True).square_().div_(x.shape[-1]).add_(eps))
        xhat = x * r
        ctx.save_for_backward(xhat, r, weight)
        return weight * xhat.to(dtype)

    @staticmethod
    def backward(ctx, g):
        xhat, r, weight = ctx.saved_tensors
        gw = (g * weight).float()
        gx = None
        if ctx.needs_input_grad[0]:
            # d/dx of xhat = x r: r (gw - xhat mean(gw xhat))
            dot = (gw * xhat).sum(-1, keepdim=True)
            gx = torch.addcmul(gw * r, xhat, dot * r / -xhat.shape[-1]).to(g.dtype)
        g_weight = None
        if ctx.needs_input_grad[1]:
            g_weight = (g * xhat.to(g.dtype)).reshape(-1, g.shape[-1]).sum(0)
        return gx, g_weight, None


# the RMSNorm modules `rms_norm` and `decode_norm` stand in for: weight * x / sqrt(mean(x^2) + eps)
_RMS_NORMS = {"LlamaRMSNorm", "MistralRMSNorm"}


def _rms_norm_parts(module) -> tuple[torch.Tensor, float] | None:
    """(weight, eps) of a Llama RMSNorm module, None for any other module."""
    eps, weight = getattr(module, "variance_epsilon", None), getattr(module, "weight", None)
    if eps is None or weight is None or type(module).__name__ not in _RMS_NORMS:
        return None
    return weight, float(eps)


def rms_norm(module, x: torch.Tensor) -> torch.Tensor:
    """`module` (a Llama RMSNorm) applied to `x` through `_RMSNorm`, or the module itself where it
    is not one."""
    parts = _rms_norm_parts(module)
    return module(x) if parts is None else _RMSNorm.apply(x, *parts)


def decode_norm(module):
    """`module` as one `torch.rms_norm` call (a float32 Llama RMSNorm: the same maths as the
    module's six ops, in a third of its time per decode step), else the module itself."""
    parts = _rms_norm_parts(module)
    if parts is None or parts[0].dtype != torch.float32:
        return module
    (weight, eps), shape = parts, (parts[0].shape[-1],)
    return lambda x: torch.rms_norm(x, shape, weight, eps)


# On a CPU, torch's softmax over rows shorter than this many floats takes a scalar path, ~5-10x
# slower than over a row of 16 (0.11 ms vs 0.02 ms for 512 rows of 13; the vectorised kernel works
# 16 floats at a time); and a batched matmul whose each [1, D] x [D, t] product is under 400
# multiply-adds (t <= 12 for D = 32) runs torch's unvectorised loop instead of the BLAS. The decode
# therefore attends over at least this many key positions (the ones past the current token are
# zero and masked), and `softmax` pads shorter rows with -inf. benchmarks/README.md has the timings.
SHORT_ROW = 16


def softmax(x: torch.Tensor) -> torch.Tensor:
    """x.softmax(-1), with rows shorter than `SHORT_ROW` on a CPU padded with -inf (so they take the
    vectorised kernel) and cut back: the same values; differentiable."""
    width = x.shape[-1]
    if x.device.type != "cpu" or width >= SHORT_ROW:
        return x.softmax(-1)
    return F.pad(x, (0, SHORT_ROW - width), value=float("-inf")).softmax(-1)[..., :width]


def rope_sign(head_dim: int, like: torch.Tensor) -> torch.Tensor:
    """[-1] * D/2 + [1] * D/2: rotate_half(x) sin = roll(x, D/2) (sin * rope_sign), so rotary is
    x cos + roll(x, D/2) sin' with the sign folded into sin' (one roll, no negation or concatenation)."""
    half = head_dim // 2
    return torch.cat((-like.new_ones(half), like.new_ones(head_dim - half)))


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Rotary embedding of `x` [..., D]: x cos + roll(x, D/2) sin, `sin` carrying `rope_sign`."""
    return torch.addcmul(x * cos, x.roll(x.shape[-1] // 2, dims=-1), sin, out=out)


def qkv_weights(layer) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A decoder layer's q, k and v projection weights, in the order the stacked projection uses."""
    a = layer.self_attn
    return a.q_proj.weight, a.k_proj.weight, a.v_proj.weight


def gate_up_weights(layer) -> tuple[torch.Tensor, torch.Tensor]:
    """A decoder layer's MLP gate and up projection weights, in the order the stacked projection uses."""
    return layer.mlp.gate_proj.weight, layer.mlp.up_proj.weight


def head_sizes(cfg) -> tuple[int, int, int]:
    """(attention heads, key/value heads, head dim) of a Llama-style config."""
    heads = cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    return heads, kv_heads, getattr(cfg, "head_dim", None) or cfg.hidden_size // heads


def per_row(t: torch.Tensor) -> torch.Tensor:
    """A prompt pass's keys or values as [N, Hkv, W, D] (a copy where they are grouped)."""
    return t.flatten(0, 1) if t.dim() == 5 else t


def llama_prompt_pass(model, rows: Sequence[Sequence[int]], pad_id: int) -> PromptPass:
    """`shared_prompt.prompt_pass` for a model `LlamaDecoder` covers, written out: each distinct
    prompt once (left-padded), its keys and values gathered out to every row. The Hugging Face
    forward spends most of a small model's prompt pass outside the maths (mask construction, cache
    objects, module calls; ~9 ms forward for 16 prompts of ~11 tokens on the tiny model, more in
    the backward); this runs the same maths, differentiably where grad is on. The cache is a plain
    `layers` list of `keys`/`values` [N, Hkv, W, D], or [U, G, Hkv, W, D] broadcast views when the
    rows are G of each of U prompts in turn (what `LlamaDecoder` and the replay read; `per_row`).
    A padding position attends to itself only (its keys are masked for every real position), so
    nothing in the pass is NaN."""
    inner, cfg = model.model, model.config
    heads, kv_heads, head_dim = head_sizes(cfg)
    q_size, kv_size = heads * head_dim, kv_heads * head_dim
    device = next(model.parameters()).device
    distinct, inverse = unique_rows(rows)
    ids, attn = (t.to(device) for t in left_pad(distinct, pad_id))
    u, w = ids.shape
    positions = (attn.cumsum(-1) - 1).clamp_min(0)
    x = inner.embed_tokens(ids)  # [U, W, H]
    cos, sin = inner.rotary_emb(x, positions)  # [U, W, D]
    cos, sin = cos[:, None], (sin * rope_sign(head_dim, sin))[:, None]  # [U, 1, W, D]: broadcast over heads
    causal = torch.ones((w, w), dtype=torch.bool, device=device).tril()
    allowed = (causal & attn.bool()[:, None, :]) | torch.eye(w, dtype=torch.bool, device=device)
    bias = torch.zeros((u, 1, w, w), dtype=x.dtype, device=device).masked_fill_(~allowed[:, None], float("-inf"))
    grad = torch.is_grad_enabled()

    def norm(module, t):
        return rms_norm(module, t) if grad else decode_norm(module)(t)

    keys_values = []
    for layer in inner.layers:
        a, mlp = layer.self_attn, layer.mlp
        qkv = F.linear(norm(layer.input_layernorm, x), torch.cat(qkv_weights(layer)))
        qk, v = qkv.split((q_size + kv_size, kv_size), dim=-1)
        qk = qk.unflatten(-1, (heads + kv_heads, head_dim)).transpose(1, 2)  # [U, H + Hkv, W, D]
        q, k = rotate(qk, cos, sin).split((heads, kv_heads), dim=1)
        v = v.unflatten(-1, (kv_heads, head_dim)).transpose(1, 2)
        keys_values.append((k, v))
        if kv_heads != heads:
            k, v = (t.repeat_interleave(heads // kv_heads, dim=1) for t in (k, v))
        scores = torch.matmul(q, k.transpose(-1, -2)) * head_dim ** -0.5 + bias
        out = torch.matmul(softmax(scores.float()).to(q.dtype), v).transpose(1, 2).reshape(u, w, q_size)
        x = x + F.linear(out, a.o_proj.weight)
        gate, up = F.linear(norm(layer.post_attention_layernorm, x), torch.cat(gate_up_weights(layer))).chunk(2, dim=-1)
        x = x + F.linear(F.silu(gate) * up, mlp.down_proj.weight)
    last_logits = model.lm_head(norm(inner.norm, x[:, -1]))
    if len(distinct) < len(rows):
        index = torch.tensor(inverse, device=device)
        group = len(rows) // len(distinct)
        if len(rows) == group * len(distinct) and inverse == [i // group for i in range(len(rows))]:
            # G rows of each prompt in turn (a GRPO batch): a broadcast view [U, G, Hkv, W, D], which
            # the decoder and the replay copy once where they put each row's keys (`per_row`)
            def spread(t):
                return t.unsqueeze(1).expand(u, group, *t.shape[1:])
        else:
            def spread(t):
                return t.contiguous().index_select(0, index)
        keys_values = [(spread(k), spread(v)) for k, v in keys_values]
        last_logits, attn, positions = last_logits[index], attn[index], positions[index]
    cache = SimpleNamespace(layers=[SimpleNamespace(keys=k, values=v) for k, v in keys_values])
    return PromptPass(cache, last_logits, None, attn, positions)


# architectures whose decoder layer is Llama's: pre-norm RMSNorm, rotary q/k, SiLU-gated MLP
_LLAMA_LIKE = {"LlamaForCausalLM", "MistralForCausalLM"}
# the most memory the stacked q/k/v and gate/up weights may take; above it they are not stacked
STACK_LIMIT_BYTES = 256 * 2**20
# the most memory a DecodeRecord may take; a larger decode keeps none
RECORD_LIMIT_BYTES = 1 * 2**30


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
    def __init__(self, model, cache, attention_mask: torch.Tensor, max_new_tokens: int,
                 record: "bool | DecodeRecord" = False):
        self.model = model
        cfg = model.config
        inner = model.model
        self.heads, self.kv_heads, self.head_dim = head_sizes(cfg)
        self.scaling = self.head_dim ** -0.5
        self.q_size, self.kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
        self.layers = []
        self.stacked = LlamaDecoder.stacks(model)
        self.record = self._new_record(record, attention_mask, max_new_tokens)
        for i, layer in enumerate(inner.layers):
            attn, mlp = layer.self_attn, layer.mlp
            qkv, gate_up = qkv_weights(layer), gate_up_weights(layer)
            keys, values = cache.layers[i].keys, cache.layers[i].values  # [N, Hkv, W, D] or [U, G, Hkv, W, D]
            n, width = attention_mask.shape[0], keys.shape[-2]
            # zeros: the attention may read positions not yet written (`SHORT_ROW`), masked by -inf.
            # A record keeps them, so they are made outside inference mode, for autograd to read.
            with torch.inference_mode(self.record is None), torch.no_grad():
                k_buf = keys.new_zeros((n, self.kv_heads, width + max_new_tokens, self.head_dim))
                v_buf = torch.zeros_like(k_buf)
                for buf, src in ((k_buf, keys), (v_buf, values)):
                    (buf.view(*src.shape[:2], *buf.shape[1:]) if src.dim() == 5 else buf)[..., :width, :] = src
            if self.record is not None:
                self.record.keys.append(k_buf)
                self.record.values.append(v_buf)
            self.layers.append((
                decode_norm(layer.input_layernorm), decode_norm(layer.post_attention_layernorm),
                torch.cat(qkv) if self.stacked else qkv,
                attn.o_proj.weight,
                torch.cat(gate_up) if self.stacked else gate_up,
                mlp.down_proj.weight,
                k_buf, v_buf,
            ))
        self.final_norm = decode_norm(inner.norm)
        embed = inner.embed_tokens
        self.embed = ((lambda ids, w=embed.weight: F.embedding(ids, w)) if type(embed) is nn.Embedding else embed)
        self.length = attention_mask.shape[1]
        dtype = next(model.parameters()).dtype
        self.float32 = dtype == torch.float32
        # rotary cos/sin by position, computed once by the model's own rotary embedding (read with
        # one index per step), and sin with the first half negated: rotate_half(x) * sin is then
        # roll(x, D/2) * sin_signed, so q and k rotate together in three kernels. Rotary types
        # whose frequencies depend on the sequence length seen so far are computed step by step.
        rope_type = str(getattr(inner.rotary_emb, "rope_type", "default"))
        self.rope_sign = rope_sign(self.head_dim, torch.empty((), dtype=dtype, device=attention_mask.device))
        self.rope_table = None
        if "dynamic" not in rope_type and rope_type != "longrope":
            self.rope_table = self._rope_table(int(attention_mask.sum(-1).max()) + max_new_tokens + 1, dtype,
                                               attention_mask.device)
        # additive mask over cache positions: 0 where a row attends, -inf where it does not
        self.bias = torch.full((attention_mask.shape[0], self.length + max_new_tokens), float("-inf"),
                               dtype=dtype, device=attention_mask.device)
        self.bias[:, :self.length] = torch.where(attention_mask.bool(), 0.0, float("-inf"))
        self.attend_values = torch.tensor([0.0, float("-inf")], dtype=dtype, device=attention_mask.device)
        self.steps = 0

    @staticmethod
    def _record_widths(model) -> tuple[int, int, int, int]:
        """Widths of a record's per-step tensors: rotated q, residual after attention, gate/up,
        residual after the MLP."""
        cfg, layer = model.config, model.model.layers[0]
        q_size = layer.self_attn.q_proj.weight.shape[0]
        return q_size, cfg.hidden_size, 2 * layer.mlp.gate_proj.weight.shape[0], cfg.hidden_size

    @staticmethod
    def stacks(model) -> bool:
        """True where the stacked q/k/v and gate/up weights fit in `STACK_LIMIT_BYTES`."""
        return sum(w.numel() * w.element_size() for lay in model.model.layers
                   for w in (*qkv_weights(lay), *gate_up_weights(lay))) <= STACK_LIMIT_BYTES

    @staticmethod
    def records(model, rows: int, prompt_width: int, max_new_tokens: int) -> bool:
        """True where a decode of `rows` rows, prompts left-padded to `prompt_width`, keeps a record
        when asked: weights stacked (`stacks`) and the record within `RECORD_LIMIT_BYTES`."""
        if not LlamaDecoder.stacks(model):
            return False
        inner = model.model
        kv_size = inner.layers[0].self_attn.k_proj.weight.shape[0]
        cache = 2 * rows * kv_size * (prompt_width + max_new_tokens)
        per_layer = rows * max_new_tokens * sum(LlamaDecoder._record_widths(model)) + cache
        values = len(inner.layers) * per_layer + rows * max_new_tokens * model.lm_head.weight.shape[0]
        return values * next(model.parameters()).element_size() <= RECORD_LIMIT_BYTES

    def _new_record(self, record: "bool | DecodeRecord", attention_mask: torch.Tensor,
                    max_new_tokens: int) -> DecodeRecord | None:
        """With `record` (where `records` allows): a DecodeRecord for every step's matmul outputs,
        written in place, for `replayed_completion_logits`; None otherwise. Made outside inference
        mode so that autograd may read it. A DecodeRecord passed as `record` lends its memory where
        the shapes match (fresh memory faults in page by page on its first write, inside the
        decode) and stops covering anything."""
        n, width = attention_mask.shape
        if not record or not LlamaDecoder.records(self.model, n, width, max_new_tokens):
            return None
        model, inner = self.model, self.model.model
        dtype, device = next(model.parameters()).dtype, attention_mask.device
        widths = LlamaDecoder._record_widths(model)
        vocab = model.lm_head.weight.shape[0]
        old = record if isinstance(record, DecodeRecord) else None
        if old is not None:
            # its memory is about to hold this decode's outputs
            old.tokens = old.prompts = old.prompt_pass = old.keys = old.values = None
            if (old.logits.shape == (max_new_tokens, n, vocab) and old.logits.dtype == dtype
                    and old.logits.device == device and len(old.layers) == len(inner.layers)
                    and len(old.layers[0]) == len(widths)
                    and all(t.shape[-1] == w for t, w in zip(old.layers[0], widths))):
                return DecodeRecord(layers=old.layers, logits=old.logits, keys=[], values=[])
        with torch.inference_mode(False), torch.no_grad():
            return DecodeRecord(
                layers=[tuple(torch.empty((max_new_tokens, n, w), dtype=dtype, device=device) for w in widths)
                        for _ in inner.layers],
                logits=torch.empty((max_new_tokens, n, vocab), dtype=dtype, device=device), keys=[], values=[],
            )

    def _rope_table(self, size: int, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sign-flipped sin [size, D] for positions 0..size-1."""
        positions = torch.arange(size, device=device)[None]
        cos, sin = self.model.model.rotary_emb(torch.empty((), dtype=dtype, device=device), positions)
        return cos[0], sin[0] * self.rope_sign

    def _rope(self, positions: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sign-flipped sin [N, 1, D] at `positions` [N, 1] (the table covers each row's
        prompt plus `max_new_tokens`; a position past it is an index error)."""
        if self.rope_table is None:
            cos, sin = self.model.model.rotary_emb(x, positions)
            return cos, sin * self.rope_sign
        cos, sin, flat = *self.rope_table, positions.reshape(-1)
        return cos.index_select(0, flat)[:, None], sin.index_select(0, flat)[:, None]

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor, positions: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        """Feed `tokens` [N] at `positions` [N, 1]; `attend` [N] bool says which rows later steps
        attend to this token from (False for a finished row). Returns the next logits [N, V]."""
        inner = self.model.model
        t, s = self.length, self.steps
        torch.where(attend, self.attend_values[0], self.attend_values[1], out=self.bias[:, t])
        self.length, self.steps = t + 1, s + 1
        # keys 0..t, and on to SHORT_ROW where fewer (zero keys, masked: -inf in `bias` until written)
        span = min(max(t + 1, SHORT_ROW), self.bias.shape[1])
        bias = self.bias[:, None, None, :span]
        x = self.embed(tokens)  # [N, H]
        n, rep, d = x.shape[0], self.heads // self.kv_heads, self.head_dim
        qk_heads, qk_size = self.heads + self.kv_heads, self.q_size + self.kv_size
        # the model's own rotary embedding, written out over the q and k heads once for all layers
        cos, sin = (r.expand(-1, qk_heads, -1).contiguous() for r in self._rope(positions, x))  # [N, H + Hkv, D]
        record = self.record.layers if self.record is not None else [None] * len(self.layers)
        if record[0] is not None:
            def linear(inp, weight, buf):  # the matmul, its output written straight into the record
                return torch.mm(inp, weight.t(), out=buf[s])

            # x + inp W^T in one GEMM (its beta = 1 adds x), written into the record: a separate
            # add costs an op and a pass over x per block and step
            def residual(x, inp, weight, buf):
                return torch.addmm(x, inp, weight.t(), out=buf[s])
        else:
            def linear(inp, weight, buf):
                return torch.mm(inp, weight.t())

            def residual(x, inp, weight, buf):
                return torch.addmm(x, inp, weight.t())
        for (norm1, norm2, w_qkv, w_o, w_gu, w_down, k_buf, v_buf), rec in zip(self.layers, record):
            # the record's q, residual stream after attention, gate/up, residual stream after the MLP
            r_q, r_attn, r_gu, r_mlp = rec if rec is not None else (None,) * 4
            h = norm1(x)
            if self.stacked:  # [N, (H + 2 Hkv) D]
                qkv = torch.mm(h, w_qkv.t())
                qk, v = qkv[:, :qk_size].view(n, qk_heads, d), qkv[:, qk_size:]
            else:
                qk = torch.cat((F.linear(h, w_qkv[0]), F.linear(h, w_qkv[1])), dim=-1).view(n, qk_heads, d)
                v = F.linear(h, w_qkv[2])
            # q and k rotated together: x cos + rotate_half(x) sin
            qk = rotate(qk, cos, sin)
            q = qk[:, :self.heads].view(n, self.kv_heads, rep, d)
            if r_q is not None:
                r_q[s].view(n, self.heads, d).copy_(qk[:, :self.heads])
            k_buf[:, :, t] = qk[:, self.heads:]
            v_buf[:, :, t] = v.view(n, self.kv_heads, d)
            keys, values = k_buf[:, :, :span], v_buf[:, :, :span]
            # each kv head's `rep` query heads against its keys: [N, Hkv, rep, span]
            # bias + scaling * (q k^T) in one pass: bias is 0 or -inf, so the same as scaling then adding
            scores = torch.add(bias, torch.matmul(q, keys.transpose(-1, -2)), alpha=self.scaling)
            probs = scores.softmax(-1) if self.float32 else scores.float().softmax(-1).to(q.dtype)
            out = torch.matmul(probs, values).view(n, self.q_size)
            x = residual(x, out, w_o, r_attn)
            h = norm2(x)
            if self.stacked:
                gate, up = linear(h, w_gu, r_gu).chunk(2, dim=-1)
            else:
                gate, up = (F.linear(h, w) for w in w_gu)
            x = residual(x, F.silu(gate) * up, w_down, r_mlp)
        if self.record is not None:
            return linear(self.final_norm(x), self.model.lm_head.weight, self.record.logits)
        return self.model.lm_head(self.final_norm(x))
