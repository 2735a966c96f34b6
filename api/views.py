"""HTTP views: authenticate, validate, call a query, render.  Nothing else.

The order of checks is insights-api.md section 1; authentication, scope and
validation never touch the store, so they answer normally while it is down.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import orjson
import structlog
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from aggregators import queries
from aggregators.lru import Lru
from aggregators.parameters import ParameterDecodeError
from aggregators.queries import Window
from aggregators.reports import IntervalReports, UniformSteps, offset_day_bounds
from aggregators.timebase import MS_PER_DAY, MS_PER_HOUR, MS_PER_S, NS_PER_MS
from api import openapi, pages, params, zones
from api.auth import Scope, presented_token
from api.coder.gotime import GoTime, format_rfc3339
from api.coder.markdown import plaintext
from api.context import BROKER, CLOCK, ENCODED, READER, SETTINGS, STORE, TOKENS, WIDE
from api.params import ApiError
from api.readiness import OK, UNKNOWN, store_state
from insights import metrics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger("insights.api")
_INTERVAL_DAYS = {"day": 1, "week": 7}
ROUTE_NOT_FOUND = {"message": "Route not found."}  # Coder's httpapi.RouteNotFound
METHOD_NOT_ALLOWED = {"message": "Method not allowed."}
MSG_INTERNAL = "An internal server error occurred."  # Coder's httpapi.InternalServerError
METRICS_UNAUTHORIZED = {
    "message": params.MSG_UNAUTHORIZED,
    "detail": "Send the metrics token as Authorization: Bearer <token>.",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def json_response(body: object, status: int = 200) -> web.Response:
    return _json_bytes(orjson.dumps(body), status)


def _json_bytes(data: bytes, status: int = 200) -> web.Response:
    return web.Response(body=data, status=status, content_type="application/json", charset="utf-8")


# Never in orjson's output (it escapes control characters in strings): marks where each
# interval report list goes in the encoded rest of the answer.
_HOLE = b"\x00"


def encode_pieces(body: object) -> list[bytes]:
    """``orjson.dumps(body)``, byte for byte, in pieces: interval reports are built and
    encoded a chunk at a time (``IntervalReports.chunks``), so a wide answer exists once,
    as bytes, never as Python objects nor joined into a second copy."""
    lists: list[IntervalReports] = []

    def hole(obj: object) -> orjson.Fragment:
        if isinstance(obj, IntervalReports):
            lists.append(obj)
            return orjson.Fragment(_HOLE)
        raise TypeError(f"Type is not JSON serializable: {type(obj).__name__}")

    outline = orjson.dumps(body, default=hole)
    if not lists:
        return [outline]
    between = outline.split(_HOLE)
    pieces = [between[0]]
    for reports, after in zip(lists, between[1:], strict=True):
        opening = b"["
        for chunk in reports.chunks():
            pieces.append(opening + orjson.dumps(chunk)[1:-1])
            opening = b","
        pieces.append((b"[]" if opening == b"[" else b"]") + after)
    return pieces


def interval_count(body: object) -> int:
    reports = body.get("interval_reports") if isinstance(body, dict) else None
    return len(reports) if isinstance(reports, IntervalReports) else 0


class _Pieces(Payload):
    """A body sent piece by piece, each dropped once written: the transport never
    buffers a copy of a wide answer (``writer.write`` waits while it is full)."""

    def __init__(self, pieces: list[bytes]) -> None:
        super().__init__(deque(pieces))
        self._size = sum(map(len, pieces))

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return b"".join(self._value).decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        pieces: deque[bytes] = self._value
        while pieces:
            await writer.write(pieces.popleft())


async def _answer(app: web.Application, body: object) -> web.Response:
    """A report's answer; wide ones are encoded in a thread, one at a time (``WideReports``)."""
    wide = app[WIDE]
    if interval_count(body) <= wide.intervals:
        return _json_bytes(_encoded(app[ENCODED], body))
    await wide.slot.acquire()
    try:
        encoding = asyncio.ensure_future(asyncio.to_thread(encode_pieces, body))
    except BaseException:
        wide.slot.release()
        raise
    encoding.add_done_callback(functools.partial(_free_slot, wide.slot))
    # A request cancelled meanwhile leaves its thread running: the slot stays taken until
    # that thread is done, or cancelled requests would let wide encodings pile up.
    pieces = await asyncio.shield(encoding)
    return web.Response(body=_Pieces(pieces), content_type="application/json", charset="utf-8")


def _free_slot(slot: asyncio.Semaphore, done: asyncio.Future[list[bytes]]) -> None:
    slot.release()
    if not done.cancelled():
        done.exception()  # retrieved here: the request it was for may be gone


