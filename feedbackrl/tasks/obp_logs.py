"""Real logs: the Open Bandit Dataset (OBD) sample that ships inside the `obp` package.

ZOZOTOWN's fashion e-commerce shows three items (slots 1-3) from a campaign's items
("all": 80, "men": 34, "women": 46). Two logging policies ran side by side: a uniform
random one and Bernoulli Thompson Sampling (BTS). The sample holds 10,000 rows per
(policy, campaign) in `obp/dataset/obd/{random,bts}/{campaign}/{campaign}.csv`; each row is
one (item, slot) shown, with `click` and `propensity_score` = the logging policy's
probability of that item in that slot (1/80 for random on "all"; for BTS the marginal its
authors computed by simulation). Rows are not grouped into impressions, so, as in the OBD
paper, each row is one round: here an `Interaction` with a one-item list whose query key is
"{campaign} slot {s}" (the click model then learns per-slot click rates of each item).

The evaluation target is BTS itself. Its probability of an item in a slot comes from one
of (documented in docs/offline.md; none is given per round in the sample):
- `logged`: for each (item, slot), the mean propensity BTS logged for it in its own rows,
  renormalised per slot: BTS's own account of its (time-averaged) behaviour;
- `prior`: Monte Carlo of BTS from the Beta parameters obp ships in
  `obp/policy/conf/prior_bts.yaml` (draw a click rate per item, show the three largest);
- `empirical`: how often BTS showed each item in each slot in its 10,000 logged rows.
Only data files are read from the package; obp itself is never imported (its loader needs
old pandas), so it is installed with `pip install --no-deps obp==0.4.1`.
"""

from __future__ import annotations

import csv
import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from feedbackrl.store.schema import Interaction, LogFormatError

CAMPAIGNS = ("all", "men", "women")
NUM_SLOTS = 3
INSTALL_HINT = "install it with: .venv/bin/pip install --no-deps obp==0.4.1"


def obd_root() -> Path:
    """Folder holding `random/` and `bts/` of the OBD sample."""
    spec = importlib.util.find_spec("obp")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"the Open Bandit Dataset sample comes with the 'obp' package; {INSTALL_HINT}")
    root = Path(spec.origin).parent / "dataset" / "obd"
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: the obp package has no dataset/obd folder; {INSTALL_HINT}")
    return root


def obd_csv(policy: Literal["random", "bts"], campaign: str) -> Path:
    if campaign not in CAMPAIGNS:
        raise ValueError(f"campaign must be one of {', '.join(CAMPAIGNS)}, got {campaign!r}")
    path = obd_root() / policy / campaign / f"{campaign}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the obp package; {INSTALL_HINT}")
    return path


def num_items(campaign: str) -> int:
    with open(obd_root() / "random" / campaign / "item_context.csv", newline="") as f:
        return sum(1 for _ in csv.DictReader(f))


def read_obd(policy: Literal["random", "bts"], campaign: str = "all") -> list[Interaction]:
    """One Interaction per CSV row (one item in one slot), propensities as logged."""
    path = obd_csv(policy, campaign)
    interactions = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"item_id", "position", "click", "propensity_score"} - set(reader.fieldnames or [])
        if missing:
            raise LogFormatError(f"{path}: column '{sorted(missing)[0]}' is missing")
        for line, row in enumerate(reader, start=2):
            try:
                slot = int(row["position"]) - 1
                item = str(int(row["item_id"]))
                click = bool(int(row["click"]))
                pscore = float(row["propensity_score"])
            except (TypeError, ValueError):
                raise LogFormatError(f"{path}: line {line}: item_id/position/click/propensity_score must be numbers") from None
            if not 0 <= slot < NUM_SLOTS or not 0 < pscore <= 1:
                raise LogFormatError(f"{path}: line {line}: position must be 1-3 and propensity_score in (0, 1]")
            interactions.append(
                Interaction(
                    impression_id=f"obd-{policy}-{campaign}-{line - 2}",
                    items=[item],
                    clicks=[click],
                    query=f"{campaign} slot {slot + 1}",
                    user_features={k: row[k] for k in row if k.startswith("user_feature_")},
                    position_propensities=[pscore],
                    list_propensity=pscore,
                    policy_version=f"obd-{policy}",
                )
            )
    return interactions


