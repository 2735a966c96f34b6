"""A generated deployment and the events it sends: one generator for the simulator, the
demo, the benches and the tests.

Two layers, both seeded and deterministic:

* ``generate(users, seed)`` draws a :class:`Deployment` from ``random.Random(seed)``: five
  templates in two organizations (apps with icons Coder ships; rich parameters whose
  options carry icons: region, CPU, a template's own choice of image, IDE or framework),
  and users in eight cities and time zones (San Francisco to Singapore) with usual working
  hours, a main tool, a latency profile, a main workspace (in the region nearest them for
  75 %, the default us-east-1 for 15 %, anywhere for the rest) and, for 15 %, a second
  one in another template.  Given a
  ``period`` (first and last epoch day), 15 % of the users join during it (on a Monday),
  8 % leave, and users take holidays of one or two weeks (2.5 a year); without one
  everybody is always there (what the benches want).
  ``work_blocks`` says when a user works on a given local day.
* :class:`Simulation` turns a deployment into the wire events of ``docs/events.md``: for
  any time range, exactly the events its agents and control plane sent in it, whatever
  the ranges asked before.  A backfill and the live stream that follows it are slices of
  the same history, and re-running a seed re-sends the same events (same ids: the service
  counts them once).

What a user's working day looks like (:meth:`Simulation.plan`):

* **When.** ``work_blocks``: on 75-97 % of weekdays (a per-user share) a morning of
  1h40-3h20 from a usual start between 07:00 and 10:00 local time (+- 30 min), a lunch of
  40-75 min, an afternoon of 1h10-2h30 and, on 3 days in 4, after 20-90 min of meetings a
  late stretch of 30-120 min (5h15 at the keyboard on average, over about 08:30-16:30);
  on 6 % of weekend days one stretch of 30-120 min between 10:00 and 22:00.  Nothing
  before a user joins, from the day they leave, or during their holiday.
* **Sessions and latency.** While working, the user's agent reports its open sessions
  and one connection-latency sample every 30 s (at a fixed phase per agent): the main
  tool (VS Code 55 %, JetBrains 20 %, SSH 15 %, web terminal 10 %) the whole time, an
  extra SSH session for 10-90 min on some blocks (a per-user 0-40 % of them), SFTP for a
  few minutes on 3 %.  Latency samples are log-normal around a per-user median: the
  round trip from the user's home city to the workspace's region (10 ms + 1.6 ms per
  100 km of great-circle distance) times a personal factor (home network: log-normal
  around x1.16; x1.6 more for the 15 % relayed through DERP), with a per-user spread
  (sigma 0.10-0.35) and a slow tail (0.5-3 % of the samples, x4 median): about 15-40 ms
  near the workspace, 100-250 ms across an ocean.
* **Apps.** 0-3 app sessions per block (the template's first apps the most used) of a
  log-normal length around 35 min, reported every minute while open (the same
  ``session_id``, a growing ``ended_at``); a web-terminal session on 12 % of blocks and a
  port forward on 8 %.
* **Builds.** A morning start build on 85 % of working weekdays (30 % of weekend days)
  a few minutes before the first block, numbered by day; 12 % of builds change a
  parameter (CPU, sometimes the template's own choice).
* **A second template.** Users with a second workspace (15 %) use it on 35 % of their
  working days, 30-120 min inside a block (the cross-template caps apply), with a build.

Every event carries ``template_name`` and ``organization_name``.  Events are built with
``streams.workloads``; the benches build domain tuples from the same deployment.
"""

from __future__ import annotations

import functools
import math
import random
from array import array
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from aggregators.model import KINDS, BuildParameter, ParameterOption
from aggregators.timebase import MIN_PER_DAY, US_PER_DAY, US_PER_MIN, US_PER_S, ceil_div
from streams.workloads import (
    AccessMethod,
    AgentRef,
    App,
    WireEvent,
    app_usage_event,
    build_event,
    counter_uuid,
    latency_event,
    random_uuid,
    rfc3339,
    session_counts,
    session_event,
)

__all__ = [
    "APPS",
    "CODER_ICONS",
    "CPUS",
    "GPUS",
    "HOMES",
    "REGIONS",
    "REPORT_EVERY_US",
    "SECOND_TEMPLATE_SHARE",
    "TEMPLATES",
    "TIME_ZONES",
    "TOOLS",
    "AppSession",
    "Build",
    "DayPlan",
    "Deployment",
    "Home",
    "Simulation",
    "Stretch",
    "Template",
    "TimedEvent",
    "User",
    "Workspace",
    "build_parameters",
    "day_range",
    "generate",
    "is_weekday",
    "round_trip_ms",
    "work_blocks",
]

_T = TypeVar("_T")

# --- icons ------------------------------------------------------------------------------------

# Icons a Coder deployment serves: files of coder/coder's site/static/icon (the ones used
# here), and emoji images under /emojis/ (emoji-datasource file names: code points in hex).
# fmt: off
CODER_ICONS: frozenset[str] = frozenset("/icon/" + name for name in (
    "aws.svg", "clion.svg", "code.svg", "dcv.svg", "debian.svg", "desktop.svg",
    "fedora.svg", "filebrowser.svg", "goland.svg", "grafana.svg", "intellij.svg", "jax.svg",
    "jupyter.svg", "kasmvnc.svg", "memory.svg", "novnc.svg", "pycharm.svg",
    "pytorch.svg", "rider.svg", "rockylinux.svg", "rstudio.svg", "tensorflow.svg",
    "terminal.svg", "ubuntu.svg", "webstorm.svg",
))
# fmt: on


