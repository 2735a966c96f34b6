"""OpenAPI 3.1 description of the service (insights-api.md), served at ``/api/v2/openapi.json``.

Schema names follow Coder's generated API documentation (``codersdk.*``) so that
clients written against Coder's Insights API recognise them.  Shapes are exact
where the specification fixes them (required fields, ``additionalProperties:
false``); what depends on the request (``report`` / ``interval_reports`` on
``/templates``, extension keys of ``latency_ms``) is described, not enforced.

The component schemas are data, kept in ``openapi_schemas.json`` next to this
module; parameters, operations and the document around them are built here.
"""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources

import orjson
from aiohttp import web

Schema = dict[str, object]

OPENAPI_VERSION = "3.1.0"
API_VERSION = "0.1.0"
SCHEMAS_RESOURCE = "openapi_schemas.json"

_PERCENTILE_PATTERN = r"^(0*[1-9][0-9]?(\.[0-9]+)?|0+\.[0-9]*[1-9][0-9]*)$"

_SECURITY: list[dict[str, list[str]]] = [{"CoderSessionToken": []}, {"BearerAuth": []}]
_PUBLIC: list[dict[str, list[str]]] = []


def _load_schemas() -> dict[str, Schema]:
    schemas = orjson.loads(resources.files(__package__).joinpath(SCHEMAS_RESOURCE).read_bytes())
    # A malformed resource should fail the import, not the first request.
    if not isinstance(schemas, dict) or not all(isinstance(s, dict) for s in schemas.values()):
        raise ValueError(f"{SCHEMAS_RESOURCE}: expected an object of schema objects")
    return schemas


# ``components.schemas``; never handed out directly (openapi_document deep-copies it).
SCHEMAS = _load_schemas()


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


# --- parameters --------------------------------------------------------------------------

_TIME_RULES = (
    " Go `time.RFC3339` (`2006-01-02T15:04:05Z07:00`): the offset (`Z` or `±hh:mm`) is "
    "required and kept (no conversion to UTC); fractional seconds are accepted. Send `+` as "
    "`%2B` (a literal `+` decodes to a space). Must not be the zero time and must not be in "
    "the future (after the current hour + 1 h)."
)


def _time_param(name: str, description: str, example: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": True,
        "description": description + _TIME_RULES,
        "schema": {"type": "string", "format": "date-time"},
        "example": example,
    }


_START_TIME = _time_param(
    "start_time",
    "Start of the window (inclusive). The clock must be `00:00:00` in its own offset.",
    "2023-08-15T00:00:00Z",
)
_END_TIME = _time_param(
    "end_time",
    "End of the window (exclusive), not before `start_time`. The clock must be `00:00:00` "
    "in its own offset, except that an `end_time` dated today (in its offset) may be any "
    "whole hour `HH:00:00`. It may carry a different offset than `start_time`.",
    "2023-08-22T00:00:00Z",
)
_TEMPLATE_IDS: Schema = {
    "name": "template_ids",
    "in": "query",
    "required": False,
    "description": "Templates to include; omitted or empty means all templates (needs a "
    "deployment-scoped token). Comma-separated (`template_ids=a,b`); repeated keys "
    "(`template_ids=a&template_ids=b`) and both combined are accepted too. Elements are "
    "whitespace-trimmed and parsed like Go's google/uuid (canonical form, 32 hex digits, "
    "`{…}`, `urn:uuid:…`; any case); one bad element fails the list. Duplicates are accepted.",
    "style": "form",
    "explode": False,
    "schema": {"type": "array", "items": {"type": "string", "format": "uuid"}},
}
_INTERVAL: Schema = {
    "name": "interval",
    "in": "query",
    "required": False,
    "description": "Adds `interval_reports` in steps of 1 (`day`) or 7 (`week`) days of 24 h from "
    "`start_time`; absent or empty: none. With `week` the window must be a whole number of "
    "weeks or leave at least 6 days in its last interval.",
    "schema": _ref("codersdk.InsightsReportInterval"),
    "example": "day",
}
_SECTIONS: Schema = {
    "name": "sections",
    "in": "query",
    "required": False,
    "description": "Parts of the answer to compute. Comma-separated and/or repeated; "
    "default `interval_reports,report`. An empty element is invalid.",
    "style": "form",
    "explode": False,
    "schema": {
        "type": "array",
        "items": {"type": "string", "enum": ["interval_reports", "report"]},
        "default": ["interval_reports", "report"],
    },
}
_PERCENTILES: Schema = {
    "name": "percentiles",
    "in": "query",
    "required": False,
    "description": "Extension: extra latency percentiles, each a plain decimal (digits, "
    "optional `.` and digits; no sign, no exponent) strictly between 0 and 100. "
    "Comma-separated and/or repeated; elements are whitespace-trimmed. Each adds the key "
    "`p<canonical value>` to `latency_ms` (`90` → `p90`, `99.90` → `p99.9`).",
    "style": "form",
    "explode": False,
    "schema": {"type": "array", "items": {"type": "string", "pattern": _PERCENTILE_PATTERN}},
    "example": ["90", "99.9"],
}
_TZ_OFFSET: Schema = {
    "name": "tz_offset",
    "in": "query",
    "required": False,
    "description": "Whole hours east of UTC (São Paulo `-3`, Berlin `1` or `2`); default 0. "
    "Parsed like Go's `strconv.Atoi` (`5.5`, `0x3` are invalid; send `+3` as `%2B3`).",
    "schema": {"type": "integer", "minimum": -12, "maximum": 14, "default": 0},
    "example": -3,
}
_TZ: Schema = {
    "name": "tz",
    "in": "query",
    "required": False,
    "description": "Extension: an IANA time zone (`America/Sao_Paulo`, `Asia/Kolkata`, `UTC`), "
    "as browsers report it. On `/daus` it replaces `tz_offset` (both: 400 on `tz`) and the "
    "61 entries are the zone's true local days, DST included (23 or 25 hours); "
    "`tz_hour_offset` then echoes the zone's offset now, in whole hours truncated toward 0. "
    "On `/templates` the interval reports split at the zone's local midnights (DST-correct "
    "days and weeks; the first starts at `start_time`, the last ends at `end_time`). "
    "`start_time`/`end_time` keep their rules. A half-hour belongs to the local day it starts "
    'in. An unknown name: 400 on `tz` with `unknown time zone "<name>"`; checked after '
    "every other parameter.",
    "schema": {"type": "string", "maxLength": 64},
    "example": "Europe/Berlin",
}


