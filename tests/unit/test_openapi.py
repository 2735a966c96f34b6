"""The OpenAPI document is valid OpenAPI 3.1 and names Coder's schemas; the view serves it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from api import openapi
from api.openapi import SCHEMAS, SCHEMAS_RESOURCE, openapi_document, openapi_view

CODER_SCHEMAS = [
    "codersdk.DAUsResponse",
    "codersdk.DAUEntry",
    "codersdk.TemplateInsightsResponse",
    "codersdk.TemplateInsightsReport",
    "codersdk.TemplateAppUsage",
    "codersdk.TemplateParameterUsage",
    "codersdk.TemplateParameterOption",
    "codersdk.TemplateParameterValue",
    "codersdk.TemplateInsightsIntervalReport",
    "codersdk.UserActivityInsightsResponse",
    "codersdk.UserActivityInsightsReport",
    "codersdk.UserActivity",
    "codersdk.UserLatencyInsightsResponse",
    "codersdk.UserLatencyInsightsReport",
    "codersdk.UserLatency",
    "codersdk.ConnectionLatency",
    "codersdk.Response",
    "codersdk.ValidationError",
]
INSIGHTS = {
    "/api/v2/insights/daus": ("codersdk.DAUsResponse", {200, 400, 401, 403, 500, 503}),
    "/api/v2/insights/templates": (
        "codersdk.TemplateInsightsResponse",
        {200, 400, 401, 404, 500, 503},
    ),
    "/api/v2/insights/user-activity": (
        "codersdk.UserActivityInsightsResponse",
        {200, 400, 401, 404, 500, 503},
    ),
    "/api/v2/insights/user-latency": (
        "codersdk.UserLatencyInsightsResponse",
        {200, 400, 401, 404, 500, 503},
    ),
}
T1 = "00000000-0000-0000-0000-000000000001"


def _doc() -> dict[str, Any]:
    return openapi_document()


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = _doc()["components"]["schemas"]
    return schemas


def _validator(name: str) -> Draft202012Validator:
    """A JSON Schema validator for one component, resolving ``#/components/...`` refs."""
    doc = _doc()
    return Draft202012Validator({**doc, "$ref": f"#/components/schemas/{name}"})


def test_document_is_valid_openapi_3_1() -> None:
    doc = _doc()
    assert doc["openapi"].startswith("3.1.")
    validate(doc)


def test_validator_rejects_a_broken_document() -> None:
    """Guard: the validator really checks (a response without description is invalid)."""
    doc = _doc()
    del doc["paths"]["/healthz"]["get"]["responses"]["200"]["description"]
    with pytest.raises(OpenAPIValidationError):
        validate(doc)


@pytest.mark.parametrize("name", CODER_SCHEMAS)
def test_coder_schema_names_exist(name: str) -> None:
    assert name in _schemas()


def test_schemas_resource_is_loaded() -> None:
    """The component schemas come from the package's JSON resource, each a valid JSON Schema."""
    loaded = orjson.loads(resources.files("api").joinpath(SCHEMAS_RESOURCE).read_bytes())
    assert isinstance(loaded, dict)
    assert list(loaded) == list(SCHEMAS) == list(_schemas())  # order is part of the output
    assert loaded == SCHEMAS == _schemas()
    for schema in loaded.values():
        Draft202012Validator.check_schema(schema)


def test_document_does_not_share_the_loaded_schemas() -> None:
    doc = _doc()
    doc["components"]["schemas"]["codersdk.DAUEntry"]["properties"].clear()
    assert _schemas()["codersdk.DAUEntry"]["properties"]
    assert SCHEMAS["codersdk.DAUEntry"]["properties"]


@pytest.mark.parametrize("content", [b"[]", b'{"codersdk.Response": "not a schema"}'])
def test_malformed_schemas_resource_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    (tmp_path / SCHEMAS_RESOURCE).write_bytes(content)
    monkeypatch.setattr(resources, "files", lambda _package: tmp_path)
    with pytest.raises(ValueError, match=SCHEMAS_RESOURCE):
        openapi._load_schemas()


def test_every_ref_resolves() -> None:
    names = set(_schemas())
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                refs.append(ref)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(_doc())
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in names