def _emoji(code_points: str) -> str:
    return f"/emojis/{code_points}.png"


# --- templates and their apps -----------------------------------------------------------------

# Template apps by slug: what an app-usage event's ``app`` object says about them.
APPS: dict[str, App] = {
    "code-server": App("code-server", "/icon/code.svg"),
    "jupyter": App("Jupyter Notebook", "/icon/jupyter.svg"),
    "filebrowser": App("File Browser", "/icon/filebrowser.svg"),
    "grafana": App("Grafana", "/icon/grafana.svg"),
    "tensorboard": App("TensorBoard", "/icon/tensorflow.svg"),
    "novnc": App("Desktop (noVNC)", "/icon/novnc.svg"),
    "kasmvnc": App("KasmVNC", "/icon/kasmvnc.svg"),
    "dcv": App("Amazon DCV", "/icon/dcv.svg"),
    "rdp": App("Web RDP", "/icon/desktop.svg"),
    "rstudio": App("RStudio", "/icon/rstudio.svg"),
    "ttyd": App("Terminal", "/icon/terminal.svg"),
}


def _choice(
    name: str, display: str, description: str, options: Sequence[tuple[str, str, str, str]]
) -> BuildParameter:
    """A ``string`` parameter with options (name, description, value, icon); its value is
    the first option's (the default)."""
    opts = tuple(ParameterOption(*o) for o in options)
    return BuildParameter(name, "string", display, description, opts, opts[0].value)


@dataclass(frozen=True)
class Template:
    template_id: str
    name: str
    apps: tuple[str, ...]  # slugs of APPS, the most used first
    weight: float  # relative share of users whose main template it is
    organization: str = "coder"  # the organization the template belongs to
    parameters: tuple[BuildParameter, ...] = ()  # its own rich parameters (values: defaults)


_IMAGES = _choice(
    "image",
    "Base image",
    "The container image of the workspace.",
    (
        ("Ubuntu 24.04", "Noble Numbat", "ubuntu", "/icon/ubuntu.svg"),
        ("Debian 12", "Bookworm", "debian", "/icon/debian.svg"),
        ("Fedora 40", "", "fedora", "/icon/fedora.svg"),
        ("Rocky Linux 9", "RHEL compatible", "rocky", "/icon/rockylinux.svg"),
    ),
)
_JETBRAINS = _choice(
    "jetbrains_ide",
    "JetBrains IDE",
    "Pre-install a JetBrains IDE backend for **Gateway**.",
    (
        ("None", "", "none", ""),
        ("GoLand", "", "GO", "/icon/goland.svg"),
        ("IntelliJ IDEA", "Ultimate", "IU", "/icon/intellij.svg"),
        ("PyCharm", "Professional", "PY", "/icon/pycharm.svg"),
        ("WebStorm", "", "WS", "/icon/webstorm.svg"),
    ),
)
_FRAMEWORKS = _choice(
    "framework",
    "ML framework",
    "Installed in the workspace's Python environment.",
    (
        ("PyTorch", "2.x with CUDA", "pytorch", "/icon/pytorch.svg"),
        ("TensorFlow", "", "tensorflow", "/icon/tensorflow.svg"),
        ("JAX", "", "jax", "/icon/jax.svg"),
    ),
)
_AMI = _choice(
    "ami",
    "Machine image",
    "",
    (
        ("Ubuntu 22.04", "", "ubuntu-22.04", "/icon/ubuntu.svg"),
        ("Amazon Linux 2023", "", "al2023", "/icon/aws.svg"),
        ("Debian 12", "", "debian-12", "/icon/debian.svg"),
    ),
)
_WINDOWS_IDE = _choice(
    "ide",
    "IDE",
    "Installed on the Windows desktop.",
    (
        ("Visual Studio Code", "", "vscode", "/icon/code.svg"),
        ("Rider", ".NET", "rider", "/icon/rider.svg"),
        ("CLion", "C and C++", "clion", "/icon/clion.svg"),
    ),
)
TEMPLATES: tuple[Template, ...] = (
    Template(
        "20000000-0000-4000-8000-000000000001",
        "docker",
        ("code-server", "jupyter", "filebrowser"),
        0.35,
        parameters=(_IMAGES,),
    ),
    Template(
        "20000000-0000-4000-8000-000000000002",
        "kubernetes",
        ("code-server", "grafana", "filebrowser", "ttyd"),
        0.25,
        parameters=(_JETBRAINS,),
    ),
    Template(
        "20000000-0000-4000-8000-000000000003",
        "gpu-ml",
        ("jupyter", "tensorboard", "code-server", "rstudio"),
        0.15,
        organization="data-science",
        parameters=(_FRAMEWORKS,),
    ),
    Template(
        "20000000-0000-4000-8000-000000000004",
        "aws-linux",
        ("code-server", "filebrowser", "dcv", "kasmvnc"),
        0.15,
        parameters=(_AMI,),
    ),
    Template(
        "20000000-0000-4000-8000-000000000005",
        "azure-windows",
        ("rdp", "code-server", "filebrowser", "novnc"),
        0.10,
        parameters=(_WINDOWS_IDE,),
    ),
)

# --- where people and workspaces are -----------------------------------------------------------


@dataclass(frozen=True)
class Home:
    """A city users work from: its time zone and where it is."""

    city: str
    tz_min: int  # minutes east of UTC
    lat: float
    lon: float
    region: str  # the nearest cloud region (a REGIONS value)


