"""The lean decode step (policy/fast_decode.py) against the Hugging Face forward it replaces."""

import pytest
import torch

from feedbackrl.policy import LoraSettings, Policy
from feedbackrl.policy.fast_decode import LlamaDecoder
from feedbackrl.policy.sampling import sample_tokens
from feedbackrl.policy.shared_prompt import left_pad, prompt_pass

# the decode and its replay on the CPU, and on a CUDA device where there is one (tests/test_gpu.py
# has the rest of the GPU checks; CI has no GPU, benchmarks/gpu_check.sh runs these there)
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"))]


def _llama(**overrides):
    from transformers import LlamaConfig, LlamaForCausalLM

    settings = dict(vocab_size=40, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                    pad_token_id=0, bos_token_id=1, eos_token_id=2)
    settings.update(overrides)
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**settings)).eval()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kv_heads,tied,stacked,steps", [(2, False, True, 5), (4, True, True, 5), (2, True, False, 5),
                                                        (2, False, True, 14)])
def test_each_step_equals_a_full_forward_over_the_whole_sequence(kv_heads, tied, stacked, steps, monkeypatch, device):
    """Grouped-query and plain heads, tied and untied LM head, weights stacked or not (a large
    model's); prompts of different lengths (left padding), a prompt shared by two rows, and a row
    that finishes early: at every step the decoder's logits of every live row equal the model's
    forward over prompt + tokens so far, with no cache (a finished row's logits are never read).
    5 steps keep the cache under `SHORT_ROW` positions (every step reads all of it); 14 make it
    longer, so that the first steps read positions not yet written (zero, masked)."""
    if not stacked:
        monkeypatch.setattr("feedbackrl.policy.fast_decode.STACK_LIMIT_BYTES", 0)
    model = _llama(num_key_value_heads=kv_heads, tie_word_embeddings=tied).to(device)
    assert LlamaDecoder.supports(model)
    prompts = [[1, 5, 6, 7, 8], [1, 9], [1, 5, 6, 7, 8], [1, 10, 11]]
    fed = torch.randint(3, 40, (4, steps), generator=torch.Generator().manual_seed(1))
    fed[3, 1], fed[3, 2:] = 2, 0
    fed = fed.to(device)
    attend = torch.ones_like(fed, dtype=torch.bool)
    attend[3, 1:] = False  # row 3 emits EOS at step 1: later tokens are padding nobody attends to
    with torch.inference_mode():
        first = prompt_pass(model, prompts, pad_id=0)
        decoder = LlamaDecoder(model, first.cache, first.attention_mask, steps)
        assert decoder.stacked is stacked
        ids, mask = (t.to(device) for t in left_pad(prompts, 0))
        positions = first.positions[:, -1:] + 1
        for t in range(steps):
            got = decoder.step(fed[:, t], positions + t, attend[:, t])
            full_ids = torch.cat([ids, fed[:, :t + 1]], dim=1)
            full_mask = torch.cat([mask, attend[:, :t + 1].long()], dim=1)
            full_pos = (full_mask.cumsum(-1) - 1).clamp_min(0)
            # a row's position ids count on past its finished tokens in the decoder, as in sampling
            full_pos[:, ids.shape[1]:] = first.positions[:, -1:] + 1 + torch.arange(t + 1, device=device)
            want = model(input_ids=full_ids, attention_mask=full_mask, position_ids=full_pos).logits[:, -1]
            live = attend[:, t] if t else torch.ones(len(prompts), dtype=torch.bool, device=device)
            assert torch.allclose(got[live], want[live], atol=1e-5), f"step {t}"


@pytest.mark.parametrize("width", [1, 5, 15, 16, 20])
def test_softmax_pads_short_rows_and_gives_torchs_softmax_and_gradient(width):
    from feedbackrl.policy.fast_decode import softmax

    x = torch.randn(3, 4, width, dtype=torch.float64, generator=torch.Generator().manual_seed(width))
    if width > 1:  # masked entries stay 0
        x[0, 0, 0] = float("-inf")
        x[1, 1, 1:] = float("-inf")
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    got, want = softmax(a), b.softmax(-1)
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-15)
    g = torch.randn_like(want)
    got.backward(g)
    want.backward(g)
    assert torch.allclose(a.grad, b.grad, atol=1e-15)


