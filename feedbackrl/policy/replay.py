"""The RL update's first forward pass, replayed from the decode that sampled the completions.

Until the first optimizer step of an RL step the weights are the ones that sampled the
completions, so every matmul of the update's forward pass over them already ran, one token at a
time, in `fast_decode.LlamaDecoder`, which recorded the outputs (`fast_decode.DecodeRecord`), and kept its KV cache.
`replayed_completion_logits` turns the record into the logits of that forward pass, which autograd
differentiates without running those matmuls again: each linear layer returns its recorded output
and back-propagates like the matmul (`_GivenLinear`; o_proj's recorded output has the residual
added), attention reads q, keys and values from the
record, and three blocks have their backward written out, which on a CPU costs less than
autograd's graph of the same ops (`_GivenAttention`, `_GivenMLP`, and the RMSNorm of
`fast_decode.rms_norm`). docs/algorithms.md, "Advantages", has the maths and
the conditions under which the replay is exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from feedbackrl.policy.fast_decode import (DecodeRecord, gate_up_weights, head_sizes, qkv_weights, rms_norm, rope_sign,
                                           softmax)


class _GivenLinear(torch.autograd.Function):
    """y = x W^T, or y = residual + x W^T, whose forward value `y` is already known (a decode
    step computed it with the same weights, the residual added in the same GEMM): returns it, and
    back-propagates like the matmul (and the sum) would have."""

    @staticmethod
    def forward(ctx, x, weight, y, residual=None):
        ctx.save_for_backward(x, weight)
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        gx = grad @ weight if ctx.needs_input_grad[0] else None
        gw = grad.reshape(-1, grad.shape[-1]).t() @ x.reshape(-1, x.shape[-1]) if ctx.needs_input_grad[1] else None
        residual = len(ctx.needs_input_grad) > 3 and ctx.needs_input_grad[3]
        return (gx, gw, None, grad) if residual else (gx, gw, None)


# rows per chunk of `_GivenMLP`'s backward: a chunk's [rows, intermediate] tensors then stay in a
# core's cache instead of going out to memory and back between elementwise ops
MLP_CHUNK_ROWS = 256


class _GivenMLP(torch.autograd.Function):
    """A Llama MLP block with its residual, x + down(silu(gate(h)) * up(h)) for `h` [S, N, H] (the
    block's normed input), whose output and gate/up projection are already known (the decode
    recorded both, `rec_gu` [S, N, 2I] and `rec_out` [S, N, H]). The forward pass returns the
    recorded output, so it keeps no [rows, I] activation; the
    backward pass recomputes silu(gate) * up from the recorded projection a chunk of rows at a
    time and runs the block's whole backward on that chunk while it is in cache:
        d_act = g W_down,  dW_down = g^T (silu(gate) up),
        d_up = d_act silu(gate),  d_gate = d_act up silu'(gate),
        dh = [d_gate d_up] W_gu,  dW_gu = [d_gate d_up]^T h.
    Autograd's own graph of these ops makes about ten passes over [rows, I] tensors in memory; on
    a CPU, where they do not fit in cache, those passes cost more than the block's matmuls."""

    @staticmethod
    def forward(ctx, x, h, w_gu, w_down, rec_gu, rec_out):
        ctx.save_for_backward(h, w_gu, w_down, rec_gu)
        return rec_out.view_as(rec_out)

    @staticmethod
    def backward(ctx, grad):
        h, w_gu, w_down, rec_gu = ctx.saved_tensors
        need_h, need_gu, need_down = ctx.needs_input_grad[1:4]
        steps, n, two_i = rec_gu.shape
        inter, hidden = two_i // 2, h.shape[-1]
        gh = grad.new_empty((steps, n, hidden)) if need_h else None
        g_gu = torch.zeros_like(w_gu) if need_gu else None
        g_down = torch.zeros_like(w_down) if need_down else None
        # chunks only where they pay and the sum over chunks keeps its precision: a CPU, float32/64
        chunked = grad.device.type == "cpu" and w_gu.dtype in (torch.float32, torch.float64)
        per = max(1, MLP_CHUNK_ROWS // max(n, 1)) if chunked else steps
        for s0 in range(0, steps, per):
            s1 = min(s0 + per, steps)
            g = grad[s0:s1].reshape(-1, hidden)
            gate_up = rec_gu[s0:s1].reshape(-1, two_i)
            gate, up = gate_up[:, :inter], gate_up[:, inter:]
            act = F.silu(gate)
            d_act = g @ w_down
            if need_down:
                g_down.addmm_(g.t(), act * up)
            d_gu = g.new_empty((g.shape[0], two_i))
            torch.mul(d_act, act, out=d_gu[:, inter:])
            torch.ops.aten.silu_backward.grad_input(d_act * up, gate, grad_input=d_gu[:, :inter])
            if need_h:
                torch.mm(d_gu, w_gu, out=gh[s0:s1].view(-1, hidden))
            if need_gu:
                g_gu.addmm_(d_gu.t(), h[s0:s1].reshape(-1, hidden))
        return grad, gh, g_gu, g_down, None, None


class _GivenAttention(torch.autograd.Function):
    """An attention block's output before o_proj, [S, N, heads D], for `h` [S, N, H], over a
    prompt and the completion's tokens, whose q, keys and values are all already known: the decode
    recorded q after the rotary embedding, `rec_q` [S, N, heads D], and kept its KV cache,
    `keys`/`values` [N, Hkv, W + S, D] (the prompt's keys and values at 0..W-1, the completion's k
    after rotary and v from W on). `bias` [N Hkv, S, W + S]: 0 or -inf (padding, causality),
    the same for the heads of a kv head. No projection, rotation or concatenation runs forward;
    the batched matmuls read q, keys and values where they lie and write one [N Hkv, S, D] block
    per q head of a kv head (`group` of them, 1 without GQA), which goes into the step-major output.

    The backward pass is the attention's own (softmax's backward, four batched matmuls a group),
    then hands the prompt part of the keys' and values' gradients to `prompt_keys`/`prompt_values`
    (the tracked prompt pass's, which only route gradients: their values are the cache's),
    un-rotates the gradients of q and of the completion's k (rotary y = x cos + roll(x, D/2) sin,
    the sign folded into sin, has the transpose g cos + roll(g, -D/2) roll(sin, -D/2)) straight
    into one step-major gradient buffer with v's, and runs the q/k/v projection's backward on it
    once. Written out rather than left to autograd so that the keys' gradient comes out in rows
    (autograd's of q @ k^T is (k^T)'s, transposed in memory, which the un-rotation reads ~2x slower)
    and q, the output and their gradients are read and written in place, not copied between
    layouts. `cos`, `sin_back` (= roll(sin, -D/2)): [N, 1, S, D]."""

    @staticmethod
    def forward(ctx, h, w_qkv, cos, sin_back, prompt_keys, prompt_values, rec_q, keys, values, bias):
        steps, n, q_size = rec_q.shape
        kv_heads, span, head_dim = keys.shape[1:]
        group = q_size // (kv_heads * head_dim)
        # [S, N Hkv, group, D]: q head j * group + g of row r reads kv head j; per g a strided [N Hkv, S, D]
        q = rec_q.view(steps, n * kv_heads, group, head_dim)
        k, v = keys.reshape(n * kv_heads, span, head_dim), values.reshape(n * kv_heads, span, head_dim)
        out = rec_q.new_empty((steps, n, q_size))
        blocks = out.view(steps, n * kv_heads, group, head_dim)
        probs = rec_q.new_empty((group, n * kv_heads, steps, span))
        scale = head_dim ** -0.5
        for g in range(group):
            scores = torch.baddbmm(bias, q[:, :, g].transpose(0, 1), k.transpose(1, 2), alpha=scale)
            probs[g] = softmax(scores.float()).to(scores.dtype)
            blocks[:, :, g].copy_(torch.bmm(probs[g], v).transpose(0, 1))
        ctx.save_for_backward(h, w_qkv, cos, sin_back, rec_q, keys, values, probs)
        ctx.prompt_shape = prompt_keys.shape
        return out

    @staticmethod
    def backward(ctx, d_out):
        h, w_qkv, cos, sin_back, rec_q, keys, values, probs = ctx.saved_tensors
        steps, n, q_size = rec_q.shape
        kv_heads, span, head_dim = keys.shape[1:]
        group, width = q_size // (kv_heads * head_dim), ctx.prompt_shape[-2]
        rows, scale = n * kv_heads, head_dim ** -0.5
        q = rec_q.view(steps, rows, group, head_dim)
        k, v = keys.reshape(rows, span, head_dim), values.reshape(rows, span, head_dim)
        d_out = d_out.reshape(steps, rows, group, head_dim)
        d_qkv = d_out.new_empty((steps, n, w_qkv.shape[0]))
        # the q part [S, N, Hkv, group, D]; the k and v parts [N, Hkv, S, D]
        d_q = d_qkv[..., :q_size].unflatten(-1, (kv_heads, group, head_dim))
        d_kv = d_qkv[..., q_size:].view(steps, n, 2, kv_heads, head_dim).permute(2, 1, 3, 0, 4)
        dk = dv = None
        for g in range(group):
            qg, dog, pg = q[:, :, g].transpose(0, 1), d_out[:, :, g].transpose(0, 1), probs[g]
            dp = torch.bmm(dog, v.transpose(1, 2))
            ds = torch._softmax_backward_data(dp.float(), pg.float(), -1, torch.float32).to(dp.dtype).mul_(scale)
            dk = torch.bmm(ds.transpose(1, 2), qg) if dk is None else dk.baddbmm_(ds.transpose(1, 2), qg)
            dv = torch.bmm(pg.transpose(1, 2), dog) if dv is None else dv.baddbmm_(pg.transpose(1, 2), dog)
            _unrotate(torch.bmm(ds, k).view(n, kv_heads, steps, head_dim), cos, sin_back,
                      d_q[..., g, :].permute(1, 2, 0, 3))
        dk, dv = dk.view(n, kv_heads, span, head_dim), dv.view(n, kv_heads, span, head_dim)
        _unrotate(dk[:, :, width:], cos, sin_back, d_kv[0])
        d_kv[1].copy_(dv[:, :, width:])
        flat = d_qkv.view(-1, d_qkv.shape[-1])
        gh = (flat @ w_qkv).view_as(h) if ctx.needs_input_grad[0] else None
        gw = flat.t() @ h.reshape(-1, h.shape[-1]) if ctx.needs_input_grad[1] else None
        g_pk = dk[:, :, :width].reshape(ctx.prompt_shape) if ctx.needs_input_grad[4] else None
        g_pv = dv[:, :, :width].reshape(ctx.prompt_shape) if ctx.needs_input_grad[5] else None
        return gh, gw, None, None, g_pk, g_pv, None, None, None, None


def _unrotate(grad: torch.Tensor, cos: torch.Tensor, sin_back: torch.Tensor, out: torch.Tensor) -> None:
    """out = the gradient before rotary of `grad` [N, heads, S, D], the gradient after it:
    grad cos + roll(grad, -D/2) sin_back (cos, sin_back [N, 1, S, D])."""
    torch.addcmul(grad * cos, grad.roll(-(grad.shape[-1] // 2), dims=-1), sin_back, out=out)


def replayed_completion_logits(model, record: DecodeRecord, rows: torch.Tensor, prompt_keys_values,
                               prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
                               prompt_lengths: torch.Tensor) -> torch.Tensor:
    """Logits [N, S, V] after completion tokens 0..S-1 of the decoded `rows`, differentiable with
    respect to the model's weights, at the cost of a backward pass only.

    The decode steps already ran every matmul of this forward pass with these weights
    (`record.fresh(model)`): each linear layer here returns its recorded output and back-propagates
    like the matmul (`_GivenLinear`), and attention reads q and the decode's KV cache from the record
    (`_GivenAttention`, which also runs the attention itself and its backward); the residual adds
    are in the recorded outputs (o_proj's `_GivenLinear`, `_GivenMLP`), and the rest (embedding,
    norms) runs as ordinary autograd ops. `prompt_keys_values`: per layer the (keys, values)
    [N, Hkv, W, D] (or [U, G, Hkv, W, D], a prompt's broadcast over its G rows) of the rows'
    prompts from a forward pass that autograd tracks, whose values equal the record's prompt part:
    the gradients of the prompt's keys and values go there; `prompt_mask` [N, W] their attention mask;
    `completion_ids` [N, S] the tokens fed at steps 0..S-1, `prompt_lengths` [N] the rows' prompt
    lengths (the first completion token's position). The causal mask is plain: a row's keys after
    its EOS are only read by queries whose logits predict padding, which carry no gradient."""
    inner, cfg = model.model, model.config
    _, kv_heads, head_dim = head_sizes(cfg)
    n, s = completion_ids.shape
    device = completion_ids.device
    # rows in order and adjacent (a whole batch): a view of the record, not a gathered copy
    row0 = int(rows[0]) if n else 0
    adjacent = n > 0 and bool((rows == torch.arange(row0, row0 + n, device=rows.device)).all())
    take = slice(row0, row0 + n) if adjacent else rows
    # step major, [S, N, ...], as the record is: its outputs are then read in place
    x = inner.embed_tokens(completion_ids.t())  # [S, N, H]
    positions = prompt_lengths[:, None] + torch.arange(s, device=device)
    cos, sin = inner.rotary_emb(x, positions)  # [N, S, D]
    w = prompt_mask.shape[1]
    # the attention's 0 / -inf bias, one [S, W + S] per (row, kv head): batched matmuls add it as they go
    bias = torch.zeros((n, kv_heads, s, w + s), dtype=x.dtype, device=device)
    bias[..., :w] = torch.where(prompt_mask.bool(), 0.0, float("-inf"))[:, None, None, :]
    bias[..., w:] = torch.full((s, s), float("-inf"), dtype=x.dtype, device=device).triu(1)
    bias = bias.view(n * kv_heads, s, w + s)

    def given(inp, weight, buf, *residual):  # buf [S_max, N_all, width] -> this batch's [S, N, width] (a view)
        return _GivenLinear.apply(inp, weight, buf[:s, take], *residual)

    # the decode's cache holds its prompts left-padded to its widest, then the steps: these rows'
    # prompts (left-padded to their own widest, w) end where the decode's do, at `first`
    first = record.keys[0].shape[2] - record.logits.shape[0] if record.keys else -1
    if first < w or first + s > record.keys[0].shape[2]:
        raise ValueError("replayed_completion_logits: the record keeps no KV cache covering these rows' prompts and steps")
    span = slice(first - w, first + s)

    # rotary, as the decode applied it (x cos + roll(x, D/2) sin, the sign folded into sin), is
    # undone in the backward pass with cos and roll(sin, -D/2), [N, 1, S, D]: broadcast over heads
    cos, sin_back = cos[:, None], (sin * rope_sign(head_dim, sin)).roll(-(head_dim // 2), dims=-1)[:, None]
    layers = zip(inner.layers, record.layers, record.keys, record.values, prompt_keys_values)
    for layer, (r_q, r_attn, r_gu, r_mlp), k_buf, v_buf, (pk, pv) in layers:
        attn, mlp = layer.self_attn, layer.mlp
        h = rms_norm(layer.input_layernorm, x)
        w_qkv = torch.cat(qkv_weights(layer))
        out = _GivenAttention.apply(h, w_qkv, cos, sin_back, pk, pv, r_q[:s, take], k_buf[take, :, span],
                                    v_buf[take, :, span], bias)
        # the decode recorded each block's output with its residual added (one GEMM: `torch.addmm`)
        x = given(out, attn.o_proj.weight, r_attn, x)
        w_gu = torch.cat(gate_up_weights(layer))
        x = _GivenMLP.apply(x, rms_norm(layer.post_attention_layernorm, x), w_gu, mlp.down_proj.weight, r_gu[:s, take],
                            r_mlp[:s, take])
    return given(rms_norm(inner.norm, x), model.lm_head.weight, record.logits).transpose(0, 1)
