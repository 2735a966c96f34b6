"""Go-compatible time parsing and formatting for the insights API.

Coder parses ``start_time``/``end_time`` with ``time.Parse(time.RFC3339, s)`` and
echoes the error text to clients, and it renders times with Go's RFC 3339
marshalling.  To give byte-identical answers this module re-implements the
parts of Go's ``time`` package involved (``src/time/format.go``):

* the generic layout parser walking ``2006-01-02T15:04:05Z07:00`` element by
  element, with its leniencies (one-digit hour, ``.`` or ``,`` before a
  fractional second of any length, ``+24:60`` offsets) and its error texts;
* Go's private ``quote`` (hex-escapes every non-ASCII byte), used in those texts;
* ``strconv.Quote`` (``%q``), used by Coder's other messages;
* ``strings.TrimSpace`` (Go's notion of white space differs from Python's).

Parsing works on UTF-8 bytes, as Go does, so lengths and the "rest of input"
slices in error texts match Go for any input.  Instants are integer epoch
nanoseconds, which also covers years 0..9999 that ``datetime`` cannot hold.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from aggregators.timebase import NS_PER_DAY, NS_PER_HOUR, NS_PER_MIN, NS_PER_S

RFC3339_LAYOUT = "2006-01-02T15:04:05Z07:00"

# Go's zero time.Time, 0001-01-01T00:00:00Z, as Unix epoch nanoseconds.
ZERO_TIME_EPOCH_NS = -62_135_596_800 * NS_PER_S

# unicode.IsSpace: the Latin-1 spaces plus the other White_Space code points.
# Python's str.isspace() also counts U+001C..U+001F, which Go does not.
GO_WHITESPACE = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_HEX = "0123456789abcdef"


class GoTimeError(ValueError):
    """A parse failure; ``str(err)`` is exactly Go's ``ParseError.Error()``."""


def go_bytes(value: str) -> bytes:
    """UTF-8 bytes of *value*, mapping surrogate-escaped bytes back to raw bytes."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def go_trim_space(value: str) -> str:
    """``strings.TrimSpace``."""
    return value.strip(GO_WHITESPACE)


def time_quote(data: bytes) -> str:
    """The ``quote`` helper of Go's time package: non-ASCII bytes become ``\\xNN``."""
    out = ['"']
    for byte in data:
        if byte < 0x20 or byte >= 0x80:
            out.append("\\x" + _HEX[byte >> 4] + _HEX[byte & 0xF])
        else:
            if byte in (0x22, 0x5C):  # '"' and '\\'
                out.append("\\")
            out.append(chr(byte))
    out.append('"')
    return "".join(out)


_NAMED_ESCAPES = {c: "\\" + n for c, n in zip("\a\b\f\n\r\t\v", "abfnrtv", strict=True)}