def test_sampling_through_the_decoder_draws_what_the_model_forward_draws(tiny_model_dir):
    """Same generator, same tokens; log-probs equal to float rounding; also greedy, and with a
    constraint that ends some rows early."""
    policy = Policy.load(tiny_model_dir)
    assert LlamaDecoder.supports(policy.model)
    rows = [policy.encode_prompt(p) for p in ["Q: 1+2=? A:", "Q: 10+20=? A:", "Q: 7+8=? A:"] for _ in range(4)]

    def eos_early(row, generated):  # odd rows must stop after two tokens
        return [policy.eos_id] if row % 2 and len(generated) >= 2 else None

    for kwargs in ({}, {"greedy": True}, {"constraint": eos_early, "temperature": 0.7}):
        out = {}
        for fast in (True, False):
            out[fast] = sample_tokens(policy.model.eval(), rows, eos_id=policy.eos_id, pad_id=policy.pad_id,
                                      max_new_tokens=8, generator=torch.Generator().manual_seed(3),
                                      fast_decode=fast, **kwargs)
        assert torch.equal(out[True].tokens, out[False].tokens), kwargs
        assert torch.equal(out[True].lengths, out[False].lengths)
        assert torch.allclose(out[True].logprobs, out[False].logprobs, atol=1e-5)
    assert (out[True].lengths[1::2] == 3).all()  # the constraint did end those rows


@pytest.mark.parametrize("rope", [{"rope_type": "default", "rope_theta": 10000.0},
                                  {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}])
def test_rotary_by_position_table_and_step_by_step_equal_the_models_cached_decode(rope):
    """The decoder reads rotary cos/sin from a table by position, except for rotary types whose
    frequencies depend on the longest sequence seen so far ('dynamic'), which it computes each
    step as the model does; either way its logits equal the model's own cached decode, here past
    max_position_embeddings where the dynamic frequencies change."""
    model = _llama(max_position_embeddings=6, rope_parameters=rope)
    rows = [[1, 5, 6, 7], [1, 9], [1, 5, 6, 7]]
    out = {}
    for fast in (True, False):
        out[fast] = sample_tokens(model, rows, eos_id=2, pad_id=0, max_new_tokens=8, fast_decode=fast,
                                  generator=torch.Generator().manual_seed(1))
    decoder = LlamaDecoder(model, prompt_pass(model, rows, 0).cache, prompt_pass(model, rows, 0).attention_mask, 8)
    assert (decoder.rope_table is None) == (rope["rope_type"] == "dynamic")
    assert torch.equal(out[True].tokens, out[False].tokens)
    torch.testing.assert_close(out[True].logprobs, out[False].logprobs, rtol=0, atol=1e-5)


