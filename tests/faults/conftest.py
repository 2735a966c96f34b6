"""Fault suite: real processes killed, stopped and fed hostile input, every run ending
with the numbers compared to an independent oracle.  Marked ``faults`` (part of
``make test``; ``pytest -m faults`` runs it alone)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)
