"""One seeded, deterministic run.

`seed_run(seed)` seeds torch's global generator and switches torch to deterministic kernels.
The second half matters on CPU too: with two intra-op threads some kernels accumulate in an
order that changes from run to run, and the same seeded run of the arithmetic e2e test gave a
warm start of 0.40 in one process and 0.36 in the next (same machine, same code; identical with
one thread or with deterministic kernels). `warn_only`: an op without a deterministic kernel
warns instead of failing the run. On CUDA, cuBLAS needs a fixed workspace for determinism,
set here unless the user set one.
"""

from __future__ import annotations

import os


def seed_run(seed: int) -> None:
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