def test_what_it_does_not_cover_decodes_through_the_model(tiny_model_dir):
    from transformers import GPT2Config, GPT2LMHeadModel

    assert not LlamaDecoder.supports(GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=40)))
    assert not LlamaDecoder.supports(_llama(attention_bias=True))
    assert not LlamaDecoder.supports(_llama(hidden_act="gelu"))
    lora = Policy.load(tiny_model_dir, lora=LoraSettings(r=2))
    assert not LlamaDecoder.supports(lora.model) and not LlamaDecoder.supports(lora.model.get_base_model())
    # LoRA's adapters change q/v: a decode that ignored them would sample from the base model
    with torch.no_grad():
        for name, p in lora.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    samples = lora.generate(["Q: 1+2=? A:"], 3, max_new_tokens=6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        lp = lora.token_logprobs(lora.collate(samples))["logprobs"]
    batch = lora.collate(samples)
    assert torch.allclose(lp * batch.completion_mask, batch.old_logprobs, atol=1e-4)


def test_the_config_switch_reaches_the_policy(tiny_model_dir, tmp_path):
    from feedbackrl.tasks.arithmetic import ArithmeticTask
    from feedbackrl.train.config import RunConfig
    from feedbackrl.train.online import OnlineTrainer

    cfg = RunConfig(name="t", out_dir=str(tmp_path), steps=1, batch_size=8)
    cfg.algo.group_size, cfg.algo.kl_coef = 4, 0.0
    cfg.generation.fast_decode = False
    policy = Policy.load(tiny_model_dir)
    OnlineTrainer(cfg, ArithmeticTask(cfg.arithmetic), policy, tmp_path / "run")
    assert policy.fast_decode is False


# ------------------------------------------------------------------ replaying the sampling pass
def _grads(model):
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def _assert_same_grads(got, want):
    assert got.keys() == want.keys() and want
    for k in want:
        scale = float(want[k].abs().max())
        assert scale > 0, k  # every weight gets a gradient: the test can tell a missing one
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-5 * scale, msg=k)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kv_heads,tied,chunk_rows", [(2, False, 256), (4, True, 8), (2, True, 4)])
def test_the_replayed_forward_gives_the_forward_pass_logits_and_gradients(kv_heads, tied, chunk_rows, monkeypatch, device):
    """Rows of different prompt lengths (left padding), a shared prompt, a row stopped by EOS
    after two tokens: the logits replayed from the decode's record equal a plain forward pass over
    prompt + completion (no cache) at every position that predicts a completion token, and a loss
    over the log-probs back-propagates to the same gradient of every weight. The MLP's backward
    runs over the 5 replayed steps x 4 rows in one chunk, in chunks of 2, 2 and 1 steps, or step by
    step."""
    from feedbackrl.policy.replay import replayed_completion_logits

    monkeypatch.setattr("feedbackrl.policy.replay.MLP_CHUNK_ROWS", chunk_rows)
    model = _llama(num_key_value_heads=kv_heads, tie_word_embeddings=tied).to(device)
    prompts = [[1, 5, 6, 7, 8], [1, 9], [1, 5, 6, 7, 8], [1, 10, 11]]

    def eos_early(row, generated):
        return [2] if row == 3 and len(generated) >= 2 else None

    out = sample_tokens(model, prompts, eos_id=2, pad_id=0, max_new_tokens=6, generator=torch.Generator().manual_seed(0),
                        constraint=eos_early, keep_record=True)
    record, tokens = out.record, out.tokens.clone()  # a clone: sampling's tensors are inference-mode ones
    assert record is not None and record.steps == tokens.shape[1] - 1 and out.lengths[3] == 3
    n, t = tokens.shape
    mask = (torch.arange(t, device=device) < out.lengths[:, None]).float()
    weights = torch.randn(n, t, generator=torch.Generator().manual_seed(1)).to(device) * mask

    def loss_of(logits):
        logp = logits.float().log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1)
        return (logp * weights).sum(), logp

    # the plain forward: prompt + completion, right-padded, the logits before each completion token
    full = [p + tokens[i, :int(out.lengths[i])].tolist() for i, p in enumerate(prompts)]
    width = max(map(len, full))
    ids = torch.tensor([f + [0] * (width - len(f)) for f in full], device=device)
    attn = torch.tensor([[1] * len(f) + [0] * (width - len(f)) for f in full], device=device)
    cols = torch.tensor([[len(p) - 1 + j for j in range(t)] for p in prompts], device=device).clamp_max(width - 1)
    plain = model(input_ids=ids, attention_mask=attn).logits
    plain = plain.gather(1, cols[..., None].expand(-1, -1, plain.shape[-1]))
    loss, logp_plain = loss_of(plain)
    loss.backward()
    want = _grads(model)

    first = prompt_pass(model, prompts, pad_id=0)
    rest = replayed_completion_logits(model, record, torch.arange(n, device=device),
                                      [(lay.keys, lay.values) for lay in first.cache.layers], first.attention_mask,
                                      tokens[:, :t - 1], torch.tensor([len(p) for p in prompts], device=device))
    replayed = torch.cat([first.last_logits[:, None], rest], dim=1)
    loss, logp_replayed = loss_of(replayed)
    loss.backward()
    got = _grads(model)
    real = mask.bool()
    torch.testing.assert_close(replayed[real], plain[real], rtol=0, atol=1e-5)
    torch.testing.assert_close(logp_replayed[real], out.logprobs[real], rtol=0, atol=1e-5)
    _assert_same_grads(got, want)


def _policy_rollout(tiny_model_dir, keep_record=True, device="cpu"):
    policy = Policy.load(tiny_model_dir, device=device)
    samples = policy.generate(["Q: 1+2=? A:", "Q: 10+20=? A:", "Q: 7+8=? A:"], 4, max_new_tokens=6,
                              generator=torch.Generator().manual_seed(0), keep_record=keep_record)
    return policy, policy.collate(samples), policy.decode_record


