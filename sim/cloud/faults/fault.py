"""The one interface every fault implements (toxiproxy's ``Toxic``, for HTTP)."""

import math
import random
from typing import ClassVar, Protocol, runtime_checkable

from sim.cloud.faults.exchange import Exchange


@runtime_checkable
class Fault(Protocol):
    """A frozen dataclass of parameters that edits the :class:`Exchange` of a request.

    ``name`` is the fault's key in :data:`sim.cloud.faults.FAULTS` and in plan files.
    ``rng`` is seeded from the server's seed, the rule and the request number, so
    the same plan and seed give the same choices on the same request sequence.
    """

    name: ClassVar[str]

    def apply(self, exchange: Exchange, rng: random.Random) -> None: ...


def check_non_negative(fault: str, field: str, value: float) -> None:
    """Refuse a negative, non-finite (NaN, infinity) or non-numeric parameter, naming the
    fault and field."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{fault}.{field} must be a finite number >= 0, got {value!r}")


def check_positive(fault: str, field: str, value: float) -> None:
    """Refuse a parameter that is not strictly positive, naming the fault and field."""
    check_non_negative(fault, field, value)
    if value <= 0:
        raise ValueError(f"{fault}.{field} must be > 0, got {value!r}")


def check_int(fault: str, field: str, value: int) -> None:
    """Refuse a parameter that is not a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{fault}.{field} must be an integer >= 0, got {value!r}")
