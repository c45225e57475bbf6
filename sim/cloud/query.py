"""The IoT Hub query language, the subset this project's hub understands ("IoT Hub query
language", ``iot-hub-devguide-query-language``): target conditions, metric queries and
registry queries, one parser for the in-process hub and the service endpoint alike.

A condition is ``path = 'string'`` comparisons joined by ``AND`` / ``OR`` with
parentheses, where a path is ``tags.X[.Y...]``, ``properties.reported.X[.Y...]`` or
``configurations.[[ID]].status``; anything else is refused with :class:`ConditionError`
naming where and what. A metric query is ``SELECT deviceId FROM devices WHERE
<condition>`` (or the bare condition); a registry query is ``SELECT * FROM devices``
or ``SELECT deviceId FROM devices``, each with an optional ``WHERE <condition>``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_SELECT = re.compile(r"\s*SELECT\s+deviceId\s+FROM\s+devices\s+WHERE\s+(?P<cond>.*)\Z", re.I | re.S)
_QUERY = re.compile(
    r"\s*SELECT\s+(?P<what>\*|deviceId)\s+FROM\s+devices(?:\s+WHERE\s+(?P<cond>.*?))?\s*\Z",
    re.I | re.S,
)


class ConditionError(ValueError):
    """A target condition or metric query outside the supported subset; the message
    quotes the text and says where and what is wrong."""


# --- the condition language ----------------------------------------------------------


@dataclass(frozen=True)
class _Compare:
    path: tuple[str, ...]
    value: str

    def matches(self, doc: Mapping[str, Any]) -> bool:
        node: Any = doc
        for part in self.path:
            if not isinstance(node, Mapping) or part not in node:
                return False
            node = node[part]
        return isinstance(node, str) and node == self.value


@dataclass(frozen=True)
class _BoolOp:
    op: str  # "AND" | "OR"
    left: _Node
    right: _Node

    def matches(self, doc: Mapping[str, Any]) -> bool:
        if self.op == "AND":
            return self.left.matches(doc) and self.right.matches(doc)
        return self.left.matches(doc) or self.right.matches(doc)


_Node = _Compare | _BoolOp

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'[^']*')|(?P<cfg>\[\[[^\]]*\]\])|(?P<word>[A-Za-z_$][A-Za-z0-9_$\-]*)"
    r"|(?P<punct>[().=])|(?P<bad>\S+?(?=[\s().=']|\Z)|\S))"
)
_KEYWORDS = {"AND", "OR"}
_REFUSED_WORDS = {"NOT", "IN", "NIN", "IS_DEFINED", "STARTSWITH", "ENDSWITH", "SELECT"}


class _Parser:
    """Recursive descent: ``expr := term (OR term)*; term := factor (AND factor)*;
    factor := '(' expr ')' | path '=' string``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:  # only trailing whitespace is left
                break
            kind = m.lastgroup or "bad"
            value = m.group(kind)
            if value is not None:
                self.tokens.append((kind, value, m.start(kind)))
            pos = m.end()
        self.i = 0

    def fail(self, problem: str, at: int | None = None) -> ConditionError:
        where = len(self.text) if at is None else at
        return ConditionError(f"condition {self.text!r}: {problem} (at character {where})")

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            raise self.fail("unexpected end")
        self.i += 1
        return token

    def parse(self) -> _Node:
        if not self.tokens:
            raise self.fail("is empty")
        node = self.expr()
        rest = self.peek()
        if rest is not None:
            raise self.fail(f"unexpected {rest[1]!r}", rest[2])
        return node

    def expr(self) -> _Node:
        node = self.term()
        while self._keyword("OR"):
            node = _BoolOp("OR", node, self.term())
        return node

    def term(self) -> _Node:
        node = self.factor()
        while self._keyword("AND"):
            node = _BoolOp("AND", node, self.factor())
        return node

    def factor(self) -> _Node:
        kind, value, at = self.take()
        if kind == "punct" and value == "(":
            node = self.expr()
            kind, value, at = self.take()
            if value != ")":
                raise self.fail(f"expected ')', got {value!r}", at)
            return node
        if kind == "cfg" or (kind == "word" and value.upper() not in _KEYWORDS):
            self.i -= 1
            path = self.path()
            kind, value, at = self.take()
            if value != "=":
                raise self.fail(f"only '=' comparisons are supported, got {value!r}", at)
            kind, value, at = self.take()
            if kind != "str":
                raise self.fail(f"expected a 'quoted string' after '=', got {value!r}", at)
            return _Compare(path, value[1:-1])
        raise self.fail(f"expected a comparison or '(', got {value!r}", at)

    def path(self) -> tuple[str, ...]:
        parts: list[tuple[str, str, int]] = [self.take()]
        while (token := self.peek()) is not None and token[1] == ".":
            self.i += 1
            parts.append(self.take())
        start = parts[0][2]
        for kind, value, at in parts:
            if kind == "word" and value.upper() in _REFUSED_WORDS:
                raise self.fail(f"{value!r} is not supported here", at)
            if kind not in ("word", "cfg"):
                raise self.fail(f"expected a property name, got {value!r}", at)
        names = [value for _, value, _ in parts]
        shown = ".".join(names)
        if names[0] == "tags" and len(names) >= 2 and _plain(parts[1:]):
            return tuple(names)
        if names[:2] == ["properties", "reported"] and len(names) >= 3 and _plain(parts[2:]):
            return tuple(names)
        if len(names) == 3 and names[0] == "configurations" and names[2] == "status":
            if parts[1][0] != "cfg":
                raise self.fail("write a configuration id as configurations.[[ID]]", start)
            return ("configurations", names[1][2:-2], "status")
        raise self.fail(
            f"unsupported property {shown!r}: use tags.X, properties.reported.X or "
            "configurations.[[ID]].status",
            start,
        )

    def _keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "word" and token[1].upper() == word:
            self.i += 1
            return True
        return False