@pytest.mark.parametrize("device", DEVICES)
def test_the_policy_replays_permuted_and_partial_minibatches(tiny_model_dir, device):
    """`token_logprobs(record=, rows=)` on the whole batch in another order and on subsets (the
    update's shuffled minibatches), one without the decode's longest prompt (its prompts sit at
    an offset in the decode's cache): replayed, with the log-probs and gradients of the forward pass."""
    policy, batch, record = _policy_rollout(tiny_model_dir, device=device)
    assert record is not None
    policy.model.train()
    short = torch.tensor([10, 1])  # rows of "Q: 7+8=? A:" and "Q: 1+2=? A:", not "Q: 10+20=? A:"
    prompt_lengths = batch.positions[:, 0] + 1
    assert prompt_lengths[short].max() < prompt_lengths.max()
    for index in (torch.randperm(len(batch), generator=torch.Generator().manual_seed(2)), torch.tensor([7, 1, 4, 10]), short):
        mb = batch.select(index)
        weights = torch.randn(mb.completion_mask.shape, generator=torch.Generator().manual_seed(3)).to(device)
        runs = {}
        for replay in (True, False):
            kw = {"record": record, "rows": index} if replay else {}
            out = policy.token_logprobs(mb, with_entropy=True, **kw)
            assert bool(out.get("replayed", False)) is replay
            ((out["logprobs"] * weights + out["entropy"]) * mb.completion_mask).sum().backward()
            runs[replay] = (out["logprobs"].detach(), _grads(policy.model))
        real = mb.completion_mask.bool()
        torch.testing.assert_close(runs[True][0][real], runs[False][0][real], rtol=0, atol=1e-5)
        torch.testing.assert_close(runs[True][0][real], mb.old_logprobs[real], rtol=0, atol=1e-5)
        _assert_same_grads(runs[True][1], runs[False][1])


def test_the_decodes_prompt_pass_is_kept_and_back_propagated_through_once(tiny_model_dir):
    """With a record the decode keeps its prompt pass's autograd graph; the replay of the whole
    decode (rows in order) back-propagates through it, once, and gives the forward pass's gradients
    (embedding and first-layer weights included, which only the prompt pass reaches through the
    prompt tokens); a second replay runs the prompt pass again, with the same gradients."""
    policy, batch, record = _policy_rollout(tiny_model_dir)
    kept = record.prompt_pass
    assert kept is not None and kept.last_logits.requires_grad and kept.cache.layers[0].keys.requires_grad
    policy.model.train()
    rows = torch.arange(len(batch))
    weights = torch.randn(batch.completion_mask.shape, generator=torch.Generator().manual_seed(4))
    runs = []
    for kw in ({"record": record, "rows": rows}, {"record": record, "rows": rows}, {}):
        out = policy.token_logprobs(batch, **kw)
        assert bool(out.get("replayed", False)) is bool(kw)
        assert record.prompt_pass is None  # taken by the first replay, not put back
        ((out["logprobs"] * weights) * batch.completion_mask).sum().backward()
        runs.append(_grads(policy.model))
    _assert_same_grads(runs[0], runs[2])
    _assert_same_grads(runs[1], runs[2])


@pytest.mark.parametrize("limit", ["STACK_LIMIT_BYTES", "RECORD_LIMIT_BYTES"])
def test_a_decode_past_the_limits_keeps_no_record_and_no_prompt_graph(tiny_model_dir, limit, monkeypatch):
    """Weights too large to stack, or a record past its byte limit: no record, and the prompt pass
    runs without autograd (a kept graph would hold a large model's activations for nothing)."""
    import feedbackrl.policy.sampling as sampling

    kept = []
    real = sampling.llama_prompt_pass

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        kept.append(out.last_logits.requires_grad)
        return out

    monkeypatch.setattr(sampling, "llama_prompt_pass", spy)
    policy, _, record = _policy_rollout(tiny_model_dir)
    assert record is not None and kept == [True]
    monkeypatch.setattr(f"feedbackrl.policy.fast_decode.{limit}", 0)
    policy, _, record = _policy_rollout(tiny_model_dir)
    assert record is None and kept == [True, False]


