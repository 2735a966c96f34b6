"""docs/schemas/ and streams.decoding.schema: current files, and the decoder's verdicts.

The schemas are generated from the field table of ``streams.decoding.schema``; the decoder
is hand-written.  These tests hold the two together on the decoder's own test table
(``tests/unit/test_decoding.py``), on probes of every field the table declares, on events
built by ``streams.workloads`` and on mutated events, with each rule the schemas cannot
state listed below (``SCHEMA_ACCEPTS``, ``OUT_OF_SCHEMA``), and checked to be the reason.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from jsonschema.protocols import Validator

from aggregators.model import KINDS, TOPIC_KINDS, BuildParameter, ParameterOption
from insights.cli import main
from streams.dead_letter import STORE_ERROR, dead_letter_record
from streams.decoding import (
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    MAX_MESSAGE_BYTES,
    REASON_CODES,
    Rejection,
    decode_message,
)
from streams.decoding.fields import _parse_rfc3339
from streams.decoding.limits import MAX_APP_SESSION_US, MAX_ID_CHARS, MAX_LATENCY_MS
from streams.decoding.schema import (
    FIELDS,
    MAX_JSON_INT,
    MAX_NAME_CHARS,
    RFC3339_PATTERN,
    UNEXPRESSED,
    all_schemas,
    schema_text,
    topic_schema,
)
from streams.workloads import (
    AgentRef,
    App,
    app_usage_event,
    build_event,
    latency_event,
    session_event,
)
from tests.unit.test_decoding import (
    BAD_EVENTS,
    DELETE,
    GOOD,
    JSON,
    MESSAGES,
    NOW_US,
    VARIANTS,
    edit,
    mutated_events,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "docs" / "schemas"
EVENTS_DOC = ROOT / "docs" / "events.md"

# --- what the schemas cannot state -----------------------------------------------------------

# Cases of the decoder's table that it refuses and the schemas accept, each with the rule of
# UNEXPRESSED that explains it.  Exact: a case listed here that the schema refuses fails too.
SCHEMA_ACCEPTS: dict[str, str] = {
    "time in the future": "future",
    "ended_at in the future": "future",
    "app time in the future": "future",
    "latency time future": "future",
    "ended_at before started_at": "ended_order",
    "session over 31 days": "session_span",
    "before 1970 through offset": "epoch_offset",
    "connection_count float": "integer_text",
    "build_number float": "integer_text",
}

# Messages of the decoder's table refused before any JSON exists to validate.
OUT_OF_SCHEMA: dict[str, str] = {
    "tombstone": "bytes",
    "empty": "bytes",
    "garbage": "bytes",
    "truncated": "bytes",
    "NaN literal": "bytes",
    "BOM": "bytes",
    "not UTF-8": "bytes",
    "latin-1": "bytes",
}

# The optional names of a template (shared/spec/events.md, "Common fields").
NAME_FIELDS = ("template_name", "organization_name")


def test_every_exception_is_a_rule_the_schemas_cannot_state() -> None:
    assert set(SCHEMA_ACCEPTS.values()) | set(OUT_OF_SCHEMA.values()) <= set(UNEXPRESSED)
    cases = {case for case, *_ in BAD_EVENTS}
    assert set(SCHEMA_ACCEPTS) <= cases
    assert set(OUT_OF_SCHEMA) <= {case for case, *_ in MESSAGES}


# --- helpers ---------------------------------------------------------------------------------


def _validators() -> Iterator[Any]:
    for kind in TOPIC_KINDS:
        for formats in (False, True):
            yield pytest.param(kind, formats, id=f"{kind}-{'formats' if formats else 'plain'}")


_CACHE: dict[tuple[str, bool, bool], Validator] = {}


def validator(kind: str, formats: bool = False, event_only: bool = False) -> Validator:
    """A message validator of ``kind``; ``formats`` also asserts ``format`` (off by default in
    draft 2020-12); ``event_only`` validates one event (a batch element)."""
    key = (kind, formats, event_only)
    if key not in _CACHE:
        schema = topic_schema(kind)
        if event_only:
            schema = {**schema, "anyOf": [{"$ref": "#/$defs/event"}]}
        checker = Draft202012Validator.FORMAT_CHECKER if formats else None
        _CACHE[key] = Draft202012Validator(schema, format_checker=checker)
    return _CACHE[key]


def schema_accepts(doc: object, kind: str, formats: bool = False) -> bool:
    return validator(kind, formats).is_valid(doc)


def decoder_accepts(doc: object, kind: str) -> bool:
    """The decoder takes every event of the message (one event, or every batch element)."""
    _, rejections = decode_message(orjson.dumps(doc), kind, NOW_US)
    return not rejections


def element_verdicts(batch: list[object], kind: str) -> list[bool]:
    """The decoder's verdict on each element of a batch."""
    _, rejections = decode_message(orjson.dumps(batch), kind, NOW_US)
    refused = {r.index for r in rejections}
    return [i not in refused for i in range(len(batch))]


