"""``insights worker`` over a store with two injected faults, for ``test_store_errors.py``.

Run as ``python -m tests.e2e.faulty_worker worker``. Batches holding an event of
``POISON_DAY`` fail for good with what Redis answers when the rollup script breaks on a
malformed operation (a ``ResponseError``); the first ``FLAKY_FAILURES`` batches holding an
event of ``FLAKY_DAY`` fail with a refused connection, then go through. Everything else is
the real worker on the real store.
"""

from __future__ import annotations

from datetime import UTC, datetime

from redis import exceptions as redis_errors

from aggregators.ops import BatchPlan
from aggregators.store import RollupStore
from aggregators.timebase import US_PER_DAY
from streams.workloads import epoch_us

POISON_AT = datetime(2024, 9, 3, tzinfo=UTC)
FLAKY_AT = datetime(2024, 9, 4, tzinfo=UTC)
POISON_DAY = epoch_us(POISON_AT) // US_PER_DAY
FLAKY_DAY = epoch_us(FLAKY_AT) // US_PER_DAY
FLAKY_FAILURES = 2
SCRIPT_ERROR = (
    "user_script:87: attempt to perform arithmetic on local 'mask' (a nil value) "
    "script: 5e2a8f, on @user_script:87."
)


def install() -> None:
    real_apply = RollupStore.apply
    flaky_left = [FLAKY_FAILURES]

    async def apply(self: RollupStore, plan: BatchPlan) -> int:
        if POISON_DAY in plan.days:
            raise redis_errors.ResponseError(SCRIPT_ERROR)
        if FLAKY_DAY in plan.days and flaky_left[0] > 0:
            flaky_left[0] -= 1
            raise redis_errors.ConnectionError("Error 111 connecting to 127.0.0.1:6379.")
        return await real_apply(self, plan)

    RollupStore.apply = apply  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    from insights.cli import main

    main()
