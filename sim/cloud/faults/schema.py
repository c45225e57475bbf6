"""The one JSON Schema (draft 2020-12) that fault plans and rules are checked against.

Plan files, ``PUT``/``POST /_faults`` bodies and :meth:`Rule.from_dict` all go through
:func:`check_plan` or :func:`check_rule`, so they refuse the same things with the same
one-line message, naming the field (``plan.rules[0].methods[1]``) and, for a choice,
the allowed values. The schema is built from the fault registry: the ``fault`` enum is
:data:`~sim.cloud.faults.FAULTS`' names and each fault's ``params`` object is derived
from its dataclass fields (a field without a default is required). What a schema
cannot say (a range's end below its start, a fault's own bounds) the dataclasses check
on construction, for the Python API as well.

Parsed with :func:`loads_json`, which refuses ``NaN`` and ``Infinity`` (not JSON,
RFC 8259 section 6, though Python's ``json`` reads them).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from sim.cloud.faults import FAULTS

ALL_METHODS = ("GET", "HEAD", "PUT", "DELETE", "POST")
RESERVED_IDS = ("events", "reset")  # /_faults/events and /_faults/reset are routes
DEFAULT_METHODS = ("GET", "HEAD")


def _window(low: int) -> dict[str, Any]:
    return {
        "type": "array",
        "minItems": 2,
        "maxItems": 2,
        "prefixItems": [
            {"type": "integer", "minimum": low},
            {"type": ["integer", "null"], "minimum": low},
        ],
    }


def _json_type(hint: Any) -> dict[str, Any]:
    """The schema of one dataclass field's type hint (float, int, str, Optional, tuple)."""
    if hint is float:
        return {"type": "number"}
    if hint is int:
        return {"type": "integer"}
    if hint is str:
        return {"type": "string"}
    if hint is bool:
        return {"type": "boolean"}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = _json_type(next(a for a in args if a is not type(None)))
        kind = inner.get("type")
        return {**inner, "type": [kind, "null"]} if isinstance(kind, str) else {}
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return {"type": "array", "items": _json_type(args[0])}
    return {}


def params_schema(fault: type) -> dict[str, Any]:
    """The ``params`` object of one fault, from its dataclass fields."""
    hints = typing.get_type_hints(fault)
    fields = [f for f in dataclasses.fields(fault) if f.init]
    required = [
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    return {
        "type": "object",
        "properties": {f.name: _json_type(hints[f.name]) for f in fields},
        "required": required,
        "additionalProperties": False,
    }


RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["fault"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": "^[^/]*$", "not": {"enum": list(RESERVED_IDS)}},
        "fault": {"enum": sorted(FAULTS)},
        "params": {"type": "object"},
        "blob": {"type": "string", "minLength": 1},
        "methods": {
            "type": "array",
            "minItems": 1,
            "items": {"enum": [*ALL_METHODS, "*"]},
        },
        "requests": _window(1),
        "offsets": {**_window(0), "type": ["array", "null"]},
        "probability": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "allOf": [
        {
            "if": {"properties": {"fault": {"const": name}}, "required": ["fault"]},
            "then": {
                "properties": {"params": params_schema(cls)},
                "required": ["params"] if params_schema(cls)["required"] else [],
            },
        }
        for name, cls in sorted(FAULTS.items())
    ],
}

PLAN_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ota-hil fault plan",
    "type": "object",
    "additionalProperties": False,
    "properties": {"rules": {"type": "array", "items": {"$ref": "#/$defs/rule"}}},
    "$defs": {"rule": RULE_SCHEMA},
}

_PLAN = jsonschema.Draft202012Validator(PLAN_SCHEMA)
_RULE = jsonschema.Draft202012Validator(
    {"$schema": PLAN_SCHEMA["$schema"], "$defs": PLAN_SCHEMA["$defs"], "$ref": "#/$defs/rule"}
)


def normalise_rule(data: Any) -> Any:
    """Rule data with a lone method name made a list and method names upper-cased (the
    forms the plan format has always accepted); anything else is left for the schema."""
    if not isinstance(data, Mapping) or "methods" not in data:
        return data
    methods = data["methods"]
    if isinstance(methods, str):
        methods = [methods]
    if isinstance(methods, list):
        methods = [m.upper() if isinstance(m, str) else m for m in methods]
    return {**data, "methods": methods}


def check_rule(data: Any, *, where: str = "rule") -> None:
    """Raise ``ValueError`` (one line, naming the field) unless ``data`` is a valid rule."""
    _check(_RULE, data, where)


def check_plan(data: Any, *, where: str = "plan") -> None:
    """Raise ``ValueError`` (one line, naming the field) unless ``data`` is a valid plan."""
    if isinstance(data, Mapping) and isinstance(data.get("rules"), list):
        data = {**data, "rules": [normalise_rule(r) for r in data["rules"]]}
    _check(_PLAN, data, where)


def loads_json(text: str) -> Any:
    """``json.loads`` refusing NaN and Infinity; ``ValueError`` naming what is wrong."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not a JSON number (RFC 8259 section 6)")

    try:
        return json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


def _check(validator: jsonschema.Draft202012Validator, data: Any, where: str) -> None:
    errors = sorted(validator.iter_errors(data), key=_order)
    if errors:
        raise ValueError(_describe(errors[0], where))


def _order(error: ValidationError) -> tuple[int, int]:
    """Report the deepest error first (the field, not the rule around it), then the
    ones a reader fixes first: a wrong type before a wrong value."""
    rank = {"type": 0, "enum": 1, "required": 2, "additionalProperties": 3}
    return (-len(error.absolute_path), rank.get(str(error.validator), 9))


def _path(where: str, path: typing.Iterable[Any]) -> str:
    out = where
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _describe(error: ValidationError, where: str) -> str:
    field = _path(where, error.absolute_path)
    kind, expected, value = error.validator, error.validator_value, error.instance
    if kind == "enum":
        return f"{field}: {_show(value)} is not one of {list(expected)}"
    if kind == "type":
        allowed = expected if isinstance(expected, str) else " or ".join(expected)
        extra = ""
        if "enum" in error.schema.get("items", {}):
            extra = f" of {list(error.schema['items']['enum'])}"
        return f"{field}: must be {_article(allowed)}{extra}, got {_json_name(value)}"
    if kind == "required":
        missing = next(name for name in expected if name not in value)
        if missing == "params" and value.get("fault") in FAULTS:
            needed = params_schema(FAULTS[value["fault"]])["required"]
            return f"{field}.params: missing; {value['fault']} needs {needed}"
        known = sorted(error.schema.get("properties", {}))
        return f"{field}.{missing}: missing (required; keys: {known})"
    if kind == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(value) - set(known))
        return f"{field}: unknown keys {unknown} (known: {known})"
    if kind == "not":
        return f"{field}: {_show(value)} is reserved ({list(RESERVED_IDS)} are routes)"
    if kind == "pattern":
        return f"{field}: {_show(value)} must not contain '/'"
    if kind in ("minItems", "maxItems"):
        items = error.schema.get("items", {})
        if "enum" in items:
            return f"{field}: must name at least one of {list(items['enum'])}"
        return f"{field}: must be a pair [first, last] of 2 items, got {_show(value)}"
    if kind in ("minimum", "maximum"):
        bound = "at least" if kind == "minimum" else "at most"
        return f"{field}: must be {bound} {expected}, got {_show(value)}"
    if kind == "minLength":
        return f"{field}: must not be empty"
    return f"{field}: {error.message}"


def _article(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _json_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
