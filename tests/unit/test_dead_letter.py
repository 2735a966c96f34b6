"""Dead-letter records stay publishable whatever the refused message held."""

from __future__ import annotations

import orjson
import pytest

from streams.dead_letter import MAX_RECORD_BYTES, TRUNCATED_PAYLOAD_CHARS, dead_letter_record
from streams.decoding import Rejection


def _record(payload: str) -> dict[str, object]:
    rej = Rejection(None, "invalid JSON", payload, "text", "invalid_json")
    value = dead_letter_record("insights.sessions", 2, 41, b"k", rej)
    assert len(value) <= MAX_RECORD_BYTES
    out: dict[str, object] = orjson.loads(value)
    return out


def test_a_small_payload_is_kept_whole_and_unflagged() -> None:
    record = _record('{"id": 1')
    assert record["payload"] == '{"id": 1' and "payload_truncated" not in record
    assert (record["topic"], record["partition"], record["offset"]) == ("insights.sessions", 2, 41)


@pytest.mark.parametrize("payload", ["x" * (1 << 20), "\x01" * 200_000, '"' * 500_000])
def test_a_payload_that_would_not_fit_keeps_its_start_and_says_so(payload: str) -> None:
    record = _record(payload)
    assert record["payload"] == payload[:TRUNCATED_PAYLOAD_CHARS]
    assert record["payload_truncated"] is True and record["payload_chars"] == len(payload)
