"""Budget parsing and the feasible range."""

import pytest

from mtl.branching.budget import Budget


@pytest.mark.parametrize(
    ("text", "value", "fraction"),
    [
        ("1.5M", 1.5e6, False),
        (1500000, 1.5e6, False),
        ("1500000", 1.5e6, False),
        (0.5, 0.5, True),
        ("0.5", 0.5, True),
        ("300k", 3e5, False),
        ("2G", 2e9, False),
        (1, 1.0, True),
    ],
)
def test_parse(text, value, fraction):
    budget = Budget.parse(text)
    assert budget.value == pytest.approx(value)
    assert budget.is_fraction is fraction


def test_resolve_fraction_and_absolute():
    assert Budget.parse(0.5).resolve(100, 400) == 200
    assert Budget.parse("300").resolve(100, 400) == 300


@pytest.mark.parametrize("given", ["50", 0.1, "1M"])
def test_out_of_range_names_the_feasible_range(given):
    with pytest.raises(ValueError, match=r"feasible range 100 .* to 400 .*0\.250 to 1\.0"):
        Budget.parse(given).resolve(100, 400)


@pytest.mark.parametrize("given", ["lots", "-3", "1.5X", True])
def test_unreadable(given):
    with pytest.raises(ValueError):
        Budget.parse(given)
