"""A simulated IoT Hub service side for automatic device management (configurations).

What it models, from Microsoft Learn "Automatic IoT device and module management"
(``iot-hub-automatic-device-management``) and "IoT Hub query language"
(``iot-hub-devguide-query-language``):

- devices, each with a twin (:class:`sim.cloud.twin.InProcessTwin`) and tags;
- :class:`Configuration`: id, ``content.deviceContent`` (``properties.desired.X``),
  ``targetCondition``, ``priority``, ``metrics.queries``, ``labels``; only labels,
  metrics, priority and targetCondition can change after creation;
- :meth:`Hub.evaluate`: among the configurations whose target condition matches a
  device, the highest priority wins, and on a tie the most recently created; the
  winner's content is written to the device's desired properties once. IoT Hub does this
  when a configuration is created and then about every 5 minutes
  (:data:`EVALUATION_INTERVAL_S`); here the caller decides when, on its virtual clock;
- system metrics ``targetedCount`` (twins matching the condition) and ``appliedCount``
  (twins the configuration modified), and custom metric queries counted over every twin;
- ``configurations.[[id]].status`` (``Targeted`` / ``Applied``) on each twin, as IoT Hub
  keeps it, so a metric can be scoped to one configuration.

The condition language is a subset, refused outside it with :class:`ConditionError`:
``path = 'string'`` comparisons joined by ``AND`` / ``OR`` with parentheses, where a
path is ``tags.X[.Y...]``, ``properties.reported.X[.Y...]`` or
``configurations.[[ID]].status``; a metric query is ``SELECT deviceId FROM devices WHERE
<condition>`` (or the bare condition).
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sim.cloud.twin import InProcessTwin

EVALUATION_INTERVAL_S = 300.0  # IoT Hub re-evaluates configurations about every 5 minutes
SCHEMA_VERSION = "1.0"
DESIRED_PREFIX = "properties.desired."

# "Configuration ID ... up to 128 characters ... lowercase letters and the following
# special characters: - + % _ # * ? ! ( ) , : = @ $ '" (automatic device management).
_CONFIG_ID = re.compile(r"[a-z0-9\-+%_#*?!(),:=@$']{1,128}")
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$\-]*")
_SELECT = re.compile(r"\s*SELECT\s+deviceId\s+FROM\s+devices\s+WHERE\s+(?P<cond>.*)\Z", re.I | re.S)


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


# --- configurations ------------------------------------------------------------------


@dataclass(frozen=True)
class Configuration:
    """An automatic device configuration, as ``IoTHubConfigurationManager.
    create_configuration`` takes it. ``content`` maps ``properties.desired.NAME`` to the
    JSON object written there; ``metrics`` maps a metric name to its query.

    Validated on construction; a bad field raises ``ValueError`` naming it (with the
    REST name, e.g. ``targetCondition``)."""

    id: str
    content: Mapping[str, Any]
    target_condition: str
    priority: int
    metrics: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _CONFIG_ID.fullmatch(self.id):
            raise ValueError(
                f"id must be 1-128 lowercase letters, digits or - + % _ # * ? ! ( ) , : = @ $ ',"
                f" got {self.id!r}"
            )
        if not isinstance(self.content, Mapping) or not self.content:
            raise ValueError("content must map at least one 'properties.desired.NAME' to a value")
        for key, value in self.content.items():
            name = key[len(DESIRED_PREFIX) :] if isinstance(key, str) else ""
            if not key.startswith(DESIRED_PREFIX) or not _IDENT.fullmatch(name):
                raise ValueError(f"content key must be 'properties.desired.NAME', got {key!r}")
            if not isinstance(value, Mapping):
                raise ValueError(f"content[{key!r}] must be a JSON object")
        try:
            parse_condition(self.target_condition)
        except ConditionError as exc:
            raise ValueError(f"targetCondition: {exc}") from None
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise ValueError(f"priority must be an integer, got {self.priority!r}")
        if self.priority < 0:
            raise ValueError(f"priority must be >= 0, got {self.priority}")
        if not isinstance(self.metrics, Mapping):
            raise ValueError("metrics must map metric names to queries")
        for name, query in self.metrics.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"metrics: a metric name must be a non-empty string, got {name!r}")
            try:
                parse_metric_query(query)
            except ConditionError as exc:
                raise ValueError(f"metrics[{name!r}]: {exc}") from None
        if not isinstance(self.labels, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.labels.items()
        ):
            raise ValueError("labels must map strings to strings")
        # frozen: keep private copies so the caller's dicts cannot change us later
        object.__setattr__(self, "content", copy.deepcopy(dict(self.content)))
        object.__setattr__(self, "metrics", dict(self.metrics))
        object.__setattr__(self, "labels", dict(self.labels))

    def desired_patch(self) -> dict[str, Any]:
        """The desired-properties patch this configuration writes to a device."""
        return {k[len(DESIRED_PREFIX) :]: copy.deepcopy(v) for k, v in self.content.items()}

    def to_json(self) -> dict[str, Any]:
        """The REST body (``PUT /configurations/{id}``), which is also what ``az iot hub
        configuration create`` reads from its ``--content``/``--metrics`` files."""
        return {
            "id": self.id,
            "schemaVersion": SCHEMA_VERSION,
            "labels": dict(self.labels),
            "content": {"deviceContent": copy.deepcopy(dict(self.content))},
            "targetCondition": self.target_condition,
            "priority": self.priority,
            "metrics": {"queries": dict(self.metrics)},
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Configuration:
        """The inverse of :meth:`to_json`; a missing field is named in the error."""
        if not isinstance(doc, Mapping):
            raise ValueError(f"configuration must be a JSON object, got {type(doc).__name__}")
        for name in ("id", "content", "targetCondition", "priority"):
            if name not in doc:
                raise ValueError(f"configuration: missing field {name!r}")
        content = doc["content"]
        if not isinstance(content, Mapping) or not isinstance(
            content.get("deviceContent"), Mapping
        ):
            raise ValueError("content must be {'deviceContent': {...}}")
        metrics = doc.get("metrics") or {}
        return cls(
            id=doc["id"],
            content=content["deviceContent"],
            target_condition=doc["targetCondition"],
            priority=doc["priority"],
            metrics=metrics.get("queries") or {} if isinstance(metrics, Mapping) else metrics,
            labels=doc.get("labels") or {},
        )


@dataclass(frozen=True)
class ConfigurationMetrics:
    """A configuration's metrics after an evaluation: ``systemMetrics`` and custom ones."""

    targeted_count: int
    applied_count: int
    queries: Mapping[str, int]


