"""A Faust app whose Kafka consumer's fetch wait is a setting.

Faust hands aiokafka a fixed ``fetch_max_wait_ms=1500``.  Apache Kafka answers
a fetch as soon as data arrives (``fetch.min.bytes=1``), so there the wait only
bounds idle polls.  Tansu, the embedded broker, answers only when the wait
expires: a produced event then reached the worker ~0.5 s later (measured 553 ms
with a bare aiokafka consumer at 1500 ms, 4 ms at 100 ms), which was half of
the 1 s freshness budget.
"""

from __future__ import annotations

from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    fetch_max_wait_ms = 500

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads it when the consumer starts; the consumer is not started yet.
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer


def _transport(fetch_max_wait_ms: int) -> type[faust_aiokafka.Transport]:
    thread = type("ConsumerThread", (_ConsumerThread,), {"fetch_max_wait_ms": fetch_max_wait_ms})

    class Consumer(faust_aiokafka.Consumer):
        Thread = thread

        def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
            return thread(self, loop=self.loop, beacon=self.beacon)  # type: ignore[no-any-return]

    return type("Transport", (faust_aiokafka.Transport,), {"Consumer": Consumer})


class App(faust.App):
    """``faust.App`` with ``fetch_max_wait_ms`` for its worker consumer."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        self._transport_class = _transport(fetch_max_wait_ms)
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        return self._transport_class(self.conf.broker_consumer, self)