def go_quote(value: str | bytes) -> str:
    """``strconv.Quote`` / ``fmt.Sprintf("%q")``; printability follows Python's Unicode data."""
    data = go_bytes(value) if isinstance(value, str) else value
    out = ['"']
    for char in data.decode("utf-8", "surrogateescape"):
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # an invalid UTF-8 byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char in ('"', "\\"):
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif char in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[char])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in_month(month: int, year: int) -> int:
    if month == 2:
        return 29 if is_leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year, incl. 0)."""
    if month <= 2:  # count years from March so the leap day ends a year
        year -= 1
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def civil_from_days(days: int) -> tuple[int, int, int]:
    """Inverse of :func:`days_from_civil`."""
    days += 719_468
    era = days // 146_097
    doe = days - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return year, month, day


@dataclass(frozen=True)
class GoTime:
    """An instant plus the fixed offset it was written in (Go's ``FixedZone``).

    ``epoch_ns`` is UTC epoch nanoseconds, ``offset_s`` seconds east of UTC and
    ``raw`` the text as received (echoed by some error messages).
    """

    epoch_ns: int
    offset_s: int
    raw: str = ""

    def _local_ns(self) -> int:
        return self.epoch_ns + self.offset_s * NS_PER_S

    def _clock_ns(self) -> int:
        return self._local_ns() % NS_PER_DAY

    @property
    def hour(self) -> int:
        return self._clock_ns() // NS_PER_HOUR

    @property
    def minute(self) -> int:
        return self._clock_ns() // NS_PER_MIN % 60

    @property
    def second(self) -> int:
        return self._clock_ns() // NS_PER_S % 60

    @property
    def nanosecond(self) -> int:
        return self._clock_ns() % NS_PER_S

    def ymd(self) -> tuple[int, int, int]:
        """The calendar date on the wall clock of ``offset_s``."""
        return civil_from_days(self._local_ns() // NS_PER_DAY)

    def date(self) -> dt.date:
        """Like :meth:`ymd`; raises ``ValueError`` for year 0, which ``date`` cannot hold."""
        return dt.date(*self.ymd())

    def is_zero(self) -> bool:
        """Go's ``Time.IsZero``: the instant (not the wall clock) is year 1 UTC midnight."""
        return self.epoch_ns == ZERO_TIME_EPOCH_NS

    def epoch_ms_floor(self) -> int:
        return self.epoch_ns // 1_000_000

    def epoch_ms_ceil(self) -> int:
        return -(-self.epoch_ns // 1_000_000)

    def format(self) -> str:
        return format_rfc3339(self.epoch_ns, self.offset_s)


def format_rfc3339(epoch_ns: int, offset_s: int) -> str:
    """Go's ``Time.MarshalJSON`` text (RFC3339Nano) of an instant in a fixed offset."""
    local = epoch_ns + offset_s * NS_PER_S
    year, month, day = civil_from_days(local // NS_PER_DAY)
    clock_s, nanos = divmod(local % NS_PER_DAY, NS_PER_S)
    sign = "-" if year < 0 else ""
    text = f"{sign}{abs(year):04d}-{month:02d}-{day:02d}T"
    text += f"{clock_s // 3600:02d}:{clock_s // 60 % 60:02d}:{clock_s % 60:02d}"
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + _format_offset(offset_s)


def _format_offset(offset_s: int) -> str:
    if offset_s == 0:
        return "Z"
    # Go divides with truncation toward zero and takes the sign from the minutes.
    minutes = abs(offset_s) // 60
    sign = "-" if offset_s < 0 and minutes else "+"
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def parse_rfc3339(value: str) -> GoTime:
    """``time.Parse(time.RFC3339, value)``, keeping the written offset."""
    return _Parser(value).parse()


def _is_digit(data: bytes, index: int) -> bool:
    return index < len(data) and 0x30 <= data[index] <= 0x39


def _getnum(data: bytes, fixed: bool) -> tuple[int, bytes, bool]:
    """Go's ``getnum``: one or two leading digits (two when *fixed*)."""
    if not _is_digit(data, 0):
        return 0, data, False
    if not _is_digit(data, 1):
        if fixed:
            return 0, data, False
        return data[0] - 0x30, data[1:], True
    return (data[0] - 0x30) * 10 + data[1] - 0x30, data[2:], True


class _Parser:
    """One pass over the RFC 3339 layout; ``rest`` is the unconsumed input."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.rest = go_bytes(value)

    def _cannot_parse(self, rest: bytes, element: str) -> GoTimeError:
        return GoTimeError(
            f"parsing time {time_quote(go_bytes(self.value))} as "
            f'"{RFC3339_LAYOUT}": cannot parse {time_quote(rest)} as "{element}"'
        )

    def _failure(self, message: str) -> GoTimeError:
        return GoTimeError(f"parsing time {time_quote(go_bytes(self.value))}: {message}")

    def parse(self) -> GoTime:
        year = self._year()
        self._literal(b"-")
        month = self._number("01", fixed=True, limit=12, what="month", minimum=1)
        self._literal(b"-")
        day = self._number("02", fixed=True)
        self._literal(b"T")
        hour = self._number("15", fixed=False, limit=23, what="hour")
        self._literal(b":")
        minute = self._number("04", fixed=True, limit=59, what="minute")
        self._literal(b":")
        second = self._number("05", fixed=True, limit=59, what="second")
        nanos = self._fraction()
        offset = self._zone()
        if self.rest:
            raise self._failure(f"extra text: {time_quote(self.rest)}")
        # Go validates the day against month and year only after the whole input.
        if not 1 <= day <= days_in_month(month, year):
            raise self._failure("day out of range")
        seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60
        epoch_ns = (seconds + second - offset) * NS_PER_S + nanos
        return GoTime(epoch_ns=epoch_ns, offset_s=offset, raw=self.value)

    def _literal(self, char: bytes) -> None:
        if self.rest[:1] != char:
            raise self._cannot_parse(self.rest, char.decode())
        self.rest = self.rest[1:]

    def _year(self) -> int:
        digits = self.rest[:4]
        if len(digits) < 4 or not all(_is_digit(digits, i) for i in range(4)):
            raise self._cannot_parse(self.rest, "2006")
        self.rest = self.rest[4:]
        return int(digits)

    def _number(
        self, element: str, fixed: bool, limit: int = 99, what: str = "", minimum: int = 0
    ) -> int:
        number, rest, ok = _getnum(self.rest, fixed)
        if not ok:
            raise self._cannot_parse(self.rest, element)
        if not minimum <= number <= limit:
            raise self._failure(f"{what} out of range")
        self.rest = rest
        return number

    def _fraction(self) -> int:
        """Go accepts a fraction after the seconds even though the layout has none."""
        rest = self.rest
        if len(rest) < 2 or rest[0] not in b".," or not _is_digit(rest, 1):
            return 0
        end = 2
        while _is_digit(rest, end):
            end += 1
        digits = rest[1:end][:9]  # precision beyond nanoseconds is dropped
        self.rest = rest[end:]
        return int(digits.ljust(9, b"0"))

    def _zone(self) -> int:
        rest = self.rest
        if rest[:1] == b"Z":
            self.rest = rest[1:]
            return 0
        if len(rest) < 6 or rest[3:4] != b":":
            raise self._cannot_parse(rest, "Z07:00")
        hours, _, ok = _getnum(rest[1:3], True)
        minutes, _, minutes_ok = _getnum(rest[4:6], True) if ok else (0, b"", False)
        # Go checks the ranges (> rather than >=) before looking at parse errors.
        if minutes > 60:
            raise self._failure("time zone offset minute out of range")
        if hours > 24:
            raise self._failure("time zone offset hour out of range")
        if not (ok and minutes_ok) or rest[0] not in b"+-":
            raise self._cannot_parse(rest, "Z07:00")
        self.rest = rest[6:]
        offset = (hours * 60 + minutes) * 60
        return -offset if rest[0] == 0x2D else offset
