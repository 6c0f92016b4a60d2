"""Historical shop logs for offline training: the randomised logger's sessions as tuples and pairs.

`sessions` shoppers search with the *training* phrasings of the intents (drawn by traffic
weight) on the task's day and are shown lists drawn by the Plackett-Luce logging policy over
BM25, whose list propensities are recorded; `ShopperSimulator` decides clicks. The sessions
become store interactions (`session_interactions`) and then tuples and preference pairs
(`feedbackrl.store.convert`), written as Parquet exactly as `feedbackrl logs convert` does.
Prompts are `render_prompt(query, segment)`, the shop task's own, or what `prompter(query,
segment, day)` writes (`ShopPrompter`: the query with BM25's top candidates after it, as a run
with `shop.prompt_candidates` shows them to the policy).

With `noisy_copies` > 0 a third file, `tuples_noisy.parquet`, holds that many copies of every
logged tuple whose query words are perturbed (`noisy_query`: words dropped, training words
added, order shuffled) while BM25's candidates stay those the logger ranked: query-word
dropout, data augmentation for the offline loop that makes a small policy read the candidates
rather than memorise three phrasings per intent. The list and its clicks are unchanged, which
is sound here because the simulated shopper's clicks depend on the intent and the list, not on
the words typed. These rows carry no propensity, so only the weighted methods (awr, rwr) use them.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from feedbackrl.store.convert import (
    RewardWeights, default_render_prompt, to_preference_pairs, to_tuples, write_records,
)
from feedbackrl.tasks.shop import PlackettLuceLogger, ShopTask
from feedbackrl.tasks.shop.session_log import session_interactions
from feedbackrl.tasks.shop.simulator import ShopperSimulator
from feedbackrl.tasks.shop.traffic import simulate_session

LOGGING_TEMPERATURE = 0.5
# The reward of a logged list is its clicks: the figure the offline experiments report is CTR.
CLICKS_ONLY = RewardWeights(click=1.0, add_to_cart=0.0, purchase=0.0)


def write_shop_logs(task: ShopTask, sessions: int, out: Path, seed: int,
                    temperature: float = LOGGING_TEMPERATURE, weights: RewardWeights = CLICKS_ONLY,
                    prompter: Callable[[str, str, int], str] | None = None, noisy_copies: int = 0) -> dict:
    """Logging-policy sessions on training phrasings -> `out`/tuples.parquet and pairs.parquet."""
    world = task.world
    logger = PlackettLuceLogger(world, temperature, bm25=task._bm25_ranker())
    simulator = ShopperSimulator(task.config.reward.shoppers)
    rng = np.random.default_rng(seed)
    traffic = np.asarray([it.traffic for it in world.intents], dtype=np.float64)
    traffic /= traffic.sum()
    records = []
    for _ in range(sessions):
        intent = world.intents[int(rng.choice(len(world.intents), p=traffic))]
        query = intent.train_phrasings[int(rng.integers(len(intent.train_phrasings)))]
        records.append(simulate_session(world, simulator, logger, intent, query, task.day, task.config.k, rng))
    interactions = list(session_interactions(records, prefix="offline-shop"))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    day = task.day
    render = default_render_prompt if prompter is None else (lambda it: prompter(it.query, it.segment, day))
    n_tuples = write_records(out / "tuples.parquet", to_tuples(interactions, weights, render_prompt=render))
    n_pairs = write_records(out / "pairs.parquet", to_preference_pairs(interactions, render))
    n_noisy = 0
    if noisy_copies > 0:
        from feedbackrl.tasks.shop.text_format import render_prompt
        from feedbackrl.train.shop_calendar import noisy_query

        vocabulary = sorted({w for it in world.intents for q in it.train_phrasings for w in q.split()})
        write = prompter or (lambda q, segment, _day: render_prompt(q, segment))
        noise_rng = random.Random(seed)

        def reworded(it) -> str:
            # the logged prompt with its query words replaced; the candidates after them are kept
            head = render_prompt(it.query, it.segment).removesuffix("->")
            tail = write(it.query, it.segment, day)[len(head):]
            return render_prompt(noisy_query(it.query, vocabulary, noise_rng), it.segment).removesuffix("->") + tail

        noisy = [replace(t, prompt=reworded(it), logged_logprob=None)
                 for it, t in zip(interactions, to_tuples(interactions, weights)) for _ in range(noisy_copies)]
        n_noisy = write_records(out / "tuples_noisy.parquet", noisy)
    return {"sessions": sessions, "tuples": n_tuples, "pairs": n_pairs, "noisy_tuples": n_noisy,
            "logging_temperature": temperature,
            "logged_ctr_train_phrasings": float(np.mean([sum(r.clicks) for r in records]))}
