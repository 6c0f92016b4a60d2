"""Aggregates of an interaction log computed by DuckDB, which streams Parquet off disk.

DuckDB reads the columns it needs row group by row group, so summaries of logs larger than
memory work; the file is first checked by the same reader as everything else, so a bad log
fails with the same one-line error.
"""

from __future__ import annotations

import os
from pathlib import Path

from feedbackrl.store.interaction_files import open_interactions
from feedbackrl.store.schema import LogFormatError, one_line


def _parquet_glob(path: str | os.PathLike) -> str:
    path = Path(path)
    return str(path / "**" / "*.parquet") if path.is_dir() else str(path)


def summarize_interactions(path: str | os.PathLike) -> dict:
    """{'impressions': N, 'ctr_by_position': {k: CTR}, 'by_policy_version': {version: (N, CTR)}}.

    CTR is clicks per shown item, the unit used throughout OPE.
    """
    import duckdb

    open_interactions(path)  # schema check with a clear error before DuckDB sees the file
    source = _parquet_glob(path)
    has_version = "policy_version" in open_interactions(path).schema.names
    try:
        con = duckdb.connect()
        rel = f"read_parquet('{source.replace(chr(39), chr(39) * 2)}')"
        impressions = con.execute(f"SELECT COUNT(*) FROM {rel}").fetchone()[0]
        by_position = con.execute(
            f"SELECT pos - 1 AS position, AVG(CAST(clicks[pos] AS DOUBLE)) FROM"
            f" (SELECT clicks, UNNEST(range(1, len(clicks) + 1)) AS pos FROM {rel}) GROUP BY pos ORDER BY pos"
        ).fetchall()
        version = "policy_version" if has_version else "NULL"
        by_version = con.execute(
            f"SELECT v, COUNT(DISTINCT impression_id), AVG(CAST(click AS DOUBLE)) FROM"
            f" (SELECT COALESCE({version}, '(none)') AS v, impression_id, UNNEST(clicks) AS click FROM {rel})"
            f" GROUP BY v ORDER BY v"
        ).fetchall()
    except duckdb.Error as e:
        raise LogFormatError(f"{path}: {one_line(e)}") from None
    return {
        "impressions": int(impressions),
        "ctr_by_position": {int(k): float(v) for k, v in by_position},
        "by_policy_version": {str(v): (int(n), float(ctr or 0.0)) for v, n, ctr in by_version},
    }
