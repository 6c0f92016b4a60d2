"""Run untrusted Python against unit tests in a fresh sandboxed process, and a pool of them.

The verdict never comes from the exit code, stdout or a file the program can write. The parent
makes fresh random tokens for each run (one to say the harness started, one per test group
that passes, one to close the verdict) and hands them to the harness over stdin, which the
harness closes before the solution runs. The harness writes them to a pipe the parent owns; a
test group passed only if its token came back before the end token. See `sandbox_harness.py`
for why the solution cannot learn or forge them, and `sandbox_isolation.py` (and
docs/sandbox.md) for the namespaces, uids and rlimits around the process.

Infrastructure failures (bubblewrap or Python could not start) come back as `status="error"`
with `error` set, which `CodeReward` turns into `RewardResult.error` rather than a score of 0.
"""

from __future__ import annotations

import ast
import marshal
import os
import queue
import secrets
import selectors
import signal
import subprocess
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from feedbackrl.rewards import sandbox_isolation as isolation

HARNESS_SOURCE = Path(__file__).with_name("sandbox_harness.py").read_text()
STATUSES = ("passed", "failed", "timeout", "memory", "killed", "output_limit", "error")
_REPORT_LIMIT = 256 * 1024  # the harness writes tokens and a short JSON line; more is hostile


@dataclass
class SandboxConfig:
    timeout_s: float = 10.0  # wall clock for the whole run; CPU time is capped at ceil(this) + 1
    memory_mb: int = 1024  # address space (RLIMIT_AS) of each process
    max_processes: int = 64  # RLIMIT_NPROC for the slot uid: bounds fork storms
    max_file_mb: int = 16  # RLIMIT_FSIZE: the largest file the program may write
    tmpfs_mb: int = 64  # size of the writable /tmp under bubblewrap
    output_limit_bytes: int = 1 << 20  # stdout + stderr; the run is killed past this
    tail_bytes: int = 4096  # how much of stdout/stderr the result keeps
    isolation: str = "auto"  # "auto" (bwrap, else rlimits with a warning), "bwrap", "rlimits"
    first_uid: int = 60000  # slot k runs as uid first_uid + k when we are root


@dataclass
class SandboxJob:
    solution: str
    # Test groups, each run in its own namespace; the fraction that pass is `tests_passed`.
    # A group is statements (asserts) or, with `entry_point`, code defining `check(candidate)`.
    tests: Sequence[str] = ()
    entry_point: str | None = None
    # Trusted code run in each test namespace before the tests (e.g. the HumanEval prompt,
    # which defines helpers such as `poly` that tests call: the solution's copy is not trusted).
    setup: str | None = None
    # With an entry point, fail a candidate that returns anything but builtin values (and the
    # stdlib containers): an object whose __eq__ always says True would pass every `==` test.
    check_returns: bool = True


@dataclass
class SandboxResult:
    passed: bool
    status: str  # one of STATUSES
    tests_passed: int = 0
    tests_total: int = 0
    stdout: str = ""  # tails, at most `tail_bytes` each
    stderr: str = ""
    duration_s: float = 0.0
    failing_test: str | None = None  # the assert line that failed, when known
    message: str | None = None  # "AssertionError: ...", "MemoryError", ...
    exit_code: int | None = None
    error: str | None = None  # infrastructure failure: the sandbox itself did not work
    isolation: str = ""
    uid: int | None = None  # the slot uid the code ran as (None when we are not root)
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class _Tail:
    """Keeps the last `size` bytes of a stream and counts all of them."""

    def __init__(self, size: int):
        self.size, self.total, self.data = size, 0, bytearray()

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data += chunk
        if len(self.data) > 2 * self.size:
            del self.data[: len(self.data) - self.size]

    def text(self) -> str:
        return bytes(self.data[-self.size:]).decode("utf-8", "replace")


def run_job(job: SandboxJob, config: SandboxConfig | None = None, slot: int = 0) -> SandboxResult:
    """Run one job in a fresh sandbox. Never raises for the job's behaviour or for a broken
    sandbox: both come back as a `SandboxResult`."""
    config = config or SandboxConfig()
    started = time.monotonic()
    try:
        mode = isolation.isolation_mode(config.isolation)
        return _run(job, config, slot, mode, started)
    except Exception as e:  # noqa: BLE001 - infrastructure, reported not raised
        return SandboxResult(False, "error", tests_total=max(1, len(job.tests)), error=f"{type(e).__name__}: {e}",
                             duration_s=time.monotonic() - started)


def _run(job: SandboxJob, config: SandboxConfig, slot: int, mode: str, started: float) -> SandboxResult:
    lease = isolation.UidLease(config.first_uid, slot) if os.geteuid() == 0 else None
    try:
        return _run_as(job, config, mode, started, lease.uid if lease else None)
    finally:
        if lease is not None:
            lease.release()


