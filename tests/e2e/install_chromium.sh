#!/bin/sh
# Debian's chromium for the dashboard's browser test (tests/e2e/test_dashboard.py drives it
# through Playwright, which is told never to download a browser of its own). Installed with
# apt-get when missing (`make test` runs this first; the test runs it too when the binary is
# still missing). INSIGHTS_TEST_NO_APT=1: install nothing, the browser test is skipped instead.
set -eu

BINARY=/usr/bin/chromium
if [ -x "$BINARY" ]; then
    exit 0
fi
if [ "${INSIGHTS_TEST_NO_APT:-}" = 1 ]; then
    echo "INSIGHTS_TEST_NO_APT=1: not installing chromium; the dashboard browser test will be skipped" >&2
    exit 0
fi
fail() {
    echo "cannot install Debian's chromium (needed by the dashboard browser test): $1" >&2
    echo "install it (apt-get install -y chromium chromium-driver) or set INSIGHTS_TEST_NO_APT=1 to skip that test" >&2
    exit 1
}
command -v apt-get >/dev/null 2>&1 || fail "apt-get not found (not a Debian-like system?)"
[ "$(id -u)" = 0 ] || fail "apt-get needs root"

export DEBIAN_FRONTEND=noninteractive
echo "installing Debian's chromium (dashboard browser test)..." >&2
# Fresh machines may have no package lists yet: update once, only when the install fails.
if ! apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1; then
    apt-get update -q >/dev/null || fail "apt-get update failed"
    apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null \
        || fail "apt-get install chromium chromium-driver failed"
fi
[ -x "$BINARY" ] || fail "$BINARY missing after the install"
