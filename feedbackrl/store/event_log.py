"""The live event log: impressions and shopper events in SQLite, exported to Parquet.

Durability first. WAL mode lets readers work while the service writes; synchronous=FULL
means a write acknowledged is on disk (a power cut loses nothing acknowledged). Every event
carries a client-made `event_id` that is UNIQUE, and inserts are INSERT OR IGNORE, so a
client that retries after a timeout stores its event once. Events arrive from the network:
each is checked before it touches the database, a bad one is rejected with a reason and the
good ones beside it are still stored; no bad event can leave the file half-written.

One connection is shared by every thread, behind a lock: SQLite serialises writers anyway,
and one connection avoids "database is locked" errors between our own threads.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from feedbackrl.store.schema import EVENT_KINDS, INTERACTION_SCHEMA, LogFormatError

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS impressions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    impression_id TEXT NOT NULL UNIQUE,
    timestamp_us INTEGER NOT NULL,
    query TEXT,
    segment TEXT,
    user_features TEXT NOT NULL,           -- JSON object
    items TEXT NOT NULL,                   -- JSON list of SKUs, display order
    position_propensities TEXT,            -- JSON list of floats, or NULL
    list_propensity REAL,
    list_log_propensity REAL,
    policy_version TEXT
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    impression_id TEXT NOT NULL REFERENCES impressions(impression_id),
    position INTEGER NOT NULL CHECK (position >= 0),
    kind TEXT NOT NULL CHECK (kind IN ('click', 'add_to_cart', 'purchase')),
    timestamp_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_impression ON events(impression_id);
"""


_INSERT_IMPRESSION = (
    "INSERT OR IGNORE INTO impressions (impression_id, timestamp_us, query, segment, user_features,"
    " items, position_propensities, list_propensity, list_log_propensity, policy_version)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_IMPRESSION_FIELDS = (
    "impression_id", "items", "timestamp", "query", "segment", "user_features",
    "position_propensities", "list_propensity", "list_log_propensity", "policy_version",
)


def _impression_args(kwargs: dict) -> tuple:
    if not isinstance(kwargs, dict):
        raise EventError(f"expected a dict of impression fields, got {type(kwargs).__name__}")
    unknown = set(kwargs) - set(_IMPRESSION_FIELDS)
    if unknown:
        raise EventError(f"unknown impression field(s): {', '.join(sorted(unknown))}")
    return tuple(kwargs.get(name) for name in _IMPRESSION_FIELDS)


class EventError(ValueError):
    """An impression or event that cannot be stored; the message says which field and why."""


@dataclass
class Event:
    event_id: str
    impression_id: str
    position: int
    kind: str  # one of EVENT_KINDS
    timestamp: datetime | float | None = None  # datetime, or seconds since the epoch; None = now


@dataclass
class EventBatchResult:
    stored: int = 0
    duplicates: int = 0
    # (event_id, reason) for each event refused; the rest of the batch is stored regardless.
    rejected: list[tuple[str, str]] = field(default_factory=list)


def _timestamp_us(value: datetime | float | None) -> int:
    if value is None:
        value = datetime.now(timezone.utc)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return int(round(value.timestamp() * 1_000_000))
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return int(round(float(value) * 1_000_000))
    raise EventError(f"timestamp: expected a datetime or seconds since the epoch, got {value!r}")