def _run_as(job: SandboxJob, config: SandboxConfig, mode: str, started: float, uid: int | None) -> SandboxResult:
    as_root = uid is not None
    groups = max(1, len(job.tests))
    start_token, end_token = secrets.token_hex(16), secrets.token_hex(16)
    pass_tokens = [secrets.token_hex(16) for _ in range(groups)]
    report_r, report_w = os.pipe()
    settings = {"report_fd": report_w, "uid": uid, "gid": uid, "block_proc": mode == "rlimits",
                "memory_bytes": config.memory_mb << 20, "cpu_seconds": int(config.timeout_s) + 1,
                "max_processes": config.max_processes, "max_file_bytes": config.max_file_mb << 20}
    # marshal: the harness runs on this same interpreter, and loading it costs no imports.
    payload = marshal.dumps({"settings": settings, "start_token": start_token, "end_token": end_token,
                             "pass_tokens": pass_tokens, "solution": job.solution, "tests": list(job.tests),
                             "entry_point": job.entry_point, "setup": job.setup,
                             "check_returns": job.check_returns})
    argv = isolation.python_argv(HARNESS_SOURCE)
    workdir = None
    if mode == "bwrap":
        argv, env, cwd = isolation.bwrap_command(argv, config.tmpfs_mb << 20, as_root), {}, None
    else:
        workdir = tempfile.mkdtemp(prefix="feedbackrl-sandbox-")
        if uid is not None:
            os.chown(workdir, uid, uid)
        os.chmod(workdir, 0o700)
        argv = [*isolation.unshare_net_prefix(), *argv]
        env, cwd = {"HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}, workdir
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=(report_w,), env=env, cwd=cwd, start_new_session=True)
    except OSError:
        os.close(report_r)
        os.close(report_w)
        raise
    os.close(report_w)
    try:
        out, err, report, timed_out, over_limit = _communicate(proc, payload, report_r, config, started)
        exit_code = proc.wait()
    finally:
        os.close(report_r)
        if proc.poll() is None:
            _kill_tree(proc, uid)
            proc.wait()
        # Daemons that left the process group: under bwrap they died with the pid namespace;
        # without it, and after any kill, every process of the slot uid goes.
        if uid is not None and (mode == "rlimits" or proc.returncode < 0):
            isolation.kill_uid(uid)
        if workdir is not None:
            _remove_tree(workdir)
    result = _classify(report, start_token, end_token, pass_tokens, exit_code, timed_out, over_limit, out, err, config)
    result.duration_s, result.isolation, result.tests_total = time.monotonic() - started, mode, groups
    result.uid = uid
    return result


def _communicate(proc: subprocess.Popen, payload: bytes, report_fd: int, config: SandboxConfig,
                 started: float) -> tuple[_Tail, _Tail, bytearray, bool, bool]:
    """Feed stdin, read stdout/stderr/report with caps, until the process exits or must die."""
    out, err, report = _Tail(config.tail_bytes), _Tail(config.tail_bytes), bytearray()
    deadline = started + config.timeout_s
    sel = selectors.DefaultSelector()
    try:
        pidfd: int | None = os.pidfd_open(proc.pid)  # readable when the process exits
    except (AttributeError, OSError):  # kernel < 5.3: poll for the exit instead
        pidfd = None
    readers = {proc.stdout.fileno(): out, proc.stderr.fileno(): err, report_fd: report}
    for fd in readers:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    if pidfd is not None:
        sel.register(pidfd, selectors.EVENT_READ)
    stdin_fd, sent = proc.stdin.fileno(), 0
    os.set_blocking(stdin_fd, False)
    sel.register(stdin_fd, selectors.EVENT_WRITE)
    timed_out = over_limit = exited = False
    try:
        while readers and not exited:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            if pidfd is None:
                exited = proc.poll() is not None
                remaining = min(remaining, 0.01)
            for key, _ in sel.select(remaining):
                fd = key.fd
                if fd == pidfd:
                    exited = True
                elif fd == stdin_fd:
                    try:
                        sent += os.write(stdin_fd, payload[sent:sent + 65536])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:  # the harness is gone; the report will say why
                        sent = len(payload)
                    if sent >= len(payload):
                        sel.unregister(stdin_fd)
                        proc.stdin.close()
                else:
                    _read_into(fd, readers, sel)
            if out.total + err.total > config.output_limit_bytes:
                over_limit = True
                break
        # The process has exited (or must die): take what is already in the pipes, no more.
        for fd in list(readers):
            while _read_into(fd, readers, sel):
                pass
    finally:
        if proc.stdin and not proc.stdin.closed:
            try:
                proc.stdin.close()
            except OSError:
                pass
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
    if timed_out or over_limit:
        _kill_tree(proc, None)
    return out, err, report, timed_out, over_limit


