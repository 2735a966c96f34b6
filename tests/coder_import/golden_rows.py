"""Coder's golden fixture (insights-api.md section 12) as Coder's own rows: users, templates
and their apps, workspaces with one agent each, then the fixture's events as agent stats, app
stats and builds (``coder_rows``)."""

from __future__ import annotations

from typing import Any

import psycopg

from tests import golden_fixture as g
from tests.coder_import.coder_rows import Deployment, write_deployment, write_events

TEMPLATE_APPS = [("app1", "app1", "/icon1.png"), ("app2", "app2", "/icon2.png")]
TEMPLATE_APPS.append(("app3", "app3", "/icon2.png"))
OTHER_APPS = [("otherapp1", "otherapp1", "/icon1.png"), ("terminal", "terminal", "/terminal.png")]


def deployment() -> Deployment:
    return Deployment(
        users={u: (name, "") for u, name in g.NAMES.items()},
        templates={
            g.T1: ("template1", TEMPLATE_APPS),
            g.T2: ("template2", TEMPLATE_APPS),
            g.T3: ("othertemplate", OTHER_APPS),
        },
        workspaces={
            g._id("ws", key): (user, template, name, g._id("agent", key))
            for key, (user, name, template) in g.WORKSPACES.items()
        },
    )


def write_golden(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        write_deployment(conn, deployment())
        events: dict[str, list[dict[str, Any]]] = g.all_events()
        return write_events(conn, events)
