"""Where a GRPO step's time goes, timed in place (`grpo_step.py --breakdown`).

`StepParts` wraps the functions that make up feedbackrl's step (the prompt pass, the decode steps
and the sampling draw in generation; the update's replayed forward pass, the hand-written
backward passes of the replay, the rest of the backward pass, gradient clipping and the
optimizer step) with `time.perf_counter`, for as long as it is installed, and restores them on
`uninstall`. Each part's time is summed over a step; `end_step()` files the step's sums.

Timed in place, inside the real loop, rather than by `torch.profiler`, which on a CPU inflates
small elementwise kernels two to three times against their time in the loop and so misranks them
(benchmarks/README.md). Each wrapper adds two clock reads and a dict update a call.
Parts nest: "backward" holds the four replay parts below it, and "decode steps" is most of
"generate". Internal names change with the code: a name that is gone raises here at once.
"""

from __future__ import annotations

import functools
import importlib
import statistics
import time
from collections import defaultdict
from typing import Any, Callable

# (label, module path, attribute path, kind): kind "function" wraps a plain function or method,
# "backward" an autograd Function's static backward. Labels nest by their prefix.
PARTS = (
    ("generate/prompt pass", "feedbackrl.policy.sampling", "llama_prompt_pass", "function"),
    ("generate/decoder setup", "feedbackrl.policy.fast_decode", "LlamaDecoder.__init__", "function"),
    ("generate/decode steps", "feedbackrl.policy.fast_decode", "LlamaDecoder.step", "function"),
    ("generate/draw", "feedbackrl.policy.sampling", "draw", "function"),
    ("update/forward (replayed)", "feedbackrl.policy.model", "Policy.token_logprobs", "function"),
    ("update/backward", "torch", "Tensor.backward", "function"),
    ("update/backward/attention", "feedbackrl.policy.replay", "_GivenAttention", "backward"),
    ("update/backward/mlp", "feedbackrl.policy.replay", "_GivenMLP", "backward"),
    ("update/backward/linear", "feedbackrl.policy.replay", "_GivenLinear", "backward"),
    ("update/backward/rms norm", "feedbackrl.policy.fast_decode", "_RMSNorm", "backward"),
    ("update/clip grad norm", "torch.nn.utils", "clip_grad_norm_", "function"),
)
# the report's order within "generate" and "update": PARTS', then the optimizer's step (on the instance)
_ORDER = [p[0] for p in PARTS] + ["update/optimizer step"]


def _resolve(module: str, path: str) -> tuple[Any, str]:
    owner: Any = importlib.import_module(module)
    *parents, name = path.split(".")
    for p in parents:
        owner = getattr(owner, p)
    if not hasattr(owner, name):
        raise AttributeError(f"step_parts: {module}.{path} is gone; update benchmarks/step_parts.py")
    return owner, name


class StepParts:
    """Install with `install(optimizer)`, call `end_step()` after each timed step, read `medians()`."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)
        self.steps: list[dict[str, float]] = []
        self._restore: list[Callable[[], None]] = []

    def _timed(self, label: str, fn: Callable) -> Callable:
        current, clock = self.current, time.perf_counter

        @functools.wraps(fn)  # keeps markers others set on `fn` (an LR scheduler's on optimizer.step)
        def wrapper(*args, **kwargs):
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                current[label] += clock() - t0

        return wrapper

    def install(self, optimizer=None) -> "StepParts":
        if self._restore:
            raise RuntimeError("step_parts: already installed")
        try:
            self._install(optimizer)
        except BaseException:
            self.uninstall()  # nothing stays patched by a half-done install
            raise
        return self

    def _install(self, optimizer) -> None:
        for label, module, path, kind in PARTS:
            owner, name = _resolve(module, path)
            if kind == "backward":
                cls = getattr(owner, name)
                original = cls.__dict__["backward"]  # the staticmethod object itself
                cls.backward = staticmethod(self._timed(label, original.__func__))
                self._restore.append(lambda c=cls, v=original: setattr(c, "backward", v))
            else:
                self._wrap(owner, name, label)
        if optimizer is not None:  # the instance's step, wrapped on the instance only
            self._wrap(optimizer, "step", "update/optimizer step")

    def _wrap(self, owner: Any, name: str, label: str) -> None:
        # as stored (a plain function on a class, an instance's callable), or None if inherited
        original = getattr(owner, "__dict__", {}).get(name)
        setattr(owner, name, self._timed(label, getattr(owner, name)))
        if original is not None:
            self._restore.append(lambda: setattr(owner, name, original))
        else:  # found on a class above: drop the shadowing wrapper
            self._restore.append(lambda: delattr(owner, name))

    def uninstall(self) -> None:
        while self._restore:
            self._restore.pop()()

    def end_step(self, totals: dict[str, float] | None = None) -> None:
        """File the step's sums (plus `totals`, e.g. the loop's own generate/update seconds) and reset."""
        row = dict(self.current)
        row.update(totals or {})
        self.steps.append(row)
        self.current.clear()

    def discard_step(self) -> None:
        self.current.clear()

    def medians(self) -> dict[str, float]:
        """Median seconds a step of every part seen (0 for a step where a part did not run)."""
        labels = sorted({k for row in self.steps for k in row})
        return {k: statistics.median(row.get(k, 0.0) for row in self.steps) for k in labels}

    def report(self) -> str:
        """The medians as an indented table in ms, with each part's share of its parent."""
        med = self.medians()
        lines = ["parts of the step (median ms a step, timed in place; nested parts indented):"]
        for label in sorted(med, key=_order):
            parent = label.rsplit("/", 1)[0] if "/" in label else None
            share = f"  {100 * med[label] / med[parent]:5.1f}% of {parent}" if parent in med and med[parent] else ""
            depth = label.count("/")
            lines.append(f"  {'  ' * depth}{label.rsplit('/', 1)[-1]:<{28 - 2 * depth}} {1000 * med[label]:8.2f}{share}")
        return "\n".join(lines)


def _order(label: str) -> tuple:
    """Totals first, then their parts in the order of PARTS."""
    top = label.split("/")[0]
    return ({"generate": 0, "update": 1}.get(top, 2), _ORDER.index(label) if label in _ORDER else -1, label)
