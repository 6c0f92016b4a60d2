"""Short-answer text rewards: SQuAD exact match and token F1, and claim-verification labels.

SQuAD normalisation (Rajpurkar et al. 2016, the official v1.1 evaluation script's rules):
lowercase, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace. With
several gold answers a prediction gets the best score over them.

The reference is a string, a list of strings, or a dict with "answers" (or "answer").
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

from feedbackrl.rewards.base import RewardResult
from feedbackrl.sample import Sample

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD token F1: harmonic mean of precision and recall of the bag of normalised tokens.

    Two empty answers agree (1.0); one empty answer against a non-empty one scores 0.0.
    """
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred_tokens)
    recall = common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def gold_answers(reference: Any) -> list[str]:
    if isinstance(reference, dict):
        reference = reference.get("answers", reference.get("answer"))
    if reference is None:
        return []
    values = reference if isinstance(reference, (list, tuple)) else [reference]
    return [str(v) for v in values]


def _best_over_golds(metric, prediction: str, golds: list[str]) -> tuple[float, str]:
    scores = [(metric(prediction, g), g) for g in golds]
    return max(scores, key=lambda sg: sg[0])


@dataclass
class ExactMatchReward:
    """1.0 if the normalised completion equals any normalised gold answer.

    details: prediction and best_gold (both normalised), golds (raw).
    """

    name: str = "exact_match"

    def __call__(self, samples: Sequence[Sample]) -> list[RewardResult]:
        return [_score_against_golds(exact_match, s) for s in samples]


@dataclass
class TokenF1Reward:
    """Best SQuAD token F1 of the completion over the gold answers, in [0, 1].

    details: prediction and best_gold (both normalised), golds (raw).
    """

    name: str = "token_f1"

    def __call__(self, samples: Sequence[Sample]) -> list[RewardResult]:
        return [_score_against_golds(token_f1, s) for s in samples]


def _score_against_golds(metric, sample: Sample) -> RewardResult:
    golds = gold_answers(sample.reference)
    if not golds:
        return RewardResult(0.0, {"golds": []}, "missing reference answer")
    score, best = _best_over_golds(metric, sample.completion, golds)
    details = {
        "prediction": normalize_answer(sample.completion),
        "best_gold": normalize_answer(best),
        "golds": golds,
    }
    return RewardResult(score, details)


# ---------------------------------------------------------------- claim verification labels

SUPPORTED, REFUTED, NOT_ENOUGH_INFO = "SUPPORTED", "REFUTED", "NOT ENOUGH INFO"

# Phrases that name a label wherever they appear in the answer (FEVER's own spellings, NLI's
# entailment/contradiction/neutral, and true/false for "is the claim true?" prompts).
_LABEL_PHRASES: dict[str, str] = {
    "supported": SUPPORTED, "supports": SUPPORTED, "support": SUPPORTED, "entailment": SUPPORTED,
    "entailed": SUPPORTED, "true": SUPPORTED,
    "refuted": REFUTED, "refutes": REFUTED, "refute": REFUTED, "contradiction": REFUTED,
    "contradicted": REFUTED, "false": REFUTED,
    "not enough info": NOT_ENOUGH_INFO, "not enough information": NOT_ENOUGH_INFO,
    "not enough evidence": NOT_ENOUGH_INFO, "nei": NOT_ENOUGH_INFO, "neutral": NOT_ENOUGH_INFO,
    "unverifiable": NOT_ENOUGH_INFO, "insufficient information": NOT_ENOUGH_INFO,
    "insufficient evidence": NOT_ENOUGH_INFO, "cannot be determined": NOT_ENOUGH_INFO,
}
# Words too common in free text to count unless they are the whole answer.
_WHOLE_ANSWER_ONLY: dict[str, str] = {
    "yes": SUPPORTED, "correct": SUPPORTED, "no": REFUTED, "incorrect": REFUTED,
    "unknown": NOT_ENOUGH_INFO,
}
# "Label: X" / "Answer: X" / "Verdict: X" lines win over the rest of the text.
_LABEL_LINE = re.compile(r"(?:label|answer|verdict|prediction)\s*[:=]\s*(.+)", re.IGNORECASE)


def canonical_label(text: str) -> tuple[str | None, str]:
    """(label, how) for free text; label None when no label or conflicting labels are found.

    how: "whole answer", "label line", "phrase", "none" or "ambiguous".
    """
    lines = _LABEL_LINE.findall(text)
    if lines:
        label, _ = _label_in(lines[-1])
        if label is not None:
            return label, "label line"
    return _label_in(text)


def _label_in(text: str) -> tuple[str | None, str]:
    words = " ".join(re.sub(r"[^a-z ]", " ", text.lower().replace("_", " ")).split())
    if words in _LABEL_PHRASES:
        return _LABEL_PHRASES[words], "whole answer"
    if words in _WHOLE_ANSWER_ONLY:
        return _WHOLE_ANSWER_ONLY[words], "whole answer"
    # Longest phrases first, and each one blanked once found, so "not enough info" is not
    # also read as something shorter inside it.
    found = set()
    for phrase in sorted(_LABEL_PHRASES, key=len, reverse=True):
        pattern = rf"\b{re.escape(phrase)}\b"
        if re.search(pattern, words):
            found.add(_LABEL_PHRASES[phrase])
            words = re.sub(pattern, " ", words)
    # "not supported" reads as refuted, not as supported.
    if found == {SUPPORTED} and re.search(r"\bnot (?:supported|true|entailed)\b", text.lower()):
        return REFUTED, "phrase"
    if len(found) == 1:
        return found.pop(), "phrase"
    return None, "ambiguous" if found else "none"


@dataclass
class LabelMatchReward:
    """1.0 if the completion's claim-verification label equals the reference label.

    Labels: SUPPORTED, REFUTED, NOT ENOUGH INFO. Accepted spellings (case-insensitive):
    supported/supports/entailment/true, refuted/refutes/contradiction/false, not enough info/
    NEI/neutral/unverifiable; yes/correct, no/incorrect and unknown only as the whole answer.
    An answer naming two different labels is ambiguous and scores 0.
    details: predicted, gold (canonical labels), how (see `canonical_label`).
    """

    name: str = "label_match"

    def __call__(self, samples: Sequence[Sample]) -> list[RewardResult]:
        return [self._score(s) for s in samples]

    def _score(self, sample: Sample) -> RewardResult:
        reference = sample.reference.get("label") if isinstance(sample.reference, dict) else sample.reference
        gold, _ = canonical_label(str(reference)) if reference is not None else (None, "none")
        if gold is None:
            return RewardResult(0.0, {"gold": reference}, f"reference label {reference!r} is not one of {SUPPORTED}, {REFUTED}, {NOT_ENOUGH_INFO}")
        predicted, how = canonical_label(sample.completion)
        return RewardResult(float(predicted == gold), {"predicted": predicted, "gold": gold, "how": how})
