"""The program that runs inside the sandbox: drop privileges, read the job, run it, report.

This file is executed as `python -I -S -c <this source>` with the job on stdin (marshal, from
the same interpreter), so it imports only builtin modules and never `feedbackrl`; `json` alone
would cost ~8 ms of `re`/`enum` imports per run. It is trusted until it runs the solution; from
then on everything in the process is hostile, so the order below is the security argument:

1. Read the whole job from stdin (settings, tokens, solution, tests), then close stdin: the
   tests never exist as a file the solution could read.
2. Drop to the slot's uid (when started as root) and set rlimits.
3. Capture `os.write`, `os.getpid` and `os._exit` in locals, copy the builtins for the tests,
   and install an audit hook that cannot be removed and that refuses every way Python code can
   reach another frame's locals or raw memory (`sys._getframe`, `tb_frame`/`gi_frame`,
   `gc.get_referrers`, tracing, `ctypes`, new audit hooks) and every way to start a program.
   The tokens live only in `main`'s locals, so the solution cannot read them.
4. Write the start token, run the solution, run each test group in a namespace whose builtins
   are the pristine copy (a solution that rebinds `builtins.abs` or `isinstance` changes only
   its own namespace), and write the pass token of each group that finished without raising,
   then the end token. The parent believes only tokens, never the exit code or stdout, so
   `os._exit(0)`, a patched `sys.exit` or a closed report pipe can only turn a pass into a fail.
   A forked copy of the harness refuses to report (its pid differs), so a solution cannot fork
   to try answers until one passes.
"""

import builtins
import marshal
import os
import resource
import sys
import types  # noqa: F401 - its import reads tb_frame, which the audit hook refuses later
from collections import Counter, OrderedDict, defaultdict, deque

_BLOCKED_EVENTS = frozenset({
    "sys._getframe", "sys._current_frames", "sys._current_exceptions", "sys.settrace",
    "sys.setprofile", "sys.addaudithook", "gc.get_objects",
    "gc.get_referrers", "gc.get_referents", "subprocess.Popen", "os.system", "os.exec",
    "os.posix_spawn", "os.spawn", "os.fork_exec", "pty.spawn",
})
# Audited attribute reads that lead to a frame (and from there to any caller's locals).
_FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
_BLOCKED_MODULES = frozenset({"ctypes", "_ctypes", "_testcapi", "_testinternalcapi", "_xxsubinterpreters"})


def _drop_privileges_and_limit(settings):
    uid, gid = settings.get("uid"), settings.get("gid")
    if uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise SystemExit("sandbox harness: could not drop privileges")
    limits = (
        (resource.RLIMIT_AS, settings["memory_bytes"]),
        (resource.RLIMIT_CPU, settings["cpu_seconds"]),
        (resource.RLIMIT_NPROC, settings["max_processes"]),
        (resource.RLIMIT_FSIZE, settings["max_file_bytes"]),
        (resource.RLIMIT_CORE, 0),
    )
    for which, value in limits:
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))


def _read_job():
    chunks = []
    while True:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return marshal.loads(b"".join(chunks))


def _make_audit_hook(block_proc):
    blocked_events, blocked_modules, frame_attributes = _BLOCKED_EVENTS, _BLOCKED_MODULES, _FRAME_ATTRIBUTES
    str_type, bytes_type = str, bytes

    def hook(event, args):
        # The exception types are chosen so the standard library's own fallbacks apply:
        # typing, namedtuple, enum and warnings call sys._getframe inside `except ValueError`
        # (as if the stack were too shallow), and getattr(gen, "gi_frame", None) still works.
        if event == "sys._getframe":
            raise ValueError("sandbox: frame inspection is not allowed")
        if event == "object.__getattr__" and args[1] in frame_attributes:
            raise AttributeError("sandbox: frame inspection is not allowed")
        if event in blocked_events or event.startswith("ctypes."):
            raise RuntimeError(f"sandbox: {event} is not allowed")
        if event == "import" and args[0] in blocked_modules:
            raise ImportError(f"sandbox: module {args[0]} is not allowed")
        # Without bubblewrap the host /proc is visible; /proc/<harness>/mem would expose the
        # tokens. Under bubblewrap there is no /proc at all.
        if block_proc and event == "open" and type(args[0]) in (str_type, bytes_type):
            path = args[0] if type(args[0]) is str_type else args[0].decode("utf-8", "replace")
            if "proc" in path:
                raise PermissionError(f"sandbox: {path} is not allowed")

    return hook


# What a candidate may return when `check_returns` is on: builtin values (and the stdlib
# containers solutions use for them), compared by their own __eq__, never by one the solution
# wrote. An object whose __eq__ always says True is the classic way to pass `==` tests.
_VALUE_TYPES = frozenset({int, float, complex, bool, str, bytes, type(None), range, slice})
_CONTAINER_TYPES = frozenset({list, tuple, set, frozenset, dict, Counter, OrderedDict, defaultdict, deque})
_LAZY_TYPES = frozenset({type((lambda: (yield))()), map, filter, zip, enumerate, reversed,
                         type(iter([])), type(iter(())), type(iter("")), type(iter(range(0)))})


