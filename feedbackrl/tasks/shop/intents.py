"""Query intents: what shoppers type, which segment they search in, and what they really want.

An intents file is `{"intents": [...]}`; each intent is

    {"id": "gaming_phone", "segment": "mobile",
     "phrasings": ["best phone for gaming", "gaming phone", ..., "fast phone for playing games"],
     "holdout": 1,                       # the last `holdout` phrasings are for evaluation only
     "traffic": 1.0,                     # optional relative share of simulated sessions
     "preference": {"category": ["phone", "foldable"],
                    "prefer":  [{"attr": "chip_score", "direction": "high", "weight": 3}, ...],
                    "require": [{"attr": "chip_score", "min": 80}],
                    "require_factor": 0.2}}

The preference is the shopper's hidden taste, written as rules over product attributes; the
rule engine in `preferences.py` turns it into a utility per product. A rule has `attr`, an
optional `weight` (default 1) and exactly one test: `direction` ("high" or "low"), `max`,
`min` or `equals`. `discount_percent` is a derived attribute (the festival discount active on
the day, 0 otherwise) and `price` is the price on the day. Errors name file, intent and field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from feedbackrl.config import ConfigError
from feedbackrl.tasks.shop.catalog import DEFAULT_DATA_DIR, Catalog, is_number, read_json_file

DEFAULT_INTENTS = DEFAULT_DATA_DIR / "intents.json"
# Attributes the rule engine derives from the calendar rather than reads from the catalog.
DERIVED_ATTRIBUTES = {"discount_percent"}
_TESTS = ("direction", "max", "min", "equals")


@dataclass(frozen=True)
class PreferenceRule:
    attr: str
    weight: float = 1.0
    direction: str | None = None  # "high" | "low": min-max scaled over the intent's categories
    max: float | None = None  # 1 when value <= max, else 0
    min: float | None = None  # 1 when value >= min, else 0
    equals: object = None  # 1 when value == equals, else 0


@dataclass(frozen=True)
class Intent:
    id: str
    segment: str
    phrasings: tuple[str, ...]
    holdout: int
    categories: tuple[str, ...]
    prefer: tuple[PreferenceRule, ...]
    require: tuple[PreferenceRule, ...] = ()
    # Utility multiplier for a product failing any `require` rule: a shopper still clicks a
    # near miss now and then, but far less often than a product that fits.
    require_factor: float = 0.2
    traffic: float = 1.0

    @property
    def train_phrasings(self) -> tuple[str, ...]:
        return self.phrasings[: len(self.phrasings) - self.holdout]

    @property
    def eval_phrasings(self) -> tuple[str, ...]:
        return self.phrasings[len(self.phrasings) - self.holdout:]


def _rule(raw: object, at: str, catalog: Catalog, categories: set[str], kind: str) -> PreferenceRule:
    if not isinstance(raw, dict):
        raise ConfigError(f"{at}: expected an object with attr and one of {', '.join(_TESTS)}")
    unknown = sorted(set(raw) - {"attr", "weight", *_TESTS})
    if unknown:
        raise ConfigError(f"{at}: {unknown[0]}: unknown field (known: attr, weight, {', '.join(_TESTS)})")
    attr = raw.get("attr")
    if not isinstance(attr, str):
        raise ConfigError(f"{at}: attr: missing or not a string")
    known = catalog.attribute_names(categories) | DERIVED_ATTRIBUTES
    if attr not in known:
        raise ConfigError(f"{at}: attr: unknown attribute {attr!r} for categories {sorted(categories)} "
                          f"(known: {', '.join(sorted(known))})")
    tests = [t for t in _TESTS if t in raw]
    if len(tests) != 1:
        raise ConfigError(f"{at}: needs exactly one of {', '.join(_TESTS)}, got {tests or 'none'}")
    weight = raw.get("weight", 1.0)
    if not is_number(weight):
        raise ConfigError(f"{at}: weight: expected a number, got {weight!r}")
    test = tests[0]
    value = raw[test]
    if test == "direction" and value not in ("high", "low"):
        raise ConfigError(f"{at}: direction: must be 'high' or 'low', got {value!r}")
    if test == "direction" and kind == "require":
        raise ConfigError(f"{at}: direction: a require rule must be a test (max, min or equals)")
    if test in ("max", "min") and not is_number(value):
        raise ConfigError(f"{at}: {test}: expected a number, got {value!r}")
    if test in ("direction", "max", "min") and attr not in DERIVED_ATTRIBUTES:
        values = [p.attributes[attr] for p in catalog.products if p.category in categories and attr in p.attributes]
        if not all(is_number(v) for v in values):
            raise ConfigError(f"{at}: {test}: attribute {attr!r} is not numeric in every product of {sorted(categories)}")
    return PreferenceRule(attr=attr, weight=float(weight), **{test: value})


def _intent(raw: object, index: int, where: str, catalog: Catalog) -> Intent:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: intents[{index}]: expected an object")
    iid = raw.get("id")
    at = f"{where}: intents[{index}]" + (f" (id {iid})" if isinstance(iid, str) else "")
    allowed = {"id", "segment", "phrasings", "holdout", "preference", "traffic"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{at}: {unknown[0]}: unknown field (known: {', '.join(sorted(allowed))})")
    for key in ("id", "segment", "phrasings", "preference"):
        if key not in raw:
            raise ConfigError(f"{at}: {key}: missing field")
    if not isinstance(iid, str) or not iid:
        raise ConfigError(f"{at}: id: expected a non-empty string")
    if raw["segment"] not in catalog.segments:
        raise ConfigError(f"{at}: segment: {raw['segment']!r} is not a catalog segment "
                          f"(known: {', '.join(catalog.segments)})")
    phrasings = raw["phrasings"]
    if not isinstance(phrasings, list) or not all(isinstance(p, str) and p.strip() for p in phrasings):
        raise ConfigError(f"{at}: phrasings: expected a list of non-empty strings")
    holdout = raw.get("holdout", 1)
    if not isinstance(holdout, int) or isinstance(holdout, bool) or not 1 <= holdout < len(phrasings):
        raise ConfigError(f"{at}: holdout: must leave at least one training and one held-out phrasing "
                          f"({len(phrasings)} phrasings, holdout {holdout!r})")
    traffic = raw.get("traffic", 1.0)
    if not is_number(traffic) or traffic < 0:
        raise ConfigError(f"{at}: traffic: expected a number >= 0, got {traffic!r}")
    pref = raw["preference"]
    if not isinstance(pref, dict):
        raise ConfigError(f"{at}: preference: expected an object with category and prefer")
    unknown = sorted(set(pref) - {"category", "prefer", "require", "require_factor"})
    if unknown:
        raise ConfigError(f"{at}: preference.{unknown[0]}: unknown field (known: category, prefer, require, require_factor)")
    cats = pref.get("category")
    cats = [cats] if isinstance(cats, str) else cats
    if not isinstance(cats, list) or not cats or not all(isinstance(c, str) for c in cats):
        raise ConfigError(f"{at}: preference.category: expected a category name or a list of them")
    for c in cats:
        if c not in catalog.categories():
            raise ConfigError(f"{at}: preference.category: unknown category {c!r}")
    prefer = pref.get("prefer")
    if not isinstance(prefer, list) or not prefer:
        raise ConfigError(f"{at}: preference.prefer: expected a non-empty list of rules")
    require = pref.get("require", [])
    if not isinstance(require, list):
        raise ConfigError(f"{at}: preference.require: expected a list of rules")
    factor = pref.get("require_factor", 0.2)
    if not is_number(factor) or not 0 <= factor <= 1:
        raise ConfigError(f"{at}: preference.require_factor: expected a number in [0, 1], got {factor!r}")
    catset = set(cats)
    prefer_rules = tuple(_rule(r, f"{at}: preference.prefer[{i}]", catalog, catset, "prefer") for i, r in enumerate(prefer))
    if sum(r.weight for r in prefer_rules if r.weight > 0) <= 0:
        raise ConfigError(f"{at}: preference.prefer: needs at least one rule with a positive weight")
    require_rules = tuple(_rule(r, f"{at}: preference.require[{i}]", catalog, catset, "require") for i, r in enumerate(require))
    return Intent(iid, raw["segment"], tuple(p.strip() for p in phrasings), holdout, tuple(cats),
                  prefer_rules, require_rules, float(factor), float(traffic))


def normalize_query(text: str) -> str:
    return " ".join(text.lower().split())


def parse_intents(data: object, catalog: Catalog, source: str = "<intents>") -> list[Intent]:
    if not isinstance(data, dict) or not isinstance(data.get("intents"), list) or not data["intents"]:
        raise ConfigError(f"{source}: the top level must be an object with a non-empty 'intents' list")
    intents, ids, owner = [], {}, {}
    for i, raw in enumerate(data["intents"]):
        it = _intent(raw, i, source, catalog)
        if it.id in ids:
            raise ConfigError(f"{source}: intents[{i}] (id {it.id}): id: duplicate of intents[{ids[it.id]}]")
        ids[it.id] = i
        for p in it.phrasings:
            # A phrasing must identify one intent: the oracle and the evaluation look intents up by text.
            key = normalize_query(p)
            if key in owner and owner[key] != it.id:
                raise ConfigError(f"{source}: intents[{i}] (id {it.id}): phrasings: {p!r} is also a phrasing of {owner[key]}")
            owner[key] = it.id
        intents.append(it)
    return intents


def load_intents(catalog: Catalog, path: str | Path | None = None) -> list[Intent]:
    """Load and check an intents JSON file against `catalog` (bundled file when `path` is empty)."""
    path = Path(path) if path else DEFAULT_INTENTS
    return parse_intents(read_json_file(path), catalog, str(path))