def _encoded(cache: Lru[int, tuple[object, bytes]], body: object) -> bytes:
    """Reports are memoised objects, served many times over: encode each once."""
    hit = cache.get(id(body))
    if hit is not None and hit[0] is body:
        return hit[1]
    data = b"".join(encode_pieces(body))
    cache.put(id(body), (body, data))  # holding the body keeps its id unique
    return data


def error_response(err: ApiError) -> web.Response:
    return json_response(err.body(), err.status)


def _authenticate(request: web.Request) -> Scope:
    token = presented_token(request.headers)
    scope = request.app[TOKENS].lookup(token) if token else None
    if scope is None:
        raise params.unauthorized()
    return scope


def _window(start: GoTime, end: GoTime, template_ids: tuple[str, ...]) -> Window:
    return Window(
        start.epoch_ns,
        end.epoch_ns,
        format_rfc3339(start.epoch_ns, start.offset_s),
        format_rfc3339(end.epoch_ns, end.offset_s),
        template_ids,
    )


async def _compute(request: web.Request, failure: str, work: Awaitable[object]) -> web.Response:
    """A dead or slow store is a 503, anything else a one-line 500.

    The store client bounds every connect and read by ``store_timeout_s``
    (``api.app.redis_client``), so no outer deadline cancels a request half
    way through a pipeline (that left half-written connections behind).
    """
    try:
        return await _answer(request.app, await work)
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("store unavailable", path=request.path, error=_one_line(exc))
        return error_response(params.store_unavailable(store_reason(exc)))
    except ParameterDecodeError as exc:
        log.error("stored build parameters unreadable", path=request.path, exc_info=exc)
        return error_response(params.internal_error(params.MSG_INTERNAL_PARAMETERS, "bad data"))
    except Exception as exc:
        log.error("request failed", path=request.path, exc_info=exc)
        return error_response(params.internal_error(failure, type(exc).__name__))


def store_reason(exc: BaseException) -> str:
    """What a client may know of a store failure: its kind, never addresses or hosts."""
    if isinstance(exc, TimeoutError | RedisTimeoutError):
        return "store timed out"
    if isinstance(exc, ConnectionError | RedisConnectionError | OSError):
        return "store connection failed"
    return "store error"


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def _query_items(request: web.Request) -> list[tuple[str, str]]:
    return list(request.rel_url.query.items())


Q = TypeVar("Q", params.TemplatesQuery, params.WindowQuery, params.LatencyQuery)


def _scoped_query(request: web.Request, parse: Callable[[list[tuple[str, str]], datetime], Q]) -> Q:
    """Authenticate, validate, then check the template scope (insights-api.md section 1)."""
    scope = _authenticate(request)
    query = parse(_query_items(request), request.app[CLOCK]())
    if not scope.allows(query.template_ids):
        raise params.not_found()
    return query


async def templates_view(request: web.Request) -> web.Response:
    q = _scoped_query(request, params.parse_templates_query)
    window = _window(q.start, q.end, q.template_ids)
    offset = q.start.offset_s
    zone = q.zone

    def render(epoch_ns: int) -> str:
        return format_rfc3339(epoch_ns, offset)

    def render_in_zone(epoch_ns: int) -> str:
        assert zone is not None
        return format_rfc3339(epoch_ns, zones.offset_s_at(zone, epoch_ns))

    work = queries.templates_report(
        request.app[READER],
        window,
        _INTERVAL_DAYS.get(q.interval),
        q.sections,
        render if zone is None else render_in_zone,
        plaintext,
        UniformSteps if zone is None else functools.partial(zones.ZoneSteps, zone),
        "" if zone is None else zone.key,
    )
    return await _compute(request, params.MSG_INTERNAL_TEMPLATES, work)


async def user_activity_view(request: web.Request) -> web.Response:
    q = _scoped_query(request, params.parse_user_activity_query)
    work = queries.user_activity_report(
        request.app[READER], _window(q.start, q.end, q.template_ids)
    )
    return await _compute(request, params.MSG_INTERNAL_USER_ACTIVITY, work)


async def user_latency_view(request: web.Request) -> web.Response:
    q = _scoped_query(request, params.parse_user_latency_query)
    window = _window(q.start, q.end, q.template_ids)
    work = queries.user_latency_report(request.app[READER], window, q.percentiles)
    return await _compute(request, params.MSG_INTERNAL_USER_LATENCY, work)


