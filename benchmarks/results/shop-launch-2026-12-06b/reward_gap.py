# The demo reward (expected engagement, default weights) of premium-phone lists on launch day:
# the Fold6 3rd vs 4th behind the S24 Ultras, and the ideal list. .venv/bin/python reward_gap.py
from feedbackrl.tasks.shop.reward import EngagementRewardConfig
from feedbackrl.tasks.shop.simulator import ShopperConfig, ShopperSimulator
from feedbackrl.tasks.shop.world import load_shop_world

world, day = load_shop_world(), 3
intent = next(i for i in world.intents if i.id == "premium_phone")
u, cfg, sim = world.utilities(intent, day), EngagementRewardConfig(), ShopperSimulator(ShopperConfig())


def score(skus):
    e = sim.expected([u[s] for s in skus], [world.price_on(world.catalog.by_sku[s], day) for s in skus])
    return float(cfg.click_weight * e.clicks.sum() + cfg.cart_weight * e.carts.sum() + cfg.purchase_weight * e.purchases.sum())


lists = {"Fold6 3rd": ["SM-S928-1024", "SM-S928-512", "SM-F956-256", "SM-S928-256", "SM-F956-512"],
         "Fold6 4th": ["SM-S928-1024", "SM-S928-512", "SM-S928-256", "SM-F956-256", "SM-F956-512"],
         "ideal": ["SM-F956-512", "SM-F956-256", "SM-S928-1024", "SM-S928-512", "SM-S928-256"]}
for name, skus in lists.items():
    print(f"{name:10s} {score(skus):.3f}  click prob {[round(float(p), 3) for p in sim.click_probability([u[s] for s in skus])]}")
