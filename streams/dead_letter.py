"""Dead-letter records for refused events (``docs/events.md``, "Dead letters").

The worker publishes one record per ``Rejection`` to ``insights.dead_letter``, with
the original message key as the record key.  The metric label of a rejection is its
``code`` (one of ``streams.decoding.REASON_CODES``, or ``STORE_ERROR``), so no reason
parsing is needed.

Valid events land here too when the store refuses their batch with an error that
retrying cannot cure (``streams.worker``): same record, reason ``store_error: <type>``
(the exception's type only; the details, which may name internal hosts, go to the log).
The store may have taken part of such a batch (one script call per day); producing the
records' payloads to their topic again once the cause is fixed counts each event once
(the rollups are idempotent; latency samples within the dedupe horizon).
"""

from __future__ import annotations

import base64

import orjson

from streams.decoding import Rejection

__all__ = ["STORE_ERROR", "dead_letter_record", "key_text", "store_error_reason"]

#: Reason code (metric label) of events whose batch the store refused for good.
STORE_ERROR = "store_error"

#: Largest record the worker publishes: under the producer's and Kafka's default 1 MB limits.
#: A refused message of up to 1 MiB can grow past them when repeated as JSON text (escapes
#: take up to 6 bytes a character) or base64.
MAX_RECORD_BYTES = 900_000
#: Characters of the payload a too-large record keeps (6 bytes each at worst: still fits).
TRUNCATED_PAYLOAD_CHARS = 100_000


def key_text(key: bytes | None) -> str | None:
    """A message key as the record carries it: text, base64 when not UTF-8, or None."""
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(key).decode("ascii")


def dead_letter_record(
    topic: str, partition: int, offset: int, key: bytes | None, rej: Rejection
) -> bytes:
    """The JSON value of the dead-letter record for one rejection.

    ``payload`` is already text or base64 (``rej.payload_encoding`` says which); the
    spec's record has no field for the encoding, so none is added here.  A record that
    would exceed ``MAX_RECORD_BYTES`` keeps the payload's first characters and says so
    (``payload_truncated``, ``payload_chars``).
    """
    record: dict[str, object] = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "index": rej.index,
        "key": key_text(key),
        "reason": rej.reason,
        "payload": rej.payload,
    }
    value = orjson.dumps(record)
    if len(value) <= MAX_RECORD_BYTES:
        return value
    # The message itself stays at (topic, partition, offset); the record keeps its start.
    record["payload"] = rej.payload[:TRUNCATED_PAYLOAD_CHARS]
    record["payload_truncated"] = True
    record["payload_chars"] = len(rej.payload)
    return orjson.dumps(record)


def store_error_reason(exc: BaseException) -> str:
    """The one-line reason of events dead-lettered because the store refused their batch."""
    return f"{STORE_ERROR}: {type(exc).__name__}"
