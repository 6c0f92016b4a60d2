import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedbackrl.rewards.pii import PIIGuard, find_pii, luhn_valid
from feedbackrl.sample import Sample


def _kinds(text):
    return [f.kind for f in find_pii(text)]


def test_luhn_known_numbers():
    assert luhn_valid("79927398713")  # the textbook example
    assert not luhn_valid("79927398710")
    assert luhn_valid("4111111111111111")
    assert luhn_valid("378282246310005")  # Amex test number


def _luhn_check_digit(body: str) -> str:
    # Independent formulation: weights 2,1,2,... from the right of the body, digits of products summed.
    total = 0
    for i, ch in enumerate(reversed(body)):
        product = int(ch) * (2 if i % 2 == 0 else 1)
        total += product // 10 + product % 10
    return str((10 - total % 10) % 10)


@given(body=st.text("0123456789", min_size=12, max_size=18).filter(lambda b: b[0] in "3456"))
def test_valid_cards_are_flagged_and_one_digit_off_is_not(body):
    number = body + _luhn_check_digit(body)
    grouped = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    if len(grouped.split()[-1]) < 3:  # a short trailing group is not how cards are written
        grouped = number
    assert _kinds(f"my card is {grouped} thanks") == ["card"]
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert luhn_valid(number) and not luhn_valid(wrong)
    assert "card" not in _kinds(f"my card is {wrong} thanks")


@pytest.mark.parametrize(
    "text, kinds",
    [
        ("mail me at john.doe+x@example.co.uk please", ["email"]),
        ("Call +44 20 7946 0958 now", ["phone"]),
        ("+1 (555) 123-4567", ["phone"]),
        ("(555) 123-4567", ["phone"]),
        ("555.123.4567", ["phone"]),
        ("1-800-555-0199", ["phone"]),
        ("020 7946 0958", ["phone"]),
        ("07700 900123", ["phone"]),
        ("+49 30 123456", ["phone"]),
        ("call me on 5551234567", ["phone"]),
        ("card 4111 1111 1111 1111 exp 12/27", ["card"]),
        ("4111-1111-1111-1111", ["card"]),
        ("amex 3782 822463 10005", ["card"]),
        ("write to a@b.io or ring 555-123-4567", ["email", "phone"]),
        # not personal data
        ("order 5551234567 shipped", []),
        ("4111 1111 1111 1112", []),  # fails Luhn
        ("price $1,234.56 or 19.99, was 2,499.00", []),
        ("in 2024, and from 1999-2024, on 2024-01-15", []),
        ("SKU-555-123-4567 and AB1234567890", []),
        ("ISBN 978-3-16-148410-0", []),
        ("Total: 12 items at 3.50 = 42.00", []),
        ("ip 192.168.1.1, version 1.2.3", []),
        ("+5 points", []),
    ],
)
def test_find_pii(text, kinds):
    assert _kinds(text) == kinds


def test_masking_keeps_only_the_tail():
    [card] = find_pii("pay with 4111-1111-1111-1111.")
    assert card.masked == "****-****-****-1111"
    [phone] = find_pii("(555) 123-4567")
    assert phone.masked == "(***) ***-**67"
    [email] = find_pii("x: jane@shop.example")
    assert email.masked == "j***@shop.example"


def test_guard_scores_and_details():
    samples = [Sample("p", "Your order ships Monday."), Sample("p", "Reach me: jane@shop.example, +1 555 123 4567")]
    clean, leaky = PIIGuard()(samples)
    assert clean.score == 1.0 and clean.details["findings"] == []
    assert leaky.score == 0.0
    assert leaky.details["counts"] == {"email": 1, "phone": 1, "card": 0}
    assert "jane" not in str(leaky.details)  # the audit log never keeps the raw value


def test_guard_watches_only_chosen_kinds():
    [r] = PIIGuard(kinds=("card",))([Sample("p", "jane@shop.example")])
    assert r.score == 1.0
    with pytest.raises(ValueError, match="unknown PII kinds"):
        PIIGuard(kinds=("ssn",))


@given(
    cents=st.integers(0, 10_000_000),
    year=st.integers(1900, 2100),
    month=st.integers(1, 12),
    day=st.integers(1, 28),
    sku=st.integers(0, 10**10),
)
def test_prices_years_dates_and_skus_are_never_flagged(cents, year, month, day, sku):
    price = f"${cents // 100:,}.{cents % 100:02d}"
    text = (f"Now {price} (was {cents / 100:.2f}), since {year}, delivered {year}-{month:02d}-{day:02d} "
            f"or {day:02d}/{month:02d}/{year}; item SKU-{sku} and AB{sku}, {year}-{year + 1} season.")
    assert find_pii(text) == []


def test_long_runs_of_digit_groups():
    # thousands of one-digit groups form one run; only stretches up to 19 digits are tried
    assert find_pii("1 " * 5000) == []
    assert _kinds("0 " * 50 + "4111 1111 1111 1111") == ["card"]