# One home per time zone of TIME_ZONES.
HOMES: dict[int, Home] = {
    h.tz_min: h
    for h in (
        Home("San Francisco", -480, 37.77, -122.42, "us-west-2"),
        Home("New York", -300, 40.71, -74.01, "us-east-1"),
        Home("Sao Paulo", -180, -23.55, -46.63, "sa-east-1"),
        Home("London", 0, 51.51, -0.13, "eu-west-1"),
        Home("Berlin", 60, 52.52, 13.40, "eu-central-1"),
        Home("Helsinki", 120, 60.17, 24.94, "eu-central-1"),
        Home("Bangalore", 330, 12.97, 77.59, "ap-south-1"),
        Home("Singapore", 480, 1.35, 103.82, "ap-southeast-1"),
    )
}
# (minutes east of UTC, share of users)
TIME_ZONES: tuple[tuple[int, float], ...] = (
    (-480, 0.15),
    (-300, 0.25),
    (-180, 0.10),
    (0, 0.10),
    (60, 0.20),
    (120, 0.05),
    (330, 0.10),
    (480, 0.05),
)
assert {tz for tz, _ in TIME_ZONES} == set(HOMES)

_US, _IE, _DE, _IN, _SG, _BR = (
    _emoji(c)
    for c in (
        "1f1fa-1f1f8",
        "1f1ee-1f1ea",
        "1f1e9-1f1ea",
        "1f1ee-1f1f3",
        "1f1f8-1f1ec",
        "1f1e7-1f1f7",
    )
)
REGIONS = (
    ParameterOption("US East", "N. Virginia", "us-east-1", _US),
    ParameterOption("US West", "Oregon", "us-west-2", _US),
    ParameterOption("EU West", "Ireland", "eu-west-1", _IE),
    ParameterOption("EU Central", "Frankfurt", "eu-central-1", _DE),
    ParameterOption("Asia Pacific", "Mumbai", "ap-south-1", _IN),
    ParameterOption("Asia Pacific", "Singapore", "ap-southeast-1", _SG),
    ParameterOption("South America", "Sao Paulo", "sa-east-1", _BR),
)
# Where each region's data centres are (lat, lon).
_REGION_SITES: dict[str, tuple[float, float]] = {
    "us-east-1": (38.90, -77.45),
    "us-west-2": (45.60, -121.18),
    "eu-west-1": (53.35, -6.26),
    "eu-central-1": (50.11, 8.68),
    "ap-south-1": (19.08, 72.88),
    "ap-southeast-1": (1.35, 103.82),
    "sa-east-1": (-23.55, -46.63),
}
DEFAULT_REGION = "us-east-1"  # the company's first region: where workspaces go by default
CPUS = tuple(ParameterOption(f"{n} Cores", "", str(n), "/icon/memory.svg") for n in (2, 4, 8))
GPUS = (
    ParameterOption("None", "", "none", ""),
    ParameterOption("NVIDIA T4", "16 GB", "t4", _emoji("26a1")),
    ParameterOption("NVIDIA A100", "80 GB", "a100", _emoji("1f680")),
)

# (main session kind, share of users): the tool mix
TOOLS: tuple[tuple[str, float], ...] = (
    ("vscode", 0.55),
    ("jetbrains", 0.20),
    ("ssh", 0.15),
    ("reconnecting_pty", 0.10),
)
assert all(kind in KINDS for kind, _ in TOOLS)
SECOND_TEMPLATE_SHARE = 0.15

# Latency: the round trip from home to the workspace's region, times a personal factor.
_RTT_BASE_MS = 10.0
_RTT_MS_PER_100_KM = 1.6
_RELAYED_SHARE = 0.15  # connections through a DERP relay instead of direct
_RELAYED_FACTOR = 1.6
_SLOW_TAIL_MEDIAN = 4.0
# Who comes and goes during a period.
JOIN_SHARE = 0.15
LEAVE_SHARE = 0.08
HOLIDAYS_PER_YEAR = 2.5  # holidays of one or two weeks a user takes in a year


def build_parameters(
    template: Template,
    region: str,
    cpu: str,
    disk: str,
    dotfiles: str,
    gpu: str,
    choices: Mapping[str, str] | None = None,
) -> tuple[BuildParameter, ...]:
    """The rich parameters of a build of ``template`` with these values; ``choices`` gives
    the values of the template's own parameters (default: each one's default)."""
    params = [
        BuildParameter(
            "region",
            "string",
            "Region",
            "Where the workspace runs. See the [region list](https://example.com/regions).",
            REGIONS,
            region,
        ),
        BuildParameter("cpu", "number", "CPU", "Number of **CPU cores**.", CPUS, cpu),
        BuildParameter("disk_size", "number", "Disk size (GB)", "", (), disk),
        BuildParameter(
            "dotfiles_uri", "string", "Dotfiles URI", "A Git URL of your _dotfiles_.", (), dotfiles
        ),
    ]
    if template.name == "gpu-ml":
        params.append(BuildParameter("gpu", "string", "GPU", "Accelerator type.", GPUS, gpu))
    chosen = choices or {}
    params += (p._replace(value=chosen.get(p.name, p.value)) for p in template.parameters)
    return tuple(params)


