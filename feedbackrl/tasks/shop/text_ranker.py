"""Any text generator as a ranker: render the prompt, complete it, parse the SKUs back.

This is the hook for a trained policy: wrap its generation in a function
`complete(prompts: list[str]) -> list[str]` (greedy or sampled; with or without a
`CatalogConstraint`) and `TextRanker` gives it the `rank(query, segment, day, k, rng)`
interface that `simulate_traffic` and `feedbackrl shop simulate --policy module:factory` use.
The list probability of a generated completion is not known here, so `propensity` is None.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from feedbackrl.tasks.shop.baselines import RankedList
from feedbackrl.tasks.shop.text_format import parse_ranking, render_prompt
from feedbackrl.tasks.shop.world import ShopWorld


class TextRanker:
    def __init__(self, world: ShopWorld, complete: Callable[[Sequence[str]], list[str]], name: str = "text"):
        self.world = world
        self.complete = complete
        self.name = name
        self.last_parsed = None  # the parse of the latest completion, for inspection

    def rank(self, query: str, segment: str, day: int, k: int, rng: np.random.Generator | None = None) -> RankedList:
        (text,) = self.complete([render_prompt(query, segment)])
        parsed = parse_ranking(text, self.world.catalog, self.world.calendar, day, k)
        self.last_parsed = parsed
        # As in the reward, invalid words are dropped and valid items shown in order.
        return RankedList(parsed.items, None, None, None)
