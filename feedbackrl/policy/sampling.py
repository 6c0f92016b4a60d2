"""Autoregressive sampling with the KV cache, returning per-token log-probs.

Written as a plain loop rather than `model.generate` because the RL loop needs exactly the
log-probs of the distribution it sampled from (temperature applied), per-row constraints, and
as little per-step overhead as possible: on a tiny model the Python around each forward pass,
not the matmuls, dominates generation time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from feedbackrl.policy.fast_decode import DecodeRecord, LlamaDecoder, llama_prompt_pass, parameter_versions
from feedbackrl.policy.shared_prompt import cache_keyword, cache_of, prompt_pass

# (row, token ids generated so far in that row) -> token ids allowed next, or None for any.
# A constraint object may also carry `logit_bias`, {token id: bonus} added to the logits when
# sampling (never to greedy decoding): an exploration bonus, e.g. for a product just launched.
# It may also carry `explore` (a share epsilon in [0, 1]) and `explore_pool(row, n_rows,
# generated_so_far) -> token ids or None`: when sampling, each pick of a row with a pool is
# drawn from (1 - epsilon) x the (constrained) model distribution + epsilon x uniform over the
# pool (epsilon-exploration, never in greedy decoding).
# The recorded `logprobs` stay the model's own; `sampling_logprobs` are the drawn distribution's.
# With `mask_logprobs`, "the model's own" is the model restricted to what the constraint allows
# (invalid-action masking): the policy that acts is the masked one, so the loss should train it.
Constraint = Callable[[int, list[int]], "Sequence[int] | None"]


@dataclass
class SampledBatch:
    tokens: torch.Tensor  # [N, T] generated ids, padded with pad_id after EOS
    # [N, T] log-prob of each generated token under the model's distribution at the sampling
    # temperature, before constraints and top-p: what a forward pass over the completion gives,
    # so the loss's ratio pi_theta / pi_old starts at exactly 1
    logprobs: torch.Tensor
    lengths: torch.Tensor  # [N] tokens up to and including EOS
    # [N, T] log-prob under the distribution the token was drawn from (constraint and top-p
    # applied, renormalised; 0 for greedy): the behaviour propensity
    sampling_logprobs: torch.Tensor | None = None
    # [N, T, V] bool, with `mask_logprobs`: the tokens the constraint allowed at each step (all
    # True where it allowed any); `logprobs` are then normalised over those tokens only
    allowed: torch.Tensor | None = None
    # with `keep_record`: the decode steps' matmul outputs (fast_decode.DecodeRecord), for an update
    # that back-propagates through them instead of running the forward pass again
    record: DecodeRecord | None = None


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering (Holtzman et al. 2020): keep the smallest set of tokens whose
    probability reaches top_p; the rest get -inf. logits: [N, V]."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    # a token is dropped when the mass before it already reaches top_p (the top token always stays)
    drop_sorted = probs.cumsum(-1) - probs >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def draw(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row of `probs` [N, V] (non-negative weights; a row need not sum to exactly 1):
    inverse-CDF sampling with one uniform number per row, drawn on `generator`'s device (else
    `probs`').

    `torch.multinomial(probs, 1)` draws an exponential variate for every vocabulary entry of every
    row (it samples by argmax(p / E)), which on a CPU was ~0.6 ms of a ~6 ms decode step for
    128 rows x 262 tokens; this draws N uniforms and finds each in its row's running sum (in
    float64, so that a token far below float32's resolution of the sum keeps its share). A token
    of weight 0 is never drawn: the draw is the first index whose running sum exceeds u x total,
    with u x total kept strictly below the total. A row without positive finite weight raises."""
    cdf = probs.double().cumsum(-1)
    total = cdf[:, -1:]
    if not bool(((total > 0) & torch.isfinite(total)).all()):
        raise ValueError("draw: every row needs a positive, finite total weight (a NaN, an inf or all zeros)")
    # the uniforms come from the generator's own device (a host generator seeding a GPU run
    # draws on the host and moves N numbers), so one seed gives the same draws on either device
    where = cdf.device if generator is None else generator.device
    u = torch.rand(total.shape, generator=generator, dtype=cdf.dtype, device=where).to(cdf.device)
    x = torch.minimum(u * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, x, right=True).squeeze(-1)