# --- the deployment ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    template_index: int  # position of ``template`` in the deployment's templates
    template: Template
    workspace_id: str
    agent_id: str
    params: tuple[tuple[BuildParameter, ...], ...]  # the usual build, then a variant
    region: str  # the workspace's region (a REGIONS value)
    latency_ms: float  # its owner's median connection latency to it

    @functools.cached_property
    def report_phase_us(self) -> int:
        """When in each 30 s its agent reports (from the agent id: stable)."""
        return int(self.agent_id[-6:], 16) % (REPORT_EVERY_US // 1000) * 1000


@dataclass(frozen=True)
class User:
    index: int
    user_id: str
    username: str
    avatar_url: str
    tz_min: int  # minutes east of UTC
    start_min: int  # usual local start of the working day, minutes after local midnight
    weekday_p: float  # chance of working on a given weekday
    tool: str  # main session kind (one of KINDS)
    ssh_p: float  # chance of an extra SSH session in a block of work
    latency_ms: float  # median connection latency to the main workspace
    main: Workspace
    second: Workspace | None  # a workspace in another template, or none
    home: Home
    latency_sigma: float  # spread of the latency samples around the median (log-normal)
    slow_p: float  # share of samples in the slow tail
    joined_day: int | None = None  # local epoch day of the first day at work (None: before)
    left_day: int | None = None  # local epoch day from which they are gone (None: still here)
    holiday: tuple[int, int] | None = None  # local epoch days [first, end) away

    @property
    def kind_mask(self) -> int:
        """The main tool as a ``SessionEvent.kinds_mask`` bit."""
        return 1 << KINDS.index(self.tool)

    def employed(self, local_day: int) -> bool:
        """Whether the user has joined and not left by ``local_day``."""
        return (self.joined_day is None or local_day >= self.joined_day) and (
            self.left_day is None or local_day < self.left_day
        )

    def at_work(self, local_day: int) -> bool:
        """Employed and not on holiday on ``local_day`` (whether they work is ``work_blocks``)."""
        away = self.holiday is not None and self.holiday[0] <= local_day < self.holiday[1]
        return self.employed(local_day) and not away

    def local_day(self, time_us: int) -> int:
        """The user's local epoch day at ``time_us``."""
        return (time_us // US_PER_MIN + self.tz_min) // MIN_PER_DAY

    def agent(self, workspace: Workspace | None = None) -> AgentRef:
        """The agent of ``workspace`` (default: the main one) as events name it."""
        ws = workspace or self.main
        return AgentRef(
            self.user_id,
            self.username,
            ws.template.template_id,
            ws.workspace_id,
            ws.agent_id,
            self.avatar_url,
        )


@dataclass(frozen=True)
class Deployment:
    templates: tuple[Template, ...]
    users: tuple[User, ...]
    seed: int = 0
    period: tuple[int, int] | None = None  # first and last epoch day of the joins and leaves


def is_weekday(local_day: int) -> bool:
    """Monday to Friday (epoch day 0 was a Thursday)."""
    return (local_day + 3) % 7 < 5


def _pick(rng: random.Random, choices: tuple[tuple[_T, float], ...]) -> _T:
    """One value, drawn with the weights next to it."""
    return rng.choices([v for v, _ in choices], [w for _, w in choices])[0]


def _distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    cos = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    return 6371.0 * math.acos(max(-1.0, min(1.0, cos)))


def round_trip_ms(home: Home, region: str) -> float:
    """Typical round trip from ``home`` to a workspace in ``region``."""
    lat, lon = _REGION_SITES[region]
    return _RTT_BASE_MS + _RTT_MS_PER_100_KM * _distance_km(home.lat, home.lon, lat, lon) / 100


def _region(rng: random.Random, home: Home) -> str:
    """Most pick the region nearest to them; others keep the default or pick another."""
    roll = rng.random()
    if roll < 0.75:
        return home.region
    if roll < 0.90:
        return DEFAULT_REGION
    return rng.choice(REGIONS).value


def _workspace(
    rng: random.Random,
    templates: tuple[Template, ...],
    index: int,
    home: Home,
    personal: float,
) -> Workspace:
    template = templates[index]
    region = _region(rng, home)
    cpu, other_cpu = rng.sample([o.value for o in CPUS], 2)
    disk = rng.choice(("20", "50", "100"))
    dotfiles = rng.choice(("", "", "https://github.com/example/dotfiles"))
    gpu = rng.choice(GPUS).value
    usual = {p.name: rng.choice(p.options).value for p in template.parameters if p.options}
    variant = dict(usual)
    for p in template.parameters:
        if p.options and rng.random() < 0.5:
            variant[p.name] = rng.choice(p.options).value
    return Workspace(
        index,
        template,
        random_uuid(rng),
        random_uuid(rng),
        (
            build_parameters(template, region, cpu, disk, dotfiles, gpu, usual),
            build_parameters(template, region, other_cpu, disk, dotfiles, gpu, variant),
        ),
        region,
        round(round_trip_ms(home, region) * personal, 2),
    )


def _monday_on_or_after(day: int) -> int:
    return day + (-(day + 3)) % 7


def _employment(
    rng: random.Random, period: tuple[int, int] | None
) -> tuple[int | None, int | None, tuple[int, int] | None]:
    """(joined_day, left_day, holiday) of one user over ``period``: JOIN_SHARE of the users
    start during it (on a Monday), LEAVE_SHARE leave (any day), and some take a holiday
    of one or two weeks from a Monday (HOLIDAYS_PER_YEAR of them a year)."""
    if period is None:
        return None, None, None
    first, last = period
    joined = left = None
    holiday = None
    span = last - first
    if span >= 14 and rng.random() < JOIN_SHARE:
        joined = min(_monday_on_or_after(first + rng.randint(1, span - 7)), last)
    if span >= 14 and rng.random() < LEAVE_SHARE:
        left = first + rng.randint(7, span)
        if joined is not None and left <= joined + 7:
            left = None
    if span >= 21 and rng.random() < min(0.6, HOLIDAYS_PER_YEAR * span / 365):
        earliest = first if joined is None else joined + 7
        start = _monday_on_or_after(rng.randint(earliest, max(earliest, last - 14)))
        holiday = (start, start + rng.choice((5, 7, 12, 14)))
    return joined, left, holiday


def generate(
    users: int,
    seed: int,
    *,
    templates: tuple[Template, ...] = TEMPLATES,
    avatars: bool = False,
    period: tuple[int, int] | None = None,
) -> Deployment:
    """``users`` users (``dev0000``, ...) drawn from ``random.Random(seed)``.

    Each has a main workspace in a template picked by weight and, with probability
    SECOND_TEMPLATE_SHARE, one in another template; a home city (and its time zone), a
    usual start of the working day between 07:00 and 10:00 local time, a main tool, a
    latency profile; workspace regions and parameters.  ``avatars`` gives every user an
    avatar URL (else ``""``).  With ``period`` (first and last epoch day), some users join
    or leave during it and some take a holiday (drawn apart: the rest does not depend on
    it).
    """
    if len(templates) > 16:
        raise ValueError("at most 16 templates (event ids number them in 4 bits)")
    rng = random.Random(seed)
    life = random.Random(f"life/{seed}")
    weights = [t.weight for t in templates]
    out = []
    for i in range(users):
        main = rng.choices(range(len(templates)), weights)[0]
        other = None
        if len(templates) > 1 and rng.random() < SECOND_TEMPLATE_SHARE:
            other = rng.choice([t for t in range(len(templates)) if t != main])
        user_id = random_uuid(rng)
        tz_min = _pick(rng, TIME_ZONES)
        home = HOMES[tz_min]
        start_min = rng.randint(7 * 60, 10 * 60)
        weekday_p = rng.uniform(0.75, 0.97)
        tool = _pick(rng, TOOLS)
        ssh_p = rng.uniform(0.0, 0.4)
        personal = rng.lognormvariate(0.15, 0.25)
        if rng.random() < _RELAYED_SHARE:
            personal *= _RELAYED_FACTOR
        sigma = rng.uniform(0.10, 0.35)
        slow_p = rng.uniform(0.005, 0.03)
        main_ws = _workspace(rng, templates, main, home, personal)
        second = None if other is None else _workspace(rng, templates, other, home, personal)
        joined, left, holiday = _employment(life, period)
        out.append(
            User(
                i,
                user_id,
                f"dev{i:04d}",
                f"https://avatars.example.com/u/{i}" if avatars else "",
                tz_min,
                start_min,
                weekday_p,
                tool,
                ssh_p,
                main_ws.latency_ms,
                main_ws,
                second,
                home,
                sigma,
                slow_p,
                joined,
                left,
                holiday,
            )
        )
    return Deployment(templates, tuple(out), seed, period)


def work_blocks(
    rng: random.Random, user: User, local_day: int, until_min: int | None = None
) -> list[tuple[int, int]]:
    """Epoch-minute ranges ``[a, b)`` ``user`` works on epoch day ``local_day`` of their
    time zone, cut at ``until_min``: on most weekdays a morning, lunch, an afternoon and
    mostly a late stretch after meetings; rarely a short stretch at the weekend; often
    none.  None at all before the user joined, from the day they left and on holiday."""
    if not user.at_work(local_day):
        return []
    if is_weekday(local_day):
        if rng.random() >= user.weekday_p:
            return []
        start = user.start_min + int(rng.gauss(0, 30))
        morning, lunch, afternoon = rng.randint(100, 200), rng.randint(40, 75), rng.randint(70, 150)
        after_lunch = start + morning + lunch
        local = [(start, start + morning), (after_lunch, after_lunch + afternoon)]
        if rng.random() < 0.75:  # back from the afternoon's meetings
            late = after_lunch + afternoon + rng.randint(20, 90)
            local.append((late, late + rng.randint(30, 120)))
    else:
        if rng.random() >= 0.06:
            return []
        start = rng.randint(10 * 60, 20 * 60)
        local = [(start, start + rng.randint(30, 120))]
    midnight = local_day * MIN_PER_DAY - user.tz_min
    out = []
    for a, b in local:
        a, b = midnight + a, midnight + b
        if until_min is not None:
            b = min(b, until_min)
        if a < b:
            out.append((a, b))
    return out


# --- a user's day, and the events in it -----------------------------------------------------------

REPORT_EVERY_US = 30 * US_PER_S  # agents report sessions and a latency sample
APP_REPORT_EVERY_US = 60 * US_PER_S  # open app sessions are reported once a minute
BUILD_ON_WEEKDAY_P = 0.85
BUILD_ON_WEEKEND_P = 0.30
VARIANT_BUILD_P = 0.12
SECOND_TEMPLATE_DAY_P = 0.35
TERMINAL_P = 0.12  # blocks with a web-terminal session
PORT_FORWARD_P = 0.08  # blocks with a port forward
_PORTS = ("3000", "5173", "8000", "8080", "8888")
# Build numbers count days from here when the deployment has no period (2020-01-01).
_BUILD_ANCHOR_DAY = 18_262
# Event ids are counter_uuid(tag, user index, n): the tag holds the seed's low 24 bits, the
# kind (4 bits) and, for app sessions, their number in the day (4 bits: at most 5 a block,
# 3 blocks, 1 more in a second template); n the time and the template's index (4 bits),
# and for app-usage reports their minute (12 bits: a session lasts at most a block).
_SESSION, _LATENCY, _APP, _APP_SESSION, _BUILD = range(1, 6)

TimedEvent = tuple[str, int, WireEvent]
"""(topic kind, event time in epoch microseconds, wire event)."""


@dataclass(eq=False)
class Stretch:
    """Time an agent has sessions open: it reports them, and a latency sample, every 30 s."""

    workspace: Workspace
    start_us: int
    end_us: int
    kinds: tuple[str, ...]  # open the whole stretch
    extra: tuple[tuple[str, int, int], ...]  # (kind, from_us, to_us): open for a while
    latency_seed: int

    @functools.cached_property
    def first_us(self) -> int:
        """The first report: the agent's phase at or after the start."""
        phase = self.workspace.report_phase_us
        return self.start_us + (phase - self.start_us) % REPORT_EVERY_US

    @functools.cached_property
    def reports(self) -> int:
        return max(0, ceil_div(self.end_us - self.first_us, REPORT_EVERY_US))

    def span(self, start_us: int, end_us: int) -> range:
        """Numbers of the reports made in ``[start_us, end_us)``."""
        first = self.first_us
        lo = ceil_div(max(start_us - first, 0), REPORT_EVERY_US)
        hi = min(self.reports, ceil_div(max(end_us - first, 0), REPORT_EVERY_US))
        return range(lo, max(lo, hi))

    def latency(self, user: User) -> array[float]:
        """The latency sample of each report (drawn on first use, kept with the plan)."""
        cached: array[float] | None = self.__dict__.get("_latency")
        if cached is None:
            rng = random.Random(self.latency_seed)
            median, sigma, slow_p = self.workspace.latency_ms, user.latency_sigma, user.slow_p
            cached = array("d")
            for _ in range(self.reports):
                ms = median * math.exp(sigma * rng.gauss(0.0, 1.0))
                if rng.random() < slow_p:
                    ms *= rng.lognormvariate(math.log(_SLOW_TAIL_MEDIAN), 0.5)
                cached.append(min(max(round(ms, 2), 0.1), 600_000.0))
            self.__dict__["_latency"] = cached
        return cached


@dataclass(frozen=True)
class AppSession:
    """An app session, reported every minute while open and once when it ends."""

    workspace: Workspace
    seq: int  # its number in the user's day
    started_us: int
    ended_us: int
    access_method: AccessMethod
    slug_or_port: str
    app: App | None
    requests_per_min: float

    def report_times(self, start_us: int, end_us: int) -> list[int]:
        """Times of its reports in ``[start_us, end_us)``: each minute, then its end."""
        k = max(1, ceil_div(start_us - self.started_us, APP_REPORT_EVERY_US))
        out = []
        t = self.started_us + k * APP_REPORT_EVERY_US
        while t < self.ended_us and t < end_us:
            out.append(t)
            t += APP_REPORT_EVERY_US
        if start_us <= self.ended_us < end_us:
            out.append(self.ended_us)
        return out


@dataclass(frozen=True)
class Build:
    workspace: Workspace
    time_us: int
    number: int
    parameters: tuple[BuildParameter, ...]


@dataclass(frozen=True)
class DayPlan:
    """What one user does on one local day."""

    user: User
    local_day: int
    stretches: tuple[Stretch, ...] = ()
    apps: tuple[AppSession, ...] = ()
    builds: tuple[Build, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.stretches)

    def count(self, start_us: int, end_us: int) -> int:
        """How many events ``events(start_us, end_us)`` yields."""
        n = 2 * sum(len(s.span(start_us, end_us)) for s in self.stretches)
        n += sum(len(a.report_times(start_us, end_us)) for a in self.apps)
        return n + sum(start_us <= b.time_us < end_us for b in self.builds)


class Simulation:
    """The events of a deployment over time (pure: no clock, no I/O).

    ``events(start_us, end_us)`` is every event whose time is in ``[start_us, end_us)``;
    consecutive ranges partition the history, and the same deployment always gives the
    same events (ids included).  Day plans are cached (least recently used first out).
    """

    def __init__(self, deployment: Deployment, *, cache_days: int = 4) -> None:
        self.deployment = deployment
        self._tag = (deployment.seed & 0xFFFFFF) << 8
        self._plans: OrderedDict[tuple[int, int], DayPlan] = OrderedDict()
        self._cache_size = max(64, cache_days * len(deployment.users))
        self._build_anchor = (
            _BUILD_ANCHOR_DAY if deployment.period is None else deployment.period[0] - 30
        )
        self._kinds: dict[frozenset[str], dict[str, int]] = {}

    # --- plans -----------------------------------------------------------------------------

    def plan(self, user: User, local_day: int) -> DayPlan:
        """What ``user`` does on ``local_day`` (their time zone's epoch day)."""
        key = (user.index, local_day)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(user, local_day)
            self._plans[key] = plan
            if len(self._plans) > self._cache_size:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return plan

    def _plan(self, user: User, day: int) -> DayPlan:
        rng = random.Random(f"day/{self.deployment.seed}/{user.index}/{day}")
        blocks = work_blocks(rng, user, day)
        if not blocks:
            return DayPlan(user, day)
        stretches: list[Stretch] = []
        apps: list[AppSession] = []
        builds: list[Build] = []
        ws = user.main
        first_us = blocks[0][0] * US_PER_MIN
        if rng.random() < (BUILD_ON_WEEKDAY_P if is_weekday(day) else BUILD_ON_WEEKEND_P):
            at = first_us - rng.randint(2 * US_PER_MIN, 10 * US_PER_MIN)
            builds.append(self._build(rng, user, ws, day, at))
        for a_min, b_min in blocks:
            start, end = a_min * US_PER_MIN + rng.randrange(US_PER_MIN), b_min * US_PER_MIN
            extra = []
            if rng.random() < user.ssh_p and user.tool != "ssh":
                extra.append(("ssh", *_inside(rng, start, end, 10, 90)))
            if rng.random() < 0.03:
                extra.append(("sftp", *_inside(rng, start, end, 2, 15)))
            stretches.append(
                Stretch(ws, start, end, (user.tool,), tuple(extra), rng.getrandbits(64))
            )
            for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
                apps.append(self._app_session(rng, ws, len(apps), start, end))
            if rng.random() < TERMINAL_P:
                apps.append(self._app_session(rng, ws, len(apps), start, end, "terminal"))
            if rng.random() < PORT_FORWARD_P:
                apps.append(self._app_session(rng, ws, len(apps), start, end, "port"))
        second = user.second
        if second is not None and rng.random() < SECOND_TEMPLATE_DAY_P:
            a_min, b_min = rng.choice(blocks)
            start_min = rng.randint(a_min, max(a_min, b_min - 30))
            start = start_min * US_PER_MIN + rng.randrange(US_PER_MIN)
            end = min(b_min, start_min + rng.randint(30, 120)) * US_PER_MIN
            if start < end:
                at = start - rng.randint(US_PER_MIN, 5 * US_PER_MIN)
                builds.append(self._build(rng, user, second, day, at))
                kinds = (user.tool,) if user.tool in ("vscode", "jetbrains") else ("vscode",)
                stretches.append(Stretch(second, start, end, kinds, (), rng.getrandbits(64)))
                if rng.random() < 0.5:
                    apps.append(self._app_session(rng, second, len(apps), start, end))
        return DayPlan(user, day, tuple(stretches), tuple(apps), tuple(builds))

    def _build(self, rng: random.Random, user: User, ws: Workspace, day: int, at: int) -> Build:
        params = ws.params[1] if rng.random() < VARIANT_BUILD_P else ws.params[0]
        anchor = self._build_anchor if user.joined_day is None else user.joined_day
        return Build(ws, at, max(1, day - anchor + 1), params)

    def _app_session(
        self,
        rng: random.Random,
        ws: Workspace,
        seq: int,
        start: int,
        end: int,
        what: str = "app",
    ) -> AppSession:
        app: App | None = None
        method: AccessMethod
        if what == "terminal":
            method, slug = "terminal", ""
            minutes = rng.uniform(3, 30)
        elif what == "port":
            method, slug = rng.choice(("path", "subdomain")), rng.choice(_PORTS)
            minutes = rng.uniform(5, 60)
        else:
            apps = ws.template.apps
            slug = rng.choices(apps, [1 / (i + 1) for i in range(len(apps))])[0]
            method, app = ("path" if slug == "code-server" else "subdomain"), APPS[slug]
            minutes = rng.lognormvariate(math.log(35), 0.6)
        length = min(int(minutes * US_PER_MIN), end - start)
        started = start + rng.randrange(max(1, end - start - length))
        return AppSession(
            ws,
            seq,
            started,
            started + max(length, US_PER_S),
            method,
            slug,
            app,
            rng.lognormvariate(math.log(12), 0.8),
        )

    # --- events ----------------------------------------------------------------------------

    def local_days(self, user: User, start_us: int, end_us: int) -> range:
        """The local days of ``user`` that overlap ``[start_us, end_us)``."""
        return range(user.local_day(start_us), user.local_day(end_us - 1) + 1)

    def plans(self, start_us: int, end_us: int) -> Iterator[DayPlan]:
        """The day plans of every user overlapping ``[start_us, end_us)``."""
        for user in self.deployment.users:
            for day in self.local_days(user, start_us, end_us):
                yield self.plan(user, day)

    def count(self, start_us: int, end_us: int) -> int:
        """How many events there are in ``[start_us, end_us)`` (without building them)."""
        return sum(p.count(start_us, end_us) for p in self.plans(start_us, end_us))

    def events(self, start_us: int, end_us: int) -> Iterator[TimedEvent]:
        """Every event with a time in ``[start_us, end_us)``: user by user, and for each
        user sessions and latency by report, then app usage, then builds."""
        for plan in self.plans(start_us, end_us):
            yield from self.plan_events(plan, start_us, end_us)

    def plan_events(self, plan: DayPlan, start_us: int, end_us: int) -> Iterator[TimedEvent]:
        """The events of one day plan with a time in ``[start_us, end_us)``."""
        user = plan.user
        group = user.index
        for stretch in plan.stretches:
            span = stretch.span(start_us, end_us)
            if not span:
                continue
            ws = stretch.workspace
            agent = user.agent(ws)
            names = self._names(ws)
            base_s = session_event(agent, "", 0, ()) | names
            base_l = latency_event(agent, "", 0, 1.0) | names
            samples = stretch.latency(user)
            ti = ws.template_index
            for k in span:
                t = stretch.first_us + k * REPORT_EVERY_US
                n = (t // US_PER_S) * 16 + ti
                stamp = rfc3339(t)
                kinds = self._open(stretch, t)
                s = dict(base_s)
                s["id"] = counter_uuid(self._tag | _SESSION << 4, group, n)
                s["time"] = stamp
                s["connection_count"] = len(kinds)
                s["sessions"] = self._sessions(kinds)
                yield "sessions", t, s
                lat = dict(base_l)
                lat["id"] = counter_uuid(self._tag | _LATENCY << 4, group, n)
                lat["time"] = stamp
                lat["latency_ms"] = samples[k]
                yield "latency", t, lat
        for session in plan.apps:
            times = session.report_times(start_us, end_us)
            if not times:
                continue
            ws = session.workspace
            agent = user.agent(ws)
            names = self._names(ws)
            key = session.started_us // US_PER_S * 16 + ws.template_index
            tag = self._tag | session.seq  # a day has at most 16 app sessions (seq < 16)
            session_id = counter_uuid(tag | _APP_SESSION << 4, group, key)
            for t in times:
                minutes = (t - session.started_us) / US_PER_MIN
                # The report's number: its minute, 0 for the one at the end.
                number = (
                    0 if t == session.ended_us else (t - session.started_us) // APP_REPORT_EVERY_US
                )
                event = app_usage_event(
                    agent,
                    counter_uuid(tag | _APP << 4, group, key << 12 | number),
                    session_id,
                    session.started_us,
                    t,
                    access_method=session.access_method,
                    slug_or_port=session.slug_or_port,
                    app=session.app,
                    requests=1 + int(session.requests_per_min * minutes),
                )
                yield "app_usage", t, event | names
        for build in plan.builds:
            if start_us <= build.time_us < end_us:
                ws = build.workspace
                event = build_event(
                    user.agent(ws),
                    counter_uuid(
                        self._tag | _BUILD, group, plan.local_day * 16 + ws.template_index
                    ),
                    build.time_us,
                    build.number,
                    build.parameters,
                )
                yield "builds", build.time_us, event | self._names(ws)

    def extra_events(
        self, rng: random.Random, start_us: int, end_us: int, count: int
    ) -> list[TimedEvent]:
        """``count`` more reports in ``[start_us, end_us)`` (a live stream at a chosen rate):
        agents of users at work then report more often (sessions and latency, now and then
        an app session).  Ids are drawn from ``rng``: seed it apart from the deployment."""
        if count <= 0 or end_us <= start_us:
            return []
        active: list[tuple[User, Workspace, tuple[str, ...]]] = [
            (plan.user, s.workspace, s.kinds)
            for plan in self.plans(start_us, end_us)
            for s in plan.stretches
            if s.start_us < end_us and start_us < s.end_us
        ]
        if not active:  # nobody at work: whoever is employed keeps a session open
            active = [
                (u, u.main, (u.tool,))
                for u in self.deployment.users
                if u.employed(u.local_day(start_us))
            ] or [(u, u.main, (u.tool,)) for u in self.deployment.users]
        out: list[TimedEvent] = []
        for _ in range(count):
            user, ws, kinds = rng.choice(active)
            agent = user.agent(ws)
            t = rng.randrange(start_us, end_us)
            names = self._names(ws)
            roll = rng.random()
            if roll < 0.48:
                event = session_event(agent, random_uuid(rng), t, kinds, len(kinds))
                out.append(("sessions", t, event | names))
            elif roll < 0.96:
                ms = ws.latency_ms * math.exp(user.latency_sigma * rng.gauss(0.0, 1.0))
                event = latency_event(agent, random_uuid(rng), t, round(ms, 2))
                out.append(("latency", t, event | names))
            else:
                slug = rng.choice(ws.template.apps)
                started = t - rng.randint(1, 30) * US_PER_MIN
                event = app_usage_event(
                    agent,
                    random_uuid(rng),
                    random_uuid(rng),
                    started,
                    t,
                    slug_or_port=slug,
                    app=APPS[slug],
                    requests=rng.randint(1, 300),
                )
                out.append(("app_usage", t, event | names))
        return out

    def _names(self, ws: Workspace) -> dict[str, str]:
        return {"template_name": ws.template.name, "organization_name": ws.template.organization}

    @staticmethod
    def _open(stretch: Stretch, t: int) -> tuple[str, ...]:
        if not stretch.extra:
            return stretch.kinds
        more = tuple(k for k, a, b in stretch.extra if a <= t < b and k not in stretch.kinds)
        return stretch.kinds + more

    def _sessions(self, kinds: tuple[str, ...]) -> dict[str, int]:
        key = frozenset(kinds)
        counts = self._kinds.get(key)
        if counts is None:
            counts = self._kinds[key] = session_counts(kinds)
        return counts


def _inside(rng: random.Random, start: int, end: int, lo_min: int, hi_min: int) -> tuple[int, int]:
    """A stretch of ``lo_min``-``hi_min`` minutes inside ``[start, end)``."""
    length = min(rng.randint(lo_min, hi_min) * US_PER_MIN, end - start)
    at = start + rng.randrange(max(1, end - start - length))
    return at, at + length


def day_range(days: int, end_us: int) -> tuple[int, int]:
    """The epoch days of the ``days`` days up to ``end_us`` (a deployment's period)."""
    last = end_us // US_PER_DAY
    return last - max(days, 1) + 1, last
