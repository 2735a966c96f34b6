# syntax=docker/dockerfile:1
# One image for both roles: `insights api` (default) and `insights worker`.
#   docker build -t coder-insights-streams .
# Settings come from INSIGHTS_* environment variables (insights/settings.py);
# compose/docker-compose.yml wires a full stack.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: resolve and install into a venv that the runtime stage copies whole,
#     so no pip cache, build tooling or source tree ends up in the final image.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# README.md* : pyproject names README.md as the long description; a missing one
# is only a warning for setuptools, so the glob keeps the build from depending on it.
COPY pyproject.toml README.md* ./
COPY aggregators ./aggregators
COPY api ./api
COPY insights ./insights
COPY streams ./streams
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install ".[coder]" \
 && insights --help > /dev/null

# --- runtime
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="coder-insights-streams" \
      org.opencontainers.image.description="Kafka events -> Faust worker -> Redis rollups -> Coder-compatible insights API" \
      org.opencontainers.image.licenses="AGPL-3.0-only"

# Fixed high uid/gid: matches nothing on the host, and lets operators grant
# file access (e.g. a mounted INSIGHTS_API_TOKEN_FILE) by number.
RUN groupadd --system --gid 10001 insights \
 && useradd --system --uid 10001 --gid insights --no-create-home \
        --home-dir /var/lib/insights --shell /usr/sbin/nologin insights \
 && install -d -o insights -g insights -m 0750 /var/lib/insights

COPY --from=build /opt/venv /opt/venv

# The settings default to 127.0.0.1, which is unreachable from outside a container.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    INSIGHTS_API_HOST=0.0.0.0 \
    INSIGHTS_API_PORT=8080

# Faust creates its data directory (<app_id>-data) in the working directory,
# so it must be writable by the runtime user.
WORKDIR /var/lib/insights
USER 10001:10001

EXPOSE 8080

# Liveness of the API process (/healthz never touches Redis, so a Redis outage
# does not get the container restarted; /readyz reports that instead).
# http.client rather than urllib: no proxy variables apply, and slim has no curl.
# The worker serves no HTTP: compose overrides this check for it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import http.client, os, sys; c = http.client.HTTPConnection('127.0.0.1', int(os.environ.get('INSIGHTS_API_PORT') or 8080), timeout=4); c.request('GET', '/healthz'); sys.exit(c.getresponse().status != 200)"]

CMD ["insights", "api"]