def slot_of(interaction: Interaction) -> int:
    return int((interaction.query or "slot 1").rsplit(" ", 1)[-1]) - 1


@dataclass
class ObdSlotPolicy:
    """A context-free policy given by P(item | slot): the target for OBD evaluation.

    `slot_probs[item, slot]` sums to 1 over items for each slot. Each OBD round is one item
    in one slot, so the policy's probability of the logged round is slot_probs[item, slot].
    """

    name: str
    slot_probs: np.ndarray  # [num_items, NUM_SLOTS]
    _by_slot: dict[int, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    def position_marginals(self, interaction: Interaction, k: int) -> dict[str, np.ndarray]:
        slot = slot_of(interaction)
        if slot not in self._by_slot:
            column = self.slot_probs[:, slot]
            self._by_slot[slot] = {str(i): np.array([p]) for i, p in enumerate(column) if p > 0}
        return self._by_slot[slot]

    def list_probability(self, interaction: Interaction) -> float:
        return float(self.slot_probs[int(interaction.items[0]), slot_of(interaction)])

    def context_key(self, interaction: Interaction) -> object:
        return slot_of(interaction)


def bts_slot_probs(campaign: str, source: Literal["logged", "prior", "empirical"] = "logged",
                   num_simulations: int = 100_000, seed: int = 0) -> np.ndarray:
    """P(item | slot) of the BTS policy, [num_items, NUM_SLOTS]; see the module docstring."""
    n = num_items(campaign)
    if source == "prior":
        return _bts_prior_simulation(campaign, n, num_simulations, seed)
    totals, counts = np.zeros((n, NUM_SLOTS)), np.zeros((n, NUM_SLOTS))
    for it in read_obd("bts", campaign):
        item, slot = int(it.items[0]), slot_of(it)
        counts[item, slot] += 1
        totals[item, slot] += it.position_propensities[0]
    if source == "empirical":
        probs = counts
    elif source == "logged":
        probs = np.divide(totals, counts, out=np.zeros_like(totals), where=counts > 0)
    else:
        raise ValueError(f"source must be 'logged', 'prior' or 'empirical', got {source!r}")
    return probs / probs.sum(axis=0, keepdims=True)


def _bts_prior_simulation(campaign: str, n: int, num_simulations: int, seed: int) -> np.ndarray:
    import yaml

    conf = Path(obd_root()).parent.parent / "policy" / "conf" / "prior_bts.yaml"
    if not conf.is_file():
        raise FileNotFoundError(f"{conf}: missing from the obp package; {INSTALL_HINT}")
    params = yaml.safe_load(conf.read_text())[campaign]
    alpha, beta = np.asarray(params["alpha"], float), np.asarray(params["beta"], float)
    if len(alpha) != n:
        raise LogFormatError(f"{conf}: {len(alpha)} BTS parameters for {n} items in campaign {campaign!r}")
    rng = np.random.default_rng(seed)
    counts = np.zeros((n, NUM_SLOTS))
    for start in range(0, num_simulations, 10_000):
        draws = rng.beta(alpha, beta, size=(min(10_000, num_simulations - start), n))
        top = np.argsort(-draws, axis=1)[:, :NUM_SLOTS]  # the three largest sampled click rates
        for slot in range(NUM_SLOTS):
            counts[:, slot] += np.bincount(top[:, slot], minlength=n)
    return counts / num_simulations


def on_policy_ctr(policy: Literal["random", "bts"], campaign: str) -> tuple[float, float]:
    """(CTR, its standard error) of a policy's own logged rows: the ground truth to compare to."""
    clicks = np.array([it.clicks[0] for it in read_obd(policy, campaign)], dtype=float)
    return float(clicks.mean()), float(clicks.std(ddof=1) / math.sqrt(len(clicks)))
