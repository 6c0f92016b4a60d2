"""Math answers: pull the final answer out of a completion and check it against the reference.

Extraction, in order of trust:
  1. the last `\\boxed{...}` (or `\\fbox{...}`), braces matched so `\\boxed{\\frac{1}{2}}` works;
  2. GSM8K's `#### 42` (the rest of the line after the last `####`);
  3. otherwise the last number in the text ("1,234", "-3", "0.25", "3/4", "50%").

Equivalence is decided by `math-verify` (`parse` + `verify`), so `0.5`, `1/2` and `\\frac{1}{2}`
are one answer, as are `1,234` and `1234`. Percentages follow math-verify: `50%` equals both
`0.5` and `50` (GSM8K references usually drop the sign, so a completion that keeps it must not
lose the reward); `50` and `0.5` stay different.

Timeouts. math-verify's own timeouts use SIGALRM, which only works on the main thread of the
main interpreter, so reward workers (threads, Ray actors, process pools) would crash or hang.
We switch those off and enforce our own deadline, in one of two ways (`isolation`):
- "process" (default): the check runs in a child process (`math_checker.py`) that is killed
  at the deadline. This is the only way to stop sympy stuck in C code holding the GIL, as
  `\\boxed{9^{9^{9^{9}}}}` does; it costs about a second once per process to start the child.
- "thread": the check runs in a daemon thread; at the deadline an exception is raised inside
  that thread (pure-Python sympy stops at its next bytecode). No child process, but a
  GIL-holding computation blocks the caller until it ends.
Either way a check over `timeout_s` gives `error="timeout"`: the loop masks the sample
instead of scoring a correct answer 0 because the checker was slow.
"""

from __future__ import annotations

import ctypes
import logging
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from feedbackrl.rewards.base import RewardResult
from feedbackrl.rewards.math_checker import CheckerError, shared_checker
from feedbackrl.sample import Sample

# A number as people write it: optional sign, thousands commas, decimals, a fraction, a percent.
# The look-behind keeps "x2", "v1.5" and the "3" of "10-3" from gaining a sign or a prefix.
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?%?|(?<![\w.])-?\.\d+%?")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


class CheckTimeout(Exception):
    """Raised inside a checker thread whose deadline has passed."""


def call_with_deadline(fn: Callable[..., Any], timeout_s: float, *args: Any) -> Any:
    """Run `fn(*args)` in a daemon thread; raise `TimeoutError` if it takes over `timeout_s`.

    Works from any thread and inside worker processes (no signals). On timeout the worker
    thread is asked to stop by an asynchronous `CheckTimeout`; pure-Python code (sympy) stops
    at its next bytecode, a blocking C call only when it returns.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(*args)
        except CheckTimeout:
            pass
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    worker = threading.Thread(target=target, daemon=True, name="reward-check")
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(CheckTimeout))
        raise TimeoutError(f"check took longer than {timeout_s}s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _brace_pairs(text: str) -> dict[int, int]:
    """{index of "{": index of its matching "}"} in one pass (unbalanced braces are skipped)."""
    pairs, stack = {}, []
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
    return pairs


def last_boxed(text: str) -> str | None:
    """Content of the last balanced `\\boxed{...}`; None if there is none."""
    pairs = None
    for m in reversed(list(_BOXED.finditer(text))):
        pairs = _brace_pairs(text) if pairs is None else pairs
        close = pairs.get(m.end() - 1)
        if close is not None:
            return text[m.end() : close].strip()
    return None


def last_number(text: str) -> str | None:
    matches = _NUMBER.findall(text)
    return matches[-1] if matches else None


def extract_answer(text: str) -> tuple[str | None, str | None]:
    """(answer, method) with method one of "boxed", "####", "last_number"; (None, None) if none."""
    boxed = last_boxed(text)
    if boxed:
        return boxed, "boxed"
    if "####" in text:
        tail = text.rsplit("####", 1)[1].strip().splitlines()
        if tail and tail[0].strip():
            return tail[0].strip().rstrip("."), "####"
    number = last_number(text)
    if number is not None:
        return number, "last_number"
    return None, None


def _drop_thousands_commas(answer: str) -> str:
    # Only when the whole answer is one comma-grouped number: "(1, 2)" must stay a tuple.
    return answer.replace(",", "") if _THOUSANDS.fullmatch(answer.strip()) else answer


class _DropTimeoutNotice(logging.Filter):
    # math-verify warns on every call that its own timeout is off; ours replaces it.
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


def _silence_timeout_warning() -> None:
    for name in ("math_verify.parser", "math_verify.grader"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropTimeoutNotice) for f in logger.filters):
            logger.addFilter(_DropTimeoutNotice())


def _parse(answer: str) -> list:
    from math_verify import parse

    # LaTeX first: plain-expression parsing reads "(1, 2)" as 2 and "1,2" as 1.2.
    latex = re.sub(r"(?<!\\)%", r"\\%", answer)
    parsed = parse(f"${latex}$", parsing_timeout=None)
    if not parsed:
        parsed = parse(answer, parsing_timeout=None)
    return parsed


_warmed = False


def _warm_up() -> None:
    """One check in this process without a deadline: math-verify, sympy and the LaTeX parser
    load lazily and take seconds, which must not count against the first real check's."""
    global _warmed
    if not _warmed:
        from math_verify import verify

        verify(_parse("\\frac{1}{2}"), _parse("0.5"), float_rounding=6, timeout_seconds=None)
        _warmed = True


