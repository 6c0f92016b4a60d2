"""A small preference set the project generates itself, deterministic from a seed.

Two kinds of pairs, both with an objective answer so that a reward model's pairwise accuracy
means something:

- ``arithmetic``: a sum, difference or product, bare or as a one-line word problem;
  chosen = the correct answer, rejected = a plausible wrong one (off by one or two, off by
  ten, the result of the wrong operation, or an operand echoed back).
- ``product_list``: a shopper asks for k distinct items of a category under a budget and the
  prompt shows the catalog slice retrieved for the query; chosen = a valid list, rejected =
  the same list with one slot broken (a repeated item, a SKU that is not in the catalog, an
  item over budget, or an item of another category).

The catalog is synthetic and built in code (category prefix + number, price drawn per SKU)
so the set does not depend on any data file. Pairs are dicts with the columns the reward
model trainer reads: prompt, chosen, rejected, plus ``kind`` and ``violation`` for analysis.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

KINDS = ("arithmetic", "product_list")

# (category as the catalog labels it, SKU prefix, what a shopper asks for, price range in $)
CATEGORIES = (
    ("shoe", "SHO", "pairs of running shoes", (30, 160)),
    ("jacket", "JAC", "rain jackets", (40, 220)),
    ("lamp", "LMP", "desk lamps", (15, 90)),
    ("mug", "MUG", "coffee mugs", (5, 40)),
    ("headphones", "HPH", "headphones", (20, 300)),
    ("backpack", "BAG", "backpacks", (25, 150)),
)
SKUS_PER_CATEGORY = 12

WORD_PROBLEMS = {
    "+": (
        "{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?",
        "A box holds {a} {thing}. {b} more are added. How many {thing} are in the box?",
    ),
    "-": (
        "{name} has {a} {thing} and gives away {b}. How many {thing} are left?",
        "There were {a} {thing} on the table. {b} were eaten. How many {thing} remain?",
    ),
    "*": (
        "{name} buys {a} bags with {b} {thing} in each. How many {thing} is that in total?",
        "There are {a} rows of {b} {thing}. How many {thing} are there?",
    ),
}
# Bare phrasings of the same fact. Held-out pairs are split by prompt, so a held-out "What is
# 7 * 8?" is never seen in training; with several phrasings its fact still is (as "7 * 8 = ?",
# or a word problem), which is what a reward model that knows the fact can use.
BARE_TEMPLATES = ("What is {a} {op} {b}?", "{a} {op} {b} = ?", "Compute {a} {op} {b}.", "Calculate {a} {op} {b}.")
NAMES = ("Ana", "Ben", "Chen", "Dana", "Eli", "Farah", "Gus", "Hana")
THINGS = ("apples", "pencils", "stickers", "marbles", "cookies", "stamps")


@dataclass(frozen=True)
class CatalogItem:
    sku: str
    category: str
    price: int


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str
    kind: str
    violation: str  # why `rejected` is worse: "off_by_one", "repeated_item", ...


def synthetic_catalog(seed: int = 0) -> list[CatalogItem]:
    """SKUS_PER_CATEGORY items per category, prices uniform in the category's range."""
    rng = random.Random(seed)
    items = []
    for category, prefix, _, (low, high) in CATEGORIES:
        for number in rng.sample(range(100, 1000), SKUS_PER_CATEGORY):
            items.append(CatalogItem(f"{prefix}-{number}", category, rng.randint(low, high)))
    return items


def catalog_skus(seed: int = 0) -> list[str]:
    """Every SKU string of the catalog."""
    return [item.sku for item in synthetic_catalog(seed)]


def decoy_skus(seed: int = 0) -> list[str]:
    """SKUS_PER_CATEGORY well-formed SKUs per category that are *not* in the catalog: the
    `unknown_sku` violation draws from them. A tokenizer that makes SKUs whole tokens must get
    these too (`sku_vocabulary`), or an unknown SKU would give itself away by splitting into
    pieces while every real one is a single token."""
    known = set(catalog_skus(seed))
    rng = random.Random(seed + 1_000_003)  # its own stream: the catalog stays what it was
    decoys = []
    for _, prefix, _, _ in CATEGORIES:
        numbers = [n for n in range(100, 1000) if f"{prefix}-{n}" not in known]
        decoys += [f"{prefix}-{n}" for n in rng.sample(numbers, SKUS_PER_CATEGORY)]
    return decoys


def sku_vocabulary(seed: int = 0) -> list[str]:
    """Catalog and decoy SKUs, to add to a tokenizer as whole tokens."""
    return catalog_skus(seed) + decoy_skus(seed)


# --- arithmetic -------------------------------------------------------------------------

