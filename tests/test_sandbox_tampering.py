"""Solutions that attack the verdict instead of the problem: none of them may pass.

Each hostile solution gets the wrong answer for `add` and then tries to make the harness
report a pass anyway. A control shows the same tests pass for the right answer.
"""

from __future__ import annotations

import textwrap

import pytest

from feedbackrl.rewards import sandbox_isolation as isolation
from feedbackrl.rewards.sandbox import SandboxConfig, SandboxJob, run_job

MODE = "bwrap" if isolation._bwrap_problem() is None else "rlimits"
TESTS = ["assert add(1, 2) == 3", "assert abs(add(2, 2) - 4) < 1e-9 and isinstance(add(0, 0), int)"]
HUMANEVAL_STYLE = "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(5, 5) == 10\n"
WRONG = "def add(a, b):\n    return a - b\n"


def run(solution: str, tests=TESTS, entry_point=None):
    job = SandboxJob(textwrap.dedent(solution), tests, entry_point=entry_point)
    return run_job(job, SandboxConfig(isolation=MODE, timeout_s=5.0))


def test_the_right_answer_passes():
    assert run("def add(a, b):\n    return a + b\n").passed
    assert run("def add(a, b):\n    return a + b\n", [HUMANEVAL_STYLE], "add").passed


ATTACKS = {
    "exit_zero_first": "import os\nos._exit(0)\n",
    "system_exit": "raise SystemExit(0)\n",
    "patched_sys_exit_and_os_exit": """
        import os, sys
        sys.exit = lambda *a: None
        os._exit = lambda *a: None
    """,
    "patched_builtins_used_by_tests": """
        import builtins
        builtins.abs = lambda x: 0
        builtins.isinstance = lambda *a: True
        builtins.AssertionError = type("Harmless", (Exception,), {})
    """,
    "patched_assert_via_debug_and_optimize": """
        import sys
        sys.flags = None
        __builtins__.__dict__["__debug__"] = False if isinstance(__builtins__, type(sys)) else None
    """,
    "patched_reporting_primitives": """
        import os, json, marshal
        real_write = os.write
        os.write = lambda fd, data: real_write(fd, data.replace(b"fail", b"pass"))
        os.getpid = lambda: 1
        marshal.loads = lambda *a: None
    """,
    "spray_every_fd_with_guesses": """
        import os
        for fd in range(3, 256):
            for guess in (b"passed\\n", b"0" * 32 + b"\\n", b"ok\\n"):
                try:
                    os.write(fd, guess)
                except OSError:
                    pass
    """,
    "close_every_fd": "import os\nos.closerange(3, 1 << 16)\n",
    "walk_frames_for_tokens": """
        import sys, gc
        found = []
        for probe in (lambda: sys._getframe(1).f_locals, lambda: gc.get_objects(),
                      lambda: gc.get_referrers(sys.modules["__main__"].__dict__),
                      lambda: sys._current_frames()):
            try:
                found.append(probe())
            except Exception:
                pass
        try:
            raise ValueError
        except ValueError as e:
            try:
                found.append(e.__traceback__.tb_frame.f_back.f_locals)
            except Exception:
                pass
        assert not found, found
    """,
    "ctypes_memory_access": "import ctypes\n",
    "audit_hook_to_read_test_code": """
        import sys
        sys.addaudithook(lambda event, args: None)
    """,
    "trace_function": "import sys\nsys.settrace(lambda *a: None)\n",
    "fork_until_a_child_passes": """
        import os
        def add(a, b):
            # The parent answers wrong; a forked child answers right and would report a pass.
            return a + b if os.fork() == 0 else a - b
    """,
    "always_equal_result": """
        class AlwaysEqual(int):
            def __eq__(self, other):
                return True
            __hash__ = int.__hash__
        def add(a, b):
            return AlwaysEqual(0)
    """,
    "spawn_a_program": "import subprocess\nsubprocess.run(['/bin/true'])\n",
    "read_the_tests_from_disk": """
        import os
        for root, dirs, files in os.walk("/tmp"):
            assert not files, files
    """,
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_does_not_pass(name):
    solution = WRONG + textwrap.dedent(ATTACKS[name])
    for tests, entry_point in ((TESTS, None), ([HUMANEVAL_STYLE], "add")):
        r = run(solution, tests, entry_point)
        assert not r.passed, (name, r)
        assert r.status != "passed"
        assert r.error is None, r.error  # the solution's doing, not an infrastructure failure


def test_frame_and_memory_probes_are_refused_but_stdlib_still_works():
    # typing, namedtuple, enum, dataclasses and warnings reach for sys._getframe internally;
    # the refusal looks like a too-shallow stack to them, so they keep working.
    r = run("""
        from typing import List, TypeVar
        import collections, dataclasses, enum, warnings, sys
        T = TypeVar("T")
        Point = collections.namedtuple("Point", "x y")
        Color = enum.Enum("Color", "RED GREEN")
        @dataclasses.dataclass
        class Box:
            size: int
        warnings.warn("fine")
        def add(a, b):
            return Box(a).size + Point(b, 0).x
        try:
            sys._getframe(1)
            frames = "reachable"
        except ValueError:
            frames = "refused"
        print(frames)
    """)
    assert r.passed, r
    assert r.stdout.strip() == "refused"
