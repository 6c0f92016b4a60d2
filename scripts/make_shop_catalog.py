"""Write data/shop/catalog.json and data/shop/intents.json, the embedded shop data.

The JSON files are the data users read and edit; this script is only how the first version
was typed in without writing 170 product entries by hand. Re-running it overwrites both
files. Product names follow a consumer-electronics maker's line-up; prices are rough list
prices in US dollars and attributes are plausible, not official specifications.

Two things are deliberate and the simulator's benchmark depends on them:
- keyword traps: cheap accessories and mid-range models whose descriptions repeat the words
  shoppers type ("gaming", "drawing", "bachelor", "budget") so that BM25 ranks them above the
  products those shoppers actually want;
- drift: the Galaxy Z Fold6 launches on day 3 (no history before), and a festival sale on days
  5-6 discounts budget products.

Run: .venv/bin/python scripts/make_shop_catalog.py
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "data" / "shop"
FOLD6_LAUNCH_DAY = 3

products: list[dict] = []


def add(sku, title, category, description, attributes, launch_day=0, festival_discount=0):
    item = {"sku": sku, "title": title, "category": category, "description": description,
            "attributes": attributes, "launch_day": launch_day}
    if festival_discount:
        item["festival_discount_percent"] = festival_discount
    products.append(item)


# ---------------------------------------------------------------- phones
# (code, name, year, base price, screen, refresh, camera, battery, chip score, stylus, storages, blurb, discount)
PHONES = [
    ("S928", "Galaxy S24 Ultra", 2024, 1299, 6.8, 120, 200, 5000, 98, True, (256, 512, 1024),
     "Titanium flagship with Galaxy AI, a 200MP quad camera with 100x Space Zoom and a built-in S Pen. "
     "Snapdragon 8 Gen 3 for Galaxy and a vapour chamber keep demanding titles smooth.", 0),
    ("S926", "Galaxy S24+", 2024, 999, 6.7, 120, 50, 4900, 95, False, (256, 512),
     "Big QHD+ screen and Galaxy AI with a 4900 mAh battery that lasts all day.", 0),
    ("S921", "Galaxy S24", 2024, 799, 6.2, 120, 50, 4000, 93, False, (128, 256),
     "Compact flagship with Galaxy AI, ProVisual engine camera and a bright 120Hz screen.", 0),
    ("S918", "Galaxy S23 Ultra", 2023, 1199, 6.8, 120, 200, 5000, 92, True, (256, 512),
     "Snapdragon 8 Gen 2 for Galaxy, 200MP camera with Nightography, built-in S Pen and a 5000 mAh battery. "
     "Large vapour chamber cooling for sustained performance.", 0),
    ("S916", "Galaxy S23+", 2023, 999, 6.6, 120, 50, 4700, 90, False, (256, 512),
     "Flagship performance and a 4700 mAh battery on a 6.6 inch Dynamic AMOLED 2X screen.", 0),
    ("S911", "Galaxy S23", 2023, 799, 6.1, 120, 50, 3900, 90, False, (128, 256),
     "The compact flagship: Snapdragon 8 Gen 2 for Galaxy in a pocketable size.", 0),
    ("S711", "Galaxy S23 FE", 2023, 599, 6.4, 120, 50, 4500, 78, False, (128, 256),
     "Fan Edition with flagship camera features at a friendlier price.", 15),
    ("S908", "Galaxy S22 Ultra", 2022, 899, 6.8, 120, 108, 5000, 85, True, (128, 256),
     "Previous-generation Ultra with S Pen and 108MP camera.", 20),
    ("A546", "Galaxy A54 5G", 2023, 449, 6.4, 120, 50, 5000, 55, False, (128, 256),
     "Awesome gaming on a budget: the best phone for gaming fans who want a smooth 120Hz gaming screen, "
     "game booster mode for mobile gaming and a big battery for long gaming sessions.", 20),
    ("A346", "Galaxy A34 5G", 2023, 349, 6.6, 120, 48, 5000, 48, False, (128,),
     "Awesome screen for games and videos, 120Hz display and 5000 mAh battery for a budget phone.", 25),
    ("A245", "Galaxy A24", 2023, 229, 6.5, 90, 50, 5000, 35, False, (128,),
     "Everyday phone with a 90Hz screen and a battery that lasts two days.", 25),
    ("A145", "Galaxy A14", 2023, 179, 6.6, 60, 50, 5000, 25, False, (64, 128),
     "Budget phone with a large screen, triple camera and long battery life. Simple and affordable.", 30),
    ("A045", "Galaxy A04e", 2022, 119, 6.5, 60, 13, 5000, 15, False, (32, 64),
     "Entry-level phone for calls, messages and video; easy to use for seniors and first-time users.", 30),
    ("M146", "Galaxy M14 5G", 2023, 199, 6.6, 90, 50, 6000, 32, False, (128,),
     "Monster 6000 mAh battery phone that lasts days on one charge.", 30),
    ("M346", "Galaxy M34 5G", 2023, 269, 6.5, 120, 50, 6000, 45, False, (128,),
     "6000 mAh battery and a 120Hz Super AMOLED screen, the battery phone for heavy users.", 25),
    ("F546", "Galaxy F54 5G", 2023, 329, 6.7, 120, 108, 6000, 50, False, (256,),
     "108MP camera with a 6000 mAh battery; shoot all day.", 20),
    ("G556", "Galaxy XCover7", 2024, 399, 6.6, 60, 50, 4050, 40, False, (128,),
     "Rugged phone with MIL-STD-810H, replaceable battery and glove mode for the job site.", 0),
]
for code, name, year, price, screen, hz, cam, bat, chip, pen, storages, blurb, disc in PHONES:
    for i, gb in enumerate(storages):
        label = f"{gb // 1024}TB" if gb >= 1024 else f"{gb}GB"
        add(f"SM-{code}-{gb}", f"{name} {label}", "phone", blurb,
            {"price": price + 120 * i, "release_year": year, "screen_in": screen, "refresh_rate": hz,
             "camera_mp": cam, "battery_mah": bat, "chip_score": chip, "stylus": pen, "storage_gb": gb,
             "foldable": False, "rugged": code == "G556"}, festival_discount=disc)

# ---------------------------------------------------------------- foldables
FOLDABLES = [
    ("F956", "Galaxy Z Fold6", 2024, 1899, 7.6, 120, 50, 4400, 97, True, (256, 512), FOLD6_LAUNCH_DAY,
     "The newest foldable: a 7.6 inch main screen that opens into a tablet, Galaxy AI, S Pen Fold support "
     "and the lightest Fold yet. Arriving later: available from launch day."),
    ("F946", "Galaxy Z Fold5", 2023, 1799, 7.6, 120, 50, 4400, 90, True, (256, 512), 0,
     "Foldable phone that unfolds into a big screen for multitasking, with S Pen Fold Edition support."),
    ("F936", "Galaxy Z Fold4", 2022, 1199, 7.6, 120, 50, 4400, 84, True, (256,), 0,
     "Previous-generation foldable with a large inner screen."),
    ("F741", "Galaxy Z Flip6", 2024, 1099, 6.7, 120, 50, 4000, 92, False, (256, 512), 0,
     "Compact flip phone that folds in half to fit any pocket, with a big FlexWindow cover screen."),
    ("F731", "Galaxy Z Flip5", 2023, 999, 6.7, 120, 12, 3700, 88, False, (256,), 0,
     "Pocketable flip foldable with a FlexWindow for selfies and widgets."),
    ("F721", "Galaxy Z Flip4", 2022, 799, 6.7, 120, 12, 3700, 82, False, (128,), 0,
     "Flip phone that folds, hands-free FlexCam."),
]
for code, name, year, price, screen, hz, cam, bat, chip, pen, storages, launch, blurb in FOLDABLES:
    for i, gb in enumerate(storages):
        add(f"SM-{code}-{gb}", f"{name} {gb}GB", "foldable", blurb,
            {"price": price + 120 * i, "release_year": year, "screen_in": screen, "refresh_rate": hz,
             "camera_mp": cam, "battery_mah": bat, "chip_score": chip, "stylus": pen, "storage_gb": gb,
             "foldable": True}, launch_day=launch)

# ---------------------------------------------------------------- tablets
TABLETS = [
    ("X916", "Galaxy Tab S9 Ultra", 2023, 1199, 14.6, 120, 95, True, (256, 512),
     "14.6 inch Dynamic AMOLED 2X canvas with the S Pen in the box, low-latency pen input for artists, "
     "IP68 and quad speakers.", 0),
    ("X816", "Galaxy Tab S9+", 2023, 999, 12.4, 120, 94, True, (256,),
     "12.4 inch AMOLED tablet with S Pen included for notes and sketches.", 0),
    ("X716", "Galaxy Tab S9", 2023, 799, 11.0, 120, 93, True, (128, 256),
     "11 inch premium tablet with S Pen, water resistant.", 0),
    ("X516", "Galaxy Tab S9 FE", 2023, 449, 10.9, 90, 60, True, (128,),
     "Fan Edition tablet with S Pen in the box for students and note taking.", 15),
    ("X706", "Galaxy Tab S8", 2022, 599, 11.0, 120, 85, True, (128,),
     "Previous-generation premium tablet with S Pen.", 20),
    ("X216", "Galaxy Tab A9+", 2023, 219, 11.0, 90, 40, False, (64, 128),
     "Big-screen family tablet for streaming and browsing, quad speakers.", 25),
    ("X115", "Galaxy Tab A9", 2023, 159, 8.7, 60, 30, False, (64,),
     "Compact tablet for kids and reading, with Samsung Kids mode.", 25),
    ("X205", "Galaxy Tab A8", 2022, 229, 10.5, 60, 30, False, (32, 64),
     "10.5 inch tablet for the whole family: videos, school and drawing apps for kids.", 30),
    ("X306", "Galaxy Tab Active5", 2024, 499, 8.0, 60, 50, True, (128,),
     "Rugged tablet with S Pen for field work, replaceable battery.", 0),
]
for code, name, year, price, screen, hz, chip, pen, storages, blurb, disc in TABLETS:
    for i, gb in enumerate(storages):
        add(f"SM-{code}-{gb}", f"{name} {gb}GB", "tablet", blurb,
            {"price": price + 100 * i, "release_year": year, "screen_in": screen, "refresh_rate": hz,
             "chip_score": chip, "stylus": pen, "storage_gb": gb, "rugged": code == "X306"},
            festival_discount=disc)

# ---------------------------------------------------------------- mobile accessories (keyword traps)
MOBILE_ACCESSORIES = [
    ("EF-GM01", "Gaming Phone Cooling Grip", 29,
     "Best phone gaming accessory for gaming: a cooling fan grip for gaming phones. Gaming gamers game longer; "
     "the phone for gaming stays cool during gaming."),
    ("EF-GM02", "Mobile Gaming Controller for Phone", 49,
     "Gaming controller that turns any phone into a gaming phone. Best for gaming on the phone, mobile gaming triggers."),
    ("EF-GM03", "Gaming Screen Protector", 15,
     "Matte gaming screen protector for phone gaming: smooth swipes for the best gaming on your phone."),
    ("EJ-DP01", "Drawing Stylus Pen for Tablet", 25,
     "Drawing pen for tablet drawing and sketching; a stylus for drawing on any tablet. Tablet for drawing artists' companion."),
    ("EJ-DP02", "Paper-feel Drawing Film for Tablet", 19,
     "Screen film that makes a tablet feel like paper for drawing, sketching and digital art on a tablet."),
    ("EF-CB01", "Camera Lens Protector for Phone", 12,
     "Protects the phone camera; keep your camera phone photos sharp. Best camera phone accessory."),
    ("EF-FC01", "Foldable Phone Case", 59,
     "Slim case for foldable phones; protects your foldable phone hinge. Fits Galaxy foldable phones."),
    ("EP-TA01", "25W Fast Charger for Phone", 19,
     "Fast charging for your phone battery: a long battery life phone charger."),
    ("EB-BP01", "10000 mAh Battery Pack", 39,
     "Portable battery for phones with a long battery life; never run out of battery."),
    ("EF-BK01", "Tablet Keyboard Book Cover", 129,
     "Keyboard cover that makes your tablet a laptop for students and work."),
    ("EF-KD01", "Kids Tablet Bumper Case", 29,
     "Shockproof kids case for a tablet for kids, with a handle and stand."),
    ("EF-SR01", "Senior Phone Big Button Case", 19,
     "Big-button case for a simple phone for seniors and elderly parents; easy grip phone for elderly."),
]
for sku, title, price, desc in MOBILE_ACCESSORIES:
    add(sku, title, "accessory", desc, {"price": price, "release_year": 2023}, festival_discount=20)

# ---------------------------------------------------------------- earbuds and watches
EARBUDS = [
    ("SM-R630", "Galaxy Buds3 Pro", 2024, 249, True, 30, "Blade design earbuds with intelligent noise cancelling."),
    ("SM-R510", "Galaxy Buds2 Pro", 2022, 229, True, 29, "Hi-Fi 24-bit audio and active noise cancelling."),
    ("SM-R400", "Galaxy Buds FE", 2023, 99, True, 21, "Affordable earbuds with active noise cancelling."),
    ("SM-R177", "Galaxy Buds2", 2021, 119, True, 20, "Light earbuds with noise cancelling."),
    ("SM-R180", "Galaxy Buds Live", 2020, 89, False, 21, "Open-type earbuds for all-day wear."),
]
for sku, title, year, price, anc, hours, desc in EARBUDS:
    add(sku, title, "earbuds", desc, {"price": price, "release_year": year, "anc": anc, "battery_hours": hours},
        festival_discount=20 if price < 150 else 0)
WATCHES = [
    ("SM-L705", "Galaxy Watch Ultra", 2024, 649, True, 100, 1.5, "Titanium outdoor watch with dual-frequency GPS for running and hiking."),
    ("SM-R940", "Galaxy Watch6", 2023, 299, True, 40, 1.5, "Health and sleep tracking watch with GPS."),
    ("SM-R960", "Galaxy Watch6 Classic", 2023, 399, True, 40, 1.5, "Rotating bezel classic watch."),
    ("SM-R920", "Galaxy Watch5 Pro", 2022, 399, True, 80, 1.4, "Long battery GPS watch for running routes."),
    ("SM-R861", "Galaxy Watch FE", 2024, 199, True, 30, 1.2, "Affordable smartwatch with fitness tracking."),
]
for sku, title, year, price, gps, hours, screen, desc in WATCHES:
    add(sku, title, "watch", desc, {"price": price, "release_year": year, "gps": gps,
                                    "battery_hours": hours, "screen_in": screen},
        festival_discount=15 if price < 300 else 0)

# ---------------------------------------------------------------- TVs
# (model, line, year, panel, refresh, resolution_k, brightness, art_mode, {size: price}, blurb, discount)
TVS = [
    ("Q60B", "2022 QLED Q60B", 2022, "QLED", 60, 4, 400, False, {43: 399, 55: 549, 65: 749},
     "2022 QLED TV with Quantum Dot colour. Gaming TV with game mode and motion for gaming, sports and movies.", 30),
    ("Q80B", "2022 QLED Q80B", 2022, "QLED", 120, 4, 800, False, {55: 899, 65: 1199},
     "2022 QLED with Direct Full Array backlight and 120Hz motion.", 25),
    ("Q70C", "2023 QLED Q70C", 2023, "QLED", 120, 4, 600, False, {55: 799, 65: 999, 75: 1399},
     "2023 QLED 4K with 120Hz Motion Xcelerator for sports.", 20),
    ("QN90D", "2024 Neo QLED QN90D", 2024, "Neo QLED", 144, 4, 2000, False, {55: 1599, 65: 2199, 75: 2799, 85: 3499},
     "2024 Neo QLED 4K with Quantum Mini LEDs, 144Hz, very bright anti-glare screen and the NQ4 AI processor.", 0),
    ("QN85D", "2024 Neo QLED QN85D", 2024, "Neo QLED", 120, 4, 1500, False, {55: 1299, 65: 1699, 75: 2299},
     "Neo QLED 4K with Mini LED contrast and a bright picture for daytime viewing.", 0),
    ("QN900D", "2024 Neo QLED 8K QN900D", 2024, "Neo QLED", 240, 8, 3000, False, {65: 4999, 75: 6999},
     "The 8K flagship with 8K AI upscaling, Infinity One design and 240Hz.", 0),
    ("S90D", "2024 OLED S90D", 2024, "OLED", 144, 4, 1000, False, {55: 1499, 65: 1999, 77: 3199},
     "OLED 4K with perfect blacks, 144Hz and Glare-free option.", 0),
    ("LS03D", "The Frame 2024", 2024, "QLED", 120, 4, 600, True, {43: 999, 55: 1499, 65: 1999},
     "The Frame: a TV that looks like art on your wall, matte anti-reflection display, Art Mode with a "
     "customisable bezel.", 0),
    ("LS01D", "The Serif 2024", 2024, "QLED", 60, 4, 500, False, {43: 799, 55: 1199},
     "Iconic designer TV on an easel stand for the living room.", 0),
    ("CU7000", "Crystal UHD CU7000", 2023, "Crystal UHD", 60, 4, 300, False, {43: 279, 50: 329, 55: 379, 65: 499},
     "Budget 4K TV with Crystal Processor 4K; a smart TV for the bedroom or kitchen.", 30),
    ("DU8000", "2024 Crystal UHD DU8000", 2024, "Crystal UHD", 60, 4, 350, False, {55: 499, 65: 649, 75: 899},
     "2024 Crystal UHD 4K with Dynamic Crystal Color; a cheap big screen.", 25),
    ("LST7D", "The Terrace 2024", 2024, "QLED", 120, 4, 2000, False, {55: 3499, 65: 4999},
     "Outdoor TV for the patio and garden, weather resistant and extra bright.", 0),
]
for model, line, year, panel, hz, res, nits, art, sizes, blurb, disc in TVS:
    for size, price in sizes.items():
        add(f"QN{size}{model}", f"{line} {size} inch", "tv", blurb,
            {"price": price, "release_year": year, "screen_in": size, "refresh_rate": hz, "resolution_k": res,
             "brightness_nits": nits, "art_mode": art, "panel": panel}, festival_discount=disc)

MONITORS = [
    ("LS49G95", "Odyssey OLED G9 49 inch", 2023, 1799, 49, 240, 5, True, "Curved super ultrawide OLED gaming monitor."),
    ("LS32G75", "Odyssey Neo G7 32 inch", 2023, 899, 32, 165, 4, True, "4K Mini LED gaming monitor with 165Hz."),
    ("LS27G55", "Odyssey G5 27 inch", 2022, 299, 27, 165, 2, True, "QHD 165Hz curved gaming monitor."),
    ("LS32M80", "Smart Monitor M8 32 inch", 2023, 699, 32, 60, 4, False, "4K smart monitor with streaming apps and webcam for home office."),
    ("LS27A60", "ViewFinity S6 27 inch", 2022, 329, 27, 75, 2, False, "QHD office monitor with USB-C and height adjustable stand."),
    ("LS24C31", "Essential S3 24 inch", 2023, 129, 24, 75, 1, False, "Budget full HD office monitor, eye saver mode."),
]
for sku, title, year, price, size, hz, res, curved, desc in MONITORS:
    add(sku, title, "monitor", desc, {"price": price, "release_year": year, "screen_in": size,
                                      "refresh_rate": hz, "resolution_k": res, "curved": curved},
        festival_discount=20 if price < 400 else 0)

SOUNDBARS = [
    ("HW-Q990D", "Q990D Soundbar 11.1.4", 2024, 1399, 11.1, True, 656, "Flagship Dolby Atmos soundbar with wireless rear speakers and subwoofer."),
    ("HW-Q800D", "Q800D Soundbar 5.1.2", 2024, 799, 5.1, True, 360, "Dolby Atmos soundbar with up-firing speakers."),
    ("HW-S60D", "S60D All-in-One Soundbar", 2024, 399, 5.0, True, 200, "Compact lifestyle soundbar with Dolby Atmos."),
    ("HW-B550", "B550 Soundbar 2.1", 2022, 199, 2.1, False, 410, "Budget soundbar with subwoofer for bass."),
    ("HW-C450", "C450 Soundbar 2.1", 2023, 149, 2.1, False, 300, "Entry soundbar for clearer TV dialogue."),
]
for sku, title, year, price, ch, atmos, watts, desc in SOUNDBARS:
    add(sku, title, "soundbar", desc, {"price": price, "release_year": year, "channels": ch,
                                       "dolby_atmos": atmos, "watts": watts},
        festival_discount=25 if price < 400 else 0)

TV_ACCESSORIES = [
    ("WMN-GM01", "Gaming TV Wall Mount", 79,
     "Gaming TV mount: the best TV for gaming setup needs a gaming mount. Tilt for gaming TV angles and big screen gaming."),
    ("CBL-HD21", "HDMI 2.1 Gaming Cable", 25,
     "HDMI 2.1 cable for 4K 120Hz gaming on a TV for gaming consoles; best gaming TV cable."),
    ("VG-SCF01", "Frame Bezel Teak for The Frame", 199,
     "Customisable bezel for The Frame so your TV looks like art; art frame accessory."),
    ("VG-STS01", "Studio Stand for Big Screen TV", 299,
     "Easel stand for a big screen TV in the living room."),
]
for sku, title, price, desc in TV_ACCESSORIES:
    add(sku, title, "tv_accessory", desc, {"price": price, "release_year": 2023}, festival_discount=20)

# ---------------------------------------------------------------- refrigerators
# (sku, title, year, price, capacity_l, doors, width_cm, energy_stars, smart_screen, blurb, discount)
FRIDGES = [
    ("RF29BB8600", "Bespoke 4-Door Flex Refrigerator 820 L", 2023, 3299, 820, 4, 91, 4, False,
     "Large Bespoke French-door fridge with a FlexZone drawer, dual ice maker and customisable colour panels "
     "for big families.", 0),
    ("RF27CG5900", "Bespoke 3-Door French Door Refrigerator 680 L", 2023, 2499, 680, 3, 91, 4, False,
     "Bespoke French-door fridge with Beverage Center and lots of space for a family.", 0),
    ("RF23DB9900", "Bespoke Family Hub+ Refrigerator 650 L", 2024, 3999, 650, 4, 91, 4, True,
     "Smart fridge with a 32 inch Family Hub+ touch screen, AI Vision Inside camera and SmartThings.", 0),
    ("RS65R5691", "Side-by-Side Refrigerator 653 L", 2022, 1499, 653, 2, 91, 3, False,
     "Spacious side-by-side fridge with SpaceMax technology and an ice and water dispenser.", 20),
    ("RT50K6541", "Family Double Door Refrigerator 500 L", 2023, 899, 500, 2, 79, 4, False,
     "500 L double-door fridge with Twin Cooling Plus for a family of four to five.", 20),
    ("RT42CG6441", "Double Door Refrigerator 415 L", 2023, 749, 415, 2, 70, 3, False,
     "Convertible 5-in-1 double-door fridge for a mid-size family.", 20),
    ("RB38A7B63", "SlimFit Bottom Freezer 390 L", 2023, 999, 390, 2, 59, 5, False,
     "SlimFit fridge only 59.5 cm wide to fit narrow kitchens, energy-saving A rated, SpaceMax walls.", 10),
    ("RB33B6123", "SlimFit Bottom Freezer 344 L", 2022, 799, 344, 2, 59, 4, False,
     "Narrow SlimFit fridge freezer for small kitchens.", 15),
    ("RT34CG5421", "Double Door Refrigerator 322 L", 2023, 499, 322, 2, 60, 3, False,
     "Double-door fridge with digital inverter for a couple.", 25),
    ("RT28C3053", "Double Door Refrigerator 253 L", 2023, 379, 253, 2, 55, 3, False,
     "Compact double-door fridge with a separate freezer, good for one or two people.", 25),
    ("RR23C2E25", "Single Door Refrigerator 230 L", 2023, 279, 230, 1, 56, 4, False,
     "Single-door direct cool fridge with base stand drawer and digital inverter.", 25),
    ("RR19A241", "Single Door Refrigerator 190 L", 2022, 199, 190, 1, 53, 3, False,
     "Compact 190 L single-door fridge, affordable and space saving; fits a studio flat.", 30),
    ("RR18T1001", "Single Door Refrigerator 183 L", 2021, 179, 183, 1, 53, 2, False,
     "Basic single-door fridge.", 30),
    ("RR09M2001", "Mini Bar Fridge 90 L", 2022, 149, 90, 1, 47, 2, False,
     "Mini fridge for a dorm room, office or bedroom.", 30),
]
for sku, title, year, price, cap, doors, width, stars, screen, blurb, disc in FRIDGES:
    add(sku, title, "refrigerator", blurb,
        {"price": price, "release_year": year, "capacity_l": cap, "doors": doors, "width_cm": width,
         "energy_stars": stars, "smart_screen": screen}, festival_discount=disc)

# ---------------------------------------------------------------- washing machines
# (sku, title, year, price, kg, dryer, noise_db, energy_stars, ai, loading, blurb, discount)
WASHERS = [
    ("WD25DB8995", "Bespoke AI Combo Washer Dryer 11 kg", 2024, 2999, 11, True, 50, 5, True, "front",
     "All-in-one washer and dryer in one machine with AI Wash and a 7 inch touch screen; no transfer of laundry.", 0),
    ("WD90T4046", "EcoBubble Washer Dryer 9/6 kg", 2022, 899, 9, True, 54, 4, False, "front",
     "Washer dryer combo that washes and dries, saves space.", 15),
    ("WW11BB944", "Bespoke AI EcoBubble Front Load 11 kg", 2024, 1199, 11, False, 49, 5, True, "front",
     "Large 11 kg AI washing machine for big families; quiet AI Ecobubble and auto dispense.", 0),
    ("WW90T684", "AI EcoBubble Front Load 9 kg", 2023, 749, 9, False, 51, 5, True, "front",
     "9 kg AI front-load washer with QuickDrive and very quiet digital inverter motor.", 15),
    ("WW80T504", "EcoBubble Front Load 8 kg", 2022, 549, 8, False, 53, 4, False, "front",
     "8 kg front-load washer with EcoBubble and hygiene steam.", 20),
    ("WW70T4020", "EcoBubble Front Load 7 kg", 2022, 399, 7, False, 54, 4, False, "front",
     "7 kg EcoBubble washing machine, energy efficient and gentle on fabrics.", 30),
    ("WW60R2000", "Front Load Washer 6 kg", 2021, 349, 6, False, 56, 3, False, "front",
     "Compact 6 kg front loader.", 25),
    ("WA10T5260", "Top Load Washer 10 kg", 2023, 499, 10, False, 55, 4, False, "top",
     "10 kg top-load washer with wobble technology for large loads.", 20),
    ("WA80T4560", "Top Load Washer 8 kg", 2023, 349, 8, False, 56, 3, False, "top",
     "8 kg fully automatic top loader with digital inverter.", 25),
    ("WA70A4002", "Top Load Washer 7 kg", 2022, 279, 7, False, 57, 3, False, "top",
     "Affordable 7 kg fully automatic top-load washing machine.", 30),
    ("WA65A4002", "Top Load Washer 6.5 kg", 2022, 249, 6.5, False, 57, 3, False, "top",
     "Low price 6.5 kg fully automatic top loader.", 30),
    ("WT70M3200", "Semi-Automatic Twin Tub 7 kg", 2021, 179, 7, False, 60, 2, False, "top",
     "Semi-automatic twin tub with separate spin tub.", 30),
]
for sku, title, year, price, kg, dryer, noise, stars, ai, loading, blurb, disc in WASHERS:
    add(sku, title, "washing_machine", blurb,
        {"price": price, "release_year": year, "capacity_kg": kg, "dryer": dryer, "noise_db": noise,
         "energy_stars": stars, "ai_wash": ai, "loading": loading}, festival_discount=disc)

# ---------------------------------------------------------------- ovens and microwaves
COOKING = [
    ("NV7B4040", "Bespoke AI Oven 76 L", "oven", 2024, 1299, 76, True, True, "Built-in oven with AI Pro Cooking camera, steam and air fry.", 0),
    ("NV7B5765", "Dual Cook Flex Oven 76 L", "oven", 2023, 999, 76, True, False, "Cook two dishes at two temperatures with the Dual Cook Flex door.", 0),
    ("NV7B3355", "Built-in Convection Oven 76 L", "oven", 2022, 549, 76, True, False, "Built-in fan oven with catalytic cleaning.", 20),
    ("NQ5B4553", "Compact Combination Oven 50 L", "oven", 2023, 749, 50, True, True, "Compact oven and microwave combination with air fry.", 10),
    ("MC32K7055", "Convection Microwave with Slim Fry 32 L", "microwave", 2023, 299, 32, True, True,
     "Convection microwave oven for baking cakes, grilling and Slim Fry air frying.", 20),
    ("MC28H5025", "Convection Microwave 28 L", "microwave", 2022, 219, 28, True, False,
     "28 L convection microwave oven for baking and grilling.", 25),
    ("MG23K3515", "Grill Microwave 23 L", "microwave", 2022, 149, 23, False, False, "Grill microwave for reheating and crisping.", 25),
    ("MS23K3513", "Solo Microwave 23 L", "microwave", 2022, 119, 23, False, False, "Simple solo microwave for reheating and defrosting.", 30),
    ("MS20A3010", "Solo Microwave 20 L", "microwave", 2021, 89, 20, False, False, "Low-cost solo microwave for reheating food.", 30),
]
for sku, title, cat, year, price, cap, conv, fry, blurb, disc in COOKING:
    add(sku, title, cat, blurb, {"price": price, "release_year": year, "capacity_l": cap,
                                 "convection": conv, "air_fry": fry}, festival_discount=disc)

# ---------------------------------------------------------------- vacuums, dishwashers, air conditioners
VACUUMS = [
    ("VS28C9784", "Bespoke Jet AI Cordless Vacuum", 2024, 899, False, True, 280, True, "Cordless stick vacuum with AI power and pet tool."),
    ("VS20A95823", "Jet 75 Complete Cordless Vacuum", 2022, 499, False, True, 200, True, "Cordless stick vacuum with pet hair brush."),
    ("VS15A6031", "Jet 60 Cordless Vacuum", 2022, 299, False, True, 150, False, "Light cordless stick vacuum."),
    ("VR50T95735", "Jetbot AI+ Robot Vacuum", 2023, 1299, True, False, 30, True, "Robot vacuum with object recognition and self-emptying clean station; great with pets."),
    ("VR30T85513", "Jetbot 85 Robot Vacuum", 2022, 599, True, False, 20, True, "Robot vacuum with LiDAR mapping."),
    ("VC07M2110", "Canister Vacuum 2000 W", 2021, 129, False, False, 400, False, "Corded canister vacuum with strong suction."),
]
for sku, title, year, price, robot, cordless, suction, pet, desc in VACUUMS:
    add(sku, title, "vacuum", desc, {"price": price, "release_year": year, "robot": robot,
                                     "cordless": cordless, "suction_w": suction, "pet_brush": pet},
        festival_discount=20 if price < 600 else 0)
DISHWASHERS = [
    ("DW60A8060", "Bespoke Dishwasher 14 Place", 2023, 899, 14, 42, 60, "Quiet dishwasher with auto door opening."),
    ("DW60M6050", "Dishwasher 13 Place", 2022, 549, 13, 46, 60, "Full-size dishwasher with hygiene steam."),
    ("DW50R4040", "Slim Dishwasher 10 Place", 2022, 499, 10, 44, 45, "45 cm slimline dishwasher for small kitchens."),
    ("DW45T3010", "Countertop Dishwasher 6 Place", 2023, 349, 6, 49, 55, "Countertop dishwasher for small apartments, no plumbing needed."),
]
for sku, title, year, price, places, noise, width, desc in DISHWASHERS:
    add(sku, title, "dishwasher", desc, {"price": price, "release_year": year, "place_settings": places,
                                         "noise_db": noise, "width_cm": width}, festival_discount=20)
AIR_CONDITIONERS = [
    ("AR12CYF", "WindFree Split AC 1 Ton", 2023, 599, 1.0, 5, 19, "Split air conditioner with WindFree cooling for a bedroom; 5 star, whisper quiet."),
    ("AR18CYF", "WindFree Split AC 1.5 Ton", 2023, 749, 1.5, 5, 21, "1.5 ton WindFree inverter split AC for living rooms."),
    ("AR24CYF", "WindFree Split AC 2 Ton", 2023, 949, 2.0, 4, 24, "2 ton split AC for large halls."),
    ("AR18BYE", "Inverter Split AC 1.5 Ton", 2022, 499, 1.5, 3, 30, "Budget inverter split air conditioner."),
    ("AW18TYA", "Window AC 1.5 Ton", 2021, 379, 1.5, 3, 45, "Low-cost window air conditioner."),
]
for sku, title, year, price, tons, stars, noise, desc in AIR_CONDITIONERS:
    add(sku, title, "air_conditioner", desc, {"price": price, "release_year": year, "capacity_ton": tons,
                                              "energy_stars": stars, "noise_db": noise}, festival_discount=20)

APPLIANCE_ACCESSORIES = [
    ("HAF-CIN01", "Refrigerator Water Filter", 49,
     "Water filter for a fridge; fits family fridge and single door fridge for bachelors."),
    ("HAF-ODR01", "Fridge Deodoriser for Small Fridges", 15,
     "Keeps a small fridge for bachelors fresh; the bachelor fridge essential for a single person fridge."),
    ("WMC-CV01", "Budget Washing Machine Cover", 19,
     "Budget washing machine cover, a cheap washing machine protector; best budget buy for any washing machine."),
    ("WMC-ST01", "Washing Machine Stand with Wheels", 39,
     "Cheap washing machine trolley stand; budget accessory for a washing machine."),
    ("MWC-BK01", "Microwave Baking Tray Set", 25,
     "Baking tray set for a convection oven for baking cakes; oven baking essentials."),
]
for sku, title, price, desc in APPLIANCE_ACCESSORIES:
    add(sku, title, "appliance_accessory", desc, {"price": price, "release_year": 2023}, festival_discount=25)


SEGMENTS = {
    "mobile": ["phone", "foldable", "tablet", "accessory", "earbuds", "watch"],
    "tv": ["tv", "monitor", "soundbar", "tv_accessory"],
    "appliances": ["refrigerator", "washing_machine", "oven", "microwave", "vacuum", "dishwasher",
                   "air_conditioner", "appliance_accessory"],
}


# ---------------------------------------------------------------- intents
def high(attr, w=1.0):
    return {"attr": attr, "direction": "high", "weight": w}


def low(attr, w=1.0):
    return {"attr": attr, "direction": "low", "weight": w}


def at_most(attr, v, w=1.0):
    return {"attr": attr, "max": v, "weight": w}


def at_least(attr, v, w=1.0):
    return {"attr": attr, "min": v, "weight": w}


def equals(attr, v, w=1.0):
    return {"attr": attr, "equals": v, "weight": w}


# Budget intents weigh the festival discount: before the sale it is 0 for every item, during
# it the discounted items gain utility (the seasonal shift).
DISCOUNT = high("discount_percent", 1.5)

intents = []


def intent(id, segment, categories, phrasings, prefer, require=()):
    intents.append({"id": id, "segment": segment, "phrasings": phrasings, "holdout": 1,
                    "preference": {"category": categories, "prefer": prefer, "require": list(require)}})


PHONE_CATS = ["phone", "foldable"]
intent("gaming_phone", "mobile", PHONE_CATS,
       ["best phone for gaming", "gaming phone", "phone for mobile gaming", "fast phone for playing games"],
       [high("chip_score", 3), high("refresh_rate", 1), high("battery_mah", 0.5)], [at_least("chip_score", 80)])
intent("camera_phone", "mobile", PHONE_CATS,
       ["best camera phone", "phone with the best camera", "phone for photography", "smartphone with great camera and zoom"],
       [high("camera_mp", 2), high("chip_score", 1), high("release_year", 0.5)], [at_least("camera_mp", 100)])
intent("budget_phone", "mobile", ["phone"],
       ["budget phone", "cheap phone", "affordable smartphone", "low price phone"],
       [low("price", 2), high("battery_mah", 0.5), DISCOUNT], [at_most("price", 350)])
intent("phone_under_300", "mobile", ["phone"],
       ["phone under 300", "good phone under 300 dollars", "best smartphone below 300", "phone less than 300"],
       [high("chip_score", 1), high("refresh_rate", 1), DISCOUNT], [at_most("price", 300)])
intent("senior_phone", "mobile", ["phone"],
       ["phone for elderly", "simple phone for seniors", "easy phone for parents", "basic phone for grandparents"],
       [low("price", 2), high("screen_in", 1), high("battery_mah", 1)], [at_most("price", 250)])
intent("battery_phone", "mobile", ["phone"],
       ["phone with best battery life", "long battery phone", "phone battery lasts days", "biggest battery smartphone"],
       [high("battery_mah", 3), low("price", 0.5)], [at_least("battery_mah", 5000)])
intent("premium_phone", "mobile", PHONE_CATS,
       ["premium flagship phone", "most expensive phone", "top of the line phone", "luxury flagship smartphone"],
       [high("price", 1.5), high("release_year", 2), high("chip_score", 1)], [at_least("release_year", 2024)])
intent("foldable_phone", "mobile", ["foldable"],
       ["foldable phone", "phone that folds into a tablet", "folding phone with big screen", "newest fold phone"],
       [high("screen_in", 2), high("release_year", 2), high("chip_score", 1)])
intent("flip_phone", "mobile", ["foldable"],
       ["flip phone", "compact folding flip phone", "small phone that folds in half", "pocket flip foldable"],
       [low("screen_in", 2), high("release_year", 1)], [at_most("screen_in", 7)])
intent("stylus_phone", "mobile", PHONE_CATS,
       ["phone with stylus", "phone with s pen", "phone with pen for notes", "smartphone with built-in pen"],
       [equals("stylus", True, 3), high("release_year", 1), high("camera_mp", 0.5)], [equals("stylus", True)])
intent("compact_phone", "mobile", ["phone"],
       ["small phone", "compact phone", "one hand phone", "pocketable small smartphone"],
       [low("screen_in", 2), high("chip_score", 1)], [at_most("screen_in", 6.3)])
intent("rugged_device", "mobile", ["phone", "tablet"],
       ["rugged phone", "tough phone for construction work", "durable work device", "phone for the job site"],
       [equals("rugged", True, 3), high("battery_mah", 0.5), high("release_year", 0.5)], [equals("rugged", True)])
intent("drawing_tablet", "mobile", ["tablet"],
       ["tablet for drawing", "drawing tablet with pen", "tablet for digital art", "tablet for artists to sketch"],
       [equals("stylus", True, 2), high("screen_in", 2), high("refresh_rate", 1), high("chip_score", 1)],
       [equals("stylus", True)])
intent("kids_tablet", "mobile", ["tablet"],
       ["tablet for kids", "cheap tablet for children", "kids tablet", "tablet for my child"],
       [low("price", 2), DISCOUNT], [at_most("price", 300)])
intent("student_tablet", "mobile", ["tablet"],
       ["tablet for students", "tablet for note taking", "tablet for school notes", "student tablet with pen"],
       [equals("stylus", True, 2), low("price", 1.5)], [at_most("price", 800)])
intent("noise_cancelling_earbuds", "mobile", ["earbuds"],
       ["noise cancelling earbuds", "wireless earbuds with anc", "earbuds for commuting", "quiet earphones for travel"],
       [equals("anc", True, 2), high("release_year", 1), high("battery_hours", 0.5)], [equals("anc", True)])
intent("running_watch", "mobile", ["watch"],
       ["smartwatch for running", "gps watch", "watch for runners", "fitness watch with long battery"],
       [equals("gps", True, 1), high("battery_hours", 2)])

TV_CATS = ["tv"]
intent("gaming_tv", "tv", TV_CATS,
       ["best tv for gaming", "gaming tv", "tv for ps5 and xbox", "tv with 144hz for games"],
       [high("refresh_rate", 3), high("brightness_nits", 0.5), high("release_year", 1)], [at_least("refresh_rate", 120)])
intent("big_screen_tv", "tv", TV_CATS,
       ["big screen tv", "largest tv", "85 inch tv", "huge tv for the living room"],
       [high("screen_in", 3), high("brightness_nits", 0.5)], [at_least("screen_in", 75)])
intent("budget_tv", "tv", TV_CATS,
       ["budget tv", "cheap tv", "affordable 4k tv", "low cost television"],
       [low("price", 2), DISCOUNT], [at_most("price", 600)])
intent("bedroom_tv", "tv", TV_CATS,
       ["small tv for bedroom", "43 inch tv", "tv for the kitchen", "compact tv for a small room"],
       [low("screen_in", 2), low("price", 1)], [at_most("screen_in", 43)])
intent("art_tv", "tv", TV_CATS,
       ["tv that looks like art", "frame tv", "tv that looks like a painting", "art display tv for the wall"],
       [equals("art_mode", True, 3), high("screen_in", 0.5)], [equals("art_mode", True)])
intent("tv_8k", "tv", TV_CATS,
       ["8k tv", "tv with 8k resolution", "highest resolution tv", "best 8k television"],
       [high("resolution_k", 3), high("screen_in", 1)], [at_least("resolution_k", 8)])
intent("bright_room_tv", "tv", TV_CATS,
       ["tv for a bright room", "brightest tv", "anti glare tv for sunny room", "tv for daylight viewing"],
       [high("brightness_nits", 3), high("release_year", 0.5)], [at_least("brightness_nits", 1000)])
intent("movie_tv", "tv", TV_CATS,
       ["best tv for movies", "oled tv", "tv with perfect black", "home cinema tv"],
       [equals("panel", "OLED", 3), high("screen_in", 1), high("release_year", 0.5)])
intent("latest_tv", "tv", TV_CATS,
       ["newest tv", "2024 tv", "latest neo qled", "new mini led tv"],
       [high("release_year", 3), equals("panel", "Neo QLED", 1.5), high("brightness_nits", 0.5)], [at_least("release_year", 2024)])
intent("outdoor_tv", "tv", TV_CATS,
       ["outdoor tv", "tv for the patio", "garden tv", "weatherproof tv for outside"],
       [high("brightness_nits", 3), high("price", 0.5)], [at_least("brightness_nits", 1500)])
intent("gaming_monitor", "tv", ["monitor"],
       ["gaming monitor", "high refresh rate monitor", "monitor for pc gaming", "fast monitor for esports"],
       [high("refresh_rate", 3), equals("curved", True, 0.5)], [at_least("refresh_rate", 144)])
intent("office_monitor", "tv", ["monitor"],
       ["monitor for office work", "work from home monitor", "cheap monitor for office", "monitor for spreadsheets"],
       [low("price", 2), low("refresh_rate", 0.5)], [at_most("price", 700)])
intent("atmos_soundbar", "tv", ["soundbar"],
       ["dolby atmos soundbar", "soundbar for home theatre", "surround sound bar", "best soundbar for movies"],
       [equals("dolby_atmos", True, 2), high("channels", 2)], [equals("dolby_atmos", True)])
intent("budget_soundbar", "tv", ["soundbar"],
       ["cheap soundbar", "budget soundbar", "affordable sound bar for tv", "low cost tv speaker"],
       [low("price", 2), DISCOUNT])

intent("bachelor_fridge", "appliances", ["refrigerator"],
       ["fridge for bachelors", "small fridge for one person", "single door fridge", "compact refrigerator for a single person"],
       [low("capacity_l", 1.5), low("price", 1.5), high("energy_stars", 0.5)], [at_most("capacity_l", 260), at_least("capacity_l", 150)])
intent("family_fridge", "appliances", ["refrigerator"],
       ["fridge for a family", "family refrigerator", "big fridge for family of five", "large capacity fridge for a family"],
       [high("capacity_l", 2), high("energy_stars", 1), low("price", 0.5)], [at_least("capacity_l", 480)])
intent("narrow_fridge", "appliances", ["refrigerator"],
       ["slim fridge", "fridge for narrow kitchen", "narrow fridge freezer", "fridge that fits a tight space"],
       [low("width_cm", 3), high("capacity_l", 1)], [at_most("width_cm", 60), at_least("capacity_l", 300)])
intent("smart_fridge", "appliances", ["refrigerator"],
       ["smart fridge", "fridge with screen", "wifi refrigerator", "fridge with touch screen and camera"],
       [equals("smart_screen", True, 3), high("release_year", 1), high("capacity_l", 0.5)])
intent("budget_washer", "appliances", ["washing_machine"],
       ["budget washing machine", "cheap washing machine", "affordable washer", "low price washing machine"],
       [low("price", 2), high("capacity_kg", 0.5), DISCOUNT], [at_most("price", 450)])
intent("family_washer", "appliances", ["washing_machine"],
       ["large washing machine for family", "big capacity washer", "washing machine for a big family", "high capacity laundry machine"],
       [high("capacity_kg", 3), high("energy_stars", 1)], [at_least("capacity_kg", 9)])
intent("washer_dryer", "appliances", ["washing_machine"],
       ["washer dryer combo", "washing machine with dryer", "all in one washer and dryer", "washer that also dries clothes"],
       [equals("dryer", True, 3), high("capacity_kg", 1), equals("ai_wash", True, 0.5)], [equals("dryer", True)])
intent("quiet_washer", "appliances", ["washing_machine"],
       ["quiet washing machine", "silent washer", "low noise washing machine", "washer for an apartment at night"],
       [low("noise_db", 3), high("energy_stars", 0.5)], [at_most("noise_db", 52)])
intent("baking_oven", "appliances", ["oven", "microwave"],
       ["oven for baking", "convection oven", "oven for cakes and bread", "oven for home baking"],
       [equals("convection", True, 2), high("capacity_l", 1), equals("air_fry", True, 0.5)], [equals("convection", True)])
intent("air_fry_oven", "appliances", ["oven", "microwave"],
       ["oven with air fryer", "air fry microwave", "healthy frying oven", "microwave that can air fry"],
       [equals("air_fry", True, 3), low("price", 1)], [equals("air_fry", True)])
intent("reheat_microwave", "appliances", ["microwave"],
       ["cheap microwave", "microwave for reheating", "basic microwave", "simple microwave for leftovers"],
       [low("price", 2), DISCOUNT], [at_most("price", 160)])
intent("pet_vacuum", "appliances", ["vacuum"],
       ["vacuum for pet hair", "vacuum for dog hair", "vacuum cleaner for pets", "vacuum for cat fur"],
       [equals("pet_brush", True, 2), high("suction_w", 1), high("release_year", 0.5)], [equals("pet_brush", True)])
intent("robot_vacuum", "appliances", ["vacuum"],
       ["robot vacuum", "robot cleaner", "automatic vacuum", "self driving vacuum cleaner"],
       [equals("robot", True, 3), high("release_year", 1)], [equals("robot", True)])
intent("small_dishwasher", "appliances", ["dishwasher"],
       ["dishwasher for small kitchen", "compact dishwasher", "slim dishwasher", "small apartment dishwasher"],
       [low("width_cm", 2), low("price", 1)], [at_most("width_cm", 55)])
intent("bedroom_ac", "appliances", ["air_conditioner"],
       ["ac for bedroom", "quiet air conditioner", "bedroom air conditioner", "silent ac for sleeping"],
       [low("noise_db", 2), high("energy_stars", 1), low("capacity_ton", 1)], [at_most("capacity_ton", 1.5)])
intent("budget_ac", "appliances", ["air_conditioner"],
       ["cheap ac", "budget air conditioner", "low cost ac", "affordable air conditioning"],
       [low("price", 2), DISCOUNT])


def check_prefix_free(skus: list[str]) -> None:
    """A SKU that is a prefix of another would be ambiguous as a whole-word token."""
    ordered = sorted(skus)
    for a, b in zip(ordered, ordered[1:]):
        assert not b.startswith(a), (a, b)
    assert len(set(skus)) == len(skus)


def main() -> None:
    check_prefix_free([p["sku"] for p in products])
    OUT.mkdir(parents=True, exist_ok=True)
    catalog = {
        "festival": {"name": "Festival sale", "start_day": 5, "end_day": 7},
        "segments": SEGMENTS,
        "products": products,
    }
    (OUT / "catalog.json").write_text(json.dumps(catalog, indent=1) + "\n", encoding="utf-8")
    (OUT / "intents.json").write_text(json.dumps({"intents": intents}, indent=1) + "\n", encoding="utf-8")
    print(f"{len(products)} products, {len(intents)} intents -> {OUT}")


if __name__ == "__main__":
    main()
