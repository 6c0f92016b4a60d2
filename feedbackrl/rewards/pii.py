"""A guard against personal data in completions: e-mail addresses, phone numbers, card numbers.

Numbers are read as *runs*: digit groups joined by one space, dash or dot, or wrapped in
parentheses ("+44 20 7946 0958", "(555) 123-4567", "4111-1111-1111-1111"). Within a run the
longest stretch of groups that forms a card or a phone wins; what counts:

- card: 13-19 digits passing the Luhn check, written as one block or as groups of at least 3
  digits joined by spaces or dashes (so an ISBN "978-3-16-148410-0" is not a card). A number
  that fails Luhn is never flagged as a card.
- phone, international: a run starting with "+", 8-15 digits in all (the E.164 limit);
- phone, North American: groups 3-3-4, optionally after a country code "1";
- phone, national with a trunk zero: 2-4 groups, the first starting with 0, 10-11 digits
  ("020 7946 0958", "07700 900123");
- phone, bare: one block of 10-11 digits only when a word like "call" or "phone" comes just
  before it (otherwise it is as likely an order number).

Not flagged: prices ("$1,234.56", "19.99"), years and dates ("2024", "2024-01-15"), and ids
glued to letters ("SKU-555-123-4567", "AB1234567890"): a run touching a letter, or a dash or
dot that touches one, is part of an identifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from feedbackrl.rewards.base import RewardResult
from feedbackrl.sample import Sample

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# Digit groups joined by one separator, optional leading "+" and parentheses around a group.
_RUN = re.compile(r"(?:\+\s?)?\(?\d(?:\d|[ .\-](?=\(?\d)|\)[ .\-]?(?=\d)|\((?=\d))*\)?")
_DIGITS = re.compile(r"\d+")
_PHONE_CONTEXT = re.compile(r"\b(?:phone|tel|telephone|call|mobile|cell|whatsapp|fax|contact|text me|ring)\b\W{0,3}(?:\w+\W{1,3}){0,2}$", re.IGNORECASE)

KINDS = ("email", "phone", "card")


@dataclass
class PIIFinding:
    kind: str  # one of KINDS
    start: int
    end: int
    masked: str

    def as_dict(self) -> dict:
        return {"kind": self.kind, "start": self.start, "end": self.end, "masked": self.masked}


def luhn_valid(digits: str) -> bool:
    """The Luhn mod-10 check: double every second digit from the right, digit-sum, mod 10."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _mask_digits(text: str, keep_last: int) -> str:
    n_digits = sum(ch.isdigit() for ch in text)
    out, seen = [], 0
    for ch in text:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen > n_digits - keep_last else "*")
        else:
            out.append(ch)
    return "".join(out)


def _mask_email(address: str) -> str:
    local, domain = address.split("@", 1)
    return f"{local[0]}***@{domain}"


def _glued_to_identifier(text: str, start: int, end: int) -> bool:
    before = text[max(0, start - 2) : start]
    after = text[end : end + 2]
    if before[-1:].isalnum() or before[-1:] == "_" or after[:1].isalnum() or after[:1] == "_":
        return True
    if before[-1:] in "-./" and before[:1].isalnum() and len(before) == 2:
        return True
    return after[:1] in "-/" and after[1:2].isalnum()


def _classify(text: str, groups: list[re.Match], i: int, j: int, run_has_plus: bool) -> str | None:
    """'card', 'phone' or None for groups[i:j] of one run."""
    if j - i > 6 and not (run_has_plus and i == 0):
        return None  # a card has at most 6 groups of >= 3 digits; only "+" numbers have more
    lengths = [len(g.group()) for g in groups[i:j]]
    digits = "".join(g.group() for g in groups[i:j])
    seps = [text[groups[a].end() : groups[a + 1].start()] for a in range(i, j - 1)]
    if 13 <= len(digits) <= 19 and all(s in (" ", "-") for s in seps) and (len(lengths) == 1 or min(lengths) >= 3):
        if luhn_valid(digits):
            return "card"
    if run_has_plus and i == 0:
        return "phone" if 8 <= len(digits) <= 15 else None
    if lengths == [3, 3, 4] or (lengths == [1, 3, 3, 4] and digits[0] == "1"):
        return "phone"
    if 2 <= len(lengths) <= 4 and digits[0] == "0" and lengths[0] >= 2 and 10 <= len(digits) <= 11:
        return "phone"
    if len(lengths) == 1 and 10 <= len(digits) <= 11 and _PHONE_CONTEXT.search(text[max(0, groups[i].start() - 30) : groups[i].start()]):
        return "phone"
    return None


def _number_findings(text: str) -> list[PIIFinding]:
    findings = []
    for run in _RUN.finditer(text):
        if _glued_to_identifier(text, run.start(), run.end()):
            continue
        groups = list(_DIGITS.finditer(text, run.start(), run.end()))
        has_plus = run.group().startswith("+")
        i = 0
        while i < len(groups):
            # Longest stretch first; nothing we flag is longer than 19 digits, which also
            # keeps a run of thousands of groups ("1 1 1 ...") linear.
            j_max, n_digits = i, 0
            while j_max < len(groups) and n_digits + len(groups[j_max].group()) <= 19:
                n_digits += len(groups[j_max].group())
                j_max += 1
            for j in range(max(j_max, i + 1), i, -1):
                kind = _classify(text, groups, i, j, has_plus)
                if kind:
                    start = run.start() if i == 0 else groups[i].start()
                    end = groups[j - 1].end()
                    span = text[start:end]
                    masked = _mask_digits(span, 4 if kind == "card" else 2)
                    findings.append(PIIFinding(kind, start, end, masked))
                    i = j
                    break
            else:
                i += 1
    return findings


def find_pii(text: str, kinds: Sequence[str] = KINDS) -> list[PIIFinding]:
    """Every e-mail, phone and Luhn-valid card number in `text`, masked, in order of position."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown PII kinds {sorted(unknown)}; choose from {list(KINDS)}")
    findings = []
    if "email" in kinds:
        findings += [PIIFinding("email", m.start(), m.end(), _mask_email(m.group())) for m in _EMAIL.finditer(text)]
    # Digits inside an e-mail address are the address's, not a phone.
    emails = [(f.start, f.end) for f in findings]
    for f in _number_findings(text):
        if f.kind in kinds and not any(s <= f.start < e for s, e in emails):
            findings.append(f)
    return sorted(findings, key=lambda f: f.start)


@dataclass
class PIIGuard:
    """1.0 if the completion holds no personal data of the watched kinds, else 0.0.

    Meant as a hard gate in `CombinedReward`. details: findings (kind, start, end, masked
    text; never the raw value, so the audit log does not keep the data it flagged) and
    counts per kind.
    """

    name: str = "pii"
    kinds: tuple[str, ...] = field(default=KINDS)

    def __post_init__(self) -> None:
        self.kinds = tuple(self.kinds)
        find_pii("", self.kinds)  # validate the kinds once, at construction

    def __call__(self, samples: Sequence[Sample]) -> list[RewardResult]:
        results = []
        for s in samples:
            findings = find_pii(s.completion, self.kinds)
            counts = {k: sum(f.kind == k for f in findings) for k in self.kinds}
            details = {"findings": [f.as_dict() for f in findings], "counts": counts}
            results.append(RewardResult(0.0 if findings else 1.0, details))
        return results