def _plain(parts: list[tuple[str, str, int]]) -> bool:
    return all(kind == "word" and value.upper() not in _KEYWORDS for kind, value, _ in parts)


@dataclass(frozen=True)
class Condition:
    """A parsed target condition; :meth:`matches` tests it against a twin document
    (``{"deviceId", "tags", "properties": {"desired", "reported"}, "configurations"}``).
    A comparison with a missing property, or a property that is not a string, is false."""

    text: str
    _root: _Node = field(repr=False, compare=False)

    def matches(self, twin_doc: Mapping[str, Any]) -> bool:
        return self._root.matches(twin_doc)


def parse_condition(text: str) -> Condition:
    """Parse a target condition (the subset above); :class:`ConditionError` otherwise."""
    if not isinstance(text, str):
        raise ConditionError(f"condition must be a string, got {type(text).__name__}")
    return Condition(text, _Parser(text).parse())


def parse_metric_query(text: str) -> Condition:
    """Parse a metric query: ``SELECT deviceId FROM devices WHERE <condition>`` or the
    bare condition (IoT Hub counts the twins the query returns)."""
    if not isinstance(text, str):
        raise ConditionError(f"metric query must be a string, got {type(text).__name__}")
    m = _SELECT.match(text)
    if m is None and text.lstrip().upper().startswith("SELECT"):
        raise ConditionError(
            f"metric query {text!r}: only 'SELECT deviceId FROM devices WHERE ...' is supported"
        )
    return parse_condition(m.group("cond") if m else text)


@dataclass(frozen=True)
class Query:
    """A registry query: what it selects (``*`` or ``deviceId``) and its condition."""

    text: str
    select: str  # "*" | "deviceId"
    where: Condition | None

    def matches(self, twin_doc: Mapping[str, Any]) -> bool:
        return self.where is None or self.where.matches(twin_doc)


def parse_query(text: str) -> Query:
    """Parse ``SELECT * | deviceId FROM devices [WHERE <condition>]``."""
    if not isinstance(text, str):
        raise ConditionError(f"query must be a string, got {type(text).__name__}")
    m = _QUERY.match(text)
    if m is None:
        raise ConditionError(
            f"query {text!r}: only 'SELECT * FROM devices [WHERE ...]' and "
            "'SELECT deviceId FROM devices [WHERE ...]' are supported"
        )
    cond = m.group("cond")
    select = "*" if m.group("what") == "*" else "deviceId"
    return Query(text, select, parse_condition(cond) if cond else None)


@functools.lru_cache(maxsize=256)
def cached_condition(text: str) -> Condition:
    """:func:`parse_condition`, memoised: the hub evaluates the same texts again and again."""
    return parse_condition(text)


@functools.lru_cache(maxsize=256)
def cached_metric_query(text: str) -> Condition:
    return parse_metric_query(text)