# --- the files -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", TOPIC_KINDS)
def test_committed_schema_is_current(kind: str) -> None:
    path = SCHEMA_DIR / f"{kind}.json"
    assert path.read_text(encoding="utf-8") == schema_text(topic_schema(kind)), (
        f"{path.relative_to(ROOT)} is stale: run `make schemas`"
    )


def test_no_other_schema_files() -> None:
    assert sorted(p.name for p in SCHEMA_DIR.iterdir()) == sorted(f"{k}.json" for k in TOPIC_KINDS)


@pytest.mark.parametrize("kind", TOPIC_KINDS)
def test_schema_is_valid_draft_2020_12(kind: str) -> None:
    schema = topic_schema(kind)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_cli_prints_one_topic_or_all(tmp_path: Path) -> None:
    runner = CliRunner()
    one = runner.invoke(main, ["schema", "latency"])
    assert one.exit_code == 0, one.output
    assert one.output == schema_text(topic_schema("latency"))
    prefixed = runner.invoke(main, ["schema", "insights.builds"])
    assert json.loads(prefixed.output) == topic_schema("builds")
    every = runner.invoke(main, ["schema"])
    assert json.loads(every.output) == all_schemas()
    assert list(json.loads(every.output)) == list(TOPIC_KINDS)
    bad = runner.invoke(main, ["schema", "dead_letter"])
    assert bad.exit_code == 2
    assert "not an input topic" in bad.output
    wrote = runner.invoke(main, ["schema", "--write", str(tmp_path)])
    assert wrote.exit_code == 0, wrote.output
    for kind in TOPIC_KINDS:
        assert (tmp_path / f"{kind}.json").read_text() == (SCHEMA_DIR / f"{kind}.json").read_text()


def test_docs_name_every_field_reason_and_exception() -> None:
    doc = EVENTS_DOC.read_text(encoding="utf-8")
    for kind, fields in FIELDS.items():
        assert f"insights.{kind}" in doc
        for field in fields:
            assert f"`{field.name}`" in doc, field.name
    for code in (*REASON_CODES, STORE_ERROR):
        assert f"`{code}`" in doc, code
    for kind in KINDS:
        assert kind in doc
    assert "docs/schemas/" in doc
    assert "INSIGHTS_DEDUPE_HORIZON_DAYS" in doc


def _doc_json_blocks() -> dict[str, list[str]]:
    """The ```json blocks of docs/events.md by section: a topic kind, or the heading text."""
    blocks: dict[str, list[str]] = {}
    section, block = "", None
    for line in EVENTS_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            match = re.fullmatch(r"## `insights\.(\w+)`", line)
            section = match[1] if match else line[3:]
        elif line.strip() == "```json":
            block = []
        elif line.strip() == "```" and block is not None:
            blocks.setdefault(section, []).append("\n".join(block))
            block = None
        elif block is not None:
            block.append(line)
    return blocks


@pytest.mark.parametrize("kind", TOPIC_KINDS)
def test_doc_examples_pass_the_decoder_and_the_schema(kind: str) -> None:
    examples = _doc_json_blocks()[kind]
    assert examples
    now_us = time.time_ns() // 1000
    for text in examples:
        events, rejections = decode_message(text.encode(), kind, now_us)
        assert rejections == [] and events
        assert schema_accepts(json.loads(text), kind)


