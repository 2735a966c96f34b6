"""Hostile events: a real worker fed more than 10,000 malformed or adversarial messages.

The corpus is drawn with hypothesis (``derandomize=True``: the same corpus on every run of
the same hypothesis version) as lists of small *recipes*, each expanded here into one Kafka
message: text that is not JSON (garbage, truncated events, ``NaN``/``Infinity``/``1e400``,
nesting 5,000 deep, lone surrogates, a BOM), bytes that are not UTF-8, events with exactly
one broken field (missing, ``null``, of the wrong type, out of range: UUIDs, RFC 3339 times
of year 0001 and 9999, negative counts, latencies of 0 or over 600,000 ms, builds numbered
0, malformed parameters), events sent to another kind's topic, JSON scalars, tombstones,
empty batches, batches mixing good and refused elements, and good events made odd but
valid (unknown fields up to 1,000 levels deep, upper-case UUIDs, local offsets, lower-case
``t``/``z``, nine fractional digits, nulls in optional fields, odd usernames, 64-bit
counts).  A few heavy messages are added as such: messages over 1 MiB (the embedded broker
takes them, so the worker's own limit is what refuses them), batches of more than 1,000
events, events over 64 KiB alone and in batches, and messages and events exactly at those
limits (which count).

Good events come from the ``streams.workloads`` builders (a seeded generator); they are
spread over plain messages and the mixed batches, some of them twice (a redelivery changes
nothing).  Every refused event that looks like a real one belongs to ghost users and
templates, or names a good user with a newer time and another username, so a refused event
that leaked into the rollups would show in the answers.

What each message must cost is derived from the event contract (``docs/events.md``)
while it is built: one dead-letter record per refused event, naming the message (topic,
partition, offset), the element (``index``; ``null`` for a message refused whole), the
message key, a reason of the expected kind (and, for a field, its path), and the refused
text as its payload.  A message that is not JSON (which includes numbers out of double
range and nesting deeper than the parser's 1,024 levels: limits RFC 8259 allows), a
tombstone, a message over 1 MiB or a batch of more than 1,000 events is one refused record,
whatever it holds.

The run goes through ``insights worker`` and ``insights api`` processes on the session's
broker and Redis, and checks: the same worker process is alive at the end and its log
shows no crash and no error; the dead-letter topic holds exactly the expected records;
every endpoint answers what ``tests/oracle.py`` (and, for build parameters, a direct
reading of insights-api.md 5.5) computes from the good events alone; the worker's peak RSS
stayed under ``RSS_CEILING_MIB``.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from redis import Redis as SyncRedis

from aggregators.model import KINDS, TOPIC_KINDS, BuildEvent, BuildParameter, Event, ParameterOption
from aggregators.timebase import US_PER_DAY, US_PER_MIN, US_PER_S
from insights.devstack import TANSU_PRODUCER_SETTINGS
from streams.decoding import MAX_BATCH_EVENTS, MAX_EVENT_BYTES, MAX_MESSAGE_BYTES, decode_message
from streams.decoding.limits import (
    BAD_MESSAGE,
    BAD_TIME,
    BAD_TYPE,
    BAD_UUID,
    BAD_VALUE,
    BATCH_TOO_LONG,
    EVENT_TOO_LARGE,
    FUTURE_TIME,
    INVALID_JSON,
    MAX_ID_CHARS,
    MAX_LATENCY_MS,
    MAX_NAME_CHARS,
    MESSAGE_TOO_LARGE,
    MISSING_FIELD,
    NO_VALUE,
    NOT_OBJECT,
    NOT_UTF8,
)
from streams.workloads import (
    AgentRef,
    App,
    WireEvent,
    app_usage_event,
    build_event,
    latency_event,
    rfc3339,
    session_event,
    uuid_from,
)
from tests.e2e.stack import Deployment, deployment
from tests.oracle import Oracle

DB = 13  # a Redis database of its own (tests/e2e/conftest.py hands out 1, 2, ...)
RSS_CEILING_MIB = 400
RECIPES_PER_DRAW = 50
DRAWS = 250  # lists of 50 recipes: 12,500 light messages
MIN_HOSTILE_MESSAGES = 10_000
# A message refused whole comes back in full in its dead-letter record (only size refusals
# are cut to 64 KiB); the corpus keeps those far below the size at which the record
# outgrows the worker's producer (test_large_refused_messages_keep_their_dead_letters).
MAX_ECHOED_BYTES = 800_000
SETTLE_TIMEOUT_S = 90.0
QUIET_S = 1.5
PLAIN_GOOD = {"sessions": 1500, "app_usage": 400, "latency": 600, "builds": 40}

T = TypeVar("T")

# --- who: good users, ghosts ---------------------------------------------------------------

GOOD_USERS = 8
GOOD_TEMPLATES = [uuid_from("hostile", "template", i) for i in range(3)]
GHOST_TEMPLATES = [uuid_from("hostile", "ghost-template", i) for i in range(2)]
LEAK_NAME = "refused-event-leaked"  # the username of refused events about good users


def _good_agent(u: int, t: int) -> AgentRef:
    return AgentRef(
        uuid_from("hostile", "user", u),
        f"user-{u}",
        GOOD_TEMPLATES[t],
        uuid_from("hostile", "workspace", u, t),
        uuid_from("hostile", "agent", u, t),
        avatar_url=f"https://avatars.example/{u}.png",
    )


def _ghost_agent(n: int) -> AgentRef:
    g = n % 20
    return AgentRef(
        uuid_from("hostile", "ghost", g),
        f"ghost-{g}",
        GHOST_TEMPLATES[g % 2],
        uuid_from("hostile", "ghost-ws", g),
        uuid_from("hostile", "ghost-agent", g),
    )


def _user_templates(u: int) -> list[int]:
    return [u % 3] if u % 2 else [u % 3, (u + 1) % 3]


PARAMETERS = [
    BuildParameter(
        "region", "string", "Region", "Where it runs",
        (ParameterOption("Europe", "", "eu", ""), ParameterOption("US", "", "us", "")), "",
    ),
    BuildParameter("cpus", "number", "CPUs", "", (), ""),
]  # fmt: skip


@dataclass(frozen=True)
class Clock:
    """The corpus' time frame: good events lie in the three whole UTC days before today."""

    now_us: int

    @property
    def day0_us(self) -> int:
        return (self.now_us // US_PER_DAY - 3) * US_PER_DAY

    @property
    def end_us(self) -> int:
        return self.day0_us + 3 * US_PER_DAY

    @property
    def newest_us(self) -> int:
        """Newer than any good event: refused events about good users carry this time."""
        return self.end_us - 30 * US_PER_S


# --- messages and what they must cost -----------------------------------------------------


class Refusal(NamedTuple):
    code: str  # the reason code (the metric label), recognised from the reason's text
    field: str | None  # the dotted path the reason names; None: not checked


@dataclass
class Msg:
    kind: str
    category: str
    key: bytes | None
    value: bytes | None
    refused: dict[int | None, Refusal] = field(default_factory=dict)
    elements: dict[int, bytes] = field(default_factory=dict)  # text of each refused element
    good: list[bytes] = field(default_factory=list)  # JSON text of the events that count
    hostile: bool = True  # malformed or adversarial; False: plain good events


@dataclass
class Element:
    """One element of a batch being built: its compact JSON text and its fate."""

    text: bytes
    refusal: Refusal | None = None
    good: bool = False


def _batch(elements: Sequence[Element]) -> bytes:
    return b"[" + b",".join(e.text for e in elements) + b"]"


def _batch_msg(kind: str, category: str, key: bytes | None, elements: Sequence[Element]) -> Msg:
    msg = Msg(kind, category, key, _batch(elements))
    for i, e in enumerate(elements):
        if e.refusal is not None:
            msg.refused[i] = e.refusal
            msg.elements[i] = e.text
        elif e.good:
            msg.good.append(e.text)
    return msg


U64_OVER = "@2**64@"  # stands for the integer 18446744073709551616 (orjson writes none over u64)


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj).replace(f'"{U64_OVER}"'.encode(), str(2**64).encode())


