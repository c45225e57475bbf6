"""Fault plans: rules that select requests and name the fault to apply, as data.

A plan is JSON (YAML too when PyYAML is installed)::

    {"rules": [
      {"id": "cut", "fault": "limit_data", "params": {"bytes": 65536},
       "blob": "firmware/*", "requests": [2, 3], "offsets": [0, 1048576],
       "probability": 0.5, "methods": ["GET"]}
    ]}

Every key but ``fault`` is optional. A rule selects a request when the method,
the blob glob (``container/name``, fnmatch), the request number window
(1-based, inclusive, ``null`` = no end) and the byte window of the response
(``[lo, hi)`` overlapping the blob range served) all match, and then its seeded
probability draw (:mod:`sim.cloud.faults.chance`) hits.
"""

import fnmatch
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sim.cloud.faults import FAULTS
from sim.cloud.faults.chance import hits, rng_for
from sim.cloud.faults.fault import Fault
from sim.cloud.faults.schema import (
    ALL_METHODS,
    RESERVED_IDS,
    check_plan,
    check_rule,
    loads_json,
    normalise_rule,
)

__all__ = ["ALL_METHODS", "FaultPlan", "RequestInfo", "Rule", "load_plan", "loads_plan"]


@dataclass(frozen=True)
class RequestInfo:
    """What rules select on: one request as the server numbered and resolved it."""

    number: int
    method: str
    blob: str
    """``container/name`` (``container`` alone for container operations)."""
    span: tuple[int, int] | None = None
    """Blob offsets ``[first, last]`` the response would carry, None when it carries none."""


@dataclass(frozen=True)
class Rule:
    """One selector and the fault it applies; ``id`` is filled in by the plan when empty."""

    fault: Fault
    id: str = ""
    blob: str = "*"
    methods: tuple[str, ...] = ("GET", "HEAD")
    requests: tuple[int, int | None] = (1, None)
    offsets: tuple[int, int | None] | None = None
    probability: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.fault, tuple(FAULTS.values())):
            raise ValueError(f"rule.fault must be one of the registered faults, got {self.fault!r}")
        if not isinstance(self.id, str) or "/" in self.id or self.id in RESERVED_IDS:
            raise ValueError(
                f"rule.id must be a string without '/' and not one of {list(RESERVED_IDS)}, "
                f"got {self.id!r}"
            )
        if not isinstance(self.blob, str) or not self.blob:
            raise ValueError(f"rule.blob must be a non-empty glob, got {self.blob!r}")
        allowed = [*ALL_METHODS, "*"]
        raw = (self.methods,) if isinstance(self.methods, str) else self.methods
        if not isinstance(raw, tuple | list) or not raw:
            raise ValueError(f"rule.methods must name at least one of {allowed}, got {raw!r}")
        if not all(isinstance(m, str) for m in raw):
            raise ValueError(f"rule.methods must be names from {allowed}, got {raw!r}")
        methods = tuple(m.upper() for m in raw)
        for method in methods:
            if method not in allowed:
                raise ValueError(f"rule.methods: {method!r} is not one of {allowed}")
        object.__setattr__(self, "methods", methods)
        object.__setattr__(self, "requests", _window("requests", self.requests, low=1))
        if self.offsets is not None:
            object.__setattr__(self, "offsets", _window("offsets", self.offsets, low=0))
        p = self.probability
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise ValueError(f"rule.probability must be within [0, 1], got {p!r}")

    def matches(self, request: RequestInfo) -> bool:
        """Whether the selectors (all but the probability) pick ``request``."""
        if "*" not in self.methods and request.method not in self.methods:
            return False
        if not fnmatch.fnmatchcase(request.blob, self.blob):
            return False
        first, last = self.requests
        if request.number < first or (last is not None and request.number > last):
            return False
        if self.offsets is not None:
            if request.span is None:
                return False
            lo, hi = self.offsets
            start, end = request.span
            if end < lo or (hi is not None and start >= hi):
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        """The rule as plan-file data."""
        data: dict[str, Any] = {
            "id": self.id,
            "fault": self.fault.name,
            "params": asdict(self.fault),  # type: ignore[call-overload]
            "blob": self.blob,
            "methods": list(self.methods),
            "requests": list(self.requests),
            "probability": self.probability,
        }
        if self.offsets is not None:
            data["offsets"] = list(self.offsets)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "rule") -> "Rule":
        """Build a rule from plan-file data; ``ValueError`` naming ``where`` and the field."""
        data = normalise_rule(data)
        check_rule(data, where=where)
        name = data["fault"]
        try:
            fault = FAULTS[name](**data.get("params", {}))
            kwargs: dict[str, Any] = {
                k: data[k] for k in ("id", "blob", "probability") if k in data
            }
            if "methods" in data:
                kwargs["methods"] = tuple(data["methods"])
            if "requests" in data:
                kwargs["requests"] = tuple(data["requests"])
            if data.get("offsets") is not None:
                kwargs["offsets"] = tuple(data["offsets"])
            return cls(fault=fault, **kwargs)
        except ValueError as exc:
            message = str(exc)
            if message.startswith("rule."):
                raise ValueError(where + message.removeprefix("rule")) from None
            raise ValueError(f"{where}.params: {message}") from None


