"""The Parquet schema of a logged interaction: one row per impression (one shown list).

Every logged list carries what off-policy evaluation and offline learning need: what was
shown, in which order, with what probability the logging policy would have shown it, and
what the shopper did at each position. `INTERACTION_SCHEMA` is the contract; `SCHEMA_DOC`
says what each column means (rendered into docs/offline.md); `Interaction` is the same row
as a typed Python record for writers and tests.

Propensities. `position_propensities[k]` is the logging policy's *marginal* probability of
showing `items[k]` at position k (summed over every list it could draw). Position-based IPS
needs exactly this: under a position-based click model the click at k depends only on the
item at k. `list_propensity` is the probability of the whole ordered list (for a
Plackett-Luce logger, the product of its per-step choice probabilities); it is stored with
its log because the product of five small numbers underflows less gracefully than a sum.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa

EVENT_KINDS = ("click", "add_to_cart", "purchase")

TIMESTAMP = pa.timestamp("us", tz="UTC")

CONTEXT_TYPE = pa.struct(
    [
        pa.field("query", pa.string()),
        pa.field("segment", pa.string()),
        # A JSON object as text: the feature set changes between deployments, the schema must not.
        pa.field("user_features", pa.string()),
    ]
)

INTERACTION_SCHEMA = pa.schema(
    [
        pa.field("impression_id", pa.string(), nullable=False),
        pa.field("timestamp", TIMESTAMP, nullable=False),
        pa.field("context", CONTEXT_TYPE),
        pa.field("items", pa.list_(pa.string()), nullable=False),
        pa.field("position_propensities", pa.list_(pa.float64())),
        pa.field("list_propensity", pa.float64()),
        pa.field("list_log_propensity", pa.float64()),
        pa.field("policy_version", pa.string()),
        pa.field("clicks", pa.list_(pa.bool_())),
        pa.field("add_to_carts", pa.list_(pa.bool_())),
        pa.field("purchases", pa.list_(pa.bool_())),
        pa.field("click_times", pa.list_(TIMESTAMP)),
        pa.field("add_to_cart_times", pa.list_(TIMESTAMP)),
        pa.field("purchase_times", pa.list_(TIMESTAMP)),
    ]
)

# (column, type, meaning) — the documentation table of the schema above.
SCHEMA_DOC: list[tuple[str, str, str]] = [
    ("impression_id", "string", "Unique id of one shown list; the join key with events."),
    ("timestamp", "timestamp[us, UTC]", "When the list was shown."),
    ("context.query", "string", "The search query typed by the shopper."),
    ("context.segment", "string", "Shopper segment (e.g. 'bargain', 'premium'); may be null."),
    ("context.user_features", "string (JSON object)", "Any other user features, as JSON text."),
    ("items", "list<string>", "SKUs shown, in display order (position 0 first)."),
    ("position_propensities", "list<double>", "Logging policy's marginal probability of items[k] at position k."),
    ("list_propensity", "double", "Logging policy's probability of the whole ordered list."),
    ("list_log_propensity", "double", "Natural log of list_propensity (exact even when it underflows)."),
    ("policy_version", "string", "Which logging policy (and version) showed the list."),
    ("clicks", "list<bool>", "clicks[k]: the item at position k was clicked."),
    ("add_to_carts", "list<bool>", "add_to_carts[k]: the item at position k was added to the cart."),
    ("purchases", "list<bool>", "purchases[k]: the item at position k was bought."),
    ("click_times", "list<timestamp>", "Time of the first click at each position (null if none)."),
    ("add_to_cart_times", "list<timestamp>", "Time of the first add-to-cart at each position (null if none)."),
    ("purchase_times", "list<timestamp>", "Time of the first purchase at each position (null if none)."),
]

# Columns a reader cannot do without; the others may be absent in hand-made logs and are filled.
REQUIRED_COLUMNS = ("impression_id", "items", "clicks")


class LogFormatError(ValueError):
    """A log file or event is malformed; the message is one line naming the file and column."""


def one_line(message: object) -> str:
    """First line of an error message from a library (pyarrow's span several lines)."""
    text = str(message).strip()
    return text.splitlines()[0] if text else type(message).__name__


@dataclass
class Interaction:
    """One impression as a Python record; field meanings are in SCHEMA_DOC."""

    impression_id: str
    items: list[str]
    clicks: list[bool]
    timestamp: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    query: str | None = None
    segment: str | None = None
    user_features: dict = field(default_factory=dict)
    position_propensities: list[float] | None = None
    list_propensity: float | None = None
    list_log_propensity: float | None = None
    policy_version: str | None = None
    add_to_carts: list[bool] | None = None
    purchases: list[bool] | None = None
    click_times: list[datetime | None] | None = None
    add_to_cart_times: list[datetime | None] | None = None
    purchase_times: list[datetime | None] | None = None

    def to_record(self) -> dict:
        """A dict matching INTERACTION_SCHEMA, with absent per-position lists filled."""
        k = len(self.items)
        log_p = self.list_log_propensity
        if log_p is None and self.list_propensity is not None and self.list_propensity > 0:
            log_p = math.log(self.list_propensity)
        prop = self.list_propensity
        if prop is None and log_p is not None:
            prop = math.exp(log_p)
        none_times: list[datetime | None] = [None] * k
        return {
            "impression_id": self.impression_id,
            "timestamp": self.timestamp,
            "context": {
                "query": self.query,
                "segment": self.segment,
                "user_features": json.dumps(self.user_features, sort_keys=True),
            },
            "items": list(self.items),
            "position_propensities": self.position_propensities,
            "list_propensity": prop,
            "list_log_propensity": log_p,
            "policy_version": self.policy_version,
            "clicks": list(self.clicks),
            "add_to_carts": list(self.add_to_carts) if self.add_to_carts is not None else [False] * k,
            "purchases": list(self.purchases) if self.purchases is not None else [False] * k,
            "click_times": self.click_times or none_times,
            "add_to_cart_times": self.add_to_cart_times or none_times,
            "purchase_times": self.purchase_times or none_times,
        }

    @classmethod
    def from_record(cls, row: dict) -> "Interaction":
        """Inverse of to_record for a row read back from Parquet (user_features already checked)."""
        context = row.get("context") or {}
        features = context.get("user_features")
        return cls(
            impression_id=row["impression_id"],
            items=list(row["items"]),
            clicks=[bool(c) for c in row["clicks"]],
            timestamp=row.get("timestamp"),
            query=context.get("query"),
            segment=context.get("segment"),
            user_features=json.loads(features) if features else {},
            position_propensities=row.get("position_propensities"),
            list_propensity=row.get("list_propensity"),
            list_log_propensity=row.get("list_log_propensity"),
            policy_version=row.get("policy_version"),
            add_to_carts=row.get("add_to_carts"),
            purchases=row.get("purchases"),
            click_times=row.get("click_times"),
            add_to_cart_times=row.get("add_to_cart_times"),
            purchase_times=row.get("purchase_times"),
        )


def check_columns(schema: pa.Schema, source: str) -> None:
    """Raise LogFormatError naming `source` and the column if `schema` cannot be read as interactions.

    Columns may be missing only if they are optional; a present column must have the
    documented type (integer ids or a list<int> of items are rejected rather than guessed at).
    """
    for name in REQUIRED_COLUMNS:
        if schema.get_field_index(name) < 0:
            raise LogFormatError(f"{source}: column '{name}' is missing (required: {', '.join(REQUIRED_COLUMNS)})")
    for expected in INTERACTION_SCHEMA:
        index = schema.get_field_index(expected.name)
        if index < 0:
            continue
        actual = schema.field(index).type
        if not _compatible(actual, expected.type):
            raise LogFormatError(
                f"{source}: column '{expected.name}' has type {actual}, expected {expected.type}"
            )


def _compatible(actual: pa.DataType, expected: pa.DataType) -> bool:
    if actual.equals(expected):
        return True
    if pa.types.is_timestamp(expected):
        return pa.types.is_timestamp(actual)
    if pa.types.is_string(expected):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual)
    if pa.types.is_list(expected) or pa.types.is_large_list(expected):
        return (pa.types.is_list(actual) or pa.types.is_large_list(actual)) and _compatible(
            actual.value_type, expected.value_type
        )
    if pa.types.is_struct(expected):
        if not pa.types.is_struct(actual):
            return False
        for child in expected:
            i = actual.get_field_index(child.name)
            if i >= 0 and not _compatible(actual.field(i).type, child.type):
                return False
        return True
    if pa.types.is_floating(expected):
        return pa.types.is_floating(actual)
    return False