def test_a_record_covers_only_its_own_decode_under_the_same_weights(tiny_model_dir):
    """Not replayed (the forward pass runs) once a weight has changed, for tokens or prompts that
    are not the decoded ones, and for a record whose memory a later decode took over."""
    policy, batch, record = _policy_rollout(tiny_model_dir)
    rows = torch.arange(len(batch))

    def replayed(b, rec=record, r=rows):
        with torch.no_grad():
            return bool(policy.token_logprobs(b, record=rec, rows=r)["replayed"])

    assert replayed(batch)
    assert not replayed(batch, r=rows.roll(4))  # the rows of other prompts
    other = batch.select(rows)
    other.completion_ids[0, 0] = (other.completion_ids[0, 0] + 1) % 200
    assert not replayed(other)
    with torch.no_grad():  # what an optimizer step does: an in-place update of a weight
        policy.model.model.norm.weight.mul_(1.0)
    assert not replayed(batch)
    # a decode of the same shape writes into the earlier record's memory, which then covers nothing
    policy.generate(["Q: 5+5=? A:", "Q: 6+6=? A:", "Q: 7+7=? A:"], 4, max_new_tokens=6, keep_record=True)
    assert policy.decode_record.logits.data_ptr() == record.logits.data_ptr()
    assert record.tokens is None and not replayed(batch)
    fresh = policy.collate([s for s in policy.generate(["Q: 5+5=? A:"], 12, max_new_tokens=6, keep_record=True)])
    assert replayed(fresh, rec=policy.decode_record)
    # without keep_record nothing is kept
    policy.generate(["Q: 5+5=? A:"], 2, max_new_tokens=4)
    assert policy.decode_record is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_written_out_rmsnorm_equals_the_models_module_and_its_autograd(dtype):
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    from feedbackrl.policy.fast_decode import rms_norm as _norm

    torch.manual_seed(0)
    module = LlamaRMSNorm(16, eps=1e-5).to(dtype)
    with torch.no_grad():
        module.weight.normal_()
    x = (torch.randn(3, 5, 16) * 3).to(dtype).requires_grad_()
    g = torch.randn(3, 5, 16).to(dtype)
    want = module(x)
    want_dx, want_dw = torch.autograd.grad(want, (x, module.weight), g)
    got = _norm(module, x)
    got_dx, got_dw = torch.autograd.grad(got, (x, module.weight), g)
    assert got.dtype == want.dtype and got_dx.dtype == x.dtype
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(got, want, **tol)
    torch.testing.assert_close(got_dx, want_dx, **tol)
    torch.testing.assert_close(got_dw, want_dw, **(tol if dtype == torch.float32 else dict(rtol=2e-2, atol=1e-1)))
    # a module that is not an RMSNorm it knows runs as itself
    layer_norm = torch.nn.LayerNorm(16).to(dtype)
    assert torch.equal(_norm(layer_norm, x), layer_norm(x))


@pytest.mark.parametrize("kv_heads,tied,grouped", [(2, False, False), (4, True, False), (2, True, True)])
def test_the_written_out_prompt_pass_equals_the_models(kv_heads, tied, grouped):
    """Prompts of different lengths (left padding), one repeated, or three prompts of two rows each
    in turn (a GRPO batch, whose keys come back as a broadcast view): the same last logits, and the
    same keys and values at every real position, as the Hugging Face forward's prompt pass, and a
    loss over them back-propagates to the same gradients. Nothing is NaN, padding included."""
    from feedbackrl.policy.fast_decode import llama_prompt_pass, per_row

    model = _llama(num_key_value_heads=kv_heads, tie_word_embeddings=tied)
    rows = [[1, 5, 6, 7, 8], [1, 9], [1, 5, 6, 7, 8], [1, 10, 11]]
    if grouped:
        rows = [r for r in ([1, 5, 6, 7, 8], [1, 9], [1, 10, 11]) for _ in range(2)]
    results = {}
    for name, run in (("hf", prompt_pass), ("lean", llama_prompt_pass)):
        model.zero_grad()
        out = run(model, rows, 0)
        real = out.attention_mask.bool()
        assert all(layer.keys.dim() == (5 if grouped and run is llama_prompt_pass else 4) for layer in out.cache.layers)
        kv = [(per_row(layer.keys), per_row(layer.values)) for layer in out.cache.layers]
        weights = [torch.randn(k.shape, generator=torch.Generator().manual_seed(i)) for i, (k, _) in enumerate(kv)]
        loss = (out.last_logits * torch.randn(out.last_logits.shape, generator=torch.Generator().manual_seed(9))).sum()
        for (k, v), wgt in zip(kv, weights):
            m = real[:, None, :, None]
            loss = loss + (k * wgt * m).sum() + (v * wgt * m).sum()
        loss.backward()
        results[name] = (out, kv, _grads(model))
    (hf, hf_kv, hf_grads), (lean, lean_kv, lean_grads) = results["hf"], results["lean"]
    assert torch.equal(lean.attention_mask, hf.attention_mask) and torch.equal(lean.positions, hf.positions)
    torch.testing.assert_close(lean.last_logits, hf.last_logits, rtol=0, atol=1e-5)
    real = hf.attention_mask.bool()
    for (k1, v1), (k2, v2) in zip(lean_kv, hf_kv):
        assert torch.isfinite(k1).all() and torch.isfinite(v1).all()
        sel = real[:, None, :, None].expand_as(k1)
        torch.testing.assert_close(k1[sel], k2[sel], rtol=0, atol=1e-5)
        torch.testing.assert_close(v1[sel], v2[sel], rtol=0, atol=1e-5)
    _assert_same_grads(lean_grads, hf_grads)
