"""The generated preference set and the preference-file reader of the reward model recipe."""

from __future__ import annotations

import json
import re

import pytest

from feedbackrl.tasks.preferences import (
    KINDS,
    arithmetic_pair,
    generate_preferences,
    product_list_pair,
    synthetic_catalog,
    write_preferences_jsonl,
)
from feedbackrl.train.reward_model import PreferenceDataError, accuracy_by, read_preference_rows, split_by_prompt


def test_generation_is_deterministic_and_mixes_both_kinds():
    first, again, other = generate_preferences(300, seed=3), generate_preferences(300, seed=3), generate_preferences(300, seed=4)
    assert first == again
    assert first != other
    counts = {kind: sum(p.kind == kind for p in first) for kind in KINDS}
    assert 100 < counts["arithmetic"] < 200 and counts["arithmetic"] + counts["product_list"] == 300


def _solve(prompt: str) -> int:
    """Recover the true answer from the numbers and the operation named in the prompt."""
    a, b = map(int, re.findall(r"\d+", prompt)[:2])
    if "+" in prompt or "more" in prompt or "added" in prompt:
        return a + b
    if "-" in prompt or "away" in prompt or "eaten" in prompt:
        return a - b
    return a * b


def test_arithmetic_chosen_is_correct_and_rejected_is_not():
    import random

    rng = random.Random(0)
    for _ in range(500):
        pair = arithmetic_pair(rng)
        answer = _solve(pair.prompt)
        assert int(pair.chosen) == answer
        assert int(pair.rejected) != answer and int(pair.rejected) >= 0


def _items(completion: str) -> list[tuple[str, int]]:
    return [(sku, int(price)) for sku, price in re.findall(r"([A-Z]{3}-\d{3}) \(\$(\d+)\)", completion)]


def test_product_lists_chosen_valid_rejected_has_the_named_violation():
    import random

    catalog = synthetic_catalog(0)
    by_sku = {item.sku: item for item in catalog}
    rng = random.Random(1)
    seen = set()
    for _ in range(400):
        pair = product_list_pair(rng, catalog)
        budget = int(re.search(r"at most \$(\d+)", pair.prompt).group(1))
        shown = set(re.findall(r"([A-Z]{3}-\d{3}) ", pair.prompt))
        chosen = _items(pair.chosen)
        category = by_sku[chosen[0][0]].category
        assert len({sku for sku, _ in chosen}) == 3
        assert all(sku in shown and by_sku[sku].category == category and price <= budget for sku, price in chosen)
        rejected = _items(pair.rejected)
        problems = set()
        if len({sku for sku, _ in rejected}) < 3:
            problems.add("repeated_item")
        for sku, price in rejected:
            if sku not in by_sku:
                problems.add("unknown_sku")
            elif by_sku[sku].category != category:
                problems.add("wrong_category")
            elif price > budget:
                problems.add("over_budget")
        assert pair.violation in problems
        # a minimal pair: the rejected list is the chosen one with exactly one slot changed
        assert sum(c != r for c, r in zip(chosen, rejected)) == 1 and len(rejected) == 3
        seen.add(pair.violation)
    assert seen == {"repeated_item", "unknown_sku", "over_budget", "wrong_category"}


def test_reader_accepts_jsonl_and_parquet_with_optional_margin(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"prompt": "p1", "chosen": "a", "rejected": "b", "margin": 0.5}, {"prompt": "p2", "chosen": "c", "rejected": "d"}]
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    got, skipped = read_preference_rows(jsonl)
    assert skipped == 0 and [r["margin"] for r in got] == [0.5, None] and got[1]["chosen"] == "c"

    parquet = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    got, _ = read_preference_rows(parquet)
    assert [r["margin"] for r in got] == [0.5, None]


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ('{"prompt": "p", "chosen": "a"}', "row 2: missing field 'rejected'"),
        ('{"prompt": "p", "chosen": 3, "rejected": "b"}', "row 2: field 'chosen' must be a string, got int"),
        ('{"prompt": "p", "chosen": "a", "rejected": "b", "margin": "big"}', "row 2: field 'margin' must be a finite number"),
        ("{not json", "row 2: not valid JSON"),
        ('["p", "a", "b"]', "row 2: expected an object"),
    ],
)
def test_bad_row_names_file_and_row_or_is_skipped_and_counted(tmp_path, bad_line, message):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n' + bad_line + "\n")
    with pytest.raises(PreferenceDataError) as err:
        read_preference_rows(path)
    assert str(err.value) == f"{path}: {message}" or str(err.value).startswith(f"{path}: {message}")
    rows, skipped = read_preference_rows(path, skip_bad_rows=True)
    assert (len(rows), skipped) == (1, 1)


@pytest.mark.parametrize(
    "bad_row, message",
    [
        ({"prompt": "p", "chosen": "a", "rejected": None}, "row 2: missing field 'rejected'"),
        ({"prompt": "p", "chosen": "a", "rejected": "b", "margin": float("nan")}, "row 2: field 'margin' must be a finite number"),
    ],
)
def test_bad_parquet_row_names_file_row_and_field(tmp_path, bad_row, message):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist([{"prompt": "p", "chosen": "a", "rejected": "b", "margin": 1.0}, bad_row]), path)
    with pytest.raises(PreferenceDataError) as err:
        read_preference_rows(path)
    assert str(err.value).startswith(f"{path}: {message}")
    rows, skipped = read_preference_rows(path, skip_bad_rows=True)
    assert (len(rows), skipped) == (1, 1)


