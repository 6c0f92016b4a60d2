"""`feedbackrl sandbox ...` commands: run a Python file against tests in the code sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from feedbackrl.commands.errors import UserError

app = typer.Typer(no_args_is_help=True)


def _read(path: Path, what: str) -> str:
    if not path.is_file():
        raise UserError(f"{path}: no such {what} file")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read {what} file ({type(e).__name__})") from None


@app.command("run")
def run(
    solution: Path = typer.Argument(..., help="The Python file to run (untrusted)."),
    tests: Optional[Path] = typer.Option(None, "--tests", help="Test code (asserts, or `check(candidate)` with --entry-point) run after the solution."),
    entry_point: Optional[str] = typer.Option(None, "--entry-point", help="Function passed to the tests' check(candidate)."),
    timeout: float = typer.Option(10.0, "--timeout", help="Wall-clock seconds before the run is killed."),
    memory_mb: int = typer.Option(1024, "--memory-mb", help="Address-space limit of the process, MiB."),
    isolation: str = typer.Option("auto", "--isolation", help="auto (bubblewrap, else rlimits), bwrap or rlimits."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a line."),
) -> None:
    """Run SOLUTION (then TESTS) in a fresh sandbox; exit 0 if it passed, 1 if not."""
    from feedbackrl.rewards.sandbox import SandboxConfig, SandboxJob, run_job
    from feedbackrl.rewards.sandbox_isolation import MODES

    if timeout <= 0:
        raise UserError("--timeout must be > 0")
    if memory_mb < 16:
        raise UserError("--memory-mb must be at least 16")
    if isolation not in MODES:
        raise UserError(f"--isolation must be one of {', '.join(MODES)}")
    if entry_point and tests is None:
        raise UserError("--entry-point needs --tests that define check(candidate)")
    job = SandboxJob(solution=_read(solution, "solution"), tests=[_read(tests, "tests")] if tests else [],
                     entry_point=entry_point)
    config = SandboxConfig(timeout_s=timeout, memory_mb=memory_mb, isolation=isolation)
    try:
        result = run_job(job, config)
    except RuntimeError as e:  # isolation "bwrap" requested but unavailable
        raise UserError(str(e)) from None
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
    else:
        line = f"{result.status}  ({result.duration_s:.2f}s, {result.isolation or 'no'} isolation)"
        reason = result.error or result.failing_test or result.message
        typer.echo(line + (f": {reason}" if reason else ""))
    if not result.passed:
        # SystemExit, not typer.Exit: the CLI runs click with standalone_mode=False, which
        # swallows typer.Exit's code.
        raise SystemExit(1)


@app.command("info")
def info(isolation: str = typer.Option("auto", "--isolation", help="auto, bwrap or rlimits.")) -> None:
    """Which isolation this machine gives the sandbox, and the interpreter it runs."""
    import os

    from feedbackrl.rewards import sandbox_isolation as iso

    if isolation not in iso.MODES:
        raise UserError(f"--isolation must be one of {', '.join(iso.MODES)}")
    try:
        mode = iso.isolation_mode(isolation)
    except RuntimeError as e:
        raise UserError(str(e)) from None
    executable, prefix = iso.python_install()
    typer.echo(f"isolation: {mode}")
    typer.echo(f"python: {executable} (install {prefix})")
    typer.echo(f"slot uids: {'60000 + slot' if os.geteuid() == 0 else 'ours (not root)'}")
    if mode == "rlimits":
        typer.echo(f"network namespace: {'yes' if iso.unshare_net_prefix() else 'no'}")
