"""The shop: e-commerce search as an RL environment (see docs/shop.md).

Data files (catalog, intents) -> `ShopWorld` (calendar, hidden utilities) -> rankers and
simulated shoppers -> metrics; `ShopTask` puts it behind the `Task` protocol for the loops.
"""

from feedbackrl.tasks.shop.baselines import (
    BM25Ranker,
    OracleRanker,
    PlackettLuceLogger,
    PopularityRanker,
    RandomRanker,
    RankedList,
    Ranker,
    make_baseline,
)
from feedbackrl.tasks.shop.constraint import CatalogConstraint
from feedbackrl.tasks.shop.reward import EngagementReward, EngagementRewardConfig, ShopQuery
from feedbackrl.tasks.shop.simulator import ShopperConfig, ShopperSimulator
from feedbackrl.tasks.shop.task import ShopTask, ShopTaskConfig
from feedbackrl.tasks.shop.text_format import parse_ranking, render_completion, render_prompt
from feedbackrl.tasks.shop.traffic import ShopSimulationConfig, TrafficConfig, simulate_traffic
from feedbackrl.tasks.shop.world import ShopWorld, load_shop_world

__all__ = [
    "BM25Ranker", "CatalogConstraint", "EngagementReward", "EngagementRewardConfig", "OracleRanker",
    "PlackettLuceLogger", "PopularityRanker", "RandomRanker", "RankedList", "Ranker", "ShopQuery",
    "ShopSimulationConfig", "ShopTask", "ShopTaskConfig", "ShopWorld", "ShopperConfig", "ShopperSimulator",
    "TrafficConfig", "load_shop_world", "make_baseline", "parse_ranking", "render_completion", "render_prompt",
    "simulate_traffic",
]
