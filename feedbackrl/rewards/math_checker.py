"""The math-verify check in a child process that can be killed when it runs past its deadline.

Why a process: some answers make sympy compute for ever inside C code that holds the GIL
(`\\boxed{9^{9^{9^{9}}}}` is a big-integer power). No thread-based deadline can interrupt that;
the caller's own thread cannot even wake up to notice. A child process can always be killed.

One checker process per parent process, started on first use (a few seconds: it imports
sympy and math-verify and runs one check before it says it is ready, so no check's deadline
pays for imports) and reused for every check; a check over its deadline kills it and
the next check starts a fresh one. It is started with `subprocess` rather than
`multiprocessing`, so it works from any thread, inside process-pool workers (daemonic or not)
and in Ray actors; it exits by itself when its stdin closes, i.e. when the parent dies.

Protocol: one JSON object per line. Request {"gold", "predicted", "float_rounding"};
reply {"same": true|false|null, "how": str} or {"exception": str}.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path


class CheckerError(RuntimeError):
    """The checker process failed to start or died while checking."""


class MathCheckerProcess:
    def __init__(self, startup_timeout_s: float = 60.0) -> None:
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen | None = None
        self._buffer = b""
        self._lock = threading.Lock()

    def check(self, gold: str, predicted: str, float_rounding: int, timeout_s: float) -> tuple[bool | None, str]:
        """`answers_equivalent(gold, predicted)` run in the child; TimeoutError past `timeout_s`."""
        request = json.dumps({"gold": gold, "predicted": predicted, "float_rounding": float_rounding}) + "\n"
        with self._lock:  # one request in flight per child
            proc = self._ensure_started()
            try:
                proc.stdin.write(request.encode())
                proc.stdin.flush()
            except (BrokenPipeError, OSError) as e:
                self._kill()
                raise CheckerError(f"math checker died: {e}") from None
            line = self._read_line(time.monotonic() + timeout_s)
            if line is None:
                self._kill()  # stuck: the only way to stop it
                raise TimeoutError(f"check took longer than {timeout_s}s")
        reply = json.loads(line)
        if "exception" in reply:
            raise CheckerError(reply["exception"])
        return reply["same"], reply["how"]

    def _ensure_started(self) -> subprocess.Popen:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._buffer = b""
        # The child must import this very package even when it is not installed (a checkout).
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "feedbackrl.rewards.math_checker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )
        ready = self._read_line(time.monotonic() + self.startup_timeout_s)
        if ready != "ready":
            self._kill()
            raise CheckerError("math checker failed to start")
        return self._proc

    def _read_line(self, deadline: float) -> str | None:
        """The next line from the child, or None if none arrives before `deadline`."""
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:  # the child exited
                self._kill()
                raise CheckerError("math checker exited unexpectedly")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def _kill(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        self._proc = None
        self._buffer = b""

    def close(self) -> None:
        with self._lock:
            self._kill()


_shared: dict[int, MathCheckerProcess] = {}
_shared_lock = threading.Lock()


def shared_checker() -> MathCheckerProcess:
    """This process's checker; a forked child gets its own rather than its parent's pipes."""
    pid = os.getpid()
    with _shared_lock:
        if pid not in _shared:
            _shared[pid] = MathCheckerProcess()
            atexit.register(_shared[pid].close)
        return _shared[pid]


def _serve() -> None:
    # Replies go to the real stdout; anything a library prints goes to stderr instead.
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    from feedbackrl.rewards.math import _silence_timeout_warning, answers_equivalent

    _silence_timeout_warning()
    # Import math-verify, sympy and the LaTeX parser now, under the start-up timeout: lazily,
    # the first check after every (re)start paid seconds of imports against its own deadline
    # and could time out on a busy machine.
    answers_equivalent("\\frac{1}{2}", "0.5")
    replies.write("ready\n")
    replies.flush()
    for line in sys.stdin:
        try:
            req = json.loads(line)
            same, how = answers_equivalent(req["gold"], req["predicted"], req["float_rounding"])
            reply = {"same": same, "how": how}
        except Exception as e:  # noqa: BLE001 - reported to the parent, which decides
            reply = {"exception": f"{type(e).__name__}: {e}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    _serve()