def answers_equivalent(gold: str, predicted: str, float_rounding: int = 6) -> tuple[bool | None, str]:
    """(equal?, how) for two extracted answers; None means the gold itself could not be parsed."""
    from math_verify import verify

    gold, predicted = _drop_thousands_commas(gold), _drop_thousands_commas(predicted)
    if gold.strip() == predicted.strip():
        return True, "identical"
    gold_parsed = _parse(gold)
    if not gold_parsed:
        return None, "unparseable reference"
    pred_parsed = _parse(predicted)
    if not pred_parsed:
        return False, "unparseable answer"
    same = verify(gold_parsed, pred_parsed, float_rounding=float_rounding, timeout_seconds=None)
    return bool(same), "math-verify"


def _gold_answers(reference: Any) -> list[str]:
    """Acceptable answers from a reference: a value, a list of values, or {"answer": ...}."""
    if isinstance(reference, dict):
        reference = reference.get("answer", reference.get("answers"))
    values = reference if isinstance(reference, (list, tuple)) else [reference]
    golds = []
    for v in values:
        if v is None:
            continue
        text = str(v).strip()
        # A full GSM8K solution or a boxed solution as reference: take its final answer.
        if "####" in text or _BOXED.search(text):
            text = extract_answer(text)[0] or text
        golds.append(text.strip("$ "))
    return golds


@dataclass
class MathAnswerReward:
    """1.0 if the completion's final answer equals the reference (math-verify), else 0.0.

    details: extracted (the answer found), method (boxed / #### / last_number), gold (the
    reference answers), how (identical / math-verify / unparseable answer / no answer found /
    timeout), matched_gold. Errors, never scores: "timeout" (a check over `timeout_s`),
    "unparseable reference", "missing reference answer", "checker: ..." (the child died).
    """

    name: str = "math"
    timeout_s: float = 5.0
    # Decimal places math-verify rounds floats to before comparing (0.3333333 == 1/3).
    float_rounding: int = 6
    isolation: str = "process"  # "process" (killable child) or "thread"; see the module docstring

    def __post_init__(self) -> None:
        if self.isolation not in ("process", "thread"):
            raise ValueError(f"isolation must be 'process' or 'thread', got {self.isolation!r}")

    def __call__(self, samples: Sequence[Sample]) -> list[RewardResult]:
        _silence_timeout_warning()
        return [self.score_one(s.completion, s.reference) for s in samples]

    def _check(self, gold: str, answer: str) -> tuple[bool | None, str]:
        if _drop_thousands_commas(gold).strip() == _drop_thousands_commas(answer).strip():
            return True, "identical"  # no need to wake the checker
        if self.isolation == "process":
            return shared_checker().check(gold, answer, self.float_rounding, self.timeout_s)
        _warm_up()  # imports outside the deadline, as the checker process does before "ready"
        return call_with_deadline(answers_equivalent, self.timeout_s, gold, answer, self.float_rounding)

    def score_one(self, completion: str, reference: Any) -> RewardResult:
        golds = _gold_answers(reference)
        if not golds:
            return RewardResult(0.0, {"gold": []}, "missing reference answer")
        answer, method = extract_answer(completion)
        details: dict[str, Any] = {"extracted": answer, "method": method, "gold": golds}
        if answer is None:
            details["how"] = "no answer found"
            return RewardResult(0.0, details)
        unparseable_gold = 0
        for gold in golds:
            try:
                same, how = self._check(gold, answer)
            except TimeoutError:
                details["how"] = "timeout"
                return RewardResult(0.0, details, "timeout")
            except CheckerError as e:
                return RewardResult(0.0, details, f"checker: {e}")
            details["how"] = how
            if same is None:
                unparseable_gold += 1
            elif same:
                details["matched_gold"] = gold
                return RewardResult(1.0, details)
        if unparseable_gold == len(golds):
            return RewardResult(0.0, details, "unparseable reference")
        return RewardResult(0.0, details)
