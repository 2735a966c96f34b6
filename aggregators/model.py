"""Domain event types consumed by the rollup core.

Events arrive already validated and normalised by ``streams.decoding``: ids are
lowercase canonical UUID text, times are integer UTC epoch microseconds.  They
are plain named tuples so the per-event path allocates one small object and no
more.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, get_args

# The four input topics, one per event type (``<prefix><kind>``): the contract's vocabulary.
TopicKind = Literal["sessions", "app_usage", "latency", "builds"]
TOPIC_KINDS: tuple[TopicKind, ...] = get_args(TopicKind)

# Session kinds in a fixed order: bit i of ``SessionEvent.kinds_mask`` is KINDS[i].
KINDS: tuple[str, ...] = ("vscode", "jetbrains", "reconnecting_pty", "ssh", "sftp")

# App key of the web terminal: brackets cannot appear in an app slug, so no
# slug or port can collide with it (insights-api.md section 4.3).
TERMINAL_APP_KEY = "[terminal]"


class SessionEvent(NamedTuple):
    id: str
    time_us: int
    user_id: str
    username: str
    avatar_url: str
    template_id: str
    workspace_id: str
    agent_id: str
    connection_count: int
    kinds_mask: int  # bit i set iff sessions[KINDS[i]] > 0
    template_name: str | None = None  # optional names of the template (newest wins)
    organization_name: str | None = None


class AppUsageEvent(NamedTuple):
    id: str
    time_us: int
    session_id: str
    user_id: str
    username: str
    avatar_url: str
    template_id: str
    workspace_id: str
    agent_id: str
    access_method: str  # "path" | "subdomain" | "terminal"
    slug_or_port: str
    app_display_name: str | None  # None when "app" is null or absent
    app_icon: str | None
    started_us: int
    ended_us: int
    requests: int
    template_name: str | None = None  # optional names of the template (newest wins)
    organization_name: str | None = None


class LatencyEvent(NamedTuple):
    id: str
    time_us: int
    user_id: str
    template_id: str
    workspace_id: str
    agent_id: str
    latency_ms: float
    template_name: str | None = None  # optional names of the template (newest wins)
    organization_name: str | None = None


class ParameterOption(NamedTuple):
    name: str
    description: str
    value: str
    icon: str


class BuildParameter(NamedTuple):
    name: str
    type: str
    display_name: str
    description: str
    options: tuple[ParameterOption, ...]
    value: str


class BuildEvent(NamedTuple):
    id: str
    time_us: int
    template_id: str
    workspace_id: str
    user_id: str
    build_number: int
    parameters: tuple[BuildParameter, ...]
    template_name: str | None = None  # optional names of the template (newest wins)
    organization_name: str | None = None


Event = SessionEvent | AppUsageEvent | LatencyEvent | BuildEvent