def _guard_returns(function):
    value_types, container_types, lazy_types = _VALUE_TYPES, _CONTAINER_TYPES, _LAZY_TYPES
    dict_types, type_of, error = (dict, Counter, OrderedDict, defaultdict), type, TypeError

    def check_value(value, depth):
        kind = type_of(value)
        if kind in value_types or (kind in lazy_types and depth == 0):
            return
        if kind not in container_types or depth > 50:
            raise error(f"candidate returned a {kind.__name__!s}, not a builtin value")
        for item in (value.items() if kind in dict_types else value):
            if kind in dict_types:
                check_value(item[0], depth + 1)
                check_value(item[1], depth + 1)
            else:
                check_value(item, depth + 1)

    def guarded(*args, **kwargs):
        result = function(*args, **kwargs)
        check_value(result, 0)
        return result

    return guarded


def _failure_details(exc, test_sources):
    """Describe the failure without trusting the exception object more than needed."""
    details = {"exception": type(exc).__name__}
    if type(exc) is AssertionError and exc.args and type(exc.args[0]) is str:
        details["message"] = exc.args[0][:500]
    elif type(exc) is not AssertionError:
        try:
            details["message"] = str(exc)[:500]
        except BaseException:  # noqa: BLE001 - a hostile __str__
            pass
    # The deepest traceback line that is an assert of the tests names the failing test.
    # tb_lineno needs no frame access, so the audit hook stays armed.
    lines = [line.strip() for line in test_sources.splitlines()]
    tb, failing = exc.__traceback__, None
    while tb is not None:
        number = tb.tb_lineno
        if number is not None and 0 < number <= len(lines) and lines[number - 1].startswith("assert"):
            failing = lines[number - 1]
        tb = tb.tb_next
    if failing:
        details["failing_test"] = failing[:500]
    return details


def main():
    job = _read_job()
    settings = job["settings"]
    _drop_privileges_and_limit(settings)
    report_fd = settings["report_fd"]
    write, getpid, exit_now = os.write, os.getpid, os._exit
    start_token, end_token = job["start_token"], job["end_token"]
    pass_tokens = list(job["pass_tokens"])
    solution, tests = job["solution"], list(job["tests"])
    entry_point, setup = job.get("entry_point"), job.get("setup") or ""
    check_returns = job.get("check_returns", True)
    pristine_builtins = dict(builtins.__dict__)
    stdout, stderr = sys.stdout, sys.stderr
    harness_pid = getpid()
    compile_code, exec_code = compile, exec
    sys.addaudithook(_make_audit_hook(settings.get("block_proc", False)))
    del job, settings

    write(report_fd, (start_token + "\n").encode())
    passed, details = [], {}
    solution_globals = {"__name__": "__solution__" if tests else "__main__", "__builtins__": builtins}
    try:
        exec_code(compile_code(solution, "<solution>", "exec", dont_inherit=True, optimize=0), solution_globals)
    except BaseException as exc:  # noqa: BLE001 - the solution failed to even load
        details = {"stage": "solution", **_failure_details(exc, "")}
    else:
        if not tests:
            passed.append(0)
        for index, source in enumerate(tests):
            namespace = dict(solution_globals)
            namespace["__builtins__"] = pristine_builtins
            namespace["__name__"] = "__tests__"
            try:
                if setup:
                    exec_code(compile_code(setup, "<setup>", "exec", dont_inherit=True, optimize=0), namespace)
                candidate = solution_globals[entry_point] if entry_point else None
                if candidate is not None and check_returns:
                    candidate = _guard_returns(candidate)
                if candidate is not None:
                    # The setup (a prompt) defines a stub of the entry point; tests that call it
                    # by name (HumanEval/33) mean the solution's.
                    namespace[entry_point] = candidate
                exec_code(compile_code(source, "<tests>", "exec", dont_inherit=True, optimize=0), namespace)
                if entry_point:
                    namespace["check"](candidate)
            except BaseException as exc:  # noqa: BLE001 - any escape is a failed test
                if not details:
                    details = {"stage": "tests", "test_index": index, **_failure_details(exc, source)}
            else:
                passed.append(index)

    if getpid() != harness_pid:  # a fork of the harness: only the original may report
        exit_now(0)
    verdict = [pass_tokens[i] for i in passed] + [end_token]
    write(report_fd, (" ".join(verdict) + "\n").encode())
    # Everything below runs after the verdict is on its way, so hostile code it may trigger
    # (a patched json, a flush that loops) can no longer change the score.
    try:
        details["tests_passed"] = len(passed)
        safe = {str(k): v if type(v) in (int, str) else repr(v) for k, v in details.items()}
        write(report_fd, (repr(safe)[:65536].replace("\n", " ") + "\n").encode())
    except BaseException:  # noqa: BLE001
        pass
    for stream in (stdout, stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass
    exit_now(0)


if __name__ == "__main__":
    main()
