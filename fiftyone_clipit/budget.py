"""The summary budget: a fraction of each video, or seconds of it (`Budget`)."""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """A summary budget: a fraction of each video, or a length in seconds (exactly one is set).

    The library takes a `Budget` or a plain number (a fraction); text such as ``"15%"`` or
    ``"45s"`` is read by :meth:`parse`, which the CLI and the App's forms call.
    """

    fraction: float | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if (self.fraction is None) == (self.seconds is None):
            raise ValueError(f"A budget is a fraction or seconds, exactly one of them; got {self!r}")
        if self.fraction is not None and not (_is_number(self.fraction) and 0 < self.fraction <= 1):
            raise ValueError(f"Budget fraction must be in (0, 1]; got {self.fraction!r}. Give {_BUDGET_FORMS}")
        if self.seconds is not None and not (_is_number(self.seconds) and 0 < self.seconds < math.inf):
            raise ValueError(f"Budget in seconds must be > 0; got {self.seconds!r}")

    @classmethod
    def of(cls, budget: "Budget | float") -> "Budget":
        """The budget `budget` stands for: itself, or a number read as a fraction of each video.

        Raises:
            ValueError: anything else (text included: read it with :meth:`parse`).
        """
        if isinstance(budget, Budget):
            return budget
        if _is_number(budget):
            return cls(fraction=float(budget))
        hint = f"; read text with Budget.parse({budget!r})" if isinstance(budget, str) else ""
        raise ValueError(f"Budget {budget!r} is not understood; give {_BUDGET_FORMS}{hint}")

    @classmethod
    def parse(cls, text: str) -> "Budget":
        """Reads a budget typed by a person: ``"0.15"``, ``"15%"``, ``"45s"``, ``"45 seconds"``.

        Raises:
            ValueError: anything else, naming the text and the accepted forms.
        """
        match = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*(s|sec|secs|second|seconds|%)?", str(text).strip().lower())
        if match is None:
            raise ValueError(f"Budget {text!r} is not understood; give {_BUDGET_FORMS}")
        value, unit = float(match.group(1)), match.group(2)
        if unit is None:
            return cls(fraction=value)
        return cls(fraction=value / 100.0) if unit == "%" else cls(seconds=value)

    @classmethod
    def from_record(cls, value: float, unit: str = "fraction") -> "Budget":
        """The budget a run recorded as ``(value, unit)`` (see :meth:`record`)."""
        return cls(seconds=float(value)) if unit == "seconds" else cls(fraction=float(value))

    def record(self) -> tuple[float, str]:
        """``(value, unit)``, unit "fraction" or "seconds": how runs store the budget."""
        return (self.fraction, "fraction") if self.fraction is not None else (self.seconds, "seconds")

    def share_of(self, duration: float) -> float:
        """The fraction of a video of `duration` seconds this budget is (at most 1)."""
        if self.fraction is not None:
            return self.fraction
        return min(1.0, self.seconds / duration) if duration > 0 else 1.0

    def __str__(self) -> str:
        return f"{self.fraction:.0%}" if self.fraction is not None else f"{self.seconds:g} s"


_BUDGET_FORMS = "a fraction in (0, 1] such as 0.15, a percentage such as '15%', or seconds such as '45s'"


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
