"""The SQLite event log: replayed events stored once, bad events rejected without harm, export."""

from __future__ import annotations

import sqlite3
import threading

import pyarrow.parquet as pq
import pytest

from feedbackrl.store.event_log import Event, EventError, EventLog
from feedbackrl.store.interaction_files import iter_interaction_records


@pytest.fixture
def log(tmp_path):
    with EventLog(tmp_path / "events.db") as event_log:
        event_log.log_impression(
            "imp-1", ["a", "b", "c"], timestamp=100.0, query="red shoes", segment="bargain",
            user_features={"age": 31}, position_propensities=[0.5, 0.4, 0.3], list_propensity=0.06,
            policy_version="pl@1",
        )
        yield event_log


def test_pragmas_are_wal_and_full(log):
    conn = sqlite3.connect(log.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # synchronous is per connection: check ours.
    assert log._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_replayed_event_is_stored_once(log):
    assert log.log_event("e1", "imp-1", 1, "click", timestamp=101.0) is True
    assert log.log_event("e1", "imp-1", 1, "click", timestamp=101.0) is False
    assert log.log_impression("imp-1", ["a", "b", "c"]) is False
    assert log.counts() == {"impressions": 1, "events": 1}


def test_bad_event_among_good_ones_keeps_the_good(log):
    batch = [
        Event("e1", "imp-1", 0, "click", 101.0),
        Event("e2", "imp-1", 7, "click", 102.0),  # position out of range
        Event("e3", "imp-404", 0, "click", 103.0),  # unknown impression
        Event("e4", "imp-1", 0, "teleport", 104.0),  # unknown kind
        Event("e5", "imp-1", 0, "purchase", float("nan")),  # bad timestamp
        Event("e6", "imp-1", 0, "add_to_cart", 105.0),
    ]
    result = log.log_events(batch)
    assert result.stored == 2 and result.duplicates == 0
    assert [event_id for event_id, _ in result.rejected] == ["e2", "e3", "e4", "e5"]
    assert "position must be an integer in [0, 3)" in result.rejected[0][1]
    assert log.counts()["events"] == 2
    with pytest.raises(EventError, match="unknown impression_id"):
        log.log_event("e7", "nope", 0, "click")
    # The database is still whole and usable after the rejections.
    assert sqlite3.connect(log.path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert log.log_event("e8", "imp-1", 2, "click", 106.0)


def test_bad_impressions_are_refused(log):
    with pytest.raises(EventError, match="position_propensities: 2 values for 3 items"):
        log.log_impression("imp-2", ["a", "b", "c"], position_propensities=[0.1, 0.2])
    with pytest.raises(EventError, match="user_features: not JSON"):
        log.log_impression("imp-2", ["a"], user_features={"x": object()})
    with pytest.raises(EventError, match="items"):
        log.log_impression("imp-2", "abc")
    assert log.counts()["impressions"] == 1


def test_concurrent_writers_store_everything(log):
    def write(thread: int) -> None:
        for i in range(50):
            log.log_impression(f"t{thread}-{i}", ["a", "b"])
            log.log_event(f"t{thread}-{i}-click", f"t{thread}-{i}", i % 2, "click")
            log.log_event(f"t{thread}-{i}-click", f"t{thread}-{i}", i % 2, "click")  # a retry

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.counts() == {"impressions": 1 + 200, "events": 200}


def test_export_streams_in_row_groups_and_folds_events(log, tmp_path):
    log.log_events([
        Event("e1", "imp-1", 1, "click", 101.0),
        Event("e0", "imp-1", 1, "click", 100.5),  # earlier click on the same item: its time wins
        Event("e2", "imp-1", 1, "add_to_cart", 102.0),
        Event("e3", "imp-1", 1, "purchase", 103.0),
        Event("e4", "imp-1", 2, "click", 104.0),
    ])
    for i in range(2, 26):
        log.log_impression(f"imp-{i}", ["x", "y"], timestamp=200.0 + i)
    out = tmp_path / "out" / "logs.parquet"
    assert log.export_parquet(out, batch_rows=10) == 25
    assert pq.ParquetFile(out).num_row_groups == 3
    records = list(iter_interaction_records(out))
    first = records[0]
    assert first.clicks == [False, True, True]
    assert first.add_to_carts == [False, True, False]
    assert first.purchases == [False, True, False]
    assert first.click_times[1].timestamp() == pytest.approx(100.5)
    assert first.click_times[0] is None
    assert first.user_features == {"age": 31} and first.query == "red shoes"
    assert first.position_propensities == [0.5, 0.4, 0.3]
    assert first.list_log_propensity == pytest.approx(-2.8134107167600364)
    assert records[-1].impression_id == "imp-25" and records[-1].clicks == [False, False]
    assert not (out.parent / "logs.parquet.partial").exists()


def test_not_a_database_is_one_line_error(tmp_path):
    from feedbackrl.store.schema import LogFormatError

    bad = tmp_path / "events.db"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(LogFormatError, match="not a usable event database"):
        EventLog(bad)


def test_batch_of_impressions_keeps_the_good(log):
    result = log.log_impressions([
        {"impression_id": "b1", "items": ["a"], "query": "q"},
        {"impression_id": "b2", "items": []},  # empty list
        {"impression_id": "b3", "items": ["a"], "colour": "red"},  # unknown field
        {"impression_id": "imp-1", "items": ["a", "b", "c"]},  # replay
        {"impression_id": "b4", "items": ["x", "y"], "list_propensity": 1.5},
    ])
    assert result.stored == 1 and result.duplicates == 1
    assert [i for i, _ in result.rejected] == ["b2", "b3", "b4"]
    assert log.counts()["impressions"] == 2