# --- the hub -------------------------------------------------------------------------


@dataclass
class _Device:
    twin: InProcessTwin
    tags: dict[str, Any]
    configurations: dict[str, str] = field(default_factory=dict)  # id -> Targeted | Applied


@dataclass
class _Entry:
    configuration: Configuration
    created: int  # creation order: a later one wins a priority tie


class Hub:
    """An IoT Hub's device registry and configurations, in process.

    ::

        hub = Hub()
        twin = hub.add_device("dev-1", tags={"productType": "washer"})
        hub.create_configuration(cfg)
        hub.evaluate()      # the caller's virtual schedule: every EVALUATION_INTERVAL_S
        hub.metrics(cfg.id).applied_count
    """

    def __init__(self) -> None:
        self._devices: dict[str, _Device] = {}
        self._configs: dict[str, _Entry] = {}
        self._created = 0
        self.evaluations = 0

    # --- devices ---------------------------------------------------------------------

    def add_device(
        self,
        device_id: str,
        *,
        tags: Mapping[str, Any] | None = None,
        twin: InProcessTwin | None = None,
    ) -> InProcessTwin:
        """Register a device (with its twin, a new one by default); returns the twin."""
        if not isinstance(device_id, str) or not device_id:
            raise ValueError(f"device_id must be a non-empty string, got {device_id!r}")
        if device_id in self._devices:
            raise ValueError(f"device_id {device_id!r} is already registered")
        self._devices[device_id] = _Device(twin or InProcessTwin(), _tags(tags))
        return self._devices[device_id].twin

    def set_tags(self, device_id: str, tags: Mapping[str, Any]) -> None:
        """Replace a device's tags; the next :meth:`evaluate` retargets it."""
        self._device(device_id).tags = _tags(tags)

    def twin(self, device_id: str) -> InProcessTwin:
        return self._device(device_id).twin

    @property
    def device_ids(self) -> list[str]:
        return list(self._devices)

    def twin_document(self, device_id: str) -> dict[str, Any]:
        """The twin as queries see it: ``deviceId``, ``tags``, ``properties`` and
        ``configurations`` (``{id: {"status": "Targeted" | "Applied"}}``)."""
        device = self._device(device_id)
        return {
            "deviceId": device_id,
            "tags": copy.deepcopy(device.tags),
            "properties": {"desired": device.twin.desired, "reported": device.twin.reported},
            "configurations": {k: {"status": v} for k, v in device.configurations.items()},
        }

    # --- configurations ------------------------------------------------------------

    def create_configuration(self, configuration: Configuration) -> Configuration:
        """Add a configuration; it takes effect at the next :meth:`evaluate`."""
        if not isinstance(configuration, Configuration):
            raise ValueError(f"expected a Configuration, got {type(configuration).__name__}")
        if configuration.id in self._configs:
            raise ValueError(f"configuration id {configuration.id!r} already exists")
        self._created += 1
        self._configs[configuration.id] = _Entry(configuration, self._created)
        return configuration

    def update_configuration(self, configuration: Configuration) -> Configuration:
        """Replace labels, metrics, priority and targetCondition of an existing
        configuration; a changed ``content`` is refused, as IoT Hub refuses it."""
        entry = self._entry(configuration.id)
        if configuration.content != entry.configuration.content:
            raise ValueError(
                f"content of configuration {configuration.id!r} cannot be updated after "
                "creation (only labels, metrics, priority and targetCondition can)"
            )
        entry.configuration = configuration
        return configuration

    def delete_configuration(self, config_id: str) -> None:
        """Remove a configuration; devices keep the desired values it wrote."""
        self._entry(config_id)
        del self._configs[config_id]
        for device in self._devices.values():
            device.configurations.pop(config_id, None)

    def get_configuration(self, config_id: str) -> Configuration:
        return self._entry(config_id).configuration

    @property
    def configurations(self) -> list[Configuration]:
        """In creation order."""
        return [e.configuration for e in self._configs.values()]

    # --- evaluation and metrics ----------------------------------------------------

    def evaluate(self) -> dict[str, str]:
        """One evaluation pass: target every device, apply each device's winning
        configuration once. Returns ``{device_id: config_id}`` for the devices whose
        desired properties were written in this pass."""
        self.evaluations += 1
        written: dict[str, str] = {}
        for device_id, device in self._devices.items():
            doc = self.twin_document(device_id)
            matching = [
                e for e in self._configs.values() if _condition(e.configuration).matches(doc)
            ]
            winner = max(
                matching, key=lambda e: (e.configuration.priority, e.created), default=None
            )
            previously = {k for k, v in device.configurations.items() if v == "Applied"}
            device.configurations = {e.configuration.id: "Targeted" for e in matching}
            if winner is None:
                continue
            config = winner.configuration
            device.configurations[config.id] = "Applied"
            if config.id not in previously:
                device.twin.patch_desired(config.desired_patch())
                written[device_id] = config.id
        return written

    def metrics(self, config_id: str) -> ConfigurationMetrics:
        """``targetedCount``/``appliedCount`` as of the last :meth:`evaluate`, and each
        custom query counted over every twin now (IoT Hub runs them hub-wide)."""
        config = self._entry(config_id).configuration
        statuses = [d.configurations.get(config_id) for d in self._devices.values()]
        docs = [self.twin_document(i) for i in self._devices]
        counts = {
            name: sum(_parsed_query(q).matches(doc) for doc in docs)
            for name, q in config.metrics.items()
        }
        return ConfigurationMetrics(
            targeted_count=sum(s is not None for s in statuses),
            applied_count=statuses.count("Applied"),
            queries=counts,
        )

    def _device(self, device_id: str) -> _Device:
        try:
            return self._devices[device_id]
        except KeyError:
            raise KeyError(f"no device {device_id!r} in the hub") from None

    def _entry(self, config_id: str) -> _Entry:
        try:
            return self._configs[config_id]
        except KeyError:
            raise KeyError(f"no configuration {config_id!r} in the hub") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._devices)


@functools.lru_cache(maxsize=256)
def _parsed(text: str) -> Condition:
    return parse_condition(text)


def _condition(config: Configuration) -> Condition:
    return _parsed(config.target_condition)


@functools.lru_cache(maxsize=256)
def _parsed_query(text: str) -> Condition:
    return parse_metric_query(text)


def _tags(tags: Mapping[str, Any] | None) -> dict[str, Any]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping) or not all(isinstance(k, str) and k for k in tags):
        raise ValueError("tags must map non-empty strings to JSON values")
    return copy.deepcopy(dict(tags))
