import threading
from concurrent.futures import ProcessPoolExecutor

import pytest

from feedbackrl.rewards import math as math_reward
from feedbackrl.rewards.math import MathAnswerReward, call_with_deadline, extract_answer
from feedbackrl.sample import Sample


@pytest.mark.parametrize(
    "text, answer, method",
    [
        (r"so the area is \boxed{\frac{1}{2}}.", r"\frac{1}{2}", "boxed"),
        (r"\boxed{1} then corrected: \boxed{\sqrt{\frac{a}{b}}}", r"\sqrt{\frac{a}{b}}", "boxed"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}", "boxed"),
        ("48/2 = 24 clips\n#### 1,234\n", "1,234", "####"),
        ("She has 3 apples, then 1,234 more.", "1,234", "last_number"),
        ("The change is -3.", "-3", "last_number"),
        ("10-3 = 7", "7", "last_number"),
        ("it costs 0.25 or .5", ".5", "last_number"),
        ("a rise of 50%", "50%", "last_number"),
        ("x2 and v1.5", None, None),
        ("no digits here", None, None),
    ],
)
def test_extract_answer(text, answer, method):
    assert extract_answer(text) == (answer, method)


def test_unbalanced_box_falls_back_to_last_number():
    assert extract_answer(r"\boxed{\frac{1}{2} is 7") == ("7", "last_number")


def _score(completion, reference, **kw):
    return MathAnswerReward(**kw)([Sample("q", completion, reference=reference)])[0]


@pytest.mark.parametrize(
    "completion, reference, score",
    [
        (r"\boxed{\frac{1}{2}}", "0.5", 1.0),
        ("0.5", r"\frac{1}{2}", 1.0),
        ("3/4", "0.75", 1.0),
        ("#### 1,234", "1234", 1.0),
        ("total: $1,234.50", "1234.5", 1.0),
        ("the answer is -3.", "-3.0", 1.0),
        (r"\boxed{(x+1)^2}", "x^2+2x+1", 1.0),
        (r"\boxed{\{1,2\}}", r"\{2,1\}", 1.0),
        (r"\boxed{(1, 2)}", "(1,2)", 1.0),
        # Percentages (documented choice, math-verify's): 50% equals both 0.5 and 50 ...
        ("a rise of 50%", "0.5", 1.0),
        ("a rise of 50%", "50", 1.0),
        # ... but 50 and 0.5 are different answers.
        ("a rise of 50", "0.5", 0.0),
        ("answer 41", "42", 0.0),
        # A GSM8K solution as reference: its #### answer is the gold.
        ("72", "Natalia sold 48/2 = 24 clips.\n#### 72", 1.0),
        # Several acceptable answers: any one is enough.
        ("7", ["6", "7"], 1.0),
        ("7", {"answer": "7"}, 1.0),
    ],
)
def test_math_equivalence(completion, reference, score):
    result = _score(completion, reference)
    assert result.error is None
    assert result.score == score


def test_details_say_why():
    r = _score(r"I think \boxed{\frac{2}{4}}", "0.5")
    assert r.details["extracted"] == r"\frac{2}{4}"
    assert r.details["method"] == "boxed"
    assert r.details["matched_gold"] == "0.5"
    miss = _score("no idea", "3")
    assert miss.score == 0.0 and miss.error is None
    assert miss.details["how"] == "no answer found"


def test_missing_reference_is_an_error_not_a_zero():
    assert _score("3", None).error == "missing reference answer"


def _spin_forever(*_args):
    while True:  # pure Python, so the deadline's asynchronous exception can stop it
        pass


def test_thread_timeout_gives_error_not_zero(monkeypatch):
    monkeypatch.setattr(math_reward, "answers_equivalent", _spin_forever)
    before = threading.active_count()
    r = _score(r"\boxed{2}", "3", timeout_s=0.05, isolation="thread")
    assert r.error == "timeout"
    assert r.details["how"] == "timeout"
    # the spinning checker thread was told to stop
    for t in threading.enumerate():
        if t.name == "reward-check":
            t.join(5)
    assert threading.active_count() <= before


def test_process_timeout_stops_a_gil_holding_check_and_recovers():
    # 9^(9^(9^9)) is a big-integer power in C: only killing the checker process stops it.
    r = _score(r"\boxed{9^{9^{9^{9}}}}", "1", timeout_s=1.0)
    assert r.error == "timeout" and r.score == 0.0
    assert _score(r"\boxed{\frac{3}{4}}", "0.75").score == 1.0  # a fresh checker took over


def test_bad_isolation_is_a_clear_error():
    with pytest.raises(ValueError, match="isolation must be"):
        MathAnswerReward(isolation="fiber")


def test_call_with_deadline_returns_and_reraises():
    assert call_with_deadline(lambda a, b: a + b, 1.0, 2, 3) == 5
    with pytest.raises(ZeroDivisionError):
        call_with_deadline(lambda: 1 / 0, 1.0)


@pytest.mark.parametrize("isolation", ["process", "thread"])
def test_works_off_the_main_thread(isolation):
    out = {}

    def run():
        out["r"] = _score(r"\boxed{\frac{1}{2}}", "0.5", isolation=isolation)

    t = threading.Thread(target=run)
    t.start()
    t.join(60)
    assert out["r"].score == 1.0 and out["r"].error is None


def _score_in_worker(reward: MathAnswerReward, completion: str, reference: str) -> tuple[float, str | None]:
    r = reward([Sample("q", completion, reference=reference)])[0]
    return r.score, r.error


@pytest.mark.parametrize("isolation", ["process", "thread"])
def test_works_inside_a_process_pool_worker(isolation):
    reward = MathAnswerReward(isolation=isolation)  # pickled to the worker
    with ProcessPoolExecutor(max_workers=1) as pool:
        score, error = pool.submit(_score_in_worker, reward, r"\boxed{\frac{3}{4}}", "0.75").result(timeout=120)
    assert (score, error) == (1.0, None)


def _deadline_in_worker() -> str:
    try:
        call_with_deadline(_spin_forever, 0.05)
    except TimeoutError:
        return "timeout"
    return "finished"


def test_deadline_fires_inside_a_process_pool_worker():
    with ProcessPoolExecutor(max_workers=1) as pool:
        assert pool.submit(_deadline_in_worker).result(timeout=120) == "timeout"


def test_many_unbalanced_boxes():
    assert extract_answer("\\boxed{" * 3000 + " so 12") == ("12", "last_number")
