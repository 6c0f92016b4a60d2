"""The product catalog: its JSON schema, loading and the checks that name what is wrong.

A catalog file is one JSON object:

    {"festival": {"name": "Festival sale", "start_day": 5, "end_day": 7},     (optional)
     "segments": {"mobile": ["phone", "tablet", ...], "tv": [...], ...},
     "products": [{"sku": "SM-S918-256", "title": ..., "category": "phone", "description": ...,
                   "attributes": {"price": 1199, "refresh_rate": 120, "stylus": true, ...},
                   "launch_day": 0, "festival_discount_percent": 20}, ...]}

`attributes.price` (list price) is required; every other attribute is free-form (number,
true/false or text) and is what intent preferences are written over. `launch_day` 0 means
available from the start. A SKU must be one word of letters, digits, '-' or '_' so that a
tokenizer can hold it as a single token and the parser can find it in free text.
Any problem is a `ConfigError` naming the file, the product (index and SKU) and the field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from feedbackrl.config import ConfigError

AttributeValue = Union[float, int, bool, str]

SKU_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
# The bundled data lives at the repository root (the package is installed editable).
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3] / "data" / "shop"
DEFAULT_CATALOG = DEFAULT_DATA_DIR / "catalog.json"


@dataclass(frozen=True)
class Festival:
    """A sale window: products with a festival discount are cheaper on days [start_day, end_day)."""

    name: str
    start_day: int
    end_day: int


@dataclass(frozen=True)
class Product:
    sku: str
    title: str
    category: str
    description: str
    attributes: dict[str, AttributeValue]
    launch_day: int = 0
    festival_discount_percent: float = 0.0

    @property
    def list_price(self) -> float:
        return float(self.attributes["price"])

    @property
    def text(self) -> str:
        """What a lexical search engine indexes."""
        return f"{self.title}. {self.description}"


@dataclass
class Catalog:
    products: list[Product]
    segments: dict[str, list[str]]  # segment -> its categories
    festival: Festival | None = None
    source: str = "<catalog>"
    by_sku: dict[str, Product] = field(init=False, repr=False)
    _by_upper: dict[str, Product] = field(init=False, repr=False)
    _segment_of: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.by_sku = {p.sku: p for p in self.products}
        self._by_upper = {p.sku.upper(): p for p in self.products}
        self._segment_of = {cat: seg for seg, cats in self.segments.items() for cat in cats}

    def __len__(self) -> int:
        return len(self.products)

    def __contains__(self, sku: str) -> bool:
        return sku in self.by_sku

    @property
    def skus(self) -> list[str]:
        return [p.sku for p in self.products]

    def lookup(self, word: str) -> Product | None:
        """The product whose SKU is `word`, ignoring case."""
        return self._by_upper.get(word.upper())

    def segment_of(self, product: Product) -> str:
        return self._segment_of[product.category]

    def categories(self) -> set[str]:
        return set(self._segment_of)

    def attribute_names(self, categories: set[str] | None = None) -> set[str]:
        names: set[str] = set()
        for p in self.products:
            if categories is None or p.category in categories:
                names.update(p.attributes)
        return names


def _read_json(path: Path) -> object:
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None


def is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _festival(raw: object, where: str) -> Festival | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: festival: expected an object with name, start_day, end_day")
    for key in ("start_day", "end_day"):
        if not isinstance(raw.get(key), int) or isinstance(raw.get(key), bool):
            raise ConfigError(f"{where}: festival.{key}: expected an integer day, got {raw.get(key)!r}")
    if raw["end_day"] <= raw["start_day"]:
        raise ConfigError(f"{where}: festival.end_day: must be after start_day ({raw['start_day']})")
    return Festival(str(raw.get("name", "festival")), raw["start_day"], raw["end_day"])


def _segments(raw: object, where: str) -> dict[str, list[str]]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: segments: expected an object mapping each segment to its list of categories")
    seen: dict[str, str] = {}
    out: dict[str, list[str]] = {}
    for seg, cats in raw.items():
        if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
            raise ConfigError(f"{where}: segments.{seg}: expected a list of category names")
        for c in cats:
            if c in seen:
                raise ConfigError(f"{where}: segments.{seg}: category {c!r} is already in segment {seen[c]!r}")
            seen[c] = seg
        out[str(seg)] = list(cats)
    return out


_PRODUCT_KEYS = {"sku", "title", "category", "description", "attributes", "launch_day", "festival_discount_percent"}


def _product(raw: object, index: int, where: str, categories: set[str]) -> Product:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: products[{index}]: expected an object, got {type(raw).__name__}")
    sku = raw.get("sku")
    at = f"{where}: products[{index}]" + (f" (sku {sku})" if isinstance(sku, str) else "")
    for key in ("sku", "title", "category", "description", "attributes"):
        if key not in raw:
            raise ConfigError(f"{at}: {key}: missing field")
    unknown = sorted(set(raw) - _PRODUCT_KEYS)
    if unknown:
        raise ConfigError(f"{at}: {unknown[0]}: unknown field (known: {', '.join(sorted(_PRODUCT_KEYS))})")
    if not isinstance(sku, str) or not SKU_PATTERN.match(sku):
        raise ConfigError(f"{at}: sku: must be one word of letters, digits, '-' or '_', got {sku!r}")
    for key in ("title", "category", "description"):
        if not isinstance(raw[key], str):
            raise ConfigError(f"{at}: {key}: expected a string, got {raw[key]!r}")
    if raw["category"] not in categories:
        raise ConfigError(f"{at}: category: {raw['category']!r} is in no segment (known: {', '.join(sorted(categories))})")
    attrs = raw["attributes"]
    if not isinstance(attrs, dict):
        raise ConfigError(f"{at}: attributes: expected an object of name -> value")
    for name, value in attrs.items():
        if not isinstance(value, (int, float, bool, str)):
            raise ConfigError(f"{at}: attributes.{name}: expected a number, true/false or a string, got {value!r}")
    if "price" not in attrs:
        raise ConfigError(f"{at}: attributes.price: missing field")
    if not is_number(attrs["price"]) or attrs["price"] < 0:
        raise ConfigError(f"{at}: attributes.price: expected a number >= 0, got {attrs['price']!r}")
    launch = raw.get("launch_day", 0)
    if not isinstance(launch, int) or isinstance(launch, bool) or launch < 0:
        raise ConfigError(f"{at}: launch_day: expected an integer >= 0, got {launch!r}")
    discount = raw.get("festival_discount_percent", 0)
    if not is_number(discount) or not 0 <= discount < 100:
        raise ConfigError(f"{at}: festival_discount_percent: expected a number in [0, 100), got {discount!r}")
    return Product(sku, raw["title"], raw["category"], raw["description"], dict(attrs), launch, float(discount))


def parse_catalog(data: object, source: str = "<catalog>") -> Catalog:
    """Check a decoded catalog JSON object and build the `Catalog`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be an object with segments and products")
    unknown = sorted(set(data) - {"festival", "segments", "products"})
    if unknown:
        raise ConfigError(f"{source}: {unknown[0]}: unknown field (known: festival, segments, products)")
    segments = _segments(data.get("segments"), source)
    festival = _festival(data.get("festival"), source)
    raw_products = data.get("products")
    if not isinstance(raw_products, list) or not raw_products:
        raise ConfigError(f"{source}: products: expected a non-empty list of products")
    categories = {c for cats in segments.values() for c in cats}
    products, first_index = [], {}
    for i, raw in enumerate(raw_products):
        p = _product(raw, i, source, categories)
        key = p.sku.upper()  # SKUs are matched case-insensitively, so they must differ beyond case
        if key in first_index:
            raise ConfigError(f"{source}: products[{i}] (sku {p.sku}): sku: duplicate of products[{first_index[key]}]")
        first_index[key] = i
        products.append(p)
    return Catalog(products, segments, festival, source)


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load and check a catalog JSON file (the bundled one when `path` is None or empty)."""
    path = Path(path) if path else DEFAULT_CATALOG
    return parse_catalog(_read_json(path), str(path))


def read_json_file(path: Path) -> object:
    """Decode a JSON data file, turning any problem into a one-line `ConfigError`."""
    return _read_json(path)