def test_doc_dead_letter_example_is_a_real_record() -> None:
    [text] = _doc_json_blocks()["Dead letters"]
    record = json.loads(text)
    rejection = Rejection(record["index"], record["reason"], record["payload"], "text", "bad_uuid")
    key = record["key"].encode()
    made = dead_letter_record(
        record["topic"], record["partition"], record["offset"], key, rejection
    )
    assert json.loads(made) == record
    message = json.dumps([GOOD["sessions"], json.loads(record["payload"])]).encode()
    _, [refused] = decode_message(message, "sessions", time.time_ns() // 1000)
    assert refused == rejection


# --- the decoder's table ---------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "formats"), list(_validators()))
def test_good_events_and_batches(kind: str, formats: bool) -> None:
    assert schema_accepts(GOOD[kind], kind, formats)
    assert schema_accepts([GOOD[kind]] * 3, kind, formats)
    assert schema_accepts([], kind, formats)
    assert decoder_accepts([], kind)


@pytest.mark.parametrize("formats", [False, True], ids=["plain", "formats"])
@pytest.mark.parametrize(
    ("kind", "changes"), [pytest.param(kind, c, id=case) for case, kind, c, _ in VARIANTS]
)
def test_accepted_variant(kind: str, changes: dict[str, Any], formats: bool) -> None:
    event = edit(kind, **changes)
    assert decoder_accepts(event, kind)
    assert schema_accepts(event, kind, formats)
    assert schema_accepts([GOOD[kind], event], kind, formats)


@pytest.mark.parametrize("formats", [False, True], ids=["plain", "formats"])
@pytest.mark.parametrize(
    ("case", "kind", "changes"),
    [pytest.param(case, kind, c, id=case) for case, kind, c, *_ in BAD_EVENTS],
)
def test_refused_event(case: str, kind: str, changes: dict[str, Any], formats: bool) -> None:
    event = edit(kind, **changes)
    assert not decoder_accepts(event, kind)
    expected = case in SCHEMA_ACCEPTS  # the schema refuses unless the rule is beyond it
    assert schema_accepts(event, kind, formats) is expected
    assert schema_accepts([GOOD[kind], event], kind, formats) is expected
    assert validator(kind, formats, event_only=True).is_valid(event) is expected


@pytest.mark.parametrize(
    ("case", "value"), [pytest.param(case, v, id=case) for case, v, *_ in MESSAGES]
)
def test_refused_message(case: str, value: bytes | None) -> None:
    events, rejections = decode_message(value, "sessions", NOW_US)
    assert (events, len(rejections)) == ([], 1)
    if case in OUT_OF_SCHEMA:  # no value, or not JSON: nothing for a schema to judge
        if value is not None:
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(value)
    else:
        assert value is not None
        assert not schema_accepts(orjson.loads(value), "sessions")


@pytest.mark.parametrize("element", [None, 1, 1.5, True, [], "oops", [GOOD["latency"]]])
def test_batch_element_not_an_object(element: object) -> None:
    assert element_verdicts([GOOD["latency"], element], "latency") == [True, False]
    assert not validator("latency", event_only=True).is_valid(element)
    assert not schema_accepts([GOOD["latency"], element], "latency")


def test_batch_limit() -> None:
    full = [GOOD["latency"]] * MAX_BATCH_EVENTS
    assert decoder_accepts(full, "latency") and schema_accepts(full, "latency")
    over = [*full, GOOD["latency"]]
    assert not decoder_accepts(over, "latency") and not schema_accepts(over, "latency")


def test_sizes_are_beyond_the_schema() -> None:
    """Sizes ("event_bytes", "message_bytes"): the decoder counts bytes, a schema cannot."""
    big = edit("sessions", avatar_url="a" * MAX_EVENT_BYTES)
    assert not decoder_accepts(big, "sessions")
    assert schema_accepts(big, "sessions")
    event = orjson.dumps(GOOD["latency"])
    padded = b"[" + event + b" " * MAX_MESSAGE_BYTES + b"]"
    assert decode_message(padded, "latency", NOW_US)[1][0].code == "message_too_large"
    assert schema_accepts(orjson.loads(padded), "latency")


def test_every_rule_beyond_the_schemas_is_exercised() -> None:
    exercised = {*SCHEMA_ACCEPTS.values(), *OUT_OF_SCHEMA.values()}
    exercised |= {"event_bytes", "message_bytes"}  # test_sizes_are_beyond_the_schema
    assert exercised == set(UNEXPRESSED)


# --- every field the table declares, probed ---------------------------------------------------

PROBES: tuple[object, ...] = (
    DELETE,
    None,
    "",
    "x",
    "path",
    GOOD["sessions"]["user_id"],
    GOOD["sessions"]["user_id"].upper(),
    GOOD["sessions"]["time"],
    0,
    -1,
    1,
    1.5,
    MAX_JSON_INT,
    True,
    [],
    {},
    [{}],
)


def _paths(schema: dict[str, Any], doc: object, path: tuple[str | int, ...]) -> Iterator[Any]:
    """(path, property schema) of every declared property reachable in ``doc``."""
    properties = schema.get("properties", {})
    items = schema.get("items")
    if isinstance(doc, dict):
        for name, sub in properties.items():
            yield (*path, name), sub
            if name in doc:
                yield from _paths(sub, doc[name], (*path, name))
    elif isinstance(doc, list) and items is not None:
        for i, element in enumerate(doc):
            yield from _paths(items, element, (*path, i))


def _field_cases() -> Iterator[Any]:
    for kind in TOPIC_KINDS:
        event_schema = topic_schema(kind)["$defs"]["event"]
        for path, _ in _paths(event_schema, GOOD[kind], ()):
            yield pytest.param(kind, path, id=f"{kind}-{'.'.join(map(str, path))}")


def _set(doc: Any, path: tuple[str | int, ...], value: object) -> Any:
    """A deep copy of ``doc`` with the member at ``path`` replaced (or removed: DELETE)."""
    doc = orjson.loads(orjson.dumps(doc))
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if value is DELETE:
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value
    return doc


@pytest.mark.parametrize(("kind", "path"), list(_field_cases()))
def test_field_probes_agree(kind: str, path: tuple[str | int, ...]) -> None:
    """Required or optional, nullable or not, type, range and emptiness of each field: the
    schema's verdict is the decoder's, whatever the probe."""
    for probe in PROBES:
        event = _set(GOOD[kind], path, probe)
        assert schema_accepts(event, kind) is decoder_accepts(event, kind), (path, probe)


@pytest.mark.parametrize("kind", TOPIC_KINDS)
def test_unknown_members_are_ignored_everywhere(kind: str) -> None:
    event_schema = topic_schema(kind)["$defs"]["event"]
    objects = [()] + [p for p, sub in _paths(event_schema, GOOD[kind], ()) if "properties" in sub]
    for path in objects:
        event = _set(GOOD[kind], (*path, "zz_unknown"), {"any": [1, None]})
        assert schema_accepts(event, kind) and decoder_accepts(event, kind), path


@pytest.mark.parametrize("kind", TOPIC_KINDS)
@pytest.mark.parametrize("name", NAME_FIELDS)
def test_template_and_organization_names(kind: str, name: str) -> None:
    for good in ("", "Data Science", "é" * MAX_NAME_CHARS, None):
        event = edit(kind, **{name: good})
        assert schema_accepts(event, kind) and decoder_accepts(event, kind)
    for bad in ("x" * (MAX_NAME_CHARS + 1), 7, {}):
        event = edit(kind, **{name: bad})
        assert not schema_accepts(event, kind)
        assert not decoder_accepts(event, kind)


# --- times -----------------------------------------------------------------------------------


def test_time_pattern_has_the_decoders_calendar() -> None:
    pattern = re.compile(RFC3339_PATTERN)
    years = [*range(1968, 2110), *range(2396, 2405), 2800, 2900, 9999]
    checked = 0
    for year in years:
        for month in range(14):
            for day in range(33):
                text = f"{year:04d}-{month:02d}-{day:02d}T12:00:00Z"
                time_us = _parse_rfc3339(text)  # the decoder's calendar; then its 1970 floor
                decoder_ok = time_us is not None and time_us >= 0
                assert (pattern.search(text) is not None) is decoder_ok, text
                checked += 1
    assert checked > 60_000


# --- generated events ------------------------------------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8"), max_size=16)
_UUID = st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper())
_IDS = st.text(st.characters(codec="utf-8"), min_size=1, max_size=MAX_ID_CHARS)
_PAST = st.integers(min_value=0, max_value=NOW_US)
_COUNTS = st.integers(min_value=0, max_value=MAX_JSON_INT)
_AGENTS = st.builds(
    AgentRef,
    user_id=_UUID,
    username=_TEXT,
    template_id=_UUID,
    workspace_id=_UUID,
    agent_id=_UUID,
    avatar_url=_TEXT,
)
_OPTIONS = st.builds(ParameterOption, name=_TEXT, description=_TEXT, value=_TEXT, icon=_TEXT)
_PARAMETERS = st.builds(
    BuildParameter,
    name=_TEXT.filter(bool),
    type=st.sampled_from(["string", "number", "bool", "list(string)"]) | _TEXT,
    display_name=_TEXT,
    description=_TEXT,
    options=st.lists(_OPTIONS, max_size=4).map(tuple),
    value=_TEXT,
)