# --- good events (the builders, seeded) ------------------------------------------------------


class GoodSource:
    """Good events on demand from a seeded generator: sessions, app-usage reports (new
    sessions and later reports of earlier ones), latency samples and builds of 8 users in 3
    templates, all inside the clock's three days."""

    APPS: tuple[tuple[str, App | None], ...] = (
        ("code-server", App("code-server", "/icon/code.svg")),
        ("jupyter", App("Jupyter", "")),
        ("8080", None),  # a port forward
        ("", None),  # the web terminal
    )

    def __init__(self, clock: Clock, seed: int = 9) -> None:
        self.clock = clock
        self.rng = random.Random(seed)
        self.count = dict.fromkeys(TOPIC_KINDS, 0)
        self.app_sessions: list[tuple[AgentRef, str, int, int, str, App | None, Any]] = []
        self.build_numbers: dict[str, int] = defaultdict(int)
        # They end 15 minutes before the end of the three days: see Clock.newest_us.
        self.last_us = clock.end_us - 15 * US_PER_MIN

    def _pick(self) -> AgentRef:
        u = self.rng.randrange(GOOD_USERS)
        return _good_agent(u, self.rng.choice(_user_templates(u)))

    def _at(self) -> int:
        return self.rng.randrange(self.clock.day0_us, self.last_us)

    def next(self, kind: str) -> WireEvent:
        n = self.count[kind]
        self.count[kind] = n + 1
        rng = self.rng
        if kind == "sessions":
            kinds = [k for k in KINDS if rng.random() < 0.3]
            conn = rng.choice([0, 1, 1, 1, 2, 7])
            return session_event(self._pick(), f"good-s-{n}", self._at(), kinds, conn)
        if kind == "latency":
            ms = round(rng.lognormvariate(3.5, 0.9), 3)
            return latency_event(self._pick(), f"good-l-{n}", self._at(), ms)
        if kind == "builds":
            agent = self._pick()
            self.build_numbers[agent.workspace_id] += 1
            params = [
                PARAMETERS[0]._replace(value=rng.choice(["eu", "us"])),
                PARAMETERS[1]._replace(value=str(rng.choice([2, 4, 8]))),
            ]
            number = self.build_numbers[agent.workspace_id]
            return build_event(agent, f"good-b-{n}", self._at(), number, params)
        if self.app_sessions and rng.random() < 0.6:  # a later report of a session: an upsert
            i = rng.randrange(len(self.app_sessions))
            agent, sid, start, end, slug, app, method = self.app_sessions[i]
            end = min(end + rng.randrange(1, 40 * 60) * US_PER_S, self.last_us)
        else:
            agent, sid = self._pick(), uuid_from("hostile", "app-session", n)
            slug, app = rng.choice(self.APPS)
            method = "terminal" if slug == "" else rng.choice(["path", "subdomain"])
            start = max(self._at() - rng.randrange(2 * 3600) * US_PER_S, self.clock.day0_us)
            end = min(start + rng.randrange(1, 40 * 60) * US_PER_S, self.last_us)
            i = len(self.app_sessions)
            self.app_sessions.append((agent, sid, start, end, slug, app, method))
        self.app_sessions[i] = (agent, sid, start, end, slug, app, method)
        return app_usage_event(agent, f"good-a-{n}", sid, start, end, access_method=method,
                               slug_or_port=slug, app=app, requests=rng.randrange(50))  # fmt: skip


# --- recipes: what hypothesis draws ----------------------------------------------------------

# kind -> required fields (in the order the contract lists them), with their type class
REQUIRED: dict[str, list[tuple[str, str]]] = {
    "sessions": [("id", "id"), ("time", "time"), ("user_id", "uuid"), ("username", "str"),
                 ("template_id", "uuid"), ("workspace_id", "uuid"), ("agent_id", "uuid"),
                 ("connection_count", "count"), ("sessions", "kinds")],
    "app_usage": [("id", "id"), ("time", "time"), ("session_id", "uuid"), ("user_id", "uuid"),
                  ("username", "str"), ("template_id", "uuid"), ("workspace_id", "uuid"),
                  ("agent_id", "uuid"), ("access_method", "method"), ("slug_or_port", "str"),
                  ("started_at", "time"), ("ended_at", "time")],
    "latency": [("id", "id"), ("time", "time"), ("user_id", "uuid"), ("template_id", "uuid"),
                ("workspace_id", "uuid"), ("agent_id", "uuid"), ("latency_ms", "latency")],
    "builds": [("id", "id"), ("time", "time"), ("template_id", "uuid"), ("workspace_id", "uuid"),
               ("user_id", "uuid"), ("build_number", "build_number"), ("parameters", "params")],
}  # fmt: skip
# Optional fields: absent or null is fine, any other type is not.
_NAMES = [("template_name", "name"), ("organization_name", "name")]
OPTIONAL: dict[str, list[tuple[str, str]]] = {
    "sessions": [("avatar_url", "str"), *_NAMES],
    "app_usage": [("avatar_url", "str"), ("app", "app"), ("requests", "count"), *_NAMES],
    "latency": _NAMES,
    "builds": _NAMES,
}
FAULTS = ("missing", "null", "wrong_type", "bad_value", "bad_value", "bad_value")

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.one_of(
    _scalars,
    st.lists(_scalars, max_size=3),
    st.dictionaries(st.text(max_size=4), _scalars, max_size=2),
)
kinds_st = st.sampled_from(TOPIC_KINDS)
small_text = st.text(max_size=12)
keys = st.one_of(st.none(), st.binary(max_size=6), st.text(max_size=8).map(str.encode))


class FieldFault(NamedTuple):  # one broken field
    kind: str
    field_no: int
    fault: str
    variant: int
    wrong: object
    text: str
    about_good_user: bool


class Garbage(NamedTuple):  # not JSON
    kind: str
    variant: int
    text: str
    n: int


class BadBytes(NamedTuple):  # not UTF-8
    kind: str
    variant: int
    blob: bytes
    n: int


class Tombstone(NamedTuple):
    kind: str


class Scalar(NamedTuple):
    kind: str
    value: object


class EmptyBatch(NamedTuple):
    kind: str
    variant: int


class CrossTopic(NamedTuple):  # an event of ``source`` on the topic of ``kind``
    kind: str
    source: str


class Weird(NamedTuple):  # a good event made odd but still valid: it counts
    kind: str
    variant: int
    name: str
    value: object


class NotObject(NamedTuple):  # a batch element that is no object, maybe nested deep
    value: object
    depth: int


class GoodSlot(NamedTuple):  # a good event goes here
    pass


class Mixed(NamedTuple):
    kind: str
    elements: list[Any]


def _field_faults() -> st.SearchStrategy[FieldFault]:
    return st.builds(
        FieldFault,
        kinds_st,
        st.integers(0, 15),
        st.sampled_from(FAULTS),
        st.integers(0, 63),
        json_values,
        small_text,
        st.booleans(),
    )


def _garbage() -> st.SearchStrategy[Garbage]:
    return st.builds(Garbage, kinds_st, st.integers(0, 11), small_text, st.integers(0, 1 << 16))


