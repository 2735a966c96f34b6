"""A generated deployment: who works in which templates, where on Earth, with which tools.

``generate(users, seed)`` draws a deployment from a seeded ``random.Random``: the same
arguments always give the same users, ids, time zones, tools and workspaces.  The demo
producer and the benches draw their workloads from it; ``work_blocks`` says when a
user works on a given local day.  Events themselves are built with
``streams.workloads`` (wire JSON) or ``aggregators.model`` (domain tuples).

The default catalogue is a mid-sized company: 5 templates of different popularity,
users spread over 8 time zones, VS Code the most common tool, 15 % of the users also
working in a second template.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TypeVar

from aggregators.model import KINDS, BuildParameter, ParameterOption
from aggregators.timebase import MIN_PER_DAY
from streams.workloads import AgentRef, App, random_uuid

__all__ = [
    "APPS",
    "SECOND_TEMPLATE_SHARE",
    "TEMPLATES",
    "TIME_ZONES",
    "TOOLS",
    "Deployment",
    "Template",
    "User",
    "Workspace",
    "build_parameters",
    "generate",
    "work_blocks",
]

# Template apps by slug: what an app-usage event's ``app`` object says about them.
APPS: dict[str, App] = {
    "code-server": App("code-server", "/icon/code.svg"),
    "jupyter": App("Jupyter Notebook", "/icon/jupyter.svg"),
    "filebrowser": App("File Browser", "/icon/database.svg"),
    "grafana": App("Grafana", "/icon/grafana.svg"),
    "tensorboard": App("TensorBoard", "/icon/tensorflow.svg"),
    "novnc": App("Desktop (noVNC)", "/icon/novnc.svg"),
}


@dataclass(frozen=True)
class Template:
    template_id: str
    name: str
    apps: tuple[str, ...]  # slugs of APPS
    weight: float  # relative share of users whose main template it is


TEMPLATES: tuple[Template, ...] = (
    Template(
        "20000000-0000-4000-8000-000000000001",
        "docker",
        ("code-server", "jupyter", "filebrowser"),
        0.35,
    ),
    Template(
        "20000000-0000-4000-8000-000000000002",
        "kubernetes",
        ("code-server", "grafana", "filebrowser", "jupyter"),
        0.25,
    ),
    Template(
        "20000000-0000-4000-8000-000000000003",
        "gpu-ml",
        ("jupyter", "tensorboard", "code-server"),
        0.15,
    ),
    Template(
        "20000000-0000-4000-8000-000000000004",
        "aws-linux",
        ("code-server", "filebrowser", "novnc"),
        0.15,
    ),
    Template(
        "20000000-0000-4000-8000-000000000005",
        "azure-windows",
        ("novnc", "code-server", "filebrowser", "jupyter"),
        0.10,
    ),
)

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
# (main session kind, share of users): the tool mix
TOOLS: tuple[tuple[str, float], ...] = (
    ("vscode", 0.55),
    ("jetbrains", 0.20),
    ("ssh", 0.15),
    ("reconnecting_pty", 0.10),
)
assert all(kind in KINDS for kind, _ in TOOLS)
SECOND_TEMPLATE_SHARE = 0.15
_T = TypeVar("_T")

REGIONS = (
    ParameterOption("US East", "Virginia", "us-east-1", "/emojis/1f1fa-1f1f8.png"),
    ParameterOption("EU West", "Ireland", "eu-west-1", "/emojis/1f1ea-1f1fa.png"),
    ParameterOption("Asia Pacific", "Singapore", "ap-southeast-1", "/emojis/1f1f8-1f1ec.png"),
)
CPUS = tuple(ParameterOption(f"{n} Cores", "", str(n), "/icon/memory.svg") for n in (2, 4, 8))
GPUS = (
    ParameterOption("None", "", "none", ""),
    ParameterOption("NVIDIA T4", "16 GB", "t4", "/icon/nvidia.svg"),
    ParameterOption("NVIDIA A100", "80 GB", "a100", "/icon/nvidia.svg"),
)


def build_parameters(
    template: Template, region: str, cpu: str, disk: str, dotfiles: str, gpu: str
) -> tuple[BuildParameter, ...]:
    """The rich parameters of a build of ``template`` with these values."""
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
    return tuple(params)


@dataclass(frozen=True)
class Workspace:
    template_index: int  # position of ``template`` in the deployment's templates
    template: Template
    workspace_id: str
    agent_id: str
    params: tuple[tuple[BuildParameter, ...], ...]  # the usual build, then a variant


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
    ssh_p: float  # chance of an extra SSH session while working
    latency_ms: float  # typical connection latency
    main: Workspace
    second: Workspace | None  # a workspace in another template, or none

    @property
    def kind_mask(self) -> int:
        """The main tool as a ``SessionEvent.kinds_mask`` bit."""
        return 1 << KINDS.index(self.tool)

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


def _pick(rng: random.Random, choices: tuple[tuple[_T, float], ...]) -> _T:
    """One value, drawn with the weights next to it."""
    return rng.choices([v for v, _ in choices], [w for _, w in choices])[0]


def _workspace(rng: random.Random, templates: tuple[Template, ...], index: int) -> Workspace:
    template = templates[index]
    region = rng.choice(REGIONS).value
    cpu, other_cpu = rng.sample([o.value for o in CPUS], 2)
    disk = rng.choice(("20", "50", "100"))
    dotfiles = rng.choice(("", "", "https://github.com/example/dotfiles"))
    gpu = rng.choice(GPUS).value
    usual = build_parameters(template, region, cpu, disk, dotfiles, gpu)
    variant = build_parameters(template, region, other_cpu, disk, dotfiles, gpu)
    return Workspace(index, template, random_uuid(rng), random_uuid(rng), (usual, variant))


def generate(
    users: int,
    seed: int,
    *,
    templates: tuple[Template, ...] = TEMPLATES,
    avatars: bool = False,
) -> Deployment:
    """``users`` users (``dev0000``, ...) drawn from ``random.Random(seed)``.

    Each has a main workspace in a template picked by weight and, with probability
    SECOND_TEMPLATE_SHARE, one in another template; a time zone, a usual start of the
    working day between 07:00 and 10:00 local time, a main tool; workspace parameters.
    ``avatars`` gives every user an avatar URL (else ``""``).
    """
    rng = random.Random(seed)
    weights = [t.weight for t in templates]
    out = []
    for i in range(users):
        main = rng.choices(range(len(templates)), weights)[0]
        second = None
        if len(templates) > 1 and rng.random() < SECOND_TEMPLATE_SHARE:
            other = rng.choice([t for t in range(len(templates)) if t != main])
            second = _workspace(rng, templates, other)
        user_id = random_uuid(rng)
        out.append(
            User(
                i,
                user_id,
                f"dev{i:04d}",
                f"https://avatars.example.com/u/{i}" if avatars else "",
                _pick(rng, TIME_ZONES),
                rng.randint(7 * 60, 10 * 60),
                rng.uniform(0.75, 0.97),
                _pick(rng, TOOLS),
                rng.uniform(0.0, 0.4),
                rng.lognormvariate(3.3, 0.5),
                _workspace(rng, templates, main),
                second,
            )
        )
    return Deployment(templates, tuple(out))


def work_blocks(
    rng: random.Random, user: User, local_day: int, until_min: int | None = None
) -> list[tuple[int, int]]:
    """Epoch-minute ranges ``[a, b)`` ``user`` works on epoch day ``local_day`` of their
    time zone, cut at ``until_min``: on most weekdays a morning and an afternoon around
    lunch, rarely a short stretch at the weekend; often none."""
    weekday = (local_day + 3) % 7 < 5  # epoch day 0 was a Thursday
    if weekday:
        if rng.random() >= user.weekday_p:
            return []
        start = user.start_min + int(rng.gauss(0, 30))
        morning, lunch, afternoon = rng.randint(100, 220), rng.randint(30, 60), rng.randint(80, 220)
        after_lunch = start + morning + lunch
        local = [(start, start + morning), (after_lunch, after_lunch + afternoon)]
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