@st.composite
def _app_usage(draw: st.DrawFn) -> dict[str, Any]:
    started = draw(_PAST)
    ended = draw(st.integers(started, min(started + MAX_APP_SESSION_US, NOW_US)))
    return app_usage_event(
        draw(_AGENTS),
        draw(_IDS),
        draw(_UUID),
        started,
        ended,
        access_method=draw(st.sampled_from(["path", "subdomain", "terminal"])),
        slug_or_port=draw(_TEXT),
        app=draw(st.none() | st.builds(App, _TEXT, _TEXT)),
        requests=draw(_COUNTS),
        time_us=draw(st.none() | _PAST),
    )


WIRE_EVENTS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "sessions": st.builds(
        session_event,
        _AGENTS,
        _IDS,
        _PAST,
        st.dictionaries(st.sampled_from(KINDS), _COUNTS) | st.lists(st.sampled_from(KINDS)),
        _COUNTS,
    ),
    "app_usage": _app_usage(),
    "latency": st.builds(
        latency_event,
        _AGENTS,
        _IDS,
        _PAST,
        st.floats(min_value=0, max_value=MAX_LATENCY_MS, exclude_min=True),
    ),
    "builds": st.builds(
        build_event,
        _AGENTS,
        _IDS,
        _PAST,
        st.integers(min_value=1, max_value=MAX_JSON_INT),
        st.lists(_PARAMETERS, max_size=4),
    ),
}


