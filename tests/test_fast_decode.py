"""The lean decode step (policy/fast_decode.py) against the Hugging Face forward it replaces."""

import pytest
import torch

from feedbackrl.policy import LoraSettings, Policy
from feedbackrl.policy.fast_decode import LlamaDecoder
from feedbackrl.policy.sampling import sample_tokens
from feedbackrl.policy.shared_prompt import left_pad, prompt_pass


def _llama(**overrides):
    from transformers import LlamaConfig, LlamaForCausalLM

    settings = dict(vocab_size=40, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                    pad_token_id=0, bos_token_id=1, eos_token_id=2)
    settings.update(overrides)
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**settings)).eval()


@pytest.mark.parametrize("kv_heads,tied,stacked", [(2, False, True), (4, True, True), (2, True, False)])
def test_each_step_equals_a_full_forward_over_the_whole_sequence(kv_heads, tied, stacked, monkeypatch):
    """Grouped-query and plain heads, tied and untied LM head, weights stacked or not (a large
    model's); prompts of different lengths (left padding), a prompt shared by two rows, and a row
    that finishes early: at every step the decoder's logits of every live row equal the model's
    forward over prompt + tokens so far, with no cache (a finished row's logits are never read)."""
    if not stacked:
        monkeypatch.setattr("feedbackrl.policy.fast_decode.STACK_LIMIT_BYTES", 0)
    model = _llama(num_key_value_heads=kv_heads, tie_word_embeddings=tied)
    assert LlamaDecoder.supports(model)
    prompts = [[1, 5, 6, 7, 8], [1, 9], [1, 5, 6, 7, 8], [1, 10, 11]]
    steps = 5
    fed = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 10, 11, 12], [13, 14, 15, 16, 17], [18, 2, 0, 0, 0]])
    attend = torch.ones_like(fed, dtype=torch.bool)
    attend[3, 1:] = False  # row 3 emits EOS at step 1: later tokens are padding nobody attends to
    with torch.inference_mode():
        first = prompt_pass(model, prompts, pad_id=0)
        decoder = LlamaDecoder(model, first.cache, first.attention_mask, steps)
        assert decoder.stacked is stacked
        ids, mask = left_pad(prompts, 0)
        positions = first.positions[:, -1:] + 1
        for t in range(steps):
            got = decoder.step(fed[:, t], positions + t, attend[:, t])
            full_ids = torch.cat([ids, fed[:, :t + 1]], dim=1)
            full_mask = torch.cat([mask, attend[:, :t + 1].long()], dim=1)
            full_pos = (full_mask.cumsum(-1) - 1).clamp_min(0)
            # a row's position ids count on past its finished tokens in the decoder, as in sampling
            full_pos[:, ids.shape[1]:] = first.positions[:, -1:] + 1 + torch.arange(t + 1)
            want = model(input_ids=full_ids, attention_mask=full_mask, position_ids=full_pos).logits[:, -1]
            live = attend[:, t] if t else torch.ones(len(prompts), dtype=torch.bool)
            assert torch.allclose(got[live], want[live], atol=1e-5), f"step {t}"


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
