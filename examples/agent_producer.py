"""Feed the service one user's events with the producer SDK, as a workspace agent would.

    insights up                                   # in another terminal (make up)
    python examples/agent_producer.py             # then this: prints a curl line to run
    python examples/agent_producer.py --bootstrap kafka-1:9092 --prefix insights.

Sends, for one user and now: a sessions report (one SSH session open), a latency
sample, an app-usage report (the last five minutes of code-server) and a workspace
build, then prints what it sent and a curl line that shows the user counted.

The events leave out ``id``: the SDK fills it in (a random UUID) before the first
attempt, so its retries are redeliveries the service ignores.  Running this again for
the same ``--user-id`` adds a new latency sample; the activity minutes stay the same.

The embedded broker of ``insights up`` (Tansu) has no idempotent producer, so for it
(the default bootstrap, or ``--embedded-broker``) this uses ``acks=1`` without
idempotence; a real Kafka gets the SDK's defaults (``acks="all"``, idempotent).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka.errors import KafkaError

from insights.devstack import TANSU_PRODUCER_SETTINGS
from streams.producer import EventProducer, InvalidEvent, ProduceError, TopicKind

EMBEDDED_BOOTSTRAP = "127.0.0.1:19092"  # `insights up`'s broker
# The `docker` template of `insights up --demo`, so the user shows up next to the demo's.
DEMO_TEMPLATE = "10000000-0000-4000-8000-000000000001"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def agent_events(
    user_id: str, username: str, template_id: str, now: datetime
) -> list[tuple[TopicKind, dict[str, Any], str]]:
    """(kind, event, what it says) of one agent's report; ids are left to the SDK."""
    # Stable per user, so that reruns report the same workspace and agent.
    workspace_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"agent-example/{user_id}/workspace"))
    agent_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"agent-example/{user_id}/agent"))
    where = {"template_id": template_id, "workspace_id": workspace_id, "agent_id": agent_id}
    who = {"user_id": user_id, "username": username, "avatar_url": ""}
    return [
        (
            "sessions",
            {
                "time": rfc3339(now),
                **who,
                **where,
                "connection_count": 1,
                "sessions": {"vscode": 0, "jetbrains": 0, "reconnecting_pty": 0, "ssh": 1},
            },
            "one SSH session open",
        ),
        (
            "latency",
            {"time": rfc3339(now), "user_id": user_id, **where, "latency_ms": 23.4},
            "connection latency 23.4 ms",
        ),
        (
            "app_usage",
            {
                "time": rfc3339(now),
                "session_id": str(uuid.uuid4()),
                **who,
                **where,
                "access_method": "path",
                "slug_or_port": "code-server",
                "app": {"display_name": "code-server", "icon": "/icon/code.svg"},
                "started_at": rfc3339(now - timedelta(minutes=5)),
                "ended_at": rfc3339(now),
                "requests": 12,
            },
            "code-server for the last 5 minutes",
        ),
        (
            "builds",
            {
                "time": rfc3339(now),
                "user_id": user_id,
                "template_id": template_id,
                "workspace_id": workspace_id,
                "build_number": 1,
                "parameters": [
                    {
                        "name": "region",
                        "type": "string",
                        "display_name": "Region",
                        "description": "Where the workspace runs",
                        "options": [
                            {"name": "Europe", "description": "", "value": "eu", "icon": ""},
                            {"name": "US", "description": "", "value": "us", "icon": ""},
                        ],
                        "value": "eu",
                    }
                ],
            },
            "build 1 of the workspace, region=eu",
        ),
    ]


def curl_line(api: str, now: datetime) -> str:
    """A user-activity request over today (UTC) up to the next whole hour, as the API wants."""
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    url = (
        f"{api.rstrip('/')}/api/v2/insights/user-activity"
        f"?start_time={rfc3339(start)}&end_time={rfc3339(end)}"
    )
    return f'curl -s -H "Coder-Session-Token: $TOKEN" "{url}"'


async def produce(args: argparse.Namespace) -> int:
    embedded = args.embedded_broker or args.bootstrap == EMBEDDED_BOOTSTRAP
    settings = dict(TANSU_PRODUCER_SETTINGS) if embedded else {}
    now = datetime.now(UTC)
    events = agent_events(args.user_id, args.username, args.template_id, now)
    async with EventProducer(args.bootstrap, topic_prefix=args.prefix, **settings) as producer:
        for kind, event, what in events:
            event_id = await producer.send(kind, event)
            print(f"sent {kind:<9} id={event_id}  {what}")
        await producer.flush()
        delivered = producer.delivered_events
    print(f"delivered {delivered} events for user {args.user_id} ({args.username})")
    print("see them counted (the user is listed with its active seconds):")
    print("  TOKEN=$(cat /tmp/insights-*/token)  # the token `insights up` printed")
    print("  " + curl_line(args.api, now))
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--bootstrap",
        default=EMBEDDED_BOOTSTRAP,
        help="Kafka bootstrap servers, host:port[,host:port] (default: %(default)s, "
        "the embedded broker of `insights up`)",
    )
    parser.add_argument("--prefix", default="insights.", help="topic prefix (default: %(default)s)")
    parser.add_argument(
        "--embedded-broker",
        action="store_true",
        help="the broker is the embedded Tansu (acks=1, no idempotence); implied by the "
        "default bootstrap",
    )
    parser.add_argument(
        "--user-id", default=str(uuid.uuid4()), help="user UUID (default: a new one)"
    )
    parser.add_argument("--username", default="agent-example", help="(default: %(default)s)")
    parser.add_argument(
        "--template-id", default=DEMO_TEMPLATE, help="template UUID (default: %(default)s)"
    )
    parser.add_argument(
        "--api",
        default="http://127.0.0.1:8080",
        help="base URL of the insights API, for the curl line (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(produce(args))
    except InvalidEvent as err:
        print(f"error: {err}", file=sys.stderr)
    except ProduceError as err:
        print(f"error: {err}", file=sys.stderr)
    except KafkaError as err:  # e.g. no broker at --bootstrap
        print(f"error: cannot reach the broker at {args.bootstrap}: {err}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