def test_paths_and_responses() -> None:
    paths = _doc()["paths"]
    assert set(paths) == {
        *INSIGHTS,
        "/api/v2/insights/template-names",
        "/api/v2/insights/live",
        "/healthz",
        "/readyz",
        "/api/v2/openapi.json",
    }
    for path, (ok, statuses) in INSIGHTS.items():
        op = paths[path]["get"]
        assert {int(s) for s in op["responses"]} == statuses
        ok_schema = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok_schema == {"$ref": f"#/components/schemas/{ok}"}
        for status in statuses - {200}:
            body = op["responses"][str(status)]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/codersdk.Response"}
        assert op["security"] == [{"CoderSessionToken": []}, {"BearerAuth": []}]
    for path in ("/healthz", "/readyz", "/api/v2/openapi.json"):
        assert paths[path]["get"]["security"] == []


def test_query_parameters() -> None:
    paths = _doc()["paths"]

    def params(path: str) -> dict[str, Any]:
        return {p["name"]: p for p in paths[path]["get"]["parameters"]}

    templates = params("/api/v2/insights/templates")
    assert list(templates) == [
        "start_time",
        "end_time",
        "interval",
        "template_ids",
        "sections",
        "tz",
    ]
    assert list(params("/api/v2/insights/user-activity")) == [
        "start_time",
        "end_time",
        "template_ids",
        "tz",
    ]
    latency = params("/api/v2/insights/user-latency")
    assert list(latency) == ["start_time", "end_time", "template_ids", "percentiles", "tz"]
    assert list(params("/api/v2/insights/daus")) == ["tz_offset", "tz"]
    assert templates["tz"]["schema"] == {"type": "string", "maxLength": 64}
    for name in ("start_time", "end_time"):
        assert templates[name]["required"] is True
        assert templates[name]["schema"] == {"type": "string", "format": "date-time"}
        assert "%2B" in templates[name]["description"]
    ids = templates["template_ids"]
    assert ids["required"] is False
    assert (ids["style"], ids["explode"]) == ("form", False)
    assert ids["schema"]["items"] == {"type": "string", "format": "uuid"}
    interval = _schemas()["codersdk.InsightsReportInterval"]
    assert interval["enum"] == ["day", "week"]
    assert templates["interval"]["required"] is False
    assert templates["sections"]["schema"]["items"]["enum"] == ["interval_reports", "report"]
    tz = params("/api/v2/insights/daus")["tz_offset"]["schema"]
    assert (tz["type"], tz["minimum"], tz["maximum"], tz["default"]) == ("integer", -12, 14, 0)


def test_security_schemes() -> None:
    schemes = _doc()["components"]["securitySchemes"]
    assert schemes["CoderSessionToken"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Coder-Session-Token",
        "description": schemes["CoderSessionToken"]["description"],
    }
    assert (schemes["BearerAuth"]["type"], schemes["BearerAuth"]["scheme"]) == ("http", "bearer")


@pytest.mark.parametrize(
    "pattern_value, ok",
    [
        *[(v, True) for v in ("50", "99.9", "0.5", "007", "00.10", "99.999")],
        *[(v, False) for v in ("0", "100", "0.0", "-5", "1e1", ".5", "5.", "+5", "150")],
    ],
)
def test_percentile_pattern(pattern_value: str, ok: bool) -> None:
    """The element pattern accepts exactly the plain decimals strictly between 0 and 100."""
    latency = _doc()["paths"]["/api/v2/insights/user-latency"]["get"]["parameters"]
    (param,) = [p for p in latency if p["name"] == "percentiles"]
    validator = Draft202012Validator(param["schema"]["items"])
    assert validator.is_valid(pattern_value) is ok


# --- the shapes the spec fixes -------------------------------------------------------------


def _app(slug: str, kind: str = "builtin") -> dict[str, Any]:
    return {
        "template_ids": [],
        "type": kind,
        "display_name": slug,
        "slug": slug,
        "icon": "/icon.svg",
        "seconds": 0,
        "times_used": 0,
    }


def _report() -> dict[str, Any]:
    return {
        "start_time": "2023-08-15T00:00:00Z",
        "end_time": "2023-08-22T00:00:00.5-03:00",
        "template_ids": [T1],
        "active_users": 1,
        "apps_usage": [_app(s) for s in ("vscode", "jetbrains", "reconnecting-pty", "ssh", "sftp")],
        "parameters_usage": [
            {
                "template_ids": [T1],
                "display_name": "p",
                "name": "p",
                "type": "string",
                "description": "",
                "values": [{"value": "", "count": 1}],
            }
        ],
    }


