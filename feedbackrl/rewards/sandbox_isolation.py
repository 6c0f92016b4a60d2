"""How a sandboxed process is started: the bubblewrap command line, the fallback, the slot uids.

Two ways in, chosen once per process by `isolation_mode` (and a warning, once, when the strong
one is unavailable):

- `bwrap`: a fresh mount, pid, network, ipc, uts (and cgroup) namespace per run. The new root
  holds only read-only binds of /usr, /lib*, /bin and the Python install, a minimal /dev, no
  /proc, no /etc, no home, and a size-capped tmpfs at /tmp that is the only writable place. As
  root we start bubblewrap *without* a user namespace and let the harness drop to the slot's
  uid: a user namespace created by root would map the sandbox back to host uid 0, whereas this
  way the solution is an unprivileged host uid with no capabilities (bubblewrap also sets
  no_new_privs). As a normal user, bubblewrap's user namespace is used instead.
- `rlimits`: no bubblewrap, or it cannot create namespaces. The harness still drops to the
  slot uid and sets rlimits; `unshare --net` adds an empty network namespace where it works.
  The process sees the host filesystem (as an unprivileged uid) and the host /proc.

Either way the environment is empty, and the process tree dies with its pid namespace (bwrap)
or by uid (every process of the slot uid is killed after the run, which catches daemons that
called setsid).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

MODES = ("auto", "bwrap", "rlimits")


def python_install() -> tuple[str, str]:
    """(interpreter binary, install prefix) of the running Python, venv resolved away.

    The sandbox needs only the standard library (it runs with -I -S), so the base install is
    bound and the venv's site-packages stay outside.
    """
    executable = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    return executable, os.path.realpath(sys.base_prefix)


def _root_dir_binds() -> list[str]:
    """Recreate /bin, /lib, /lib64, /sbin as the host has them: symlinks into /usr, or ro binds."""
    args: list[str] = ["--ro-bind", "/usr", "/usr"]
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
    return args


def bwrap_command(python_argv: list[str], tmpfs_bytes: int, as_root: bool) -> list[str]:
    """The bubblewrap command line that runs `python_argv` in fresh namespaces."""
    executable, prefix = python_install()
    # --as-pid-1: the harness is the namespace's init, so its exit tears the namespace down and
    # bwrap's own exit (what we wait for) comes only after every daemon in it is dead. With
    # bwrap's reaper as init, bwrap exits as soon as the command does and the teardown races us.
    args = ["bwrap", "--die-with-parent", "--new-session", "--clearenv", "--as-pid-1"]
    if as_root:
        # See the module docstring: no user namespace as root; the harness drops to the slot
        # uid with these two capabilities and loses them on setuid.
        args += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                 "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-all"]
    args += _root_dir_binds()
    if not prefix.startswith("/usr/"):
        # Parents of the install (e.g. /root for pyenv) would be recreated with the host's
        # modes, and /root is 0700; the slot uid must be able to walk through them.
        parents = [str(p) for p in reversed(Path(prefix).parents) if str(p) != "/"]
        for parent in parents:
            args += ["--perms", "0755", "--dir", parent]
        args += ["--ro-bind", prefix, prefix]
    if not executable.startswith(prefix + "/") and not executable.startswith("/usr/"):
        args += ["--ro-bind", executable, executable]
    args += ["--dev", "/dev", "--perms", "1777", "--size", str(tmpfs_bytes), "--tmpfs", "/tmp",
             "--chdir", "/tmp", "--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp",
             "--setenv", "LANG", "C.UTF-8", "--"]
    return args + python_argv


def python_argv(harness_source: str) -> list[str]:
    executable, _ = python_install()
    # -I: ignore PYTHON* env and the user site; -S: no site import (saves ~10 ms a run and keeps
    # the venv out); -B: nothing to write anyway.
    return [executable, "-I", "-S", "-B", "-c", harness_source]


@functools.lru_cache(maxsize=None)
def unshare_net_prefix() -> tuple[str, ...]:
    """`unshare --net` when it can create a network namespace here, else nothing."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    prefix = (unshare, "--net") if os.geteuid() == 0 else (unshare, "--map-root-user", "--net")
    try:
        ok = subprocess.run([*prefix, "true"], env={}, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return prefix if ok else ()


@functools.lru_cache(maxsize=None)
def _bwrap_problem() -> str | None:
    """None when bubblewrap can start a sandboxed Python here, else why not."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    argv = bwrap_command(python_argv("pass"), 1 << 20, as_root=os.geteuid() == 0)
    try:
        done = subprocess.run(argv, env={}, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        return f"bwrap could not start: {e}"
    if done.returncode != 0:
        return f"bwrap could not create namespaces: {done.stderr.decode(errors='replace').strip()[:300]}"
    return None


@functools.lru_cache(maxsize=None)
def isolation_mode(requested: str = "auto") -> str:
    """`bwrap` or `rlimits`. Warns once per process when `auto` has to fall back."""
    if requested not in MODES:
        raise ValueError(f"isolation must be one of {MODES}, got {requested!r}")
    if requested == "rlimits":
        return "rlimits"
    problem = _bwrap_problem()
    if problem is None:
        return "bwrap"
    if requested == "bwrap":
        raise RuntimeError(f"sandbox isolation 'bwrap' is unavailable: {problem}")
    net = "a network namespace" if unshare_net_prefix() else "no network namespace (unshare failed)"
    warnings.warn(f"code sandbox: {problem}; falling back to rlimits, a separate uid and {net}. "
                  "The solution can read the host filesystem. Install bubblewrap (make sandbox-deps).",
                  RuntimeWarning, stacklevel=2)
    log.warning("code sandbox falling back to rlimits: %s", problem)
    return "rlimits"


def _live_processes_of_uid(uid: int) -> list[int]:
    """Pids whose real uid is `uid`, zombies (already dead, awaiting their reaper) left out."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            # Not the owner of /proc/PID: a process that dropped from root is not dumpable and
            # its /proc entry stays owned by root. The Uid line holds the real uid.
            with open(f"/proc/{entry.name}/status", "rb") as f:
                status = f.read(4096)
        except OSError:
            continue
        uid_at, state_at = status.find(b"\nUid:"), status.find(b"\nState:")
        if uid_at < 0 or int(status[uid_at + 5:].split(None, 1)[0]) != uid:
            continue
        if state_at >= 0 and status[state_at + 7:].split(None, 1)[0] in (b"Z", b"X"):
            continue
        found.append(int(entry.name))
    return found


def kill_uid(uid: int, deadline_s: float = 2.0) -> int:
    """SIGKILL every live process whose real uid is `uid` (a slot uid, never ours) and wait
    until none is left; returns how many signals were sent.

    Repeated because a fork storm can create processes while we scan (the per-uid process
    rlimit bounds how many), and because SIGKILL takes effect when the target is next scheduled.
    """
    if uid == os.getuid() or uid == 0:
        raise ValueError("refusing to kill processes of our own uid or root")
    sent, give_up = 0, time.monotonic() + deadline_s
    while True:
        pids = _live_processes_of_uid(uid)
        if not pids:
            return sent
        if time.monotonic() > give_up:
            log.error("processes of sandbox uid %d survived SIGKILL: %s", uid, pids[:10])
            return sent
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                sent += 1
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.001)


_LOCK_DIR = "/run/feedbackrl-sandbox" if os.path.isdir("/run") else "/tmp/feedbackrl-sandbox"


class UidLease:
    """An exclusive claim on a slot uid across processes, held for one run.

    Two pools on one machine (two trainers, Ray workers) would otherwise hand the same uid to
    two concurrent runs, and the kill-by-uid after one run would kill the other. The claim is
    an flock on /run/feedbackrl-sandbox/<uid>.lock, which the kernel drops if we die; a taken
    uid makes us try the next one.
    """

    def __init__(self, first_uid: int, slot: int, span: int = 4096):
        import fcntl

        os.makedirs(_LOCK_DIR, mode=0o700, exist_ok=True)
        for uid in range(first_uid + slot, first_uid + slot + span):
            fd = os.open(os.path.join(_LOCK_DIR, f"{uid}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid, self._fd = uid, fd
            return
        raise RuntimeError(f"no free sandbox uid in {first_uid + slot}..{first_uid + slot + span - 1}")

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing drops the flock
            self._fd = -1
