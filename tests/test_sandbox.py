"""Hostile programs in the code sandbox: each is contained and scored as a failure.

Run under both isolation modes where the host allows them: `bwrap` (namespaces) and `rlimits`
(the fallback). Checks that need root (slot uids) or bubblewrap skip with a reason otherwise.
"""

from __future__ import annotations

import os
import resource
import select
import socket
import tempfile
import textwrap

import pytest

from feedbackrl.rewards import sandbox_isolation as isolation
from feedbackrl.rewards.sandbox import SandboxConfig, SandboxJob, SandboxPool, run_job

IS_ROOT = os.geteuid() == 0
HAS_BWRAP = isolation._bwrap_problem() is None
MODES = [pytest.param("bwrap", marks=pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap unavailable")),
         pytest.param("rlimits", marks=pytest.mark.skipif(not IS_ROOT, reason="the fallback needs root for slot uids"))]


def run(mode: str, solution: str, tests=("assert True",), **config) -> object:
    config.setdefault("timeout_s", 5.0)
    return run_job(SandboxJob(textwrap.dedent(solution), list(tests)), SandboxConfig(isolation=mode, **config))


def processes_of_uid(uid: int) -> list[int]:
    """Live (not zombie) processes of a slot uid."""
    return isolation._live_processes_of_uid(uid)


@pytest.mark.parametrize("mode", MODES)
def test_correct_and_wrong_solutions(mode):
    good = run(mode, "def add(a, b):\n    return a + b\n", ["assert add(1, 2) == 3"])
    assert (good.passed, good.status, good.error, good.isolation) == (True, "passed", None, mode)
    bad = run(mode, "def add(a, b):\n    return a - b\n", ["assert add(1, 2) == 3, 'add is wrong'"])
    assert (bad.passed, bad.status) == (False, "failed")
    assert bad.failing_test == "assert add(1, 2) == 3, 'add is wrong'"
    assert bad.message == "AssertionError: add is wrong"


@pytest.mark.parametrize("mode", MODES)
def test_partial_test_groups_are_counted(mode):
    r = run(mode, "def sq(x):\n    return x * x if x < 3 else 0\n", ["assert sq(2) == 4", "assert sq(3) == 9", "assert sq(1) == 1"])
    assert (r.passed, r.tests_passed, r.tests_total) == (False, 2, 3)


@pytest.mark.parametrize("mode", MODES)
def test_infinite_loop_times_out(mode):
    r = run(mode, "while True:\n    pass\n", timeout_s=1.0)
    assert (r.passed, r.status) == (False, "timeout")


@pytest.mark.parametrize("mode", MODES)
def test_ten_gigabyte_allocation_is_a_memory_failure(mode):
    r = run(mode, "x = bytearray(10 * 1024 ** 3)\n")
    assert (r.passed, r.status) == (False, "memory")


@pytest.mark.parametrize("mode", MODES)
def test_fork_storm_is_bounded_and_reaped(mode):
    # 200 children that would live for a minute; the process rlimit stops the storm early.
    r = run(mode, """
        import os, time
        forked = 0
        for _ in range(200):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(60)
                os._exit(0)
            forked += 1
        print("forked", forked)
    """, ["assert forked == 200"], max_processes=32)
    assert (r.passed, r.status) == (False, "failed")
    assert int(r.stdout.split()[-1]) < 32
    if IS_ROOT:
        assert r.uid is not None and processes_of_uid(r.uid) == []


@pytest.mark.skipif(not IS_ROOT, reason="needs slot uids to find the daemon afterwards")
@pytest.mark.parametrize("mode", MODES)
def test_double_fork_daemon_dies_with_the_run(mode):
    r = run(mode, """
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            os._exit(0)
        os.wait()
    """, ["assert False, 'the daemon must not help'"])
    assert not r.passed
    assert r.uid is not None and processes_of_uid(r.uid) == []


@pytest.mark.parametrize("mode", MODES)
def test_files_outside_the_sandbox_are_untouched(mode):
    # Under bubblewrap even a world-writable file is out of reach (not mounted); the fallback
    # only has uid permissions, so there the victim is an ordinary root-owned file.
    folder = tempfile.mkdtemp(dir="/tmp")
    victim = os.path.join(folder, "victim.txt")
    with open(victim, "w") as f:
        f.write("precious")
    if mode == "bwrap":
        os.chmod(folder, 0o777)
        os.chmod(victim, 0o666)
    else:
        os.chmod(folder, 0o755)
        os.chmod(victim, 0o644)
    try:
        r = run(mode, f"""
            import os
            results = []
            for attempt in (lambda: open({victim!r}, "w").write("pwned"), lambda: os.remove({victim!r}),
                            lambda: open("/usr/pwned", "w"), lambda: os.rmdir({folder!r})):
                try:
                    attempt()
                    results.append("ok")
                except OSError as e:
                    results.append(type(e).__name__)
            print(results)
        """, ["assert results == ['ok', 'ok', 'ok', 'ok']"])
        assert not r.passed
        with open(victim) as f:
            assert f.read() == "precious"
        assert not os.path.exists("/usr/pwned")
    finally:
        os.remove(victim)
        os.rmdir(folder)


@pytest.mark.parametrize("mode", MODES)
def test_no_network_to_a_local_listener(mode):
    if mode == "rlimits" and not isolation.unshare_net_prefix():
        pytest.skip("unshare cannot create a network namespace here")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        r = run(mode, f"""
            import socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"hello")
                connected = True
            except OSError:
                connected = False
        """, ["assert connected"])
        assert (r.passed, r.status) == (False, "failed")
        readable, _, _ = select.select([listener], [], [], 0)
        assert readable == []


@pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap unavailable (the fallback sees the host /etc)")
def test_host_passwd_is_not_visible():
    with open("/etc/passwd") as f:
        first_line = f.readline().strip()
    r = run("bwrap", "print(open('/etc/passwd').read())\n")
    assert (r.passed, r.status) == (False, "failed")
    assert r.message.startswith("FileNotFoundError")
    assert first_line not in r.stdout


@pytest.mark.parametrize("mode", MODES)
def test_parent_environment_secrets_do_not_leak(mode, monkeypatch):
    monkeypatch.setenv("FEEDBACKRL_TEST_SECRET", "hunter2-do-not-leak")
    r = run(mode, """
        import os, sys
        print(dict(os.environ), sys.argv)
        print(open("/proc/self/environ").read() if os.path.exists("/proc/self/environ") else "")
        print(open("/proc/1/environ").read() if os.path.exists("/proc/1/environ") else "")
    """)
    assert "hunter2" not in r.stdout + r.stderr


@pytest.mark.parametrize("mode", MODES)
def test_a_hundred_megabytes_of_stdout_is_capped(mode):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = run(mode, "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * (1 << 20))\n")
    assert (r.passed, r.status) == (False, "output_limit")
    assert len(r.stdout) <= SandboxConfig().tail_bytes
    # ru_maxrss is in KiB: the parent never held more than a few MiB of the output.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024


@pytest.mark.parametrize("mode", MODES)
def test_exit_zero_before_the_asserts_is_a_failure(mode):
    r = run(mode, "import os\nos._exit(0)\n", ["assert False"])
    assert (r.passed, r.status, r.exit_code) == (False, "failed", 0)
    r = run(mode, "raise SystemExit(0)\n", ["assert False"])
    assert (r.passed, r.status) == (False, "failed")


def test_an_infrastructure_failure_is_an_error_not_a_fail(monkeypatch):
    # Python cannot even start: the result must say the sandbox broke, not that the code is wrong.
    monkeypatch.setattr(isolation, "python_install", lambda: ("/nonexistent/python3", "/nonexistent"))
    r = run("rlimits" if IS_ROOT else "bwrap", "x = 1\n")
    assert (r.passed, r.status) == (False, "error")
    assert r.error


def test_pool_runs_jobs_in_parallel_slots_in_order():
    jobs = [SandboxJob(f"def f():\n    return {i}\n", [f"assert f() == {i if i % 3 else -1}"]) for i in range(8)]
    with SandboxPool(workers=2) as pool:
        futures = [pool.submit(job) for job in jobs]
        results = [f.result() for f in futures]
        assert [r.passed for r in pool.run(jobs)] == [r.passed for r in results]
    assert [r.passed for r in results] == [i % 3 != 0 for i in range(8)]


def test_fallback_warns_once_and_bwrap_only_refuses(monkeypatch):
    monkeypatch.setattr(isolation, "_bwrap_problem", lambda: "bubblewrap (bwrap) is not installed")
    isolation.isolation_mode.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="falling back to rlimits") as caught:
            assert isolation.isolation_mode("auto") == "rlimits"
            assert isolation.isolation_mode("auto") == "rlimits"
        assert len(caught) == 1
        with pytest.raises(RuntimeError, match="not installed"):
            isolation.isolation_mode("bwrap")
        assert run_job(SandboxJob("x = 1"), SandboxConfig(isolation="bwrap")).error
    finally:
        isolation.isolation_mode.cache_clear()


@pytest.mark.skipif(not IS_ROOT, reason="slot uids are only leased as root")
def test_uid_leases_never_hand_one_uid_to_two_runs():
    first = isolation.UidLease(61000, 0)
    second = isolation.UidLease(61000, 0)
    try:
        assert (first.uid, second.uid) == (61000, 61001)
    finally:
        first.release()
        second.release()
    third = isolation.UidLease(61000, 0)
    assert third.uid == 61000
    third.release()
