"""Request ids: which incoming ids are kept, and what the middleware binds and answers."""

from __future__ import annotations

import re

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from api.request_id import (
    HEADER,
    REQUEST_ID,
    accepted_request_id,
    new_request_id,
    request_id_middleware,
)

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(
    "incoming",
    ["a", "req-1", "A.b_C-9", "x" * 128, "0af7651916cd43dd8448eb211c80319c"],
)
def test_sane_ids_are_kept(incoming: str) -> None:
    assert accepted_request_id(incoming) == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        None,
        "",
        "x" * 129,
        "two words",
        "line\nbreak",
        "semi;colon",
        'quote"d',
        "{json}",
        "ünïcode",
        "a/b",
        "tab\t",
    ],
)
def test_other_ids_are_replaced(incoming: str | None) -> None:
    got = accepted_request_id(incoming)
    assert got != incoming
    assert GENERATED.fullmatch(got)


def test_generated_ids_differ() -> None:
    assert len({new_request_id() for _ in range(1000)}) == 1000


async def test_middleware_binds_the_id_for_the_request_only() -> None:
    seen: dict[str, object] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.update(structlog.contextvars.get_contextvars())
        seen["stored"] = request[REQUEST_ID]
        return web.Response(text="ok")

    request = make_mocked_request("GET", "/healthz", headers={HEADER: "abc-1"})
    response = await request_id_middleware(request, handler)
    assert response.headers[HEADER] == "abc-1"
    assert seen == {"request_id": "abc-1", "stored": "abc-1"}
    assert "request_id" not in structlog.contextvars.get_contextvars()


async def test_middleware_tags_http_exceptions() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/elsewhere")

    request = make_mocked_request("GET", "/", headers={HEADER: "bad id"})
    with pytest.raises(web.HTTPFound) as raised:
        await request_id_middleware(request, handler)
    assert GENERATED.fullmatch(raised.value.headers[HEADER])
    assert "request_id" not in structlog.contextvars.get_contextvars()