weird = st.builds(Weird, kinds_st, st.integers(0, 11), small_text, json_values)
# Nesting inside the batch array and the element stays within the parser's 1,024 levels.
not_objects = st.builds(NotObject, json_values, st.sampled_from([0, 0, 0, 2, 200, 1020]))
element_st = st.one_of(
    st.just(GoodSlot()), st.just(GoodSlot()), _field_faults(), _field_faults(), not_objects, weird
)
# The richer recipes are listed more than once: hypothesis draws them more often.
light_recipes = st.one_of(
    *(_field_faults() for _ in range(4)),
    *(_garbage() for _ in range(2)),
    st.builds(BadBytes, kinds_st, st.integers(0, 5), st.binary(max_size=10), st.integers(0, 255)),
    st.builds(Tombstone, kinds_st),
    st.builds(Scalar, kinds_st, _scalars),
    st.builds(EmptyBatch, kinds_st, st.integers(0, 3)),
    st.builds(CrossTopic, kinds_st, kinds_st),
    weird,
    st.builds(Mixed, kinds_st, st.lists(element_st, min_size=1, max_size=12)),
    st.builds(Mixed, kinds_st, st.lists(element_st, min_size=1, max_size=12)),
)


def draw_all(strategy: st.SearchStrategy[T], examples: int) -> list[T]:
    """Every example hypothesis generates for ``strategy`` in one derandomized run."""
    out: list[T] = []

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: T) -> None:
        out.append(value)

    collect()
    return out


_ACCEPTS: dict[str, Callable[[object], bool]] = {
    "id": lambda v: isinstance(v, str),
    "str": lambda v: isinstance(v, str),
    "uuid": lambda v: isinstance(v, str),
    "time": lambda v: isinstance(v, str),
    "method": lambda v: isinstance(v, str),
    "name": lambda v: isinstance(v, str),
    "count": lambda v: type(v) is int,
    "build_number": lambda v: type(v) is int,
    "latency": lambda v: type(v) in (int, float),
    "kinds": lambda v: isinstance(v, dict),
    "object": lambda v: isinstance(v, dict),
    "app": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "params": lambda v: isinstance(v, list),
}


def _wrong_type(cls: str, drawn: object, nullable: bool = False) -> object:
    """``drawn`` when no value of class ``cls`` can be it, else a value that cannot."""
    if drawn is None:
        if not nullable:
            return None
        # null means "absent" there: the wrong value must be of another class, not null
        return {"not": None} if cls == "array" else [None]
    if _ACCEPTS[cls](drawn):
        return {"not": drawn} if cls in ("array", "params") else [drawn]
    return drawn


# --- recipes -> messages ---------------------------------------------------------------------