@settings(max_examples=150, deadline=None)
@given(data=st.data(), kind=st.sampled_from(TOPIC_KINDS), formats=st.booleans())
def test_built_events_pass_both(data: st.DataObject, kind: str, formats: bool) -> None:
    batch = data.draw(st.lists(WIRE_EVENTS[kind], min_size=1, max_size=4))
    assert decoder_accepts(batch, kind)
    assert schema_accepts(batch, kind, formats)
    assert schema_accepts(batch[0], kind, formats)


def _ints_for_integral_floats(doc: object) -> object:
    """``doc`` with every float that has no fraction written as an integer."""
    if isinstance(doc, float) and doc.is_integer() and abs(doc) <= MAX_JSON_INT:
        return int(doc)
    if isinstance(doc, list):
        return [_ints_for_integral_floats(x) for x in doc]
    if isinstance(doc, dict):
        return {k: _ints_for_integral_floats(v) for k, v in doc.items()}
    return doc


@settings(max_examples=300, deadline=None)
@given(data=st.data(), kind=st.sampled_from(TOPIC_KINDS))
def test_mutated_events_get_the_decoders_verdict(data: st.DataObject, kind: str) -> None:
    """Arbitrary JSON in place of a few fields: same verdict, except for integral floats
    where integers belong ("integer_text"), which the schema cannot tell apart."""
    batch = data.draw(st.lists(mutated_events(kind) | JSON, min_size=1, max_size=6))
    one = validator(kind, event_only=True)
    for element, accepted in zip(batch, element_verdicts(batch, kind), strict=True):
        if one.is_valid(element) is accepted:
            continue
        assert one.is_valid(element) and not accepted, element
        assert decoder_accepts(_ints_for_integral_floats(element), kind), element
