"""OpenAPI 3.1 description of the service (insights-api.md), served at ``/api/v2/openapi.json``.

Schema names follow Coder's generated API documentation (``codersdk.*``) so that
clients written against Coder's Insights API recognise them.  Shapes are exact
where the specification fixes them (required fields, ``additionalProperties:
false``); what depends on the request (``report`` / ``interval_reports`` on
``/templates``, extension keys of ``latency_ms``) is described, not enforced.
"""

from __future__ import annotations

import copy
from functools import cache

import orjson
from aiohttp import web

Schema = dict[str, object]

OPENAPI_VERSION = "3.1.0"
API_VERSION = "0.1.0"

_PERCENTILE_PATTERN = r"^(0*[1-9][0-9]?(\.[0-9]+)?|0+\.[0-9]*[1-9][0-9]*)$"
_PERCENTILE_KEY_PATTERN = r"^p(0|[1-9][0-9]?)(\.[0-9]*[1-9])?$"

_SECURITY: list[dict[str, list[str]]] = [{"CoderSessionToken": []}, {"BearerAuth": []}]
_PUBLIC: list[dict[str, list[str]]] = []


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(
    properties: dict[str, Schema], *, optional: tuple[str, ...] = (), **extra: object
) -> Schema:
    """A closed object: every property required unless listed in ``optional``."""
    schema: Schema = {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": False,
    }
    schema.update(extra)
    return schema


def _string(description: str = "", **extra: object) -> Schema:
    schema: Schema = {"type": "string"}
    if description:
        schema["description"] = description
    schema.update(extra)
    return schema


def _count(description: str, minimum: int = 0) -> Schema:
    return {"type": "integer", "minimum": minimum, "description": description}


def _uuid_list(description: str) -> Schema:
    return {
        "type": "array",
        "items": {"type": "string", "format": "uuid"},
        "description": description + " Lowercase canonical UUIDs, sorted ascending; never null.",
    }


def _time(description: str) -> Schema:
    return _string(
        description + " RFC 3339; a zero offset is written `Z`, other offsets are kept; a "
        "fractional second appears only when non-zero, without trailing zeros.",
        format="date-time",
    )


# --- components --------------------------------------------------------------------------