@dataclass(frozen=True)
class FaultPlan:
    """An ordered tuple of rules with unique ids (``{fault}-{n}`` when not given)."""

    rules: tuple[Rule, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        rules = tuple(self.rules)
        named: list[Rule] = []
        seen: set[str] = set()
        for index, rule in enumerate(rules):
            if not isinstance(rule, Rule):
                raise ValueError(f"plan.rules[{index}] must be a Rule, got {type(rule).__name__}")
            if not rule.id:
                n = index + 1
                while f"{rule.fault.name}-{n}" in seen or any(
                    r.id == f"{rule.fault.name}-{n}" for r in rules
                ):
                    n += 1
                rule = replace(rule, id=f"{rule.fault.name}-{n}")
            if rule.id in seen:
                raise ValueError(f"plan.rules[{index}].id {rule.id!r} is used twice")
            seen.add(rule.id)
            named.append(rule)
        object.__setattr__(self, "rules", tuple(named))

    def select(self, seed: int, request: RequestInfo) -> list[tuple[Rule, random.Random]]:
        """The rules that fire for ``request``, each with its seeded random source."""
        fired = []
        for rule in self.rules:
            if rule.matches(request):
                rng = rng_for(seed, rule.id, request.number)
                if hits(rule.probability, rng):
                    fired.append((rule, rng))
        return fired

    def with_rule(self, rule: Rule) -> "FaultPlan":
        """A plan with ``rule`` appended (its id filled in if empty)."""
        return FaultPlan(rules=(*self.rules, rule))

    def without(self, rule_id: str) -> "FaultPlan":
        """A plan without the rule ``rule_id``; KeyError if there is none."""
        if all(r.id != rule_id for r in self.rules):
            raise KeyError(rule_id)
        return FaultPlan(rules=tuple(r for r in self.rules if r.id != rule_id))

    def to_dict(self) -> dict[str, Any]:
        return {"rules": [rule.to_dict() for rule in self.rules]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FaultPlan":
        """Build a plan from data; errors name the rule index and the field at fault."""
        check_plan(data)
        rules = [
            Rule.from_dict(item, where=f"plan.rules[{index}]")
            for index, item in enumerate(data.get("rules", []))
        ]
        try:
            return cls(rules=tuple(rules))
        except ValueError as exc:
            raise ValueError(str(exc)) from None


def loads_plan(text: str, *, yaml: bool = False) -> FaultPlan:
    """Parse a plan from JSON text (or YAML text when ``yaml`` and PyYAML is installed)."""
    if yaml:
        try:
            import yaml as pyyaml  # optional: not a project dependency
        except ImportError:
            raise ValueError("YAML plans need PyYAML, which is not installed; use JSON") from None
        data = pyyaml.safe_load(text)
    else:
        try:
            data = loads_json(text)
        except ValueError as exc:
            raise ValueError(f"fault plan is {exc}") from None
    return FaultPlan.from_dict(data)


def load_plan(path: str | Path) -> FaultPlan:
    """Read a plan file: ``.yaml``/``.yml`` as YAML, anything else as JSON."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read fault plan {path}: {exc.strerror}") from None
    try:
        return loads_plan(text, yaml=path.suffix.lower() in (".yaml", ".yml"))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _window(name: str, value: Any, *, low: int) -> tuple[int, int | None]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"rule.{name} must be a pair [first, last], got {value!r}")
    first, last = value
    if isinstance(first, bool) or not isinstance(first, int) or first < low:
        raise ValueError(f"rule.{name}[0] must be an integer >= {low}, got {first!r}")
    if last is not None and (isinstance(last, bool) or not isinstance(last, int) or last < first):
        raise ValueError(f"rule.{name}[1] must be null or an integer >= {first}, got {last!r}")
    return (first, last)
