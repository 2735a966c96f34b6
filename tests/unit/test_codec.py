"""The store's field layouts decode into the core's records (no server needed)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aggregators.model import BuildEvent, BuildParameter, ParameterOption
from aggregators.ops import MetaUpdate
from aggregators.records import HalfHourCell, LatencyCounts
from aggregators.store import codec

T, W, U = "t-1", "w-1", "u-1"


def test_cell_fields_decode_per_half_hour() -> None:
    bins = codec.pack_cell_bins({130: 2, 131: 1})
    raw = {"3": "Ac=..=.Cc", "3|app1": "Cc", "47": "-Aa", "5": "/" + bins, "6": "*", "6l": bins}
    cells, latency = codec.cell(raw)
    assert cells[3] == HalfHourCell(7, True, 4, [7, 0, 0, 7, 0], {"app1": 4})
    assert cells[47] == HalfHourCell(agent=1)
    assert cells[6] == HalfHourCell(codec.FULL_MASK, True)
    assert 5 not in cells  # latency samples only
    assert latency == {5: {"130": 2, "131": 1}, 6: {"130": 2, "131": 1}}


def test_a_working_half_hour_takes_a_few_characters() -> None:
    full = codec.FULL_MASK
    assert codec.half_hour_text(HalfHourCell(full, True, 0, [full, 0, 0, full, 0])) == "*=..="
    assert codec.half_hour_text(HalfHourCell(full, False)) == "-*"
    assert codec.half_hour_text(HalfHourCell()) == ""
    assert codec.half_hour_text(HalfHourCell(connected=True)) == "."
    assert codec.mask_token(0b1110) == "Bd" and codec.mask_token(0b101) == "#5" + "0" * 5


_MASKS = st.one_of(
    st.integers(0, codec.FULL_MASK),
    st.builds(
        lambda a, n: ((1 << n) - 1) << a & codec.FULL_MASK, st.integers(0, 29), st.integers(1, 30)
    ),
    st.just(codec.FULL_MASK),
    st.just(0),
)


@given(_MASKS, st.booleans(), _MASKS, st.lists(_MASKS, min_size=5, max_size=5), st.data())
def test_half_hour_masks_round_trip(
    agent: int, connected: bool, apps: int, kinds: list[int], data: st.DataObject
) -> None:
    # Kinds and apps often equal the agent minutes: that is what "=" is for.
    kinds = [data.draw(st.sampled_from([k, agent])) for k in kinds]
    apps = data.draw(st.sampled_from([apps, agent]))
    cell = HalfHourCell(agent, connected, apps, kinds)
    text = codec.half_hour_text(cell)
    assert text.isascii() and text.isprintable() and "/" not in text
    if text:
        assert codec.half_hour(text) == cell
    else:
        assert cell == HalfHourCell()
    for mask in (agent, apps, *kinds):
        token = codec.mask_token(mask)
        assert codec.half_hour("-" + token).agent == mask
        runs = [r for r in f"{mask:b}".split("0") if r]
        assert len(token) <= 2 or len(runs) > 1  # one run of minutes: two characters


def test_cell_members_come_from_the_user_templates_hash() -> None:
    assert codec.cell_members({b"u2": b"t1", "u1": "t2|t1"}) == ["t1|u1", "t1|u2", "t2|u1"]


def test_tool_minutes_split_kinds_apps_and_runs() -> None:
    x = codec.tool_minutes({"k|0": "12", "p|app1": "5", "r|app1|" + U: "6", "p|8080": "2"})
    assert x.kinds == {0: 12}
    assert x.apps == {"app1": 5, "8080": 2}
    assert x.runs == {"app1": {U: 6}}


@given(st.integers(1, (1 << 48) - 1), st.integers(0, 48 * 30))
def test_usage_values_round_trip_as_one_64_bit_integer(mask: int, minutes: int) -> None:
    value = codec.usage_value(mask, minutes)
    assert value.isdigit() and int(value) < 1 << 63  # the server's integer listpack entry
    assert codec.usage({"u": value}) == ({"u": mask}, {"u": minutes})


def _rows(counts: LatencyCounts) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for i, b, n in zip(counts.user, counts.bins, counts.counts, strict=True):
        per = out.setdefault(counts.users[i], {})
        per[str(b)] = per.get(str(b), 0) + int(n)
    return out


@given(
    st.dictionaries(
        st.text("abc", min_size=1, max_size=3),
        st.dictionaries(
            st.one_of(st.integers(-200, 1200), st.integers(-(10**9), 10**9)),
            st.one_of(st.integers(1, 3), st.integers(1, 10**12)),
            min_size=1,
            max_size=80,
        ),
        max_size=8,
    )
)
def test_day_bins_decode_for_all_users_at_once_as_one_by_one(
    per_user: dict[str, dict[int, int]],
) -> None:
    raw = {u: codec.pack_bins(bins) for u, bins in per_user.items()}
    expected = {u: codec.unpack_bins(text) for u, text in raw.items()}
    assert _rows(codec.latency_counts(raw)) == expected


@given(st.dictionaries(st.integers(-(10**6), 10**6), st.integers(1, 10**9), max_size=300))
def test_packed_bins_round_trip(bins: dict[int, int]) -> None:
    packed = codec.pack_bins(bins)
    assert packed.isascii() and packed.isprintable()
    assert codec.unpack_bins(packed) == {str(b): n for b, n in bins.items()}


def test_packed_bins_take_one_character_per_close_small_entry() -> None:
    # The first entry: bin 200 zigzagged (400, three octal digits) and its count.
    assert len(codec.pack_bins({b: 39 for b in range(200, 240)})) == 3 + 2 + 39
    assert len(codec.pack_bins({200: 1, 205: 1, 206: 4, 208: 6, 230: 1})) == 3 + 1 + 4
    # Past the one-symbol entries: a varint of the gap and one of the count.
    assert len(codec.pack_bins({200: 1, 201: 40, 226: 1, 229: 5})) == 4 + 3 + 3 + 2


@given(
    st.dictionaries(
        st.one_of(st.integers(100, 160), st.integers(-(10**6), 10**6)),
        st.one_of(st.integers(1, 4), st.integers(1, 10**9)),
        min_size=1,
        max_size=300,
    )
)
def test_half_hour_bins_round_trip(bins: dict[int, int]) -> None:
    packed = codec.pack_cell_bins(bins)
    assert packed.isascii() and packed.isprintable() and "\\" not in packed
    assert codec.unpack_cell_bins(packed) == {str(b): n for b, n in bins.items()}


def test_half_hour_bins_take_one_character_per_two_common_entries() -> None:
    # The first entry: bin 200 zigzagged (400, three base-16 digits) and its count.
    assert len(codec.pack_cell_bins({b: 1 for b in range(200, 240)})) == 3 + 1 + 20
    assert len(codec.pack_cell_bins({200: 1, 205: 4, 206: 1})) == 4 + 1 + 1
    assert len(codec.pack_cell_bins({200: 1, 230: 1})) == 4 + 2 + 1  # gap 30: a varint


def test_build_upsert_round_trips_through_the_stored_payload() -> None:
    option = ParameterOption("EU", "", "eu", "/e.svg")
    param = BuildParameter("region", "string", "Region", "Where", (option,), "eu")
    event = BuildEvent("id-1", 1_700_000_000_000_000, T, W, U, 4, (param,))
    op = codec.build_op(event)
    assert op[:4] == ["b", f"{T}|{W}|4", "1700000000000000", "id-1"]
    ((digest, definition, value),) = op[5]  # type: ignore[misc]
    # What rollup.lua stores: the definition under a number, the build naming it.
    stored = f"{op[4]},1,{value}]"
    defs = codec.param_defs({"#": "1", f"#{digest}": "1", "1": definition})
    assert len(defs) == 1 and "value" not in defs["1"]
    build = codec.stored_build(str(op[1]), stored, defs)
    assert (build.template_id, build.workspace_id, build.build_number) == (T, W, 4)
    assert build.time_us == event.time_us
    assert [u.value for u in build.parameters] == ["eu"]
    assert codec.parse_build_field(str(op[1])) == (T, W, 4, op[1])


def test_meta_updates_name_their_hash_field() -> None:
    app = MetaUpdate("a", T, "app1", 5, "e", "App", "/i.svg")
    assert codec.meta_op(app) == ["a", f"{T}|app1", "5", "e", "App", "/i.svg"]
    user = MetaUpdate("u", U, "", 5, "e", "alice", "")
    assert codec.meta_op(user) == ["u", U, "5", "e", "alice", ""]


def test_replies_decode_from_bytes_or_text() -> None:
    assert codec.str_hash({b"a": b"1"}) == codec.str_hash({"a": "1"}) == {"a": "1"}
    assert codec.members([b"t2|u", "t1|u"]) == ["t1|u", "t2|u"]


def test_day_frames_round_trip_through_bytes() -> None:
    from aggregators.frames import UserIndex, day_frame
    from aggregators.store import frame_codec
    from aggregators.window import WindowAcc

    acc = WindowAcc(48 * 10, 48 * 11)
    acc.mark_active("u2", "t1", 0b110)
    acc.mark_active("u1", "t2", 1 << 47)
    acc.minutes["u2"] = 17
    acc.kind_minutes[3] = 17
    acc.kind_templates[3].add("t1")
    app = acc.app(("app1", "App", "/a.svg"))
    app.minutes, app.runs["u2"] = 5, 0b10
    app.templates.add("t1")
    acc.add_latency("u1", "t2", {"130": 2, "7": 1})
    writer, reader = UserIndex(), UserIndex()
    reader.ids(("other",))  # another process interns users in another order
    frame = day_frame(acc, 10, writer)
    stamp, back = frame_codec.decode(frame_codec.encode(("5", "2"), frame), reader) or ((), None)
    assert stamp == ("5", "2") and back is not None
    assert reader.names(back.user_ids) == list(frame.users)
    for name in ("active", "minutes", "lat_user", "lat_bin", "lat_count", "lat_templates"):
        assert (getattr(back, name) == getattr(frame, name)).all(), name
    assert back.apps.keys() == frame.apps.keys()
    assert (back.apps[("app1", "App", "/a.svg")].runs == app_runs(frame)).all()
    assert back.kind_minutes == frame.kind_minutes and back.kind_templates == frame.kind_templates
    empty = day_frame(WindowAcc(0, 48), 0, writer)
    assert frame_codec.decode(frame_codec.encode((None, None), empty), reader) is not None
    assert frame_codec.decode(b"XX", reader) is None


def app_runs(frame: object) -> object:
    return frame.apps[("app1", "App", "/a.svg")].runs  # type: ignore[attr-defined]