def _apply(op: str, a: int, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def _wrong_answer(op: str, a: int, b: int, rng: random.Random) -> tuple[int, str]:
    """A plausible mistake; never equal to the correct answer."""
    answer = _apply(op, a, b)
    candidates = [
        (answer + rng.choice((-1, 1)), "off_by_one"),
        (answer + rng.choice((-2, 2)), "off_by_two"),
        (answer + rng.choice((-10, 10)), "off_by_ten"),
        (_apply({"+": "-", "-": "+", "*": "+"}[op], a, b), "wrong_operation"),
        (rng.choice((a, b)), "echoed_operand"),
    ]
    rng.shuffle(candidates)
    for value, violation in candidates:
        # A negative wrong answer would be an easy tell on problems whose answers are >= 0.
        if value != answer and value >= 0:
            return value, violation
    return answer + 1, "off_by_one"


def arithmetic_pair(rng: random.Random, max_operand: int = 9) -> PreferencePair:
    """Operands in 1..max_operand: the difficulty. The default, single digits, keeps the number
    of distinct facts small (81 sums, 45 differences, 81 products) so that a tiny reward model
    trained for minutes can learn them; the wrong answers stay just as plausible at any size."""
    op = rng.choice("+-*")
    a, b = rng.randint(1, max_operand), rng.randint(1, max_operand)
    if op == "-" and b > a:  # word problems never take away more than there is
        a, b = b, a
    if rng.random() < 0.5:
        question = rng.choice(BARE_TEMPLATES).format(a=a, op=op, b=b)
    else:
        question = rng.choice(WORD_PROBLEMS[op]).format(name=rng.choice(NAMES), thing=rng.choice(THINGS), a=a, b=b)
    wrong, violation = _wrong_answer(op, a, b, rng)
    prompt = f"Question: {question}\nAnswer:"
    return PreferencePair(prompt, f" {_apply(op, a, b)}", f" {wrong}", "arithmetic", violation)


# --- product lists ----------------------------------------------------------------------

def _format_list(items: list[CatalogItem]) -> str:
    return " " + ", ".join(f"{item.sku} (${item.price})" for item in items)


def product_list_pair(
    rng: random.Random,
    catalog: list[CatalogItem],
    list_size: int = 3,
    shown: int = 6,
    decoys: list[str] | None = None,
) -> PreferencePair:
    """A shopper request, the retrieved catalog slice, a valid list and a list with one flaw.
    An unknown SKU is one of `decoys` with the asked category's prefix when given (see
    `decoy_skus`), otherwise any well-formed number that is not in the catalog."""
    by_category: dict[str, list[CatalogItem]] = {}
    for item in catalog:
        by_category.setdefault(item.category, []).append(item)
    while True:
        category, prefix, noun, (low, _) = rng.choice(CATEGORIES)
        # The slice shows mostly the asked category plus one item of another, as retrieval would.
        own = rng.sample(by_category[category], shown - 1)
        other_category = rng.choice([c for c in by_category if c != category])
        stray = rng.choice(by_category[other_category])
        prices = sorted(item.price for item in own)
        # Budget between the list_size-th and the most expensive price: enough valid items
        # for a list, and at least one item in the slice that breaks the budget.
        budget = rng.randint(prices[list_size - 1], prices[-1] - 1) if prices[list_size - 1] < prices[-1] else None
        if budget is not None:
            break
    valid = [item for item in own if item.price <= budget]
    over = [item for item in own if item.price > budget]
    slice_items = own + [stray]
    rng.shuffle(slice_items)
    chosen = rng.sample(valid, list_size)

    # The rejected list is the chosen one with one slot broken (a minimal pair): the violation
    # is the only difference, so every pair teaches the constraint and nothing else.
    violation = rng.choice(("repeated_item", "unknown_sku", "over_budget", "wrong_category"))
    rejected = list(chosen)
    slot = rng.randrange(list_size)
    if violation == "repeated_item":
        rejected[slot] = rejected[(slot + rng.randrange(1, list_size)) % list_size]
    elif violation == "unknown_sku":
        known = {item.sku for item in catalog}
        if decoys:
            sku = rng.choice([d for d in decoys if d.startswith(prefix + "-") and d not in known])
        else:
            number = rng.randrange(100, 1000)
            while f"{prefix}-{number}" in known:
                number = rng.randrange(100, 1000)
            sku = f"{prefix}-{number}"
        # priced like a valid item of the category, so neither the price nor its length tells
        rejected[slot] = CatalogItem(sku, category, rng.randint(low, budget))
    elif violation == "over_budget":
        rejected[slot] = rng.choice(over)
    else:
        rejected[slot] = stray

    shown_text = "; ".join(f"{item.sku} {item.category} ${item.price}" for item in slice_items)
    prompt = (
        f"Shopper: {list_size} different {noun}, at most ${budget} each.\n"
        f"Catalog: {shown_text}\nRecommended:"
    )
    return PreferencePair(prompt, _format_list(chosen), _format_list(rejected), "product_list", violation)


# --- the set ------------------------------------------------------------------------------

def generate_preferences(
    n: int, seed: int = 0, arithmetic_fraction: float = 0.5, max_operand: int = 9
) -> list[PreferencePair]:
    """`n` pairs, about `arithmetic_fraction` of them arithmetic, the same for the same seed.
    `max_operand` sets the arithmetic difficulty (operands 1..max_operand)."""
    if not 0.0 <= arithmetic_fraction <= 1.0:
        raise ValueError("arithmetic_fraction: must be in [0, 1]")
    if max_operand < 1:
        raise ValueError("max_operand: must be >= 1")
    rng = random.Random(seed)
    catalog = synthetic_catalog(seed)
    decoys = decoy_skus(seed)
    pairs = []
    for _ in range(n):
        if rng.random() < arithmetic_fraction:
            pairs.append(arithmetic_pair(rng, max_operand))
        else:
            pairs.append(product_list_pair(rng, catalog, decoys=decoys))
    return pairs


def write_preferences_jsonl(pairs: list[PreferencePair], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for pair in pairs:
            f.write(json.dumps(asdict(pair)) + "\n")
    return path
