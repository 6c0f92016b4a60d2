"""Turn-taking between two benchmark processes, so that their steps alternate one by one.

`compare_trl.sh` with `INTERLEAVE=1` starts feedbackrl's and TRL's benchmarks at once, each with
`--baton DIR --baton-name NAME`: each waits for its turn before a step, runs it alone, and hands
the turn to the other. A step of one side then always sits between two of the other's, so a
change in the machine's speed (other tenants, clock) falls on both alike, where back-to-back
runs let it fall on one side's whole run. Timing starts after the turn is taken.

The turn is a file in DIR holding the name of the side whose turn it is, replaced atomically; a
side that has run all its steps writes `done-NAME`, after which the other no longer waits for it.
Waiting polls every 0.5 ms: the waiting side takes no CPU from the running one.
"""

from __future__ import annotations

import atexit
import os
import time
from pathlib import Path


class Baton:
    """`acquire()` before a step, `release()` after it, `finish()` at the end; two names share DIR."""

    def __init__(self, directory: str | os.PathLike, name: str, other: str, timeout_s: float = 900.0):
        self.dir, self.name, self.other, self.timeout_s = Path(directory), name, other, timeout_s
        self.dir.mkdir(parents=True, exist_ok=True)
        self.finished = False
        atexit.register(self.finish)  # a side that fails mid-run must not leave the other waiting

    def _write_turn(self, name: str) -> None:
        tmp = self.dir / f"turn.{self.name}.tmp"
        tmp.write_text(name)
        os.replace(tmp, self.dir / "turn")

    def _turn(self) -> str:
        try:
            return (self.dir / "turn").read_text()
        except FileNotFoundError:
            return ""

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while self._turn() != self.name and not (self.dir / f"done-{self.other}").exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"baton: {self.name} waited {self.timeout_s:.0f} s for its turn in {self.dir}")
            time.sleep(0.0005)

    def release(self) -> None:
        self._write_turn(self.other)

    def finish(self) -> None:
        if not self.finished:
            self.finished = True
            try:
                (self.dir / f"done-{self.name}").write_text("")
                self._write_turn(self.other)
            except OSError:  # at exit, the directory may be gone with the run that made it
                pass


def from_args(directory: str | None, name: str | None) -> Baton | None:
    """The Baton for `--baton DIR --baton-name ours|trl`, or None without --baton."""
    if not directory:
        return None
    if name not in ("ours", "trl"):
        raise SystemExit("--baton-name must be 'ours' or 'trl'")
    return Baton(directory, name, "trl" if name == "ours" else "ours")
