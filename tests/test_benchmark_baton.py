"""benchmarks/baton.py: the turn-taking behind `compare_trl.sh INTERLEAVE=1`."""

import importlib.util
import threading
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("baton", Path(__file__).parents[1] / "benchmarks" / "baton.py")
baton = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(baton)


def _side(b, steps, log, lock):
    for i in range(steps):
        b.acquire()
        with lock:
            log.append((b.name, i))
        b.release()
    b.finish()


@pytest.mark.parametrize("first,ours_steps,trl_steps", [("ours", 4, 4), ("trl", 4, 4), ("ours", 2, 5)])
def test_two_sides_take_turns_step_by_step_and_the_longer_one_runs_on_alone(tmp_path, first, ours_steps, trl_steps):
    (tmp_path / "turn").write_text(first)
    log, lock = [], threading.Lock()
    sides = [threading.Thread(target=_side, args=(baton.Baton(tmp_path, name, other, timeout_s=30), n, log, lock))
             for name, other, n in (("ours", "trl", ours_steps), ("trl", "ours", trl_steps))]
    for t in sides:
        t.start()
    for t in sides:
        t.join(60)
    assert not any(t.is_alive() for t in sides)
    names = [name for name, _ in log]
    # strictly alternating from `first` while both have steps left, then the rest of the longer one
    both = 2 * min(ours_steps, trl_steps)
    second = "trl" if first == "ours" else "ours"
    assert names[:both] == [first, second] * (both // 2)
    assert len(names) == ours_steps + trl_steps
    assert [i for name, i in log if name == "ours"] == list(range(ours_steps))
    assert (tmp_path / "done-ours").exists() and (tmp_path / "done-trl").exists()


def test_a_side_whose_turn_never_comes_gets_a_clear_error(tmp_path):
    (tmp_path / "turn").write_text("trl")
    with pytest.raises(TimeoutError, match="ours waited"):
        baton.Baton(tmp_path, "ours", "trl", timeout_s=0.05).acquire()


def test_only_the_two_names_are_taken():
    assert baton.from_args(None, "ours") is None
    with pytest.raises(SystemExit, match="--baton-name"):
        baton.from_args("/tmp/x", "someone")
