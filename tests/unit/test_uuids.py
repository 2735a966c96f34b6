"""google/uuid Parse emulation (api.coder.uuids)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.coder.uuids import UUIDError, parse_uuid

CANONICAL = "1d6d2a3e-8c4b-4f5a-9e7d-0a1b2c3d4e5f"


@pytest.mark.parametrize(
    "value",
    [
        CANONICAL,
        CANONICAL.upper(),
        CANONICAL.replace("-", ""),
        CANONICAL.replace("-", "").upper(),
        "{" + CANONICAL + "}",
        # Go never looks at the wrapping bytes of the 38-byte form.
        "[" + CANONICAL + ")",
        "urn:uuid:" + CANONICAL,
        "URN:UUID:" + CANONICAL.upper(),
    ],
)
def test_accepted_forms(value: str) -> None:
    assert parse_uuid(value) == CANONICAL


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "invalid UUID length: 0"),
        ("abc", "invalid UUID length: 3"),
        (CANONICAL[:-1], "invalid UUID length: 35"),
        (CANONICAL + "0", "invalid UUID length: 37"),
        (" " + CANONICAL, "invalid UUID length: 37"),
        # Lengths are UTF-8 bytes: 3 characters, 6 bytes.
        ("\u00e9\u00e9\u00e9", "invalid UUID length: 6"),
        ("\u00e9" * 16, "invalid UUID format"),
        ("\u00e9" * 18, "invalid UUID format"),
        (CANONICAL.replace("-", "_"), "invalid UUID format"),
        (CANONICAL[:8] + "0" + CANONICAL[9:], "invalid UUID format"),
        ("g" + CANONICAL[1:], "invalid UUID format"),
        ("-" + CANONICAL[1:], "invalid UUID format"),
        ("g" * 32, "invalid UUID format"),
        ("{" + CANONICAL[:8] + "_" + CANONICAL[9:] + "}", "invalid UUID format"),
        ("urn:uuix:" + CANONICAL, 'invalid urn prefix: "urn:uuix:"'),
        ('urn:"uid:' + CANONICAL, 'invalid urn prefix: "urn:\\"uid:"'),
        ("\u00e9n:uuid:" + CANONICAL, 'invalid urn prefix: "\u00e9n:uuid:"'),
        # The 9-byte prefix may end inside a character: Go quotes the stray byte.
        ("urn:uuid\u00e9" + CANONICAL[1:], 'invalid urn prefix: "urn:uuid\\xc3"'),
        ("urn:uuid:" + CANONICAL.replace("-", "+"), "invalid UUID format"),
    ],
)
def test_errors(value: str, message: str) -> None:
    with pytest.raises(UUIDError) as excinfo:
        parse_uuid(value)
    assert str(excinfo.value) == message


@given(st.uuids(), st.sampled_from(["str", "hex", "urn", "braces"]), st.booleans())
def test_agrees_with_python_uuid(value: uuid.UUID, form: str, upper: bool) -> None:
    text = {
        "str": str(value),
        "hex": value.hex,
        "urn": value.urn,
        "braces": "{" + str(value) + "}",
    }[form]
    assert parse_uuid(text.upper() if upper else text) == str(value)