def _schemas() -> dict[str, Schema]:
    report_start = _time("The request's `start_time`, in its own offset.")
    report_end = _time("The request's `end_time`, in its own offset.")
    return {
        "codersdk.Response": _obj(
            {
                "message": _string("A short, human-readable summary of the outcome."),
                "detail": _string(
                    "Further detail, e.g. a one-line error text. Omitted when empty.",
                    minLength=1,
                ),
                "validations": {
                    "type": "array",
                    "minItems": 1,
                    "items": _ref("codersdk.ValidationError"),
                    "description": "Per-field validation problems. Omitted when empty.",
                },
            },
            optional=("detail", "validations"),
            description="Error body; fields in the order message, detail, validations.",
        ),
        "codersdk.ValidationError": _obj(
            {"field": _string("Query parameter name."), "detail": _string("What is wrong.")},
        ),
        "codersdk.DAUsResponse": _obj(
            {
                "entries": {
                    "type": "array",
                    "items": _ref("codersdk.DAUEntry"),
                    "minItems": 61,
                    "maxItems": 61,
                    "description": "The 60 full local days before today, then today; ascending.",
                },
                "tz_hour_offset": {
                    "type": "integer",
                    "minimum": -12,
                    "maximum": 14,
                    "description": "Echo of `tz_offset` (whole hours east of UTC).",
                },
            },
        ),
        "codersdk.DAUEntry": _obj(
            {
                "date": _string("Local day `YYYY-MM-DD` (no time, no zone).", format="date"),
                "amount": _count("Distinct users with at least one activity minute that day."),
            },
        ),
        "codersdk.InsightsReportInterval": {
            "type": "string",
            "enum": ["day", "week"],
        },
        "codersdk.TemplateAppsType": {
            "type": "string",
            "enum": ["builtin", "app"],
        },
        "codersdk.TemplateInsightsResponse": _obj(
            {
                "report": _ref("codersdk.TemplateInsightsReport"),
                "interval_reports": {
                    "type": "array",
                    "items": _ref("codersdk.TemplateInsightsIntervalReport"),
                    "minItems": 1,
                    "description": "Present iff `interval` is set, `sections` contains "
                    "`interval_reports` and the window is not empty. Chronological; "
                    "empty intervals included.",
                },
            },
            optional=("report", "interval_reports"),
            description="`report` is present iff `sections` contains `report`. With "
            "`sections=interval_reports` and no `interval` the body is `{}`.",
        ),
        "codersdk.TemplateInsightsReport": _obj(
            {
                "start_time": report_start,
                "end_time": report_end,
                "template_ids": _uuid_list("Templates with activity in the window."),
                "active_users": _count("Distinct users with activity in the window."),
                "apps_usage": {
                    "type": "array",
                    "items": _ref("codersdk.TemplateAppUsage"),
                    "minItems": 5,
                    "description": "The 5 builtins (vscode, jetbrains, reconnecting-pty, ssh, "
                    "sftp) in that order, then template apps by slug, display name, icon.",
                },
                "parameters_usage": {
                    "type": "array",
                    "items": _ref("codersdk.TemplateParameterUsage"),
                },
            },
        ),
        "codersdk.TemplateAppUsage": _obj(
            {
                "template_ids": _uuid_list("Templates contributing usage."),
                "type": _ref("codersdk.TemplateAppsType"),
                "display_name": _string(),
                "slug": _string(),
                "icon": _string(),
                "seconds": _count("Usage in seconds (minutes capped at 30 per half-hour)."),
                "times_used": _count("Runs of consecutive half-hours per user; 0 for builtins."),
            },
        ),
        "codersdk.TemplateParameterUsage": _obj(
            {
                "template_ids": _uuid_list("Templates with this parameter definition."),
                "display_name": _string(),
                "name": _string(),
                "type": _string(),
                "description": _string("Plain text converted from the markdown description."),
                "options": {
                    "type": "array",
                    "items": _ref("codersdk.TemplateParameterOption"),
                    "minItems": 1,
                    "description": "Omitted when the parameter has no options.",
                },
                "values": {
                    "type": "array",
                    "items": _ref("codersdk.TemplateParameterValue"),
                    "minItems": 1,
                },
            },
            optional=("options",),
        ),
        "codersdk.TemplateParameterOption": _obj(
            {
                "name": _string(),
                "description": _string(),
                "value": _string(),
                "icon": _string(),
            },
        ),
        "codersdk.TemplateParameterValue": _obj(
            {
                "value": _string(),
                "count": _count("Latest builds per workspace in the window using this value.", 1),
            },
        ),
        "codersdk.TemplateInsightsIntervalReport": _obj(
            {
                "start_time": _time("Interval start, in `start_time`'s offset."),
                "end_time": _time("Interval end, in `start_time`'s offset."),
                "template_ids": _uuid_list("Templates with activity in the interval."),
                "interval": _ref("codersdk.InsightsReportInterval"),
                "active_users": _count("Distinct users with activity in the interval."),
            },
        ),
        "codersdk.UserActivityInsightsResponse": _obj(
            {"report": _ref("codersdk.UserActivityInsightsReport")},
        ),
        "codersdk.UserActivityInsightsReport": _obj(
            {
                "start_time": report_start,
                "end_time": report_end,
                "template_ids": _uuid_list("Union of the users' templates."),
                "users": {
                    "type": "array",
                    "items": _ref("codersdk.UserActivity"),
                    "description": "Users with activity, sorted by `user_id`.",
                },
            },
        ),
        "codersdk.UserActivity": _obj(
            {
                "template_ids": _uuid_list("Templates where the user was active."),
                "user_id": _string(format="uuid"),
                "username": _string(),
                "avatar_url": _string('`""` when none is known.'),
                "seconds": _count("Activity in seconds."),
            },
        ),
        "codersdk.UserLatencyInsightsResponse": _obj(
            {"report": _ref("codersdk.UserLatencyInsightsReport")},
        ),
        "codersdk.UserLatencyInsightsReport": _obj(
            {
                "start_time": report_start,
                "end_time": report_end,
                "template_ids": _uuid_list("Union of the users' templates."),
                "users": {
                    "type": "array",
                    "items": _ref("codersdk.UserLatency"),
                    "description": "Users with activity or latency samples, sorted by `user_id`.",
                },
            },
        ),
        "codersdk.UserLatency": _obj(
            {
                "template_ids": _uuid_list("Templates with activity or samples of the user."),
                "user_id": _string(format="uuid"),
                "username": _string('`""` for a user seen only in latency events.'),
                "avatar_url": _string('`""` when none is known.'),
                "latency_ms": _ref("codersdk.ConnectionLatency"),
            },
        ),
        "codersdk.ConnectionLatency": {
            "type": "object",
            "required": ["p50", "p95"],
            "properties": {
                "p50": {"type": "number"},
                "p95": {"type": "number"},
            },
            "propertyNames": {"pattern": _PERCENTILE_KEY_PATTERN},
            "additionalProperties": {"type": "number"},
            "description": "Quantiles in milliseconds of all the user's samples (<= 1 % "
            "relative error); -1 when the user has no sample. `p50` and `p95` always; one "
            "extra key per requested `percentiles` value (`p` + canonical decimal, e.g. "
            "`p99.9`), keys in ascending percentile order.",
        },
        "Health": _obj(
            {"status": _string(enum=["ok"])},
        ),
        "Readiness": _obj(
            {
                "status": _string(enum=["ok", "unavailable"]),
                "redis": _string('"ok", or a one-line error text.'),
                "workers": _count("Workers that reported assigned partitions recently."),
            },
            optional=("workers",),
        ),
    }


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
            "(61 entries), in true local days of the fixed offset `tz_offset`. Needs a "
            "deployment-scoped token (checked before the query string).",
            [_TZ_OFFSET],
            "codersdk.DAUsResponse",
            (400, 401, 403, 500, 503),
        ),
        "/api/v2/insights/templates": _insights_operation(
            "get-insights-about-templates",
            "Get insights about templates",
            "Active users, builtin and template-app usage, parameter usage and per-day or "
            "per-week active users over the window `[start_time, end_time)`.",
            [_START_TIME, _END_TIME, _INTERVAL, _TEMPLATE_IDS, _SECTIONS],
            "codersdk.TemplateInsightsResponse",
            window_errors,
        ),
        "/api/v2/insights/user-activity": _insights_operation(
            "get-insights-about-user-activity",
            "Get insights about user activity",
            "Seconds of activity per user over the window `[start_time, end_time)`.",
            [_START_TIME, _END_TIME, _TEMPLATE_IDS],
            "codersdk.UserActivityInsightsResponse",
            window_errors,
        ),
        "/api/v2/insights/user-latency": _insights_operation(
            "get-insights-about-user-latency",
            "Get insights about user latency",
            "Connection-latency percentiles per user over the window `[start_time, end_time)`, "
            "from mergeable sketches of all samples.",
            [_START_TIME, _END_TIME, _TEMPLATE_IDS, _PERCENTILES],
            "codersdk.UserLatencyInsightsResponse",
            window_errors,
        ),
        "/healthz": _public_operation(
            "get-healthz",
            "Liveness: the HTTP server answers",
            {"200": _json(_ref("Health"), "Alive")},
        ),
        "/readyz": _public_operation(
            "get-readyz",
            "Readiness: the store answers and a worker reported assigned partitions recently",
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
            "schemas": _schemas(),
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
            },
        },
    }
    return copy.deepcopy(document)  # the parameter objects are shared module constants


@cache
def _document_bytes() -> bytes:
    return orjson.dumps(openapi_document())


async def openapi_view(request: web.Request) -> web.Response:
    return web.Response(body=_document_bytes(), content_type="application/json", charset="utf-8")