# --- operations --------------------------------------------------------------------------

_ERROR_TEXT = {
    400: "Invalid query: `Query parameters have invalid values.` (parser, all problems in "
    "`validations`) or `Query parameter has invalid value.` (first failing value check).",
    401: "Missing or unknown token.",
    403: "The token is not deployment-scoped.",
    404: "A template-scoped token used without `template_ids` or with a template outside "
    "its scope.",
    500: "Unexpected internal error (`detail` holds a one-line error text).",
    503: "The rollup store is unreachable or too slow: `Insights store unavailable.`",
}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _insights_operation(
    operation_id: str,
    summary: str,
    description: str,
    parameters: list[Schema],
    ok: str,
    errors: tuple[int, ...],
) -> Schema:
    responses: dict[str, Schema] = {"200": _json(_ref(ok), "OK")}
    for status in errors:
        responses[str(status)] = _json(_ref("codersdk.Response"), _ERROR_TEXT[status])
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "description": description,
            "tags": ["Insights"],
            "security": _SECURITY,
            "parameters": parameters,
            "responses": responses,
        }
    }


def _public_operation(operation_id: str, summary: str, responses: dict[str, Schema]) -> Schema:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "tags": ["Service"],
            "security": _PUBLIC,
            "responses": responses,
        }
    }


