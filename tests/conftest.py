import os

import pytest

# Tests run on two cores; more threads than cores only adds contention.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny model built from the arithmetic corpus once per test session."""
    import random

    from feedbackrl.policy.tiny import TinyModelConfig, build_tiny_model
    from feedbackrl.tasks.arithmetic import ArithmeticTask

    out = tmp_path_factory.mktemp("tiny")
    task = ArithmeticTask()
    corpus = list(task.corpus()) + ["search: phone -> SKU-A SKU-B"]
    build_tiny_model(out, corpus, extra_tokens=["SKU-A", "SKU-B", "SKU-C"],
                     config=TinyModelConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128))
    return out