class Corpus:
    """Expands recipes into messages, with good events from ``GoodSource``."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.source = GoodSource(clock)
        self.serial = 0

    def take_good(self, kind: str) -> bytes:
        return _dumps(self.source.next(kind))

    def base(self, kind: str, n: int, about_good_user: bool = False) -> WireEvent:
        """A valid event that must not count: a ghost's, or a good user's under another name
        and newer than all its good events (so that a leak would change that username)."""
        if about_good_user:
            u = n % GOOD_USERS
            agent = _good_agent(u, _user_templates(u)[0])._replace(username=LEAK_NAME)
            at = self.clock.newest_us
        else:
            agent = _ghost_agent(n)
            at = self.clock.day0_us + (n * 7_919_000_003) % (3 * US_PER_DAY - US_PER_DAY // 8)
        self.serial += 1
        eid = f"refused-{self.serial}"
        if kind == "sessions":
            return session_event(agent, eid, at, ["ssh", "vscode"], 1)
        if kind == "app_usage":
            start = at - 20 * US_PER_MIN
            sid = uuid_from("hostile", "ghost-session", n)
            app = App("Ghost", "/g.svg")
            return app_usage_event(agent, eid, sid, start, at, slug_or_port="ghost-app", app=app)
        if kind == "latency":
            return latency_event(agent, eid, at, 12.5 + n % 100)
        return build_event(agent, eid, at, 1 + n % 5, [PARAMETERS[0]._replace(value="ghost")])

    # -- one broken field ------------------------------------------------------------------

    def field_fault(self, r: FieldFault) -> tuple[WireEvent, Refusal]:
        event = self.base(r.kind, r.variant * 131 + r.field_no, r.about_good_user)
        fields = REQUIRED[r.kind] + OPTIONAL[r.kind]
        i = r.field_no % len(fields)
        name, cls = fields[i]
        required = i < len(REQUIRED[r.kind])
        fault = r.fault if required or r.fault not in ("missing", "null") else "wrong_type"
        if fault == "missing":
            del event[name]
            return event, Refusal(MISSING_FIELD, name)
        if fault == "null":
            event[name] = None
            return event, Refusal(BAD_TYPE, name)
        if fault == "wrong_type":
            event[name] = _wrong_type(cls, r.wrong, nullable=not required)
            return event, Refusal(BAD_TYPE, name)
        return self.bad_value(r, event, name, cls, required)

    def bad_value(
        self, r: FieldFault, event: WireEvent, name: str, cls: str, required: bool
    ) -> tuple[WireEvent, Refusal]:
        v = r.variant
        if cls == "id":  # "" or longer than 128 characters
            event[name] = "" if v % 3 == 0 else (r.text or "i")[0] * (MAX_ID_CHARS + 1 + v * 40)
            return event, Refusal(BAD_VALUE, name)
        if cls == "uuid":
            good = str(event[name])
            bad = [good.replace("-", ""), "{" + good + "}", good[:-1] + "g", good + " ", " " + good,
                   good[:35], good + "0", "", r.text, good.replace("-", "_")]  # fmt: skip
            event[name] = bad[v % len(bad)]
            return event, Refusal(BAD_UUID, name)
        if cls == "time":
            return self.bad_time(r, event, name)
        if cls == "count":
            if v % 4 == 3:  # an integer over 2**64 - 1: read as a number, not a count
                event[name] = U64_OVER
                return event, Refusal(BAD_TYPE, name)
            event[name] = -1 - v * 1_000_003
            return event, Refusal(BAD_VALUE, name)
        if cls == "name":  # over 256 characters
            event[name] = (r.text or "n")[0] * (MAX_NAME_CHARS + 1 + v)
            return event, Refusal(BAD_VALUE, name)
        if cls == "latency":
            event[name] = [0, -0.0, -1, -12.5, MAX_LATENCY_MS + 0.001, 1e308, 10**12][v % 7]
            return event, Refusal(BAD_VALUE, name)
        if cls == "method":
            event[name] = [r.text, "PATH", "web", "ssh", "", "Path"][v % 6]
            if event[name] in ("path", "subdomain", "terminal"):
                event[name] = "tunnel"
            return event, Refusal(BAD_VALUE, name)
        if cls == "build_number":
            event[name] = -(v * 7)
            return event, Refusal(BAD_VALUE, name)
        if cls == "kinds":
            kind = KINDS[v % len(KINDS)]
            counts = dict(event[name])
            if v % 2:
                counts[kind] = -1 - v
                event[name] = counts
                return event, Refusal(BAD_VALUE, f"sessions.{kind}")
            counts[kind] = _wrong_type("count", r.wrong)
            event[name] = counts
            return event, Refusal(BAD_TYPE, f"sessions.{kind}")
        if cls == "params":
            return self.bad_parameters(r, event)
        if cls == "app":
            event[name] = {"display_name": _wrong_type("str", r.wrong, nullable=True), "icon": ""}
            return event, Refusal(BAD_TYPE, "app.display_name")
        # a string field: every string is valid, so break its type instead
        event[name] = _wrong_type(cls, r.wrong, nullable=not required)
        return event, Refusal(BAD_TYPE, name)

    def bad_time(self, r: FieldFault, event: WireEvent, name: str) -> tuple[WireEvent, Refusal]:
        future = rfc3339(self.clock.now_us + 3600 * US_PER_S)  # over the 5-minute limit
        text = [
            "9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00Z", "1969-12-31T23:59:59.999999Z",
            "2024-02-30T00:00:00Z", "2023-02-29T12:00:00Z", "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00", "2024-01-01T24:00:00Z", "2024-01-01T00:00:60Z",
            "2024-01-01T00:00Z", "2024-1-01T00:00:00Z", "2024-01-01T00:00:00+0100",
            "+10000-01-01T00:00:00Z", r.text, future,
        ][r.variant % 15]  # fmt: skip
        event[name] = text
        if text == future or text.startswith("9999"):
            if name == "started_at":  # the session then ends before it starts
                return event, Refusal(BAD_VALUE, "ended_at")
            return event, Refusal(FUTURE_TIME, name)
        return event, Refusal(BAD_TIME, name)

    def bad_parameters(self, r: FieldFault, event: WireEvent) -> tuple[WireEvent, Refusal]:
        params = [dict(p) for p in event["parameters"]]
        event["parameters"] = params
        p = params[0]
        v = r.variant % 8
        if v == 0:
            params.append(_wrong_type("object", r.wrong))
            return event, Refusal(BAD_TYPE, f"parameters[{len(params) - 1}]")
        if v == 1:
            del p["name"]
            return event, Refusal(MISSING_FIELD, "parameters[0].name")
        if v == 2:
            p["name"] = ""
            return event, Refusal(BAD_VALUE, "parameters[0].name")
        if v == 3:
            p["value"] = _wrong_type("str", r.wrong)
            return event, Refusal(BAD_TYPE, "parameters[0].value")
        if v == 4:
            p["options"] = _wrong_type("array", r.wrong, nullable=True)
            return event, Refusal(BAD_TYPE, "parameters[0].options")
        if v == 5:
            p["options"] = [_wrong_type("object", r.wrong)]
            return event, Refusal(BAD_TYPE, "parameters[0].options[0]")
        if v == 6:
            p["options"] = [{"name": "x", "description": ""}]
            return event, Refusal(MISSING_FIELD, "parameters[0].options[0].value")
        p["type"] = None
        return event, Refusal(BAD_TYPE, "parameters[0].type")

    # -- the other recipes -----------------------------------------------------------------

    def garbage(self, r: Garbage, key: bytes | None) -> Msg:
        v, n = r.variant, r.n
        if v <= 2:  # a start no JSON text has, then anything
            start = ["<", "{'", "NaN", "-Infinity", "}", "'", "undefined", "//", "\x00"][n % 9]
            value = (start + r.text).encode()
        elif v == 3:  # non-finite or out-of-range numbers in an otherwise good event
            token = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1E999"][n % 6]
            event = self.base(r.kind, n)
            event["latency_ms" if r.kind == "latency" else "x_metric"] = "@NUM@"
            text = _dumps(event).replace(b'"@NUM@"', token)
            neighbour = _dumps(self.base(r.kind, n + 1))
            value = text if n % 2 else b"[" + neighbour + b"," + text + b"]"
        elif v == 4:  # truncated
            text = _dumps([self.base(r.kind, n), self.base(r.kind, n + 1)])
            value = text[: 1 + n % (len(text) - 1)]
        elif v == 5:  # nested deeper than the parser goes, up to 5,000 levels
            depth = [5000, 1025, 2048, 4999][n % 4]
            value = ("[" * depth + "]" * depth).encode()
        elif v == 6:
            event = self.base(r.kind, n)
            event["deep"] = "@DEEP@"
            value = _dumps(event).replace(b'"@DEEP@"', b'{"a":' * 5000 + b"1" + b"}" * 5000)
        elif v == 7:  # a lone surrogate escape
            event = self.base(r.kind, n)
            event["id"] = "@S@"
            value = _dumps(event).replace(b"@S@", [b"\\ud800", b"\\udfff", b"x\\ud83d"][n % 3])
        elif v == 8:  # a byte-order mark, trailing garbage, a comment
            text = _dumps(self.base(r.kind, n))
            value = [b"\xef\xbb\xbf" + text, text + b"x", text + b"}", text + b"//", text + b","][
                n % 5
            ]
        elif v == 9:  # nearly JSON
            value = [b"", b" ", b"[1,]", b'{"a":01}', b"{\"a\": 'b'}", b'{"a":"\\x41"}',
                     b'{"a":"\x01"}', b"[", b"{", b'{"id":}'][n % 10]  # fmt: skip
        else:  # a raw control character, quote or backslash inside a string
            event = self.base(r.kind, n)
            event["id"] = "@C@"
            value = _dumps(event).replace(b"@C@", [b"a\nb", b"\t", b'"', b"\\"][n % 4])
        return Msg(r.kind, "not JSON", key, value, {None: Refusal(INVALID_JSON, None)})

    def bad_bytes(self, r: BadBytes, key: bytes | None) -> Msg:
        bad = [b"\xff", b"\xc0\xaf", b"\x80", b"\xe2\x82", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]
        seq = bad[r.n % len(bad)]
        if r.variant <= 1:
            value = seq + r.blob
        else:  # inside a string of an otherwise good event or batch
            event = self.base(r.kind, r.n)
            event["id"] = "@B@"
            text = _dumps(event) if r.variant % 2 else _dumps([event])
            value = text.replace(b"@B@", seq + b"x")
        try:
            value.decode("utf-8")
            value = b"\xff" + value  # the drawn bytes completed the sequence
        except UnicodeDecodeError:
            pass
        return Msg(r.kind, "not UTF-8", key, value, {None: Refusal(NOT_UTF8, None)})

    def cross_topic(self, r: CrossTopic, key: bytes | None) -> Msg:
        if r.source == r.kind:  # an object with none of the fields
            return Msg(r.kind, "wrong topic", key, b"{}", {None: Refusal(MISSING_FIELD, "id")})
        value = _dumps(self.base(r.source, self.serial))
        return Msg(r.kind, "wrong topic", key, value, {None: Refusal(MISSING_FIELD, None)})

    def weird(self, r: Weird) -> bytes:
        """A good event made odd, still valid: it counts."""
        event = self.source.next(r.kind)
        v = r.variant
        if v == 0:  # an unknown field of any JSON value
            event["x_" + r.name] = r.value
        elif v == 1:  # unknown fields named like known ones; names at their longest
            event.update({"ID": 1, "Time": None, "latency": [], "build": {"n": -1}, "": r.value})
            event["template_name"] = (r.name or "t")[0] * MAX_NAME_CHARS
            event["organization_name"] = None
        elif v == 2:  # upper-case UUIDs
            for k in ("user_id", "template_id", "workspace_id", "agent_id", "session_id"):
                if k in event:
                    event[k] = event[k].upper()
        elif v == 3:  # the same instant at +05:45, with nine fractional digits
            moment = datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
            local = moment.astimezone(timezone(timedelta(hours=5, minutes=45)))
            event["time"] = local.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123+05:45"
        elif v == 4:  # lower-case t and z
            event["time"] = event["time"].replace("T", "t").replace("Z", "z")
        elif v == 5 and r.kind in ("sessions", "app_usage"):  # nulls where the contract allows
            event["avatar_url"] = None
            if r.kind == "app_usage":
                event["requests"] = None
        elif v == 6 and r.kind == "sessions":  # session kinds nobody knows yet, any value
            event["sessions"] = {**event["sessions"], "x-" + r.name: r.value, "telepathy": -5}
        elif v == 7:  # an unknown field nested 1,000 levels deep
            event["deep"] = "@DEEP@"
            return _dumps(event).replace(b'"@DEEP@"', b"[" * 1000 + b"]" * 1000)
        elif v == 8 and r.kind in ("sessions", "app_usage"):  # an odd username
            event["username"] = r.name + "\x00\u202e\U0001f600\ufeff"
        elif v == 9 and r.kind == "app_usage":  # the largest count
            event["requests"] = 2**64 - 1
        elif v == 10 and r.kind == "sessions":
            event["connection_count"] = 2**64 - 1 if event["connection_count"] else 0
        else:  # a long string in an unknown field, keys in another order
            event = dict(reversed(list(event.items())))
            event["x_blob"] = (r.name or "z") * 500
        return _dumps(event)

    def mixed(self, r: Mixed, key: bytes | None) -> Msg:
        elements: list[Element] = []
        for e in r.elements:
            if isinstance(e, GoodSlot):
                elements.append(Element(self.take_good(r.kind), good=True))
            elif isinstance(e, FieldFault):
                event, refusal = self.field_fault(e._replace(kind=r.kind))
                elements.append(Element(_dumps(event), refusal))
            elif isinstance(e, NotObject):
                text = _dumps([e.value] if isinstance(e.value, dict) else e.value)
                text = b"[" * e.depth + text + b"]" * e.depth
                elements.append(Element(text, Refusal(NOT_OBJECT, None)))
            else:
                elements.append(Element(self.weird(e._replace(kind=r.kind)), good=True))
        return _batch_msg(r.kind, "mixed batch", key, elements)

    def build(self, recipe: Any, key: bytes | None) -> Msg:
        if isinstance(recipe, FieldFault):
            event, refusal = self.field_fault(recipe)
            return Msg(recipe.kind, "one bad field", key, _dumps(event), {None: refusal})
        if isinstance(recipe, Garbage):
            return self.garbage(recipe, key)
        if isinstance(recipe, BadBytes):
            return self.bad_bytes(recipe, key)
        if isinstance(recipe, Tombstone):  # Kafka clients send no record without key and value
            key = b"" if key is None else key
            return Msg(recipe.kind, "tombstone", key, None, {None: Refusal(NO_VALUE, None)})
        if isinstance(recipe, Scalar):
            refusal = {None: Refusal(BAD_MESSAGE, None)}
            return Msg(recipe.kind, "JSON scalar", key, _dumps(recipe.value), refusal)
        if isinstance(recipe, EmptyBatch):
            value = [b"[]", b" [ ] ", b"[\n]", b"\t[]\r\n"][recipe.variant]
            return Msg(recipe.kind, "empty batch", key, value)
        if isinstance(recipe, CrossTopic):
            return self.cross_topic(recipe, key)
        if isinstance(recipe, Weird):
            text = self.weird(recipe)
            return Msg(recipe.kind, "odd but valid", key, text, good=[text])
        assert isinstance(recipe, Mixed)
        return self.mixed(recipe, key)

    # -- heavy messages, a few of each -----------------------------------------------------

    def heavy(self) -> Iterator[Msg]:
        yield from self._over_one_mib()
        yield from self._at_one_mib()
        yield from self._over_thousand()
        yield from self._over_64_kib()
        yield from self._at_64_kib()

    def _over_one_mib(self) -> Iterator[Msg]:
        """Refused whole whatever they hold (the record's payload is cut to 64 KiB)."""
        refused = {None: Refusal(MESSAGE_TOO_LARGE, None)}
        for i, size in enumerate([MAX_MESSAGE_BYTES + 1, 1_300_000, 2 << 20, 3 << 20]):
            kind = TOPIC_KINDS[i]
            ghosts: list[bytes] = []
            total = 0
            while total < size - 4096:
                ghosts.append(_dumps(self.base(kind, 1000 + len(ghosts))))
                total += len(ghosts[-1]) + 1
            value = b"[" + b",".join(ghosts) + b"]"
            value = value[:-1] + b',{"x_pad":"' + b"p" * (size - len(value) - 13) + b'"}]'
            assert len(value) == size
            yield Msg(kind, "over 1 MiB", f"big-{i}".encode(), value, dict(refused))
        single = self.base("sessions", 7)
        single["x_blob"] = "s" * (MAX_MESSAGE_BYTES + 10)
        for kind, value in [
            ("sessions", _dumps(single)),
            ("latency", random.Random(1).randbytes(MAX_MESSAGE_BYTES + 4096)),
            ("builds", b"[" * (MAX_MESSAGE_BYTES + 1)),
        ]:
            yield Msg(kind, "over 1 MiB", None, value, dict(refused))

    def _at_one_mib(self) -> Iterator[Msg]:
        """Exactly 1 MiB: accepted; its padded element is over 64 KiB, its neighbours count."""
        for kind in ("sessions", "latency"):
            goods = [Element(self.take_good(kind), good=True) for _ in range(50)]
            pad_event = self.base(kind, 4242)
            pad_event["x_pad"] = ""
            probe = _batch([*goods, Element(_dumps(pad_event))])
            pad_event["x_pad"] = "q" * (MAX_MESSAGE_BYTES - len(probe))
            padded = Element(_dumps(pad_event), Refusal(EVENT_TOO_LARGE, None))
            msg = _batch_msg(kind, "exactly 1 MiB", b"1mib", [*goods[:25], padded, *goods[25:]])
            assert msg.value is not None and len(msg.value) == MAX_MESSAGE_BYTES
            yield msg

    def _over_thousand(self) -> Iterator[Msg]:
        """More than 1,000 events: refused whole, valid events included; exactly 1,000 count."""
        for i, (kind, count) in enumerate(
            [("sessions", MAX_BATCH_EVENTS + 1), ("latency", 1024), ("builds", 1100)]
        ):
            elements = [Element(_dumps(self.base(kind, 30_000 + j))) for j in range(count)]
            elements[7] = Element(b"{}")
            msg = _batch_msg(kind, "over 1,000 events", f"long-{i}".encode(), elements)
            msg.refused = {None: Refusal(BATCH_TOO_LONG, None)}
            yield msg
        elements = [Element(self.take_good("sessions"), good=True) for _ in range(MAX_BATCH_EVENTS)]
        yield _batch_msg("sessions", "exactly 1,000 events", b"1000", elements)

    def _over_64_kib(self) -> Iterator[Msg]:
        """Events over 64 KiB alone (the message is the event) and in batches (the element)."""
        for i, kind in enumerate(TOPIC_KINDS * 2):
            event = self.base(kind, 50_000 + i, about_good_user=i % 2 == 0)
            huge = "\u00e9" * (MAX_EVENT_BYTES // 2 + 100 * i)  # two bytes each
            event["username" if kind in ("sessions", "app_usage") else "x_blob"] = huge
            text = _dumps(event)
            if i < 4:
                refused = {None: Refusal(EVENT_TOO_LARGE, None)}
                yield Msg(kind, "event over 64 KiB", None, text, refused)
            else:
                goods = [Element(self.take_good(kind), good=True) for _ in range(5)]
                elements = [*goods[:2], Element(text, Refusal(EVENT_TOO_LARGE, None)), *goods[2:]]
                yield _batch_msg(kind, "event over 64 KiB", None, elements)

    def _at_64_kib(self) -> Iterator[Msg]:
        """Events of exactly 64 KiB count, alone and in a batch; huge but valid strings too."""
        for kind in ("sessions", "app_usage"):
            alone = self._exactly(kind, MAX_EVENT_BYTES)
            yield Msg(kind, "event of exactly 64 KiB", None, alone, good=[alone])
            pair = [Element(self._exactly(kind, MAX_EVENT_BYTES), good=True) for _ in range(2)]
            yield _batch_msg(kind, "event of exactly 64 KiB", None, pair)
            event = self.source.next(kind)
            event["username"] = "\U0001f40d" * 15_000  # 60,000 bytes
            text = _dumps(event)
            yield Msg(kind, "huge valid strings", None, text, good=[text])
            event = self.source.next(kind)
            event["id"] = "\U00010348" * MAX_ID_CHARS  # 128 characters, 512 bytes
            text = _dumps(event)
            yield Msg(kind, "huge valid strings", None, text, good=[text])

    def _exactly(self, kind: str, size: int) -> bytes:
        event = self.source.next(kind)
        event["x_pad"] = ""
        event["x_pad"] = "k" * (size - len(_dumps(event)))
        text = _dumps(event)
        assert len(text) == size
        return text

    def plain_good(self, rng: random.Random) -> Iterator[Msg]:
        """More good events in plain messages (singles and batches), 5 % of them twice."""
        for kind, count in PLAIN_GOOD.items():
            texts = [self.take_good(kind) for _ in range(count)]
            texts += rng.sample(texts, count // 20)  # redelivered in another message
            rng.shuffle(texts)
            i = 0
            while i < len(texts):
                chunk = texts[i : i + rng.choice([1, 1, 2, 10, 50, 100])]
                i += len(chunk)
                key = str(rng.randrange(1000)).encode()
                if len(chunk) == 1 and rng.random() < 0.7:
                    yield Msg(kind, "good", key, chunk[0], good=chunk, hostile=False)
                else:
                    msg = _batch_msg(kind, "good", key, [Element(t, good=True) for t in chunk])
                    msg.hostile = False
                    yield msg


def build_corpus(clock: Clock) -> list[Msg]:
    corpus = Corpus(clock)
    n = RECIPES_PER_DRAW
    drawn = draw_all(st.lists(st.tuples(light_recipes, keys), min_size=n, max_size=n), DRAWS)
    messages = [corpus.build(recipe, key) for chunk in drawn for recipe, key in chunk]
    messages += corpus.heavy()
    rng = random.Random(20_009)
    messages += corpus.plain_good(rng)
    rng.shuffle(messages)  # hostile and good interleaved on the four topics
    for m in messages:  # what is echoed whole into a dead-letter record stays producible
        cut = any(r.code in (MESSAGE_TOO_LARGE, EVENT_TOO_LARGE) for r in m.refused.values())
        if m.refused and not cut and m.value is not None:
            assert len(m.value) <= MAX_ECHOED_BYTES, (m.category, len(m.value))
    return messages


# --- reading the dead-letter records -------------------------------------------------------

# The reason of a record is one line of text; its code (the metric label) shows in its shape.
_REASON_SHAPES: list[tuple[str, re.Pattern[str]]] = [
    (NO_VALUE, re.compile(r"message has no value \(tombstone\)$")),
    (NOT_UTF8, re.compile(r"message is not valid UTF-8\b")),
    (INVALID_JSON, re.compile(r"message is not valid JSON: ")),
    (MESSAGE_TOO_LARGE, re.compile(r"message is \d+ bytes \(limit \d+\)")),
    (BAD_MESSAGE, re.compile(r"message is a JSON \w+, expected an object or an array")),
    (BATCH_TOO_LONG, re.compile(r"batch has \d+ events \(limit \d+\)$")),
    (NOT_OBJECT, re.compile(r"batch element is \w+, expected an object$")),
    (EVENT_TOO_LARGE, re.compile(r"event is \d+ bytes \(limit \d+\)")),
    (MISSING_FIELD, re.compile(r'field "[^"]+": required$')),
    (BAD_TYPE, re.compile(r'field "[^"]+": expected .+, got \w+$')),
    (BAD_UUID, re.compile(r'field "[^"]+": not a canonical UUID')),
    (BAD_TIME, re.compile(r'field "[^"]+": (not an RFC 3339|before 1970-01-01)')),
    (FUTURE_TIME, re.compile(r'field "[^"]+": too far in the future')),
    (BAD_VALUE, re.compile(r'field "[^"]+": ')),
]
_FIELD = re.compile(r'field "([^"]+)": ')


def reason_code(reason: str) -> str:
    for code, shape in _REASON_SHAPES:
        if shape.match(reason):
            return code
    return f"unrecognised: {reason[:80]}"


def _key_text(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(key).decode("ascii")


def expected_payload(msg: Msg, index: int | None, refusal: Refusal) -> str:
    """The record's ``payload``: the refused text (the whole message, or the element's
    compact JSON), base64 when the bytes are not UTF-8, its first 64 KiB for a size refusal."""
    raw = msg.value if index is None else msg.elements[index]
    if raw is None:
        return ""  # a tombstone has no text
    head = raw[:MAX_EVENT_BYTES] if refusal.code in (MESSAGE_TOO_LARGE, EVENT_TOO_LARGE) else raw
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(head).decode("ascii")
    return head.decode("utf-8", "ignore")  # a cut drops a split last character


def _payload_matches(payload: str, text: str) -> bool:
    """Equal, or the same JSON value: a batch element's payload is its re-serialisation (an
    integer over 2**64 - 1, read as a number, comes back as ``1.8446744073709552e+19``)."""
    if payload == text:
        return True
    try:
        return bool(orjson.loads(payload) == orjson.loads(text))
    except orjson.JSONDecodeError:
        return False


Where = tuple[str, int, int]  # topic, partition, offset


async def produce(bootstrap: str, prefix: str, messages: Sequence[Msg]) -> dict[Where, Msg]:
    """Send every message (without waiting for each), then one tombstone per partition of
    every topic: once those are dead-lettered, the worker has been through everything."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        max_request_size=8 << 20,  # the worker must meet messages over 1 MiB
        linger_ms=5,
        **TANSU_PRODUCER_SETTINGS,
    )
    await producer.start()
    try:
        pending = [await producer.send(prefix + m.kind, m.value, key=m.key) for m in messages]
        sent = {}
        for msg, meta in zip(messages, await asyncio.gather(*pending), strict=True):
            sent[meta.topic, meta.partition, meta.offset] = msg
        for kind in TOPIC_KINDS:
            for p in sorted(await producer.partitions_for(prefix + kind)):
                msg = Msg(kind, "end marker", f"end-{kind}-{p}".encode(), None,
                          {None: Refusal(NO_VALUE, None)}, hostile=False)  # fmt: skip
                meta = await producer.send_and_wait(prefix + kind, None, key=msg.key, partition=p)
                sent[meta.topic, meta.partition, meta.offset] = msg
        return sent
    finally:
        await producer.stop()


async def read_dead_letters(
    bootstrap: str, topic: str, expected: int, markers: set[Where], timeout_s: float
) -> list[dict[str, Any]]:
    """Every record of the dead-letter topic, once the end markers and at least ``expected``
    records are in and nothing more came for ``QUIET_S``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 << 20,
        fetch_max_bytes=64 << 20,
    )
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout_s
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            records = [orjson.loads(r.value) for rs in batch.values() for r in rs]
            out += records
            seen = {(d["topic"], d["partition"], d["offset"]) for d in out if d["index"] is None}
            done = markers <= seen and len(out) >= expected
            if records or not done:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= QUIET_S:
                break
    finally:
        await consumer.stop()
    return out


# --- the worker's memory -------------------------------------------------------------------


class RssSampler(threading.Thread):
    """VmRSS of a process every 0.1 s, and its high-water mark (VmHWM) at the end."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, int]] = []  # (monotonic s, KiB)
        self.hwm_kib = 0
        self._stop_event = threading.Event()

    def status(self) -> dict[str, int]:
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0])
        return out

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.samples.append((time.monotonic(), self.status()["VmRSS"]))
            except (OSError, KeyError):
                return
            self._stop_event.wait(0.1)

    def finish(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
        self.hwm_kib = self.status()["VmHWM"]

    @property
    def peak_mib(self) -> float:
        return max((kib for _, kib in self.samples), default=0) / 1024


# --- what the endpoints must answer ----------------------------------------------------------


def decode_good(messages: Sequence[Msg], now_us: int) -> dict[str, list[Event]]:
    """The good events, decoded once each (a redelivered id counts once)."""
    out: dict[str, dict[str, Event]] = {k: {} for k in TOPIC_KINDS}
    for m in messages:
        for text in m.good:
            events, refused = decode_message(text, m.kind, now_us)
            assert not refused and len(events) == 1, (m.category, refused, text[:300])
            out[m.kind].setdefault(events[0].id, events[0])
    return {k: list(v.values()) for k, v in out.items()}


@dataclass
class Expected:
    paths: dict[str, str]
    bodies: dict[str, Callable[[Any], Any]]  # projection of the answer
    values: dict[str, Any]  # what the projection must equal


def _window(clock: Clock) -> str:
    start, end = (rfc3339(t) for t in (clock.day0_us, clock.end_us))
    return f"start_time={start}&end_time={end}"


def expected_answers(clock: Clock, good: dict[str, list[Event]], today_us: int) -> Expected:
    events = [e for kind in TOPIC_KINDS if kind != "builds" for e in good[kind]]
    oracle = Oracle(events)
    start_ns, end_ns = clock.day0_us * 1000, clock.end_us * 1000
    day_ns = US_PER_DAY * 1000
    summary = oracle.summary(start_ns, end_ns, None)
    users: list[str] = summary["users"]  # type: ignore[assignment]
    seconds: dict[str, int] = summary["seconds"]  # type: ignore[assignment]
    user_tpls: dict[str, list[str]] = summary["user_templates"]  # type: ignore[assignment]
    samples: dict[str, list[float]] = summary["samples"]  # type: ignore[assignment]
    lat_tpls: dict[str, list[str]] = summary["latency_templates"]  # type: ignore[assignment]

    def name(u: str) -> tuple[str, str]:
        _, _, username, avatar = oracle.names.get(u, (0, "", "", ""))
        return username, avatar

    window = _window(clock)
    first_day = today_us // US_PER_DAY - 60
    daus = oracle.intervals(first_day * day_ns, (first_day + 61) * day_ns, day_ns, None)
    latency_users = sorted(set(users) | set(samples))
    return Expected(
        paths={
            "templates": f"/api/v2/insights/templates?{window}&interval=day",
            "user-activity": f"/api/v2/insights/user-activity?{window}",
            "user-latency": f"/api/v2/insights/user-latency?{window}",
            "daus": "/api/v2/insights/daus?tz_offset=0",
        },
        bodies={
            "templates": _templates_projection,
            "user-activity": lambda b: {
                u["user_id"]: (u["seconds"], u["template_ids"], u["username"], u["avatar_url"])
                for u in b["report"]["users"]
            },
            "user-latency": lambda b: {
                u["user_id"]: (u["template_ids"], u["latency_ms"]) for u in b["report"]["users"]
            },
            "daus": lambda b: [e["amount"] for e in b["entries"]],
        },
        values={
            "templates": {
                "template_ids": summary["templates"],
                "active_users": len(users),
                "builtins": summary["builtins"],
                "apps": summary["apps"],
                "intervals": oracle.intervals(start_ns, end_ns, day_ns, None),
                "parameters": expected_parameters(good["builds"], clock),
            },
            "user-activity": {u: (seconds[u], user_tpls[u], *name(u)) for u in users},
            "user-latency": {
                u: (
                    sorted(set(user_tpls.get(u, [])) | set(lat_tpls.get(u, []))),
                    samples.get(u, []),
                )
                for u in latency_users
            },
            "daus": [n for n, _ in daus],
        },
    )


def _templates_projection(body: Any) -> dict[str, Any]:
    rep = body["report"]
    return {
        "template_ids": rep["template_ids"],
        "active_users": rep["active_users"],
        "builtins": [(a["slug"], a["seconds"], a["template_ids"]) for a in rep["apps_usage"][:5]],
        "apps": [
            (
                a["slug"],
                a["display_name"],
                a["icon"],
                a["seconds"],
                a["template_ids"],
                a["times_used"],
            )
            for a in rep["apps_usage"][5:]
        ],
        "intervals": [(i["active_users"], i["template_ids"]) for i in body["interval_reports"]],
        "parameters": {
            p["name"]: (p["template_ids"], {v["value"]: v["count"] for v in p["values"]})
            for p in rep["parameters_usage"]
        },
    }


def expected_parameters(
    builds: Sequence[Event], clock: Clock
) -> dict[str, tuple[list[str], dict[str, int]]]:
    """insights-api.md 5.5 for the corpus' builds (one definition per parameter name): the
    latest build per (template, workspace) in the window, its values counted."""
    latest: dict[tuple[str, str], BuildEvent] = {}
    for b in builds:
        assert isinstance(b, BuildEvent)
        if clock.day0_us <= b.time_us < clock.end_us:
            cur = latest.get((b.template_id, b.workspace_id))
            if cur is None or b.build_number > cur.build_number:
                latest[b.template_id, b.workspace_id] = b
    templates: dict[str, set[str]] = defaultdict(set)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for (template, _), b in latest.items():
        for p in b.parameters:
            templates[p.name].add(template)
            counts[p.name][p.value] += 1
    return {n: (sorted(templates[n]), dict(counts[n])) for n in templates}


def _latency_matches(observed: Any, expected: Any) -> bool:
    if set(observed) != set(expected):
        return False
    for user, (tpls, samples) in expected.items():
        got_tpls, quantiles = observed[user]
        if got_tpls != tpls:
            return False
        for key, q in (("p50", 0.5), ("p95", 0.95)):
            if not samples:
                if quantiles[key] != -1:
                    return False
                continue
            ref = samples[int(q * (len(samples) - 1))]
            if abs(quantiles[key] - ref) > 0.01 * ref + 1e-9:
                return False
    return True


def wait_for_answers(dep: Deployment, exp: Expected, timeout_s: float) -> dict[str, Any]:
    """Poll the four endpoints until each matches; the last projections otherwise."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] = {}
    pending = set(exp.paths)
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            status, body, raw = dep.stack.get(exp.paths[name])
            assert status == 200, (name, status, raw[:500])
            got = exp.bodies[name](body)
            last[name] = got
            ok = (
                _latency_matches(got, exp.values[name])
                if name == "user-latency"
                else got == exp.values[name]
            )
            if ok:
                pending.discard(name)
        if pending:
            time.sleep(0.3)
    return {name: last.get(name) for name in pending}


# --- the tests -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_stack(kafka_bootstrap: str, redis_url: str) -> Iterator[Deployment]:
    base = redis_url.rsplit("/", 1)[0]
    with SyncRedis.from_url(f"{base}/{DB}") as r:
        r.flushdb()
    with deployment(kafka_bootstrap, redis_url, DB, workers=1) as dep:
        yield dep


def _worker_log(dep: Deployment) -> str:
    return (dep.stack.logs / "worker-0.log").read_text(errors="replace")


def _log_problems(log: str) -> list[str]:
    return [
        line[:400]
        for line in log.splitlines()
        if '"level": "error"' in line
        or '"level": "critical"' in line
        or "Crashed" in line
        or "Traceback" in line
    ]


def test_hostile_events_never_stop_the_worker_and_each_refusal_is_one_dead_letter(
    hostile_stack: Deployment,
) -> None:
    dep = hostile_stack
    worker = dep.workers[0]
    t0 = time.monotonic()
    clock = Clock(time.time_ns() // 1000)
    messages = build_corpus(clock)
    built_s = time.monotonic() - t0
    hostile = [m for m in messages if m.hostile]
    categories = Counter(m.category for m in hostile)
    refusing = sum(1 for m in hostile if m.refused)
    assert min(len(hostile), refusing) >= MIN_HOSTILE_MESSAGES, categories

    rss = RssSampler(worker.pid)
    rss.start()
    t1 = time.monotonic()
    sent = asyncio.run(produce(dep.stack.bootstrap, dep.stack.prefix, messages))
    produced_s = time.monotonic() - t1
    expected: dict[tuple[str, int, int, int | None], Refusal] = {
        (*where, index): refusal
        for where, msg in sent.items()
        for index, refusal in msg.refused.items()
    }
    markers = {where for where, msg in sent.items() if msg.category == "end marker"}
    letters = asyncio.run(
        read_dead_letters(
            dep.stack.bootstrap,
            dep.stack.topic("dead_letter"),
            len(expected),
            markers,
            SETTLE_TIMEOUT_S,
        )
    )
    settled_s = time.monotonic() - t1

    # Exactly one record per refused event, with a reason of the expected kind.
    seen = Counter((d["topic"], d["partition"], d["offset"], d["index"]) for d in letters)
    twice = [k for k, n in seen.items() if n > 1]
    missing = [(k, expected[k], sent[k[:3]].category) for k in expected.keys() - seen.keys()]
    unexpected = [k for k in seen.keys() - expected.keys()]
    assert not twice, f"{len(twice)} refused events dead-lettered more than once: {twice[:10]}"
    assert not missing, f"{len(missing)} refused events without a record: {missing[:10]}"
    assert not unexpected, f"{len(unexpected)} records for no refused event: {unexpected[:10]}"
    wrong: list[Any] = []
    for d in letters:
        where = (d["topic"], d["partition"], d["offset"])
        msg, refusal = sent[where], expected[(*where, d["index"])]
        code = reason_code(d["reason"])
        named = _FIELD.match(d["reason"])
        if code != refusal.code or (refusal.field and (not named or named[1] != refusal.field)):
            wrong.append((msg.category, refusal, d["reason"][:160]))
        if d["key"] != _key_text(msg.key) or "\n" in d["reason"]:
            wrong.append((msg.category, "key or reason line", d["key"], msg.key))
        if not _payload_matches(d["payload"], expected_payload(msg, d["index"], refusal)):
            wrong.append((msg.category, "payload", d["index"], d["payload"][:100]))
    assert not wrong, f"{len(wrong)} records with another reason than expected: {wrong[:10]}"
    by_reason = Counter(reason_code(d["reason"]) for d in letters)
    assert by_reason == Counter(r.code for r in expected.values())

    # Every good event counts, no refused one does.
    good = decode_good(list(sent.values()), clock.now_us)
    exp = expected_answers(clock, good, time.time_ns() // 1000)
    mismatched = wait_for_answers(dep, exp, 30.0)
    assert not mismatched, {k: (v, exp.values[k]) for k, v in mismatched.items()}

    # The same worker went through all of it, without a crash or an error, in bounded memory.
    time.sleep(0.5)
    rss.finish()
    assert worker.poll() is None, _worker_log(dep)[-3000:]
    problems = _log_problems(_worker_log(dep))
    assert not problems, problems[:5]
    good_events = sum(len(v) for v in good.values())
    size = sum(len(m.value or b"") for m in messages)
    print(
        f"\nhostile events: {len(hostile):,} hostile messages ({refusing:,} with refused "
        f"events) of {len(messages):,} "
        f"({size / 2**20:,.1f} MiB), built in {built_s:.1f} s;"
        f" {good_events:,} distinct good events; produced in {produced_s:.1f} s, all processed"
        f" {settled_s:.1f} s after the first send\n  messages per category: "
        + ", ".join(f"{c} {n:,}" for c, n in categories.most_common())
        + "\n  dead letters per reason: "
        + ", ".join(f"{c} {n:,}" for c, n in by_reason.most_common())
        + f"\n  worker RSS: peak sampled {rss.peak_mib:.0f} MiB, high-water mark "
        f"{rss.hwm_kib / 1024:.0f} MiB, at the end {rss.samples[-1][1] / 1024:.0f} MiB"
    )
    assert rss.hwm_kib / 1024 < RSS_CEILING_MIB, rss.hwm_kib


async def _send_to_partition_0(
    bootstrap: str, topic: str, values: Sequence[bytes | None], key: bytes
) -> list[Where]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, max_request_size=8 << 20, **TANSU_PRODUCER_SETTINGS
    )
    await producer.start()
    try:
        out = []
        for value in values:
            meta = await producer.send_and_wait(topic, value, key=key, partition=0)
            out.append((meta.topic, meta.partition, meta.offset))
        return out
    finally:
        await producer.stop()


# Refused messages within the 1 MiB limit whose dead-letter record would be larger than the
# worker's producer sends (Faust's producer_max_request_size, 1,000,000 bytes) if it
# repeated the whole message (JSON-escaped, or base64 when it is not UTF-8): it keeps the
# payload's start and says so.
OVERSIZED_RECORDS = {
    "not JSON, exactly 1 MiB": b"x" * MAX_MESSAGE_BYTES,
    "not UTF-8, 800,000 bytes (base64: 1,066,668)": b"\xff" * 800_000,
    "a batch element that is a string of 300,000 quotes": b'["' + b'\\"' * 300_000 + b'"]',
    "not JSON, 200,000 control characters (each escaped to 6 bytes)": b"\x01" * 200_000,
}


def test_large_refused_messages_keep_their_dead_letters(hostile_stack: Deployment) -> None:
    """Each message here is valid input to refuse (at most 1 MiB), so each must leave its
    dead-letter record, and the worker must log no crash."""
    dep = hostile_stack
    log_before = len(_worker_log(dep))
    topic = dep.stack.topic("sessions")
    sent = asyncio.run(
        _send_to_partition_0(dep.stack.bootstrap, topic, list(OVERSIZED_RECORDS.values()), b"big")
    )
    time.sleep(2.0)  # then a marker in a later batch: once it is dead-lettered, all were read
    (marker,) = asyncio.run(_send_to_partition_0(dep.stack.bootstrap, topic, [None], b"marker"))
    letters = asyncio.run(
        read_dead_letters(
            dep.stack.bootstrap, dep.stack.topic("dead_letter"), 0, {marker}, SETTLE_TIMEOUT_S
        )
    )
    have = {(d["topic"], d["partition"], d["offset"]): d for d in letters}
    lost = [name for name, where in zip(OVERSIZED_RECORDS, sent, strict=True) if where not in have]
    for where in sent:
        if where in have:  # cut to fit, and saying so; the message stays where it was
            record = have[where]
            assert record["payload_truncated"] is True
            assert len(record["payload"]) == 100_000 < record["payload_chars"]
    crashes = _log_problems(_worker_log(dep)[log_before:])
    assert dep.workers[0].poll() is None
    assert not lost and not crashes, (lost, crashes[:2])