def test_parquet_without_the_required_columns_names_the_field(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist([{"question": "p", "chosen": "a", "rejected": "b"}]), path)
    with pytest.raises(PreferenceDataError, match=r"pairs.parquet: row 1: missing field 'prompt'"):
        read_preference_rows(path)


def test_missing_or_unknown_files_are_one_line_errors(tmp_path):
    with pytest.raises(PreferenceDataError, match="no such preference file"):
        read_preference_rows(tmp_path / "nope.jsonl")
    (tmp_path / "pairs.csv").write_text("prompt,chosen,rejected\n")
    with pytest.raises(PreferenceDataError, match="expected a .jsonl or .parquet file"):
        read_preference_rows(tmp_path / "pairs.csv")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(PreferenceDataError, match="broken.parquet: not a readable Parquet file"):
        read_preference_rows(tmp_path / "broken.parquet")


def test_split_by_prompt_never_shares_a_prompt_and_written_set_reads_back(tmp_path):
    path = write_preferences_jsonl(generate_preferences(200, seed=0), tmp_path / "prefs.jsonl")
    rows, skipped = read_preference_rows(path)
    assert (len(rows), skipped) == (200, 0)
    train, held_out = split_by_prompt(rows, 0.25, seed=0)
    assert len(train) + len(held_out) == 200
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in held_out}
    n_prompts = len({r["prompt"] for r in rows})
    assert len({r["prompt"] for r in held_out}) == round(0.25 * n_prompts)
    assert split_by_prompt(rows, 0.25, seed=0) == (train, held_out)


def test_accuracy_by_groups_rows_and_leaves_out_rows_without_the_key():
    rows = [{"kind": "a", "violation": "x"}, {"kind": "a", "violation": None}, {"kind": "b", "violation": "x"}, {"kind": None}]
    right = [True, False, True, True]
    assert accuracy_by(rows, right, "kind") == {"a": 0.5, "b": 1.0}
    assert accuracy_by(rows, right, "violation") == {"x": 1.0}


def test_reader_keeps_kind_and_violation_for_the_summary(tmp_path):
    path = write_preferences_jsonl(generate_preferences(20, seed=0), tmp_path / "prefs.jsonl")
    rows, _ = read_preference_rows(path)
    assert {r["kind"] for r in rows} == set(KINDS)
    assert all(isinstance(r["violation"], str) for r in rows)


def test_arithmetic_difficulty_and_mix_are_generator_parameters():
    pairs = generate_preferences(400, seed=0, arithmetic_fraction=0.75, max_operand=4)
    arithmetic = [p for p in pairs if p.kind == "arithmetic"]
    assert 260 < len(arithmetic) < 340
    for pair in arithmetic:
        assert all(1 <= int(n) <= 4 for n in re.findall(r"\d+", pair.prompt))
        assert int(pair.chosen) == _solve(pair.prompt) != int(pair.rejected)
    assert all(p.kind == "arithmetic" for p in generate_preferences(50, seed=0, arithmetic_fraction=1.0))
    with pytest.raises(ValueError, match="max_operand"):
        generate_preferences(10, max_operand=0)


def test_unknown_skus_are_decoys_that_tokenize_like_catalog_skus():
    """An unknown SKU must not be told apart by its form: it comes from a fixed set of decoys,
    well-formed, never in the catalog, and whole tokens of the tiny tokenizer like real SKUs."""
    from feedbackrl.policy.tiny import train_tokenizer
    from feedbackrl.tasks.preferences import catalog_skus, decoy_skus, sku_vocabulary

    catalog, decoys = set(catalog_skus(0)), decoy_skus(0)
    assert len(decoys) == len(set(decoys)) == len(catalog) and not catalog & set(decoys)
    assert all(re.fullmatch(r"[A-Z]{3}-\d{3}", sku) for sku in decoys)
    pairs = generate_preferences(600, seed=0)
    unknown = [p for p in pairs if p.violation == "unknown_sku"]
    assert unknown and all(set(re.findall(r"[A-Z]{3}-\d{3}", p.rejected)) - catalog <= set(decoys) for p in unknown)
    tokenizer = train_tokenizer([p.prompt + p.chosen for p in pairs], sku_vocabulary(0), vocab_size=512)
    for pair in unknown:
        chosen, rejected = (tokenizer.tokenize(pair.prompt + c) for c in (pair.chosen, pair.rejected))
        skus = [t for t in rejected if re.fullmatch(r" ?[A-Z]{3}-\d{3}", t)]
        assert sum(t in (" " + s for s in decoys) for t in skus) == 1
        # the same number of SKU tokens as the chosen text: nothing splits
        assert len(skus) == len([t for t in chosen if re.fullmatch(r" ?[A-Z]{3}-\d{3}", t)])
