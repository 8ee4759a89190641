"""Budgets: absolute amounts (``1.5M``, ``1500000``) or fractions of the fully separate tree."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_PATTERN = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([kKmMgGtT]?)\s*$")


def human(value: float) -> str:
    """``1534000`` -> ``'1.53M'``."""
    for suffix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


@dataclass(frozen=True)
class Budget:
    """A limit on one resource, either absolute or relative to the fully separate tree.

    A plain number up to 1 is a fraction; anything larger, or with a suffix
    (``k``, ``M``, ``G``), is an absolute amount.
    """

    value: float
    is_fraction: bool
    resource: str = "params"

    @classmethod
    def parse(cls, value: str | float | int, resource: str = "params") -> Budget:
        if isinstance(value, bool):
            raise ValueError(f"budget must be a number, got {value!r}")
        if isinstance(value, (int, float)):
            number, suffix = float(value), ""
        else:
            match = _PATTERN.match(str(value))
            if not match:
                raise ValueError(
                    f"cannot read {resource} budget {value!r}: use an absolute amount such as "
                    "1.5M or 1500000, or a fraction of the fully separate network such as 0.5"
                )
            number, suffix = float(match.group(1)), match.group(2).upper()
        if number <= 0:
            raise ValueError(f"{resource} budget must be positive, got {value!r}")
        is_fraction = suffix == "" and number <= 1.0
        return cls(number * _SUFFIX[suffix], is_fraction, resource)

    def resolve(self, smallest: float, largest: float) -> float:
        """The absolute limit, checked against the feasible range [smallest, largest].

        Args:
            smallest: the resource of the fully shared tree.
            largest: the resource of the fully separate tree (the unit of fractions).
        """
        limit = self.value * largest if self.is_fraction else self.value
        if smallest <= limit * (1 + 1e-9) and limit <= largest * (1 + 1e-9):
            return limit
        given = f"{self.value:g} of the separate network" if self.is_fraction else human(limit)
        raise ValueError(
            f"{self.resource} budget {given} is outside the feasible range "
            f"{human(smallest)} (every block shared) to {human(largest)} (one network per task); "
            f"as a fraction: {smallest / largest:.3f} to 1.0"
        )