def test_template_insights_shapes() -> None:
    validator = _validator("codersdk.TemplateInsightsResponse")
    interval = {
        "start_time": "2023-08-15T00:00:00Z",
        "end_time": "2023-08-16T00:00:00Z",
        "template_ids": [],
        "interval": "day",
        "active_users": 0,
    }
    for body in ({}, {"report": _report()}, {"interval_reports": [interval]}):
        validator.validate(body)
    validator.validate({"report": _report(), "interval_reports": [interval]})
    with_options = _report()
    option = {"name": "a", "description": "", "value": "a", "icon": ""}
    with_options["parameters_usage"][0]["options"] = [option]
    validator.validate({"report": with_options})

    bad: list[dict[str, Any]] = [{"report": None}, {"interval_reports": []}, {"extra": 1}]
    empty_options = _report()
    empty_options["parameters_usage"][0]["options"] = []  # omitted when empty, never []
    bad.append({"report": empty_options})
    missing = _report()
    del missing["parameters_usage"]
    bad.append({"report": missing})
    wrong_type = _report()
    wrong_type["apps_usage"][0]["type"] = "other"
    bad.append({"report": wrong_type})
    bad.append({"interval_reports": [{**interval, "interval": "month"}]})
    for body in bad:
        assert not validator.is_valid(body), body


def test_user_reports_shapes() -> None:
    activity = _validator("codersdk.UserActivityInsightsResponse")
    user = {"template_ids": [T1], "user_id": T1, "username": "u", "avatar_url": "", "seconds": 60}
    report = {"start_time": "2023-08-15T00:00:00Z", "end_time": "2023-08-22T00:00:00Z"}
    activity.validate({"report": {**report, "template_ids": [T1], "users": [user]}})
    assert not activity.is_valid({"report": {**report, "template_ids": [T1], "users": None}})
    assert not activity.is_valid({})

    latency = _validator("codersdk.UserLatencyInsightsResponse")
    lat_user = {**user, "latency_ms": {"p50": -1, "p95": -1}}
    del lat_user["seconds"]
    latency.validate({"report": {**report, "template_ids": [], "users": [lat_user]}})
    extended = {**lat_user, "latency_ms": {"p50": 1.5, "p90": 3, "p95": 4, "p99.9": 5.25}}
    latency.validate({"report": {**report, "template_ids": [], "users": [extended]}})
    for bad_latency in ({"p50": 1}, {"p50": 1, "p95": 2, "x": 3}, {"p50": 1, "p95": "2"}):
        odd = {**lat_user, "latency_ms": bad_latency}
        assert not latency.is_valid({"report": {**report, "template_ids": [], "users": [odd]}})


def test_daus_and_error_shapes() -> None:
    daus = _validator("codersdk.DAUsResponse")
    entries = [{"date": "2024-01-10", "amount": 0}] * 61
    daus.validate({"entries": entries, "tz_hour_offset": -3})
    assert not daus.is_valid({"entries": entries[:60], "tz_hour_offset": 0})
    assert not daus.is_valid({"entries": entries, "tz_hour_offset": 15})

    response = _validator("codersdk.Response")
    response.validate({"message": "Forbidden."})
    response.validate(
        {
            "message": "Query parameters have invalid values.",
            "validations": [{"field": "foo", "detail": '"foo" is not a valid query param'}],
        }
    )
    response.validate({"message": "Insights store unavailable.", "detail": "timeout"})
    for bad in (
        {},
        {"message": "x", "detail": ""},
        {"message": "x", "validations": []},
        {"message": "x", "validations": [{"field": "a"}]},
    ):
        assert not response.is_valid(bad), bad


def test_document_is_fresh_per_call() -> None:
    first = openapi_document()
    first["paths"]["/api/v2/insights/daus"]["get"]["parameters"].clear()  # type: ignore[index]
    assert openapi_document()["paths"]["/api/v2/insights/daus"]["get"]["parameters"]  # type: ignore[index]


async def test_view_serves_the_document() -> None:
    request = make_mocked_request("GET", "/api/v2/openapi.json", app=web.Application())
    response = await openapi_view(request)
    assert response.status == 200
    assert response.content_type == "application/json"
    assert response.charset == "utf-8"
    assert isinstance(response.body, bytes)
    assert orjson.loads(response.body) == openapi_document()
    again = await openapi_view(request)
    assert again.body is response.body  # serialized once
