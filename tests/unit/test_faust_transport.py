"""The worker's Faust app hands its fetch wait to aiokafka (Faust hard-codes 1500 ms)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.faust_transport import App


def test_worker_consumer_gets_the_configured_fetch_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    def faust_default(self: Any, transport: Any) -> Any:
        return SimpleNamespace(_fetch_max_wait_ms=1500)

    monkeypatch.setattr(
        faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer", faust_default
    )
    app = App("fetch-wait-test", broker="kafka://127.0.0.1:1", fetch_max_wait_ms=123)
    thread = object.__new__(app.transport.Consumer.Thread)
    assert thread._create_worker_consumer(app.transport)._fetch_max_wait_ms == 123
