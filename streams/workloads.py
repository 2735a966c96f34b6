"""Wire events as producers send them: one builder per topic, plus times and ids.

Every generator of events (the demo producer, the benches, the test fixtures) builds
the JSON objects of ``shared/spec/events.md`` here, so the contract's field names and
shapes live in one place.  Builders return plain dicts, ready for ``orjson.dumps``
(alone or as a batch); they do not validate: ``streams.decoding`` is the judge.

Times are integer epoch microseconds (``aggregators.timebase`` units) until they are
formatted.  Ids are either deterministic (``uuid_from``, ``counter_uuid``: the same
inputs give the same id, so a re-sent event is a redelivery) or drawn from a seeded
``random.Random`` (``random_uuid``).

This module sits below the shell: it imports ``aggregators`` and third-party
libraries only, never ``insights`` or ``api``.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

from aggregators.model import KINDS, BuildParameter, ParameterOption
from aggregators.timebase import US_PER_S

__all__ = [
    "AccessMethod",
    "AgentRef",
    "App",
    "WireEvent",
    "agent_fields",
    "app_usage_event",
    "build_event",
    "counter_uuid",
    "epoch_us",
    "latency_event",
    "parameter_json",
    "random_uuid",
    "rfc3339",
    "session_counts",
    "session_event",
    "uuid_from",
]

WireEvent = dict[str, Any]
"""One event object of the contract (a JSON object)."""

AccessMethod = Literal["path", "subdomain", "terminal"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


# --- times -----------------------------------------------------------------------------------


def rfc3339(time_us: int) -> str:
    """UTC RFC 3339 text of epoch microseconds: ``2023-08-15T00:00:30Z``, with ``.ffffff``
    before the ``Z`` when the instant is not a whole second (exact: no float rounding)."""
    seconds, micros = divmod(time_us, US_PER_S)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{micros:06d}Z" if micros else f"{stamp}Z"


def epoch_us(moment: datetime) -> int:
    """Epoch microseconds of an aware datetime (exact integer arithmetic)."""
    return (moment - _EPOCH) // _ONE_US


# --- ids -------------------------------------------------------------------------------------


def uuid_from(*parts: object) -> str:
    """Deterministic UUID (version 5) named by ``parts`` joined with ``/``.

    ``uuid_from("demo", "user", 3)`` is ``uuid5(NAMESPACE_URL, "demo/user/3")``: lead with
    a namespace of your own so that two generators never share ids.
    """
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(map(str, parts))))


def random_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng``: reproducible for a seeded generator."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def counter_uuid(tag: int, group: int, n: int) -> str:
    """Deterministic UUID-shaped text of three counters, without hashing.

    For millions of generated ids where ``uuid_from`` (SHA-1) would dominate the cost:
    ``tag`` < 2**32 names the kind of thing, ``group`` < 2**28 (say, a user index) and
    ``n`` < 2**48 number it.  Distinct inputs in those ranges give distinct ids.
    """
    return f"{tag:08x}-{group & 0xFFFF:04x}-4{group >> 16 & 0xFFF:03x}-8000-{n:012x}"


# --- who and where ---------------------------------------------------------------------------


class AgentRef(NamedTuple):
    """The user, template, workspace and agent an agent-side event is about."""

    user_id: str
    username: str
    template_id: str
    workspace_id: str
    agent_id: str
    avatar_url: str = ""


class App(NamedTuple):
    """The ``app`` object of an app-usage event (a template app)."""

    display_name: str
    icon: str


def agent_fields(agent: AgentRef, *, profile: bool = True) -> WireEvent:
    """The identity fields of an agent-side event; ``profile`` adds username and avatar."""
    if profile:
        return {
            "user_id": agent.user_id,
            "username": agent.username,
            "avatar_url": agent.avatar_url,
            "template_id": agent.template_id,
            "workspace_id": agent.workspace_id,
            "agent_id": agent.agent_id,
        }
    return {
        "user_id": agent.user_id,
        "template_id": agent.template_id,
        "workspace_id": agent.workspace_id,
        "agent_id": agent.agent_id,
    }


# --- one builder per topic -------------------------------------------------------------------


def session_counts(counts: Mapping[str, int] | Iterable[str]) -> dict[str, int]:
    """A ``sessions`` object over every kind of ``aggregators.model.KINDS``.

    ``counts`` maps kinds to counts (a missing kind is 0), or lists the kinds with one
    session open each.
    """
    if isinstance(counts, Mapping):
        return {kind: counts.get(kind, 0) for kind in KINDS}
    open_kinds = frozenset(counts)
    return {kind: int(kind in open_kinds) for kind in KINDS}


def session_event(
    agent: AgentRef,
    event_id: str,
    time_us: int,
    sessions: Mapping[str, int] | Iterable[str],
    connection_count: int = 1,
) -> WireEvent:
    """``insights.sessions``: the sessions an agent has open at ``time_us``."""
    return {
        "id": event_id,
        "time": rfc3339(time_us),
        **agent_fields(agent),
        "connection_count": connection_count,
        "sessions": session_counts(sessions),
    }


def app_usage_event(
    agent: AgentRef,
    event_id: str,
    session_id: str,
    started_us: int,
    ended_us: int,
    *,
    access_method: AccessMethod = "path",
    slug_or_port: str = "",
    app: App | None = None,
    requests: int = 1,
    time_us: int | None = None,
) -> WireEvent:
    """``insights.app_usage``: one report of an app session (``time`` defaults to its end).

    ``app`` is ``None`` for port forwards and the web terminal (sent as JSON ``null``).
    """
    return {
        "id": event_id,
        "time": rfc3339(ended_us if time_us is None else time_us),
        "session_id": session_id,
        **agent_fields(agent),
        "access_method": access_method,
        "slug_or_port": slug_or_port,
        "app": None if app is None else {"display_name": app.display_name, "icon": app.icon},
        "started_at": rfc3339(started_us),
        "ended_at": rfc3339(ended_us),
        "requests": requests,
    }


def latency_event(agent: AgentRef, event_id: str, time_us: int, latency_ms: float) -> WireEvent:
    """``insights.latency``: one connection-latency sample (no username: agents omit it)."""
    return {
        "id": event_id,
        "time": rfc3339(time_us),
        **agent_fields(agent, profile=False),
        "latency_ms": latency_ms,
    }


def _option_json(option: ParameterOption) -> WireEvent:
    return {
        "name": option.name,
        "description": option.description,
        "value": option.value,
        "icon": option.icon,
    }


def parameter_json(param: BuildParameter) -> WireEvent:
    """One element of a build's ``parameters``: the definition and the value used."""
    return {
        "name": param.name,
        "type": param.type,
        "display_name": param.display_name,
        "description": param.description,
        "options": [_option_json(o) for o in param.options],
        "value": param.value,
    }


def build_event(
    agent: AgentRef,
    event_id: str,
    time_us: int,
    build_number: int,
    parameters: Iterable[BuildParameter],
) -> WireEvent:
    """``insights.builds``: build ``build_number`` of the agent's workspace, created at
    ``time_us``, with every rich parameter of its template version."""
    return {
        "id": event_id,
        "time": rfc3339(time_us),
        "template_id": agent.template_id,
        "workspace_id": agent.workspace_id,
        "user_id": agent.user_id,
        "build_number": build_number,
        "parameters": [parameter_json(p) for p in parameters],
    }
