"""`feedbackrl sandbox run`: one JSON object with --json, one line without, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "feedbackrl.cli", "sandbox", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "sol.py").write_text("def add(a, b):\n    return a + b\n")
    (tmp_path / "wrong.py").write_text("def add(a, b):\n    return a * b\n")
    (tmp_path / "tests.py").write_text("assert add(1, 2) == 3\n")
    (tmp_path / "check.py").write_text("def check(candidate):\n    assert candidate(2, 2) == 4\n    assert candidate(1, 2) == 3\n")
    return tmp_path


def test_json_output_for_a_pass_and_a_fail(files):
    done = cli("run", str(files / "sol.py"), "--tests", str(files / "tests.py"), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["passed"], result["status"]) == (True, "passed")
    done = cli("run", str(files / "wrong.py"), "--tests", str(files / "check.py"), "--entry-point", "add", "--json")
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert (result["passed"], result["status"], result["failing_test"]) == (False, "failed", "assert candidate(1, 2) == 3")


def test_human_line_and_limits(files):
    (files / "loop.py").write_text("while True:\n    pass\n")
    done = cli("run", str(files / "loop.py"), "--timeout", "1", "--memory-mb", "256")
    assert done.returncode == 1
    assert done.stdout.startswith("timeout")
    assert len(done.stdout.strip().splitlines()) == 1


def test_missing_file_is_one_line(files):
    done = cli("run", str(files / "nope.py"), "--json")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {files / 'nope.py'}: no such solution file"]
    done = cli("run", str(files / "sol.py"), "--tests", str(files / "missing.py"))
    assert done.returncode == 2
    assert "no such tests file" in done.stderr and "Traceback" not in done.stderr