def _paths() -> dict[str, Schema]:
    window_errors = (400, 401, 404, 500, 503)
    return {
        "/api/v2/insights/daus": _insights_operation(
            "get-deployment-daus",
            "Get deployment DAUs",
            "Daily active users of the 60 full local days before today and today "
            "(61 entries), in true local days of the fixed offset `tz_offset` or of the zone "
            "`tz`. Needs a deployment-scoped token (checked before the query string).",
            [_TZ_OFFSET, _TZ],
            "codersdk.DAUsResponse",
            (400, 401, 403, 500, 503),
        ),
        "/api/v2/insights/templates": _insights_operation(
            "get-insights-about-templates",
            "Get insights about templates",
            "Active users, builtin and template-app usage, parameter usage and per-day or "
            "per-week active users over the window `[start_time, end_time)`.",
            [_START_TIME, _END_TIME, _INTERVAL, _TEMPLATE_IDS, _SECTIONS, _TZ],
            "codersdk.TemplateInsightsResponse",
            window_errors,
        ),
        "/api/v2/insights/user-activity": _insights_operation(
            "get-insights-about-user-activity",
            "Get insights about user activity",
            "Seconds of activity per user over the window `[start_time, end_time)`.",
            [_START_TIME, _END_TIME, _TEMPLATE_IDS, _TZ],
            "codersdk.UserActivityInsightsResponse",
            window_errors,
        ),
        "/api/v2/insights/user-latency": _insights_operation(
            "get-insights-about-user-latency",
            "Get insights about user latency",
            "Connection-latency percentiles per user over the window `[start_time, end_time)`, "
            "from mergeable sketches of all samples.",
            [_START_TIME, _END_TIME, _TEMPLATE_IDS, _PERCENTILES, _TZ],
            "codersdk.UserLatencyInsightsResponse",
            window_errors,
        ),
        "/api/v2/insights/template-names": _insights_operation(
            "get-insights-template-names",
            "Get template names (extension)",
            "The names events gave the templates (`template_name`, `organization_name`; the "
            "newest naming event wins), sorted by name; a template-scoped token sees its own "
            "templates only. Takes no parameters.",
            [],
            "TemplateNames",
            (400, 401, 500, 503),
        ),
        "/api/v2/insights/live": {
            "get": {
                "operationId": "get-insights-live",
                "summary": "Live updates (extension): which days changed",
                "description": "A `text/event-stream` that stays open: `event: changed` with "
                '`data: {"days": ["YYYY-MM-DD", ...], "time": "<RFC 3339 UTC>"}` '
                "each time the rollups of some UTC days (of the last 100) change, at most "
                "twice a second; the first message after connecting lists no days. Comment "
                "lines keep the connection alive every 15 s. Because browsers' `EventSource` "
                "cannot send headers, the token may also come as the `coder_session_token` "
                "query parameter (the only parameter taken) or cookie. 503 when the process "
                "already serves 1,000 streams.",
                "tags": ["Insights"],
                "security": [*_SECURITY, {"SessionTokenQuery": []}, {"SessionTokenCookie": []}],
                "parameters": [
                    {
                        "name": "coder_session_token",
                        "in": "query",
                        "required": False,
                        "description": "The token, for clients that cannot send headers.",
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "400": _json(_ref("codersdk.Response"), "An unknown query parameter."),
                    "401": _json(_ref("codersdk.Response"), _ERROR_TEXT[401]),
                    "503": _json(_ref("codersdk.Response"), "Too many open streams."),
                },
            }
        },
        "/healthz": _public_operation(
            "get-healthz",
            "Liveness: the HTTP server answers",
            {"200": _json(_ref("Health"), "Alive")},
        ),
        "/readyz": _public_operation(
            "get-readyz",
            "Readiness: Redis, the broker and the workers, each state named",
            {
                "200": _json(_ref("Readiness"), "Ready"),
                "503": _json(_ref("Readiness"), "Not ready"),
            },
        ),
        "/api/v2/openapi.json": _public_operation(
            "get-openapi",
            "This OpenAPI document",
            {"200": _json({"type": "object"}, "OpenAPI 3.1 document")},
        ),
    }


def openapi_document() -> dict[str, object]:
    """A fresh OpenAPI 3.1 document (callers may mutate it)."""
    document: dict[str, object] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Coder-compatible Insights API",
            "version": API_VERSION,
            "description": "Deployment insights answered live from streaming rollups, "
            "compatible with Coder's `/api/v2/insights/*` endpoints. Every insights endpoint "
            "needs a token (`Coder-Session-Token` header, or `Authorization: Bearer`; the "
            "former wins when both are sent). Responses are `application/json; "
            "charset=utf-8`.",
            "license": {"name": "AGPL-3.0-only", "identifier": "AGPL-3.0-only"},
        },
        "tags": [
            {"name": "Insights", "description": "Coder-compatible insights."},
            {"name": "Service", "description": "Health and discovery."},
        ],
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "CoderSessionToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Coder-Session-Token",
                    "description": "A deployment- or template-scoped token.",
                },
                "BearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The same token as `Authorization: Bearer <token>`.",
                },
                "SessionTokenQuery": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "coder_session_token",
                    "description": "The token as a query parameter (`/live` only).",
                },
                "SessionTokenCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "coder_session_token",
                    "description": "The token as the cookie Coder sets (`/live` only).",
                },
            },
        },
    }
    return copy.deepcopy(document)  # the parameter objects are shared module constants


@cache
def _document_bytes() -> bytes:
    return orjson.dumps(openapi_document())


async def openapi_view(request: web.Request) -> web.Response:
    return web.Response(body=_document_bytes(), content_type="application/json", charset="utf-8")