def _read_into(fd: int, readers: dict, sel: selectors.BaseSelector) -> bool:
    """Read one chunk from `fd` into its sink; False on EOF or nothing available."""
    if fd not in readers:
        return False
    try:
        chunk = os.read(fd, 65536)
    except BlockingIOError:
        return False
    sink = readers[fd]
    if not chunk:
        sel.unregister(fd)
        del readers[fd]
        return False
    if isinstance(sink, bytearray):
        if len(sink) < _REPORT_LIMIT:
            sink += chunk[: _REPORT_LIMIT - len(sink)]
    else:
        sink.add(chunk)
    return True


def _kill_tree(proc: subprocess.Popen, uid: int | None) -> None:
    # bwrap: killing it kills the sandbox's init (die-with-parent), which tears down the pid
    # namespace and every process in it. Without bwrap: the process group, then the slot uid.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if uid is not None:
        isolation.kill_uid(uid)


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _classify(report: bytearray, start_token: str, end_token: str, pass_tokens: list[str], exit_code: int,
              timed_out: bool, over_limit: bool, out: _Tail, err: _Tail, config: SandboxConfig) -> SandboxResult:
    text = bytes(report).decode("ascii", "replace")
    start_at = text.find(start_token)
    end_at = text.find(end_token, start_at + 1) if start_at >= 0 else -1
    verdict = set(text[start_at + len(start_token):end_at].split()) if end_at >= 0 else set()
    tests_passed = sum(token in verdict for token in pass_tokens)
    details: dict = {}
    if end_at >= 0:
        try:
            # A Python literal of str/int values (the harness avoids importing json).
            details = ast.literal_eval(text[end_at + len(end_token):].strip().split("\n", 1)[0] or "{}")
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            details = {}
        if not isinstance(details, dict):
            details = {}
    result = SandboxResult(False, "failed", tests_passed=tests_passed, stdout=out.text(), stderr=err.text(),
                           exit_code=exit_code, details=details, failing_test=details.get("failing_test"))
    exception, message = details.get("exception"), details.get("message")
    result.message = f"{exception}: {message}" if exception and message else exception or message
    if start_at < 0:
        result.status = "error"
        reason = f"did not start within {config.timeout_s}s" if timed_out else f"exited with code {exit_code}"
        result.error = f"sandbox {reason}: {result.stderr.strip()[-500:] or 'no output'}"
    elif end_at >= 0 and tests_passed == len(pass_tokens):
        result.passed, result.status = True, "passed"
    elif timed_out:
        result.status, result.message = "timeout", f"timed out after {config.timeout_s}s"
    elif over_limit:
        result.status, result.message = "output_limit", f"output over {config.output_limit_bytes} bytes"
    elif exception == "MemoryError" or (end_at < 0 and ("MemoryError" in result.stderr
                                                         or "Cannot allocate memory" in result.stderr)):
        result.status = "memory"
    elif end_at < 0:
        signal_number = -exit_code if exit_code < 0 else exit_code - 128 if exit_code > 128 else 0
        if signal_number == signal.SIGXCPU:
            result.status, result.message = "timeout", "CPU time limit"
        elif signal_number:
            result.status, result.message = "killed", f"killed by signal {signal_number}"
        else:
            result.message = result.message or f"exited with code {exit_code} before the tests finished"
    return result


class SandboxPool:
    """Runs jobs in parallel, one sandboxed process per job, `workers` at a time.

    Each worker thread owns a slot (and, as root, the slot's uid), so processes of concurrent
    runs never share a uid and a per-uid kill after one run cannot touch another. `submit`
    returns a future at once, so reward code can score while generation goes on.
    """

    # Runs are latency-bound, not CPU-bound: most of a run's wall time is spent blocked in the
    # kernel building and tearing down its namespaces and mounts. With one worker per core the
    # cores sat 64% idle (2 workers: 38 runs/s at 72% of one core's worth of CPU; 6 workers:
    # 57 runs/s at 109%, on a loaded 2-core machine), so the default is three per core.
    WORKERS_PER_CORE = 3

    def __init__(self, workers: int | None = None, config: SandboxConfig | None = None):
        self.workers = workers or self.WORKERS_PER_CORE * (os.cpu_count() or 1)
        self.config = config or SandboxConfig()
        try:  # probe (and warn about a fallback) once, here, not in several workers at once
            isolation.isolation_mode(self.config.isolation)
        except (RuntimeError, ValueError):
            pass  # every run will report it as its `error`
        self._slots: queue.SimpleQueue[int] = queue.SimpleQueue()
        for slot in range(self.workers):
            self._slots.put(slot)
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sandbox")

    def _run_in_slot(self, job: SandboxJob) -> SandboxResult:
        slot = self._slots.get()
        try:
            return run_job(job, self.config, slot)
        finally:
            self._slots.put(slot)

    def submit(self, job: SandboxJob) -> Future[SandboxResult]:
        return self._executor.submit(self._run_in_slot, job)

    def run(self, jobs: Iterable[SandboxJob]) -> list[SandboxResult]:
        """Run all jobs; results in the order of `jobs`."""
        return [f.result() for f in [self.submit(job) for job in jobs]]

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