class EventLog:
    """Impressions and events in one SQLite file; `export_parquet` turns them into interactions."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(_SCHEMA_SQL)
        except sqlite3.DatabaseError as e:
            raise LogFormatError(f"{self.path}: not a usable event database ({e})") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "EventLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- writes -------------------------------------------------------------------------

    def log_impression(
        self,
        impression_id: str,
        items: Sequence[str],
        *,
        timestamp: datetime | float | None = None,
        query: str | None = None,
        segment: str | None = None,
        user_features: dict | None = None,
        position_propensities: Sequence[float] | None = None,
        list_propensity: float | None = None,
        list_log_propensity: float | None = None,
        policy_version: str | None = None,
    ) -> bool:
        """Store a shown list; returns False if `impression_id` was already stored (a replay)."""
        row = self._impression_row(
            impression_id, items, timestamp, query, segment, user_features,
            position_propensities, list_propensity, list_log_propensity, policy_version,
        )
        with self._lock:
            cursor = self._conn.execute(_INSERT_IMPRESSION, row)
            return cursor.rowcount == 1

    def log_impressions(self, impressions: Iterable[dict]) -> EventBatchResult:
        """Store many impressions (dicts of `log_impression` arguments) in one transaction.

        One fsync for the batch instead of one per list; invalid ones are rejected with a reason.
        """
        result = EventBatchResult()
        rows = []
        for kwargs in impressions:
            try:
                rows.append(self._impression_row(*_impression_args(kwargs)))
            except (EventError, TypeError) as e:
                result.rejected.append((str(kwargs.get("impression_id", "?")) if isinstance(kwargs, dict) else "?", str(e)))
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:
                    cursor = self._conn.execute(_INSERT_IMPRESSION, row)
                    if cursor.rowcount == 1:
                        result.stored += 1
                    else:
                        result.duplicates += 1
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return result

    def log_event(
        self,
        event_id: str,
        impression_id: str,
        position: int,
        kind: str,
        timestamp: datetime | float | None = None,
    ) -> bool:
        """Store one event; returns False for a replayed `event_id`. Raises EventError if invalid."""
        result = self.log_events([Event(event_id, impression_id, position, kind, timestamp)])
        if result.rejected:
            raise EventError(result.rejected[0][1])
        return result.stored == 1

    def log_events(self, events: Iterable[Event]) -> EventBatchResult:
        """Store a batch in one transaction; invalid events are rejected, the valid ones kept."""
        result = EventBatchResult()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for event in events:
                    try:
                        row = self._event_row(event)
                    except EventError as e:
                        result.rejected.append((str(getattr(event, "event_id", "?")), str(e)))
                        continue
                    cursor = self._conn.execute(
                        "INSERT OR IGNORE INTO events (event_id, impression_id, position, kind,"
                        " timestamp_us) VALUES (?, ?, ?, ?, ?)",
                        row,
                    )
                    if cursor.rowcount == 1:
                        result.stored += 1
                    else:
                        result.duplicates += 1
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return result

    def _impression_row(
        self, impression_id, items, timestamp, query, segment, user_features,
        position_propensities, list_propensity, list_log_propensity, policy_version,
    ) -> tuple:
        if not isinstance(impression_id, str) or not impression_id:
            raise EventError(f"impression_id: expected a non-empty string, got {impression_id!r}")
        if not isinstance(items, (list, tuple)) or not items or not all(isinstance(s, str) and s for s in items):
            raise EventError(f"items: expected a non-empty list of SKU strings, got {items!r}")
        if position_propensities is not None:
            probs = [float(p) for p in position_propensities]
            if len(probs) != len(items):
                raise EventError(f"position_propensities: {len(probs)} values for {len(items)} items")
            if not all(0.0 < p <= 1.0 for p in probs):
                raise EventError(f"position_propensities: every value must be in (0, 1], got {probs}")
            position_propensities = json.dumps(probs)
        if list_propensity is not None and not 0.0 < float(list_propensity) <= 1.0:
            raise EventError(f"list_propensity: must be in (0, 1], got {list_propensity!r}")
        if list_log_propensity is None and list_propensity is not None:
            list_log_propensity = math.log(float(list_propensity))
        if list_log_propensity is not None and not float(list_log_propensity) <= 0.0:
            raise EventError(f"list_log_propensity: must be <= 0, got {list_log_propensity!r}")
        if list_propensity is None and list_log_propensity is not None:
            list_propensity = math.exp(float(list_log_propensity))
        try:
            features = json.dumps(user_features or {}, sort_keys=True)
        except (TypeError, ValueError) as e:
            raise EventError(f"user_features: not JSON-serialisable ({e})") from None
        return (
            impression_id, _timestamp_us(timestamp), query, segment, features,
            json.dumps(list(items)), position_propensities, list_propensity,
            list_log_propensity, policy_version,
        )

    def _event_row(self, event: Event) -> tuple:
        if not isinstance(event, Event):
            raise EventError(f"expected an Event, got {type(event).__name__}")
        if not isinstance(event.event_id, str) or not event.event_id:
            raise EventError(f"event_id: expected a non-empty string, got {event.event_id!r}")
        if event.kind not in EVENT_KINDS:
            raise EventError(f"event {event.event_id}: kind must be one of {', '.join(EVENT_KINDS)}, got {event.kind!r}")
        found = self._conn.execute(
            "SELECT items FROM impressions WHERE impression_id = ?", (event.impression_id,)
        ).fetchone()
        if found is None:
            raise EventError(f"event {event.event_id}: unknown impression_id {event.impression_id!r}")
        n_items = len(json.loads(found[0]))
        if not isinstance(event.position, int) or isinstance(event.position, bool) or not 0 <= event.position < n_items:
            raise EventError(f"event {event.event_id}: position must be an integer in [0, {n_items}), got {event.position!r}")
        return (event.event_id, event.impression_id, event.position, event.kind, _timestamp_us(event.timestamp))

    # ---- reads --------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        with self._lock:
            impressions = self._conn.execute("SELECT COUNT(*) FROM impressions").fetchone()[0]
            events = self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        return {"impressions": impressions, "events": events}

    def export_parquet(self, out_path: str | os.PathLike, batch_rows: int = 10_000) -> int:
        """Write every impression with its events as INTERACTION_SCHEMA rows; returns rows written.

        Streamed: `batch_rows` impressions (and only their events) are in memory at a time, each
        chunk one Parquet row group. Written to a temporary name and renamed on success.
        """
        if batch_rows < 1:
            raise ValueError("batch_rows must be >= 1")
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_name(out_path.name + ".partial")
        written, last_seq = 0, 0
        try:
            with pq.ParquetWriter(tmp, INTERACTION_SCHEMA) as writer:
                while True:
                    impressions, events = self._read_chunk(last_seq, batch_rows)
                    if not impressions:
                        break
                    last_seq = impressions[-1][0]
                    records = [_interaction_record(row, events.get(row[1], [])) for row in impressions]
                    writer.write_table(pa.Table.from_pylist(records, schema=INTERACTION_SCHEMA))
                    written += len(records)
            os.replace(tmp, out_path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return written

    def _read_chunk(self, after_seq: int, limit: int) -> tuple[list[tuple], dict[str, list[tuple]]]:
        with self._lock:
            impressions = self._conn.execute(
                "SELECT seq, impression_id, timestamp_us, query, segment, user_features, items,"
                " position_propensities, list_propensity, list_log_propensity, policy_version"
                " FROM impressions WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
            if not impressions:
                return [], {}
            events = self._conn.execute(
                "SELECT e.impression_id, e.position, e.kind, e.timestamp_us FROM events e"
                " JOIN impressions i ON i.impression_id = e.impression_id"
                " WHERE i.seq > ? AND i.seq <= ? ORDER BY e.timestamp_us, e.seq",
                (after_seq, impressions[-1][0]),
            ).fetchall()
        by_impression: dict[str, list[tuple]] = {}
        for impression_id, position, kind, ts in events:
            by_impression.setdefault(impression_id, []).append((position, kind, ts))
        return impressions, by_impression


def _from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc)


def _interaction_record(row: tuple, events: list[tuple]) -> dict:
    (_, impression_id, ts, query, segment, features, items_json, props_json, list_p, list_logp, version) = row
    items = json.loads(items_json)
    k = len(items)
    flags = {kind: [False] * k for kind in EVENT_KINDS}
    times: dict[str, list] = {kind: [None] * k for kind in EVENT_KINDS}
    for position, kind, event_us in events:  # sorted by time: the first event of a kind wins
        if not flags[kind][position]:
            flags[kind][position] = True
            times[kind][position] = _from_us(event_us)
    return {
        "impression_id": impression_id,
        "timestamp": _from_us(ts),
        "context": {"query": query, "segment": segment, "user_features": features},
        "items": items,
        "position_propensities": json.loads(props_json) if props_json else None,
        "list_propensity": list_p,
        "list_log_propensity": list_logp,
        "policy_version": version,
        "clicks": flags["click"],
        "add_to_carts": flags["add_to_cart"],
        "purchases": flags["purchase"],
        "click_times": times["click"],
        "add_to_cart_times": times["add_to_cart"],
        "purchase_times": times["purchase"],
    }
