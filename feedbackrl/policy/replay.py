"""The RL update's first forward pass, replayed from the decode that sampled the completions.

Until the first optimizer step of an RL step the weights are the ones that sampled the
completions, so every matmul of the update's forward pass over them already ran, one token at a
time, in `fast_decode.LlamaDecoder`, which recorded the outputs (`fast_decode.DecodeRecord`).
`replayed_completion_logits` turns the record into the logits of that forward pass, which autograd
differentiates without running those matmuls again: each linear layer returns its recorded output
and back-propagates like the matmul (`_GivenLinear`), and three blocks have their backward written
out, which on a CPU costs less than autograd's graph of the same ops (`_GivenQKV`, `_GivenMLP`,
and the RMSNorm of `fast_decode.rms_norm`). docs/algorithms.md, "Advantages", has the maths and
the conditions under which the replay is exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from feedbackrl.policy.fast_decode import DecodeRecord, gate_up_weights, qkv_weights, rms_norm, rope_sign


class _GivenLinear(torch.autograd.Function):
    """y = x W^T whose forward value `y` is already known (a decode step computed it with the
    same weights): returns it, and back-propagates like the matmul would have."""

    @staticmethod
    def forward(ctx, x, weight, y):
        ctx.save_for_backward(x, weight)
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        gx = grad @ weight if ctx.needs_input_grad[0] else None
        gw = grad.reshape(-1, grad.shape[-1]).t() @ x.reshape(-1, x.shape[-1]) if ctx.needs_input_grad[1] else None
        return gx, gw, None


# rows per chunk of `_GivenMLP`'s backward: a chunk's [rows, intermediate] tensors then stay in a
# core's cache instead of going out to memory and back between elementwise ops
MLP_CHUNK_ROWS = 256


class _GivenMLP(torch.autograd.Function):
    """A Llama MLP block, down(silu(gate(h)) * up(h)) for `h` [S, N, H], whose output and gate/up
    projection are already known (the decode recorded both, `rec_gu` [S, N, 2I] and `rec_down`
    [S, N, H]). The forward pass returns the recorded output, so it keeps no [rows, I] activation; the
    backward pass recomputes silu(gate) * up from the recorded projection a chunk of rows at a
    time and runs the block's whole backward on that chunk while it is in cache:
        d_act = g W_down,  dW_down = g^T (silu(gate) up),
        d_up = d_act silu(gate),  d_gate = d_act up silu'(gate),
        dh = [d_gate d_up] W_gu,  dW_gu = [d_gate d_up]^T h.
    Autograd's own graph of these ops makes about ten passes over [rows, I] tensors in memory; on
    a CPU, where they do not fit in cache, those passes cost more than the block's matmuls."""

    @staticmethod
    def forward(ctx, h, w_gu, w_down, rec_gu, rec_down):
        ctx.save_for_backward(h, w_gu, w_down, rec_gu)
        return rec_down.view_as(rec_down)

    @staticmethod
    def backward(ctx, grad):
        h, w_gu, w_down, rec_gu = ctx.saved_tensors
        need_h, need_gu, need_down = ctx.needs_input_grad[:3]
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
        return gh, g_gu, g_down, None, None


