"""The shop demo recipe (`feedbackrl demo`): static search -> imitation -> online GRPO through a
launch, measured on held-out phrasings against BM25 and the oracle.

Stages, each composed from existing pieces:
1. `recipe.train` with the shop task on a calendar (`CalendarShopTask`): the tiny model is built
   with every SKU as one token, warm-started by SFT on BM25's lists (static search), then trained
   with GRPO against simulated shoppers, `steps_per_day` steps per simulated day, decoding
   constrained to the SKUs on sale that day. The loop evaluates at the end of every day
   (`eval_every = steps_per_day`): greedy lists for the held-out phrasings, scored by the
   task's fixed evaluation shoppers.
2. The same held-out prompts ranked by BM25 and by the oracle on every day, scored by the same
   shoppers (`ShopTask.evaluate`), as reference lines.
3. Days to top 3 of each launch, from the end-of-day greedy lists (`metrics.days_to_top3`); the
   scenario table from the final policy; `summary.json`, `days.json`, `scenarios.json` and
   `report.html` in `runs/<name>/`.

A day's point is the policy as it stands at the end of that day's training steps, shown that
day's held-out queries.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from feedbackrl.policy.model import Policy
from feedbackrl.sample import Sample
from feedbackrl.tasks.shop.baselines import BM25Ranker, OracleRanker
from feedbackrl.tasks.shop.metrics import days_to_top3
from feedbackrl.tasks.shop.simulator import ShopperSimulator
from feedbackrl.tasks.shop.reward import ShopQuery
from feedbackrl.tasks.shop.text_format import render_completion, render_prompt
from feedbackrl.train.config import RunConfig
from feedbackrl.train.recipe import build_task, run_dir_of, train
from feedbackrl.train.shop_calendar import CalendarShopTask, Scenario
from feedbackrl.train.shop_ranking import full_orders, greedy_lists

CURVE_METRICS = ("ctr", "conversion", "ndcg@5", "revenue_per_session")


def shop_demo_config(cfg: RunConfig) -> RunConfig:
    """The loop evaluates once per simulated day; nothing else in the config is overridden."""
    if cfg.task != "shop":
        raise ValueError(f"task: the shop demo needs task: shop, got {cfg.task!r}")
    spd = int(cfg.shop.get("steps_per_day", 0)) or cfg.steps
    return replace(cfg, eval_every=spd)


def baseline_day_evals(task: CalendarShopTask, days: list[int]) -> dict[str, dict[int, tuple[dict, list]]]:
    """BM25 and the oracle on the held-out prompts of each day, scored by the same shoppers as
    the policy: name -> day -> (metrics, [(intent id, query, skus)])."""
    shop, world, k = task.shop, task.world, task.shop.config.k
    rankers = {"bm25": BM25Ranker(world), "oracle": OracleRanker(world)}
    saved_day = shop.day
    out: dict[str, dict[int, tuple[dict, list]]] = {name: {} for name in rankers}
    try:
        for day in days:
            shop.set_day(day)
            prompts = shop.eval_prompts()
            for name, ranker in rankers.items():
                samples, lists = [], []
                for p in prompts:
                    q = p.reference
                    skus = ranker.rank(q.query, q.segment, day, k).skus
                    samples.append(Sample(p.text, render_completion(skus), reference=q))
                    lists.append((q.intent_id, q.query, list(skus)))
                out[name][day] = (shop.evaluate(samples), lists)
    finally:
        shop.set_day(saved_day)
    return out


def training_phrasings_eval(policy: Policy, task: CalendarShopTask, day: int) -> dict[str, dict[str, float]]:
    """The policy, BM25 and the oracle on every *training* phrasing on `day` (same shoppers as the
    held-out evaluation): how much of the held-out gap is wording the policy never saw."""
    shop, world, k = task.shop, task.world, task.shop.config.k
    pairs = [(it, q) for it in world.intents for q in it.train_phrasings]
    queries = [ShopQuery(it.id, q, it.segment, day) for it, q in pairs]
    lists = {"policy": greedy_lists(policy, world, [(q.query, q.segment) for q in queries], day, k, task.prompter)}
    for name, ranker in (("bm25", BM25Ranker(world)), ("oracle", OracleRanker(world))):
        lists[name] = [ranker.rank(q.query, q.segment, day, k).skus for q in queries]
    return {name: shop.evaluate([Sample(render_prompt(q.query, q.segment), render_completion(skus), reference=q)
                                 for q, skus in zip(queries, ls)])
            for name, ls in lists.items()}


def launch_days_to_top3(world, day_lists: dict[int, list]) -> dict[int, dict[str, int | None]]:
    """launch day -> {intent: days until any product launched that day is in the ranker's top 3
    for the intent's held-out phrasing (None: not by the last day)}. The intents are those whose
    ideal top 3 holds one of the launched products on launch day."""
    records = [SimpleNamespace(day=day, intent_id=intent, skus=skus)
               for day, lists in day_lists.items() for intent, _, skus in lists]
    per_sku = days_to_top3(records, world)
    out: dict[int, dict[str, int | None]] = {}
    for product in world.calendar.launches():
        group = out.setdefault(product.launch_day, {})
        for intent, days in per_sku.get(product.sku, {}).items():
            best = [d for d in (group.get(intent), days) if d is not None]
            group[intent] = min(best) if best else None
    return out


def _rank(skus: list[str], sku: str) -> int | None:
    return skus.index(sku) + 1 if sku in skus else None


def _expected_ctr(world, shoppers, intent, day: int, skus: list[str]) -> float:
    """Clicks per session the simulator expects for this list (closed form, no sampling noise)."""
    if not skus:
        return 0.0
    utils = world.utilities(intent, day)
    prices = [world.price_on(world.catalog.by_sku[s], day) for s in skus]
    return float(ShopperSimulator(shoppers).expected([utils[s] for s in skus], prices).clicks.sum())


def scenario_rows(policy: Policy, task: CalendarShopTask, scenarios: list[Scenario], last_day: int) -> list[dict]:
    """Per scenario: BM25's and the policy's lists for its query and for its intent's held-out
    phrasings, the key items' ranks and the expected CTR of each list."""
    world, k, shoppers = task.world, task.shop.config.k, task.shop.config.reward.shoppers
    bm25 = BM25Ranker(world)
    rows = []
    for sc in scenarios:
        intent = world.intent_for_query(sc.query)
        day = last_day if sc.day is None else sc.day
        queries = [sc.query] + [q for q in intent.eval_phrasings if q != sc.query]
        checked = list(intent.phrasings) if sc.above else []
        policy_lists = greedy_lists(policy, world, [(q, intent.segment) for q in queries + checked], day, k,
                                    task.prompter)
        by_query = dict(zip(queries + checked, policy_lists))
        lists = []
        for q in queries:
            before, after = bm25.rank(q, intent.segment, day, k).skus, by_query[q]
            lists.append({"query": q, "held_out": q in intent.eval_phrasings, "bm25": before, "policy": after,
                          "bm25_ctr": _expected_ctr(world, shoppers, intent, day, before),
                          "policy_ctr": _expected_ctr(world, shoppers, intent, day, after)})
        utils = world.utilities(intent, day)
        items = [{"sku": s, "title": world.catalog.by_sku[s].title, "utility": round(utils.get(s, 0.0), 3),
                  "bm25_rank": _rank(lists[0]["bm25"], s), "policy_rank": _rank(lists[0]["policy"], s)}
                 for s in sc.items if s in world.catalog.by_sku]
        row: dict[str, Any] = {"name": sc.name, "query": sc.query, "intent": intent.id, "day": day, "items": items,
                               "bm25_ctr": lists[0]["bm25_ctr"], "policy_ctr": lists[0]["policy_ctr"], "lists": lists}
        if sc.above:
            hi, lo = sc.above

            def holds(got: list[str]) -> bool:
                return hi in got and (lo not in got or got.index(hi) < got.index(lo))

            shown = {q: holds(by_query[q]) for q in checked}
            # the same check on the oracle's lists: whether the ceiling itself shows `higher` in its top k
            oracle_list = OracleRanker(world).rank(sc.query, intent.segment, day, k).skus
            # The target's reading: the policy's whole order (its top k continued greedily), because a top k may rightly hold neither product: on the bundled data the
            # oracle's top 5 for gaming is S24s, and it fails the shown reading.
            orders = dict(zip(checked, full_orders(policy, world, [(q, intent.segment) for q in checked], day,
                                                   task.prompter)))
            order_ranks = {q: {"higher": _rank(o, hi), "lower": _rank(o, lo)} for q, o in orders.items()}
            full = {q: holds(o) for q, o in orders.items()}
            oracle_order = OracleRanker(world).rank(sc.query, intent.segment, day,
                                                    len(world.catalog_on(day))).skus
            row["above"] = {"higher": hi, "lower": lo, "per_query": full, "holds": all(full.values()),
                            "full_order_ranks": order_ranks, "oracle_holds": holds(oracle_order),
                            "shown_per_query": shown, "shown_holds": all(shown.values()),
                            "oracle_shown_holds": holds(oracle_list), "oracle_list": oracle_list}
        rows.append(row)
    return rows


def _curve(day_results: dict[int, tuple[dict, list]]) -> dict[str, list]:
    days = sorted(day_results)
    return {"days": days, **{m: [day_results[d][0].get(m) for d in days] for m in CURVE_METRICS}}


def run_shop_demo(cfg: RunConfig, *, fresh: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train, evaluate against the baselines per day, and write the run's outputs."""
    t0 = time.perf_counter()
    cfg = shop_demo_config(cfg)
    run_dir = run_dir_of(cfg)
    if fresh:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
    task = build_task(cfg)
    if not isinstance(task, CalendarShopTask):
        raise ValueError("task: the shop demo needs the shop task")
    summary = train(cfg, resume=not fresh, log=log, task=task)
    world = task.world
    # one point per simulated day: the last evaluation that ran on it (the end of its steps)
    policy_days: dict[int, tuple[dict, list]] = {}
    for e in task.day_evals:
        if e.step > 0:
            policy_days[e.day] = (e.metrics, e.lists)
    days = sorted(policy_days)
    baselines = baseline_day_evals(task, days)
    last_day = days[-1]

    launches = {name: launch_days_to_top3(world, {d: v[1] for d, v in res.items()})
                for name, res in [("policy", policy_days)] + list(baselines.items())}
    first_launch = min(launches["policy"]) if launches["policy"] else None
    launch_days = launches["policy"].get(first_launch, {}) if first_launch is not None else {}
    fold6 = (None if not launch_days or any(v is None for v in launch_days.values())
             else max(launch_days.values()))

    policy = Policy.load(summary["checkpoint"], device=cfg.model.device, dtype=cfg.model.dtype)
    scenarios = scenario_rows(policy, task, task.run.scenarios, last_day)
    final, bm25_final, oracle_final = policy_days[last_day][0], baselines["bm25"][last_day][0], baselines["oracle"][last_day][0]
    trained = training_phrasings_eval(policy, task, last_day)
    above = next((sc["above"] for sc in scenarios if "above" in sc), None)

    summary.update({
        "steps_per_day": cfg.eval_every,
        "days": days,
        "initial_eval": task.day_evals[0].metrics if task.day_evals and task.day_evals[0].step == 0 else summary.get("initial_eval"),
        "final_eval": final,
        "bm25_eval": bm25_final,
        "oracle_eval": oracle_final,
        "ctr_vs_bm25": final["ctr"] / bm25_final["ctr"] if bm25_final["ctr"] else None,
        "ctr_vs_oracle": final["ctr"] / oracle_final["ctr"] if oracle_final["ctr"] else None,
        "conversion_vs_bm25": final["conversion"] / bm25_final["conversion"] if bm25_final["conversion"] else None,
        "fold6_days_to_top3": fold6,
        "launch_days_to_top3": {name: {str(d): v for d, v in res.items()} for name, res in launches.items()},
        # in the policy's whole order of the segment, for every phrasing of the gaming intent
        "gaming_s23_above_a54": above["holds"] if above else None,
        "gaming_s23_above_a54_oracle": above["oracle_holds"] if above else None,
        # the stricter reading: the S23 Ultra shown in the top k, above the A54 if that is shown
        # (the oracle's own top 5 fails it on the bundled data)
        "gaming_s23_above_a54_shown": above["shown_holds"] if above else None,
        "gaming_s23_above_a54_shown_oracle": above["oracle_shown_holds"] if above else None,
        "training_phrasings": {name: {m: v[m] for m in CURVE_METRICS} for name, v in trained.items()},
        "train_wall_seconds": summary["wall_seconds"],
    })
    events = [e.__dict__ for e in world.calendar.events()]
    days_payload = {"curves": {"policy": _curve(policy_days), **{n: _curve(r) for n, r in baselines.items()}},
                    "events": events}
    scen_payload = {"day": last_day, "scenarios": scenarios,
                    "overall": {"policy_ctr": final["ctr"], "bm25_ctr": bm25_final["ctr"], "oracle_ctr": oracle_final["ctr"],
                                "policy_conversion": final["conversion"], "bm25_conversion": bm25_final["conversion"],
                                "oracle_conversion": oracle_final["conversion"]}}
    (run_dir / "days.json").write_text(json.dumps(days_payload, indent=1, default=str))
    (run_dir / "scenarios.json").write_text(json.dumps(scen_payload, indent=1))
    summary["wall_seconds"] = time.perf_counter() - t0  # the whole demo: model, SFT, RL, evaluations
    write_report(run_dir, summary, days_payload, scenarios)
    summary["wall_seconds"] = time.perf_counter() - t0
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def write_report(run_dir: Path, summary: dict, days_payload: dict, scenarios: list[dict]) -> Path:
    from feedbackrl.report import read_metrics, shop_report_html

    path = Path(run_dir) / "report.html"
    path.write_text(shop_report_html(summary, days_payload, scenarios, read_metrics(run_dir)), encoding="utf-8")
    return path
