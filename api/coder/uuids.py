"""Emulation of ``uuid.Parse`` from ``github.com/google/uuid`` (v1.6).

Coder parses ``template_ids`` with it and echoes its error texts, so the
accepted forms and messages are reproduced exactly:

* 36 bytes ``xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx``;
* 45 bytes ``urn:uuid:`` (prefix case-insensitive) + the 36-byte form;
* 38 bytes: the 36-byte form wrapped in one byte on each side.  Go documents
  ``{...}`` but never looks at the wrapping bytes, so neither do we;
* 32 bytes: hex digits only.

Lengths are UTF-8 byte lengths, as Go's ``len(s)``.  Hex is case-insensitive.
"""

from __future__ import annotations

from api.coder.gotime import go_bytes, go_quote

_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_DASHES = (8, 13, 18, 23)
_URN_PREFIX = b"urn:uuid:"


class UUIDError(ValueError):
    """``str(err)`` is google/uuid's error text."""


def parse_uuid(value: str) -> str:
    """Parse like google/uuid and return the lowercase canonical text."""
    data = go_bytes(value)
    if len(data) == 32:
        return _canonical(_hex_or_fail(data))
    if len(data) == 45:
        if data[:9].lower() != _URN_PREFIX:
            raise UUIDError(f"invalid urn prefix: {go_quote(data[:9])}")
        data = data[9:]
    elif len(data) == 38:
        data = data[1:37]
    elif len(data) != 36:
        raise UUIDError(f"invalid UUID length: {len(data)}")
    if any(data[i] != 0x2D for i in _DASHES):
        raise UUIDError("invalid UUID format")
    return _canonical(_hex_or_fail(data.replace(b"-", b"")))


def _hex_or_fail(digits: bytes) -> bytes:
    # Google checks the dashes first, so a misplaced dash leaves a non-hex byte
    # here and is reported with the same "invalid UUID format" text.
    if len(digits) != 32 or not all(byte in _HEX_DIGITS for byte in digits):
        raise UUIDError("invalid UUID format")
    return digits.lower()


def _canonical(digits: bytes) -> str:
    text = digits.decode("ascii")
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