async def daus_view(request: web.Request) -> web.Response:
    scope = _authenticate(request)
    if not scope.deployment:
        raise params.forbidden()
    q = params.parse_daus_query(_query_items(request))
    now = request.app[CLOCK]()
    now_ms = int(now.timestamp() * 1000)
    days = queries.DAU_DAYS
    if q.zone is None:
        first = (now_ms + q.tz_offset * MS_PER_HOUR) // MS_PER_DAY - (days - 1)
        bounds = offset_day_bounds(first, days, q.tz_offset)
        offset_h, zone_key = q.tz_offset, ""
    else:
        first = zones.epoch_day(zones.local_date(q.zone, now_ms)) - (days - 1)
        midnights = zones.local_midnights_ms(q.zone, zones.date_of(first), days)
        bounds = zones.half_hour_bounds(midnights)
        offset_h, zone_key = zones.offset_hours(q.zone, now), q.zone.key
    work = queries.daus_report(request.app[READER], first, bounds, offset_h, _date_of_day, zone_key)
    return await _compute(request, params.MSG_INTERNAL_DAUS, work)


async def template_names_view(request: web.Request) -> web.Response:
    """Extension: the names events gave the templates (``template_name``,
    ``organization_name``), for dashboards that show names where Coder's reports have ids;
    a template-scoped token sees its own templates only."""
    scope = _authenticate(request)
    params.parse_no_query(_query_items(request))

    async def work() -> object:
        names = await request.app[READER].source.template_names()
        rows = [
            {"template_id": t, "name": name, "organization_name": org}
            for t, (name, org) in names.items()
            if scope.deployment or t in scope.templates
        ]
        return {"templates": sorted(rows, key=lambda r: (r["name"], r["template_id"]))}

    return await _compute(request, params.MSG_INTERNAL_TEMPLATE_NAMES, work())


@functools.lru_cache(maxsize=1024)
def _date_of_day(epoch_day: int) -> str:
    return (_EPOCH + timedelta(days=epoch_day)).strftime("%Y-%m-%d")


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when Redis answers, the broker answers (or is not configured) and some worker
    reported assigned partitions recently; each part's state is named (api.readiness)."""
    (redis, workers), broker = await asyncio.gather(
        _store_readiness(request), request.app[BROKER].state()
    )
    ready = redis == OK and bool(workers) and broker in (OK, UNKNOWN)
    body = {
        "ready": ready,
        "status": "ok" if ready else "unavailable",
        "redis": redis,
        "broker": broker,
        "workers": workers,
    }
    return json_response(body, 200 if ready else 503)


async def _store_readiness(request: web.Request) -> tuple[str, int | None]:
    """Redis's state and how many workers hold partitions (None while Redis fails)."""
    store = request.app[STORE]
    try:
        await store.ping()
        beats = await store.heartbeats.read()
    except (RedisError, OSError, TimeoutError) as exc:
        return store_state(exc), None
    now_ms = time.time_ns() // NS_PER_MS
    max_age_ms = int(request.app[SETTINGS].readiness_max_age_s * MS_PER_S)
    return OK, sum(1 for b in beats if b.partitions and b.fresh(now_ms, max_age_ms))


async def metrics_view(request: web.Request) -> web.Response:
    """Prometheus metrics; behind ``Authorization: Bearer`` when INSIGHTS_METRICS_TOKEN is set
    (API tokens do not open it)."""
    if not _metrics_allowed(request):
        response = json_response(METRICS_UNAUTHORIZED, 401)
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    resp = web.Response(body=generate_latest())
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


def _metrics_allowed(request: web.Request) -> bool:
    expected = request.app[SETTINGS].metrics_token.get_secret_value()
    if not expected:
        return True
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    presented = value.strip() if scheme.lower() == "bearer" else ""
    return hmac.compare_digest(presented.encode(), expected.encode())


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request; turn ApiError, an unknown route, any other HTTP error
    and an unexpected exception (logged with the request id) into JSON bodies (Coder's
    clients expect ``{"message": ...}`` everywhere)."""
    route = (
        request.match_info.route.resource.canonical if request.match_info.route.resource else "?"
    )
    started = time.perf_counter()
    try:
        response = await handler(request)
    except ApiError as err:
        response = error_response(err)
    except web.HTTPNotFound:
        response = json_response(ROUTE_NOT_FOUND, 404)
    except web.HTTPMethodNotAllowed as exc:
        response = json_response(METHOD_NOT_ALLOWED, 405)
        response.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = json_response({"message": f"{exc.reason}."}, exc.status)
    except Exception as exc:
        log.error("request failed", path=request.path, exc_info=exc)
        response = json_response({"message": MSG_INTERNAL, "detail": type(exc).__name__}, 500)
    metrics.HTTP_REQUESTS.labels(route, str(response.status)).inc()
    metrics.HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)
    return response


def setup_routes(app: web.Application) -> None:
    pages.setup_routes(app)
    app.router.add_get("/api/v2/insights/templates", templates_view)
    app.router.add_get("/api/v2/insights/user-activity", user_activity_view)
    app.router.add_get("/api/v2/insights/user-latency", user_latency_view)
    app.router.add_get("/api/v2/insights/daus", daus_view)
    app.router.add_get("/api/v2/insights/template-names", template_names_view)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/api/v2/openapi.json", openapi.openapi_view)
