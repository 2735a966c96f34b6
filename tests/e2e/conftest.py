from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.e2e.stack import Stack, running_stack

_db = itertools.count(1)  # Redis database per stack: stacks never share data


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, redis_url: str) -> Iterator[Stack]:
    with running_stack(kafka_bootstrap, redis_url, next(_db)) as s:
        yield s


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
