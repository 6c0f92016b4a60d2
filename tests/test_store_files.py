"""Parquet interaction files: round trip, streaming in small batches, clear errors on bad input."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feedbackrl.store.interaction_files import (
    count_interactions,
    iter_interaction_records,
    iter_interactions,
    write_interactions,
)
from feedbackrl.store.schema import INTERACTION_SCHEMA, SCHEMA_DOC, Interaction, LogFormatError


def make_interaction(i: int, k: int = 3) -> Interaction:
    return Interaction(
        impression_id=f"imp-{i}",
        items=[f"sku-{i}-{j}" for j in range(k)],
        clicks=[j == i % k for j in range(k)],
        timestamp=datetime(2024, 1, 1, tzinfo=timezone.utc),
        query=f"query {i % 7}",
        segment="bargain" if i % 2 else "premium",
        user_features={"age": 30 + i % 5},
        position_propensities=[0.5, 0.25, 0.125][:k],
        list_propensity=0.5 * 0.5 * 0.5,
        policy_version="pl-bm25@1",
    )


def test_schema_doc_covers_every_column():
    documented = {name.split(".")[0] for name, _, _ in SCHEMA_DOC}
    assert documented == set(INTERACTION_SCHEMA.names)


def test_round_trip_keeps_every_field(tmp_path):
    path = tmp_path / "logs.parquet"
    original = [make_interaction(i) for i in range(5)]
    assert write_interactions(path, original) == 5
    back = list(iter_interaction_records(path))
    assert [b.impression_id for b in back] == [o.impression_id for o in original]
    assert back[2].clicks == [False, False, True]
    assert back[3].user_features == {"age": 33}
    assert back[1].segment == "bargain"
    assert back[0].list_log_propensity == pytest.approx(3 * -0.6931471805599453)
    assert back[0].add_to_carts == [False, False, False]


def test_streams_many_row_groups_in_small_batches(tmp_path):
    # 2,000 rows in 40 row groups read back 64 rows at a time: no batch is ever larger
    # than asked, and nothing is lost or repeated across group boundaries.
    path = tmp_path / "big.parquet"
    write_interactions(path, (make_interaction(i) for i in range(2000)), row_group_size=50)
    assert pq.ParquetFile(path).num_row_groups == 40
    sizes, ids = [], []
    for batch in iter_interactions(path, batch_size=64):
        sizes.append(batch.num_rows)
        ids.extend(batch.column("impression_id").to_pylist())
    assert max(sizes) <= 64 and len(sizes) >= 40
    assert ids == [f"imp-{i}" for i in range(2000)]
    assert count_interactions(path) == 2000


def test_folder_of_files_is_one_log(tmp_path):
    write_interactions(tmp_path / "logs" / "a.parquet", [make_interaction(i) for i in range(3)])
    write_interactions(tmp_path / "logs" / "b.parquet", [make_interaction(i) for i in range(3, 5)])
    assert count_interactions(tmp_path / "logs") == 5


def test_optional_columns_may_be_missing(tmp_path):
    path = tmp_path / "minimal.parquet"
    pq.write_table(pa.table({"impression_id": ["a"], "items": [["x", "y"]], "clicks": [[True, False]]}), path)
    (batch,) = iter_interactions(path)
    assert batch.schema.names == INTERACTION_SCHEMA.names
    assert batch.column("position_propensities").to_pylist() == [None]


def one_line_error(path, match):
    with pytest.raises(LogFormatError, match=match) as info:
        list(iter_interactions(path))
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_truncated_file_is_one_line_error(tmp_path):
    path = tmp_path / "logs.parquet"
    write_interactions(path, [make_interaction(i) for i in range(50)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    one_line_error(path, "not a readable Parquet file")


def test_missing_file_and_not_parquet(tmp_path):
    one_line_error(tmp_path / "nope.parquet", "no such file")
    text = tmp_path / "logs.csv"
    text.write_text("impression_id,items\n1,2\n")
    one_line_error(text, "not a readable Parquet file")


def test_missing_required_column_names_it(tmp_path):
    path = tmp_path / "logs.parquet"
    pq.write_table(pa.table({"impression_id": ["a"], "items": [["x"]]}), path)
    one_line_error(path, "column 'clicks' is missing")


def test_wrong_type_names_column(tmp_path):
    path = tmp_path / "logs.parquet"
    pq.write_table(pa.table({"impression_id": ["a"], "items": [[1, 2]], "clicks": [[True, False]]}), path)
    one_line_error(path, r"column 'items' has type list<\w+: int64>, expected")


def test_non_json_context_names_column_and_row(tmp_path):
    path = tmp_path / "logs.parquet"
    rows = [make_interaction(i).to_record() for i in range(3)]
    rows[2]["context"]["user_features"] = "{not json"
    pq.write_table(pa.Table.from_pylist(rows, schema=INTERACTION_SCHEMA), path)
    message = one_line_error(path, "column 'context.user_features' row 2")
    assert "imp-2" in message


def test_length_mismatch_and_bad_propensity(tmp_path):
    path = tmp_path / "logs.parquet"
    rows = [make_interaction(i).to_record() for i in range(3)]
    rows[1]["clicks"] = [True]
    pq.write_table(pa.Table.from_pylist(rows, schema=INTERACTION_SCHEMA), path)
    one_line_error(path, "column 'clicks' row 1 .*has 1 entries but 'items' has 3")

    rows = [make_interaction(i).to_record() for i in range(3)]
    rows[2]["position_propensities"] = [0.5, 0.0, 0.1]
    pq.write_table(pa.Table.from_pylist(rows, schema=INTERACTION_SCHEMA), path)
    one_line_error(path, "column 'position_propensities' row 2 .*0.0 is not a probability")


def test_user_features_must_be_object(tmp_path):
    path = tmp_path / "logs.parquet"
    rows = [make_interaction(0).to_record()]
    rows[0]["context"]["user_features"] = json.dumps([1, 2])
    pq.write_table(pa.Table.from_pylist(rows, schema=INTERACTION_SCHEMA), path)
    one_line_error(path, "not an object")
