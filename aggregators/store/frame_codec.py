"""Day frames <-> bytes, so API processes share the days one of them folded.

Layout: ``b"F1"``, a 4-byte little-endian header length, an orjson header
(stamp, users, templates, builtin and app totals, array lengths), then the
arrays back to back, little-endian: active masks (int64, templates x users),
minutes (int64), app run masks (int64, apps x users), latency triplets
(user index uint32, bin int32, count int64) and the latency template matrix
(uint8).  Users travel as names: each process interns them in its own index.
"""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt
import orjson

from aggregators.frames import DayFrame, UserIndex, app_frame

MAGIC = b"F1"
_LEN = struct.Struct("<I")
_I64, _U32, _I32, _U8 = np.dtype("<i8"), np.dtype("<u4"), np.dtype("<i4"), np.dtype("u1")
Stamp = tuple[object, ...]


def encode(stamp: Stamp, frame: DayFrame) -> bytes:
    apps = list(frame.apps.items())
    header = {
        "stamp": list(stamp),
        "day": frame.day,
        "users": frame.users,
        "templates": frame.templates,
        "kinds": [
            [m, sorted(t)] for m, t in zip(frame.kind_minutes, frame.kind_templates, strict=True)
        ],
        "apps": [[*entry, app.minutes, sorted(app.templates)] for entry, app in apps],
        "lat": len(frame.lat_user),
    }
    head = orjson.dumps(header)
    n_users = len(frame.users)
    runs = (
        np.stack([app.runs for _, app in apps]) if apps else np.zeros((0, n_users), dtype=np.int64)
    )
    parts: list[npt.NDArray[np.generic]] = [
        frame.active.astype(_I64),
        frame.minutes.astype(_I64),
        runs.astype(_I64),
        frame.lat_user.astype(_U32),
        frame.lat_bin.astype(_I32),
        frame.lat_count.astype(_I64),
        frame.lat_templates.astype(_U8),
    ]
    return b"".join([MAGIC, _LEN.pack(len(head)), head, *(p.tobytes() for p in parts)])


def decode(blob: bytes, index_of: UserIndex) -> tuple[Stamp, DayFrame] | None:
    """The stamp and frame, or None for bytes of another format version."""
    if blob[:2] != MAGIC:
        return None
    (size,) = _LEN.unpack_from(blob, 2)
    header = orjson.loads(blob[6 : 6 + size])
    users: tuple[str, ...] = tuple(header["users"])
    templates: tuple[str, ...] = tuple(header["templates"])
    n_u, n_t, n_a, n_l = len(users), len(templates), len(header["apps"]), header["lat"]
    offset = 6 + size

    def take(dtype: np.dtype[np.generic], count: int) -> npt.NDArray[np.generic]:
        nonlocal offset
        out = np.frombuffer(blob, dtype=dtype, count=count, offset=offset)
        offset += count * dtype.itemsize
        return out

    active = take(_I64, n_t * n_u).reshape(n_t, n_u).astype(np.int64)
    minutes = take(_I64, n_u).astype(np.int64)
    runs = take(_I64, n_a * n_u).reshape(n_a, n_u).astype(np.int64)
    lat_user = take(_U32, n_l).astype(np.int64)
    lat_bin = take(_I32, n_l).astype(np.int64)
    lat_count = take(_I64, n_l).astype(np.int64)
    lat_templates = take(_U8, n_t * n_u).reshape(n_t, n_u).astype(np.bool_)
    user_ids = index_of.ids(users)
    apps = {
        (slug, name, icon): app_frame(minutes_, frozenset(tpls), runs[i], user_ids)
        for i, (slug, name, icon, minutes_, tpls) in enumerate(header["apps"])
    }
    frame = DayFrame(
        header["day"], users, user_ids, templates, active, minutes,
        tuple(m for m, _ in header["kinds"]), tuple(frozenset(t) for _, t in header["kinds"]),
        apps, lat_user, lat_bin, lat_count, lat_templates,
    )  # fmt: skip
    return tuple(header["stamp"]), frame