def _mix_exploration(probs: torch.Tensor, logp: torch.Tensor, epsilon: float, pool_of, n: int,
                     generated: list[list[int]], finished: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(1 - epsilon) probs + epsilon uniform(pool) for every unfinished row whose pool is not
    empty; the other rows keep `probs`. Returns the mixed probabilities and their logs."""
    uniform = torch.zeros_like(probs)
    rows = []
    for row in range(n):
        if finished[row]:
            continue
        pool = pool_of(row, n, generated[row])
        if pool:
            uniform[row, list(pool)] = 1.0 / len(pool)
            rows.append(row)
    if not rows:
        return probs, logp
    mixed = probs.clone()
    idx = torch.tensor(rows, dtype=torch.long, device=probs.device)
    mixed[idx] = (1.0 - epsilon) * probs[idx] + epsilon * uniform[idx]
    logp = logp.clone()
    logp[idx] = mixed[idx].log()
    return mixed, logp


@torch.inference_mode()
def sample_tokens(
    model,
    prompt_ids: Sequence[Sequence[int]],
    *,
    eos_id: int,
    pad_id: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    greedy: bool = False,
    constraint: Constraint | None = None,
    generator: torch.Generator | None = None,
    mask_logprobs: bool = False,
    fast_decode: bool = True,
    keep_record: "bool | DecodeRecord" = False,
) -> SampledBatch:
    """Sample one completion per row of `prompt_ids` (rows may repeat a prompt for G samples;
    a repeated prompt goes through the model once and its KV cache is shared: shared_prompt.py,
    or fast_decode.llama_prompt_pass for a model `LlamaDecoder` covers).

    Prompts are left-padded so every row's next token sits in the last column; position ids
    are counted from each row's first real token so padding does not shift them.
    `mask_logprobs`: record the constraint's allowed tokens per step and return `logprobs` of the
    model renormalised over them (what `Policy.token_logprobs` gives for a batch carrying them).
    `fast_decode`: decode with `LlamaDecoder` (fast_decode.py) where the model is one it covers;
    False always uses the model's own forward.
    `keep_record`: keep the decode steps' matmul outputs and the prompt pass's autograd graph
    (`SampledBatch.record`; `LlamaDecoder` only);
    an earlier DecodeRecord lends its memory (and no longer covers anything).
    """
    device = next(model.parameters()).device
    n = len(prompt_ids)
    out_tokens = torch.full((n, max_new_tokens), pad_id, dtype=torch.long, device=device)
    out_logprobs = torch.zeros((n, max_new_tokens), device=device)
    out_sampling = torch.zeros((n, max_new_tokens), device=device)
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    lengths = torch.zeros(n, dtype=torch.long, device=device)
    generated: list[list[int]] = [[] for _ in range(n)]
    record = mask_logprobs and constraint is not None
    step_allowed: list[torch.Tensor] = []

    cache_kw = cache_keyword(model)
    lean = fast_decode and LlamaDecoder.supports(model)
    graph = None
    if (lean and keep_record and max_new_tokens > 1
            and LlamaDecoder.records(model, n, max(map(len, prompt_ids), default=0), max_new_tokens)):
        # the prompt pass with autograd on, kept with the record: the update's replay of this decode
        # back-propagates through it rather than running it again (its tensors are not inference
        # tensors, which autograd could not use; the decode reads them as constants)
        with torch.inference_mode(False), torch.enable_grad():
            prompts = graph = llama_prompt_pass(model, prompt_ids, pad_id)
    else:
        prompts = (llama_prompt_pass if lean else prompt_pass)(model, prompt_ids, pad_id)
    past, logits, positions = prompts.cache, prompts.last_logits.detach().float(), prompts.positions
    # the mask grows by one column a step: written in place, not concatenated
    width = prompts.attention_mask.shape[1]
    attn = torch.zeros((n, width + max_new_tokens), dtype=torch.long, device=device)
    attn[:, :width] = prompts.attention_mask
    next_pos = positions[:, -1:] + 1
    decoder = None
    if lean and max_new_tokens > 1:
        decoder = LlamaDecoder(model, past, prompts.attention_mask, max_new_tokens, record=keep_record)
        past = None
        if graph is None:
            prompts.cache = None  # copied into the decoder's buffers: free the cache's own
    bias = None
    bonus = None if greedy or constraint is None else getattr(constraint, "logit_bias", None)
    if bonus:
        bias = torch.zeros(logits.shape[-1], device=device)
        bias[torch.tensor(list(bonus), dtype=torch.long, device=device)] = torch.tensor(
            [float(v) for v in bonus.values()], device=device)
    explore = 0.0 if greedy or constraint is None else float(getattr(constraint, "explore", 0.0) or 0.0)
    explore_pool = getattr(constraint, "explore_pool", None) if explore > 0 else None

    def at_temperature(x: torch.Tensor) -> torch.Tensor:
        return x if temperature == 1.0 else x / max(temperature, 1e-6)  # x / 1.0 is x: no division

    # nothing reshapes the model's distribution: it is the one sampled from (no second log_softmax)
    plain = not greedy and constraint is None and bias is None and top_p >= 1.0
    for t in range(max_new_tokens):
        mask = None
        if constraint is not None:
            mask = torch.zeros_like(logits, dtype=torch.bool)
            for row in range(n):
                allowed = None if finished[row] else constraint(row, generated[row])
                if allowed is not None:
                    mask[row] = True
                    mask[row, list(allowed) or [eos_id]] = False
        own = logits.masked_fill(mask, float("-inf")) if record else logits
        model_logp = at_temperature(own).log_softmax(-1)
        if record:
            step_allowed.append((~mask).cpu())
        if bias is not None:
            logits = logits + bias
        if mask is not None:
            logits = logits.masked_fill(mask, float("-inf"))
        scaled = at_temperature(logits)
        if greedy:
            tok = scaled.argmax(-1)
            sampling_logp = torch.zeros_like(scaled)
        else:
            filtered = top_p_filter(scaled, top_p)
            sampling_logp = model_logp if plain else filtered.log_softmax(-1)
            probs = filtered.softmax(-1)
            if explore_pool is not None:
                probs, sampling_logp = _mix_exploration(probs, sampling_logp, explore, explore_pool, n, generated,
                                                        finished)
            tok = draw(probs, generator)  # a host generator with a CUDA model draws its uniforms on the host
        tok = tok.masked_fill(finished, pad_id)
        out_tokens[:, t] = tok
        out_logprobs[:, t] = torch.where(finished, 0.0, model_logp.gather(-1, tok[:, None]).squeeze(-1))
        if not plain:  # else the same as out_logprobs, copied once at the end
            out_sampling[:, t] = torch.where(finished, 0.0, sampling_logp.gather(-1, tok[:, None]).squeeze(-1))
        lengths += ~finished
        if constraint is not None:
            for row in range(n):
                if not finished[row]:
                    generated[row].append(int(tok[row]))
        finished |= tok == eos_id
        if t == max_new_tokens - 1 or bool(finished.all()):
            break
        if decoder is not None:
            logits = decoder.step(tok, next_pos, ~finished).float()
        else:
            attn[:, width + t] = ~finished
            out = model(
                input_ids=tok[:, None], attention_mask=attn[:, :width + t + 1], position_ids=next_pos,
                use_cache=True, **{cache_kw: past},
            )
            past = cache_of(out)
            logits = out.logits[:, -1, :].float()
        next_pos = next_pos + 1
    t_used = int(lengths.max()) if n else 0
    if plain:
        out_sampling = out_logprobs.clone()
    allowed = torch.stack(step_allowed[:t_used], dim=1) if record and t_used else None
    kept = None
    if decoder is not None and decoder.record is not None:
        kept = decoder.record
        kept.steps, kept.versions, kept.tokens = decoder.steps, parameter_versions(model), out_tokens
        kept.prompts = [list(r) for r in prompt_ids]
        kept.prompt_pass = graph
    return SampledBatch(out_tokens[:, :t_used].cpu(), out_logprobs[:, :t_used].cpu(), lengths.cpu(),
                        out_sampling[:, :t_used].cpu(), allowed, kept)
