"""Write and stream-read Parquet files of interactions (schema in `schema.py`).

Readers go through `pyarrow.dataset`, one record batch at a time, so a log larger than
memory is read in constant memory; a path may be one file or a folder of them. Every batch
is checked (lengths agree, propensities are probabilities, user features are JSON) and
normalised to INTERACTION_SCHEMA, so code downstream never meets a half-formed row. A bad
file gives a `LogFormatError` naming the file, the column and the row.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from feedbackrl.store.schema import (
    INTERACTION_SCHEMA,
    Interaction,
    LogFormatError,
    check_columns,
    one_line,
)

# Per-position lists that must have one entry per shown item when present.
_PER_POSITION = (
    "clicks",
    "position_propensities",
    "add_to_carts",
    "purchases",
    "click_times",
    "add_to_cart_times",
    "purchase_times",
)


def write_interactions(
    path: str | os.PathLike,
    interactions: Iterable[Interaction | dict],
    row_group_size: int = 10_000,
) -> int:
    """Write interactions to one Parquet file in row groups of `row_group_size`; returns rows written.

    Written to a temporary name and renamed, so a crash never leaves a half file at `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    written = 0
    buffer: list[dict] = []
    with pq.ParquetWriter(tmp, INTERACTION_SCHEMA) as writer:
        for item in interactions:
            buffer.append(item.to_record() if isinstance(item, Interaction) else item)
            if len(buffer) >= row_group_size:
                writer.write_table(pa.Table.from_pylist(buffer, schema=INTERACTION_SCHEMA))
                written += len(buffer)
                buffer.clear()
        if buffer:
            writer.write_table(pa.Table.from_pylist(buffer, schema=INTERACTION_SCHEMA))
            written += len(buffer)
    os.replace(tmp, path)
    return written


def open_interactions(path: str | os.PathLike) -> ds.Dataset:
    """A pyarrow dataset over `path` whose columns were checked against the schema."""
    source = str(path)
    if not os.path.exists(source):
        raise LogFormatError(f"{source}: no such file or folder")
    try:
        dataset = ds.dataset(source, format="parquet")
    except (pa.ArrowException, OSError) as e:
        raise LogFormatError(f"{source}: not a readable Parquet file ({one_line(e)})") from None
    check_columns(dataset.schema, source)
    return dataset


def iter_interactions(path: str | os.PathLike, batch_size: int = 8192) -> Iterator[pa.RecordBatch]:
    """Record batches of at most `batch_size` rows, checked and normalised to INTERACTION_SCHEMA."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    source = str(path)
    dataset = open_interactions(source)
    row_offset = 0
    try:
        for batch in dataset.to_batches(batch_size=batch_size):
            if batch.num_rows == 0:
                continue
            normalised = _normalise(batch, source, row_offset)
            _check_rows(normalised, source, row_offset)
            row_offset += batch.num_rows
            yield normalised
    except (pa.ArrowException, OSError) as e:
        # A footer can be intact while a page is not: the error shows up mid-stream.
        raise LogFormatError(f"{source}: unreadable data after row {row_offset} ({one_line(e)})") from None


def iter_interaction_records(path: str | os.PathLike, batch_size: int = 8192) -> Iterator[Interaction]:
    """The same stream as `iter_interactions`, one `Interaction` at a time."""
    for batch in iter_interactions(path, batch_size):
        for row in batch.to_pylist():
            yield Interaction.from_record(row)


def count_interactions(path: str | os.PathLike) -> int:
    """Number of rows, from Parquet metadata (nothing is read)."""
    return open_interactions(path).count_rows()


def _normalise(batch: pa.RecordBatch, source: str, row_offset: int) -> pa.RecordBatch:
    columns = []
    for field in INTERACTION_SCHEMA:
        index = batch.schema.get_field_index(field.name)
        if index < 0:
            columns.append(pa.nulls(batch.num_rows, type=field.type))
            continue
        column = batch.column(index)
        if field.name == "context":
            column = _normalise_context(column)
        try:
            columns.append(column.cast(field.type) if not column.type.equals(field.type) else column)
        except (pa.ArrowException, ValueError) as e:
            raise LogFormatError(
                f"{source}: column '{field.name}' near row {row_offset}: cannot convert ({one_line(e)})"
            ) from None
    return pa.RecordBatch.from_arrays(columns, schema=INTERACTION_SCHEMA.remove_metadata())


def _normalise_context(column: pa.Array) -> pa.Array:
    """A context struct with missing children filled with nulls (hand-made logs omit some)."""
    children, names = [], []
    for child in INTERACTION_SCHEMA.field("context").type:
        names.append(child.name)
        i = column.type.get_field_index(child.name)
        children.append(column.field(i) if i >= 0 else pa.nulls(len(column), type=child.type))
    return pa.StructArray.from_arrays(children, names=names, mask=column.is_null())


def _check_rows(batch: pa.RecordBatch, source: str, row_offset: int) -> None:
    ids = batch.column("impression_id")

    def fail(column: str, row: int, what: str) -> None:
        impression = ids[row].as_py()
        raise LogFormatError(f"{source}: column '{column}' row {row_offset + row} (impression {impression!r}): {what}")

    null_ids = pc.is_null(ids)
    if pc.any(null_ids).as_py():
        fail("impression_id", _first_true(null_ids), "is null")
    items = batch.column("items")
    if items.null_count:
        fail("items", _first_true(pc.is_null(items)), "is null")
    n_items = pc.list_value_length(items)
    for name in _PER_POSITION:
        column = batch.column(name)
        if name == "clicks" and column.null_count:
            fail(name, _first_true(pc.is_null(column)), "is null")
        lengths = pc.list_value_length(column)
        mismatch = pc.and_(pc.is_valid(lengths), pc.not_equal(lengths, n_items))
        if pc.any(mismatch).as_py():
            row = _first_true(mismatch)
            fail(name, row, f"has {lengths[row].as_py()} entries but 'items' has {n_items[row].as_py()}")
    _check_probabilities(batch, "position_propensities", fail)
    list_prop = batch.column("list_propensity")
    bad = pc.or_(pc.less_equal(list_prop, 0.0), pc.greater(list_prop, 1.0 + 1e-9))
    if pc.any(bad).as_py():
        row = _first_true(bad)
        fail("list_propensity", row, f"{list_prop[row].as_py()} is not a probability in (0, 1]")
    features = batch.column("context").field("user_features")
    for row, text in enumerate(features.to_pylist()):
        if text is None:
            continue
        try:
            parsed = json.loads(text)
        except (json.JSONDecodeError, TypeError):
            fail("context.user_features", row, "is not valid JSON")
        if not isinstance(parsed, dict):
            fail("context.user_features", row, "is JSON but not an object")


def _check_probabilities(batch: pa.RecordBatch, name: str, fail) -> None:
    column = batch.column(name)
    if column.null_count == len(column):
        return
    # One row of a list column at a time would be slow; flatten, find the first bad value,
    # then map its flat index back to a row through the list offsets.
    flat = pc.list_flatten(column)
    bad = pc.or_kleene(
        pc.or_kleene(pc.is_null(flat), pc.less_equal(flat, 0.0)), pc.greater(flat, 1.0 + 1e-9)
    )
    if not pc.any(bad).as_py():
        return
    flat_index = _first_true(bad)
    parents = pc.list_parent_indices(column)
    row = parents[flat_index].as_py()
    fail(name, row, f"{flat[flat_index].as_py()} is not a probability in (0, 1]")


def _first_true(mask: pa.Array) -> int:
    return int(pc.index(mask, True).as_py())
