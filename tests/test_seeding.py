"""A seeded run is the same run: two trainings of one config end with identical weights, also
with two intra-op threads (where some CPU kernels are not deterministic unless asked)."""

import hashlib
from pathlib import Path

import torch

from feedbackrl.config import load_config
from feedbackrl.train.config import RunConfig
from feedbackrl.train.recipe import train

TINY = [
    "progress=false", "tensorboard=false", "log_rollouts=false", "arithmetic.digits=1", "arithmetic.eval_size=20",
    "model.tiny.hidden_size=64", "model.tiny.num_layers=2", "model.tiny.num_heads=2",
    "model.tiny.intermediate_size=128", "sft.steps=60", "sft.examples=300", "steps=2", "batch_size=64",
    "algo.minibatch_size=32", "eval_every=0",
]


def _weights_digest(path) -> str:
    from safetensors.torch import load_file

    weights = load_file(str(path / "model.safetensors"))
    return hashlib.sha256(b"".join(weights[k].numpy().tobytes() for k in sorted(weights))).hexdigest()


def test_two_runs_of_one_seeded_config_end_with_identical_weights(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        digests = []
        for name in ("a", "b"):
            cfg = load_config("configs/arithmetic_grpo.yaml", RunConfig, [f"out_dir={tmp_path}", f"name={name}", *TINY])
            summary = train(cfg, log=lambda *_: None)
            digests.append((_weights_digest(tmp_path / name / "sft"), _weights_digest(Path(summary["checkpoint"]))))
    finally:
        torch.set_num_threads(threads)
    assert digests[0] == digests[1]
    assert torch.are_deterministic_algorithms_enabled()