class _GivenQKV(torch.autograd.Function):
    """q, k and v of an attention block for `h` [S, N, H], with q and k after the rotary embedding,
    all already known: the decode recorded the stacked projection `rec_qkv` [S, N, (H + 2 Hkv) D]
    and q, k after rotary `rec_rot` [S, N, (H + Hkv) D]. The forward pass returns views of the
    records laid out for attention, [N, heads, S, D]; the backward pass un-rotates the gradients of
    q and k (rotary y = x cos + roll(x, D/2) sin, the sign folded into sin, has the transpose
    g cos + roll(g, -D/2) roll(sin, -D/2)) straight into one step-major gradient buffer with v's,
    and runs the projection's backward on it once. `cos`, `sin_back` (= roll(sin, -D/2)): [N, 1, S, D]."""

    @staticmethod
    def forward(ctx, h, w_qkv, cos, sin_back, rec_qkv, rec_rot, heads, kv_heads):
        ctx.save_for_backward(h, w_qkv, cos, sin_back)
        steps, n, _ = rec_rot.shape
        head_dim = rec_rot.shape[-1] // (heads + kv_heads)
        q, k = rec_rot.view(steps, n, heads + kv_heads, head_dim).split((heads, kv_heads), dim=2)
        v = rec_qkv[..., (heads + kv_heads) * head_dim:].view(steps, n, kv_heads, head_dim)
        return tuple(t.permute(1, 2, 0, 3) for t in (q, k, v))

    @staticmethod
    def backward(ctx, dq, dk, dv):
        h, w_qkv, cos, sin_back = ctx.saved_tensors
        # k's gradient arrives transposed in memory (autograd's backward of q @ k^T gives (k^T)'s);
        # the un-rotation below over that layout runs ~2x slower than a copy to rows plus the
        # un-rotation over rows
        dk = dk.contiguous()
        n, heads, steps, head_dim = dq.shape
        kv_heads = dk.shape[1]
        d_qkv = dq.new_empty((steps, n, w_qkv.shape[0]))
        parts = d_qkv.view(steps, n, -1, head_dim).permute(1, 2, 0, 3)  # [N, all heads, S, D]
        for grad, dest in ((dq, parts[:, :heads]), (dk, parts[:, heads:heads + kv_heads])):
            torch.addcmul(grad * cos, grad.roll(-(head_dim // 2), dims=-1), sin_back, out=dest)
        parts[:, heads + kv_heads:].copy_(dv)
        flat = d_qkv.view(-1, d_qkv.shape[-1])
        gh = (flat @ w_qkv).view_as(h) if ctx.needs_input_grad[0] else None
        gw = flat.t() @ h.reshape(-1, h.shape[-1]) if ctx.needs_input_grad[1] else None
        return gh, gw, None, None, None, None, None, None


def replayed_completion_logits(model, record: DecodeRecord, rows: torch.Tensor, prompt_keys_values,
                               prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
                               prompt_lengths: torch.Tensor) -> torch.Tensor:
    """Logits [N, S, V] after completion tokens 0..S-1 of the decoded `rows`, differentiable with
    respect to the model's weights, at the cost of a backward pass only.

    The decode steps already ran every matmul of this forward pass with these weights
    (`record.fresh(model)`): each linear layer here returns its recorded output and back-propagates
    like the matmul (`_GivenLinear`); the rest (embedding, norms, rotary, attention over the prompt's
    keys and values and the completion's own, SiLU gate, residual adds) runs as ordinary autograd
    ops. `prompt_keys_values`: per layer the (keys, values) [N, Hkv, W, D] of the rows' prompts
    from a forward pass that autograd tracks, `prompt_mask` [N, W] their attention mask;
    `completion_ids` [N, S] the tokens fed at steps 0..S-1, `prompt_lengths` [N] the rows' prompt
    lengths (the first completion token's position). The causal mask is plain: a row's keys after
    its EOS are only read by queries whose logits predict padding, which carry no gradient."""
    inner, cfg = model.model, model.config
    heads = cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    q_size, kv_size = heads * head_dim, kv_heads * head_dim
    n, s = completion_ids.shape
    device = completion_ids.device
    # rows in order and adjacent (a whole batch): a view of the record, not a gathered copy
    first = int(rows[0]) if n else 0
    adjacent = n > 0 and bool((rows == torch.arange(first, first + n, device=rows.device)).all())
    take = slice(first, first + n) if adjacent else rows
    # step major, [S, N, ...], as the record is: its outputs are then read in place
    x = inner.embed_tokens(completion_ids.t())  # [S, N, H]
    positions = prompt_lengths[:, None] + torch.arange(s, device=device)
    cos, sin = inner.rotary_emb(x, positions)  # [N, S, D]
    w = prompt_mask.shape[1]
    bias = torch.zeros((n, 1, s, w + s), dtype=x.dtype, device=device)
    bias[..., :w] = torch.where(prompt_mask.bool(), 0.0, float("-inf"))[:, None, None, :]
    bias[..., w:] = torch.full((s, s), float("-inf"), dtype=x.dtype, device=device).triu(1)

    def given(inp, weight, buf):  # buf [S_max, N_all, width] -> this batch's [S, N, width] (a view)
        return _GivenLinear.apply(inp, weight, buf[:s, take])

    # rotary, as the decode applied it (x cos + roll(x, D/2) sin, the sign folded into sin), is
    # undone in the backward pass with cos and roll(sin, -D/2), [N, 1, S, D]: broadcast over heads
    cos, sin_back = cos[:, None], (sin * rope_sign(head_dim, sin)).roll(-(head_dim // 2), dims=-1)[:, None]
    for layer, (r_qkv, r_rot, r_o, r_gu, r_down), (pk, pv) in zip(inner.layers, record.layers, prompt_keys_values):
        attn, mlp = layer.self_attn, layer.mlp
        h = rms_norm(layer.input_layernorm, x)
        w_qkv = torch.cat(qkv_weights(layer))
        # [N, heads, S, D] each
        q, k, v = _GivenQKV.apply(h, w_qkv, cos, sin_back, r_qkv[:s, take], r_rot[:s, take], heads, kv_heads)
        if pk.dim() == 5:  # a prompt's keys broadcast over its G rows: one copy, into the concatenation
            group = pk.shape[:2]
            keys = torch.cat((pk, k.unflatten(0, group)), dim=-2).flatten(0, 1)
            values = torch.cat((pv, v.unflatten(0, group)), dim=-2).flatten(0, 1)
        else:
            keys, values = torch.cat((pk, k), dim=2), torch.cat((pv, v), dim=2)
        if kv_heads != heads:
            keys = keys.repeat_interleave(heads // kv_heads, dim=1)
            values = values.repeat_interleave(heads // kv_heads, dim=1)
        scores = torch.matmul(q, keys.transpose(-1, -2)) * head_dim ** -0.5 + bias
        probs = scores.float().softmax(-1).to(q.dtype)
        out = torch.matmul(probs, values).permute(2, 0, 1, 3).reshape(s, n, q_size)
        x = x + given(out, attn.o_proj.weight, r_o)
        w_gu = torch.cat(gate_up_weights(layer))
        x = x + _GivenMLP.apply(rms_norm(layer.post_attention_layernorm, x), w_gu, mlp.down_proj.weight, r_gu[:s, take],
                                r_down[:s, take])
    return given(rms_norm(inner.norm, x), model.lm_head.weight, record.logits).transpose(0, 1)
