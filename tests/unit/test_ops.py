from __future__ import annotations

from aggregators.model import AppUsageEvent, LatencyEvent, SessionEvent
from aggregators.ops import MetaUpdate, plan_batch

T = "00000000-0000-0000-0000-000000000001"
U = "00000000-0000-0000-0000-000000000004"
MIN = 60_000_000


def _s(id_: str, minute: int, sec: int, kinds: int, conn: int = 1) -> SessionEvent:
    return SessionEvent(
        id_, minute * MIN + sec * 1_000_000, U, "user1", "", T, "w", "a", conn, kinds
    )


def test_reports_of_one_cell_collapse_to_one_op() -> None:
    plan = plan_batch([_s("1", 0, 0, 0b01000), _s("2", 0, 30, 0b01000), _s("3", 1, 0, 0b00001)])
    assert plan.days == {0: [["s", T, U, 0, 0b11, 1, 0b10, 0, 0, 0b01, 0]]}


def test_report_without_sessions_contributes_nothing_but_the_profile() -> None:
    plan = plan_batch([_s("1", 0, 0, 0, conn=1)])
    assert plan.days == {}
    assert plan.meta == [MetaUpdate("u", U, "", 0, "1", "user1", "")]


def test_app_session_spans_cells_and_days() -> None:
    start = 1439 * MIN  # 23:59 of day 0
    e = AppUsageEvent(
        "a",
        start + 2 * MIN,
        "s",
        U,
        "user1",
        "",
        T,
        "w",
        "g",
        "path",
        "app1",
        "App 1",
        "/i.png",
        start,
        start + 2 * MIN,
        1,
    )
    plan = plan_batch([e])
    assert plan.days[0] == [["p", T, U, 47, "app1", 1 << 29]]
    assert plan.days[1] == [["p", T, U, 0, "app1", 1]]
    assert MetaUpdate("a", T, "app1", start + 2 * MIN, "a", "App 1", "/i.png") in plan.meta


def test_terminal_and_ports_are_not_catalogued() -> None:
    term = AppUsageEvent(
        "t", MIN, "s", U, "u", "", T, "w", "g", "terminal", "ignored", None, None, 0, MIN, 1
    )
    port = AppUsageEvent(
        "p", MIN, "s2", U, "u", "", T, "w", "g", "path", "8080", None, None, 0, MIN, 1
    )
    plan = plan_batch([term, port])
    assert [op[4] for op in plan.days[0]] == ["[terminal]", "8080"]
    assert all(m.kind == "u" for m in plan.meta)


def test_newest_profile_wins_within_a_batch() -> None:
    old = _s("9", 0, 0, 1)._replace(username="old")
    new = _s("1", 5, 0, 1)._replace(username="new")
    plan = plan_batch([new, old])
    assert [m.name for m in plan.meta] == ["new"]


def test_latency_ops_carry_a_digest_per_event() -> None:
    plan = plan_batch([LatencyEvent("x", 0, U, T, "w", "a", 31.3)] * 2)
    ops = plan.days[0]
    assert len(ops) == 2 and ops[0] == ops[1]  # the store's HSETNX keeps one
