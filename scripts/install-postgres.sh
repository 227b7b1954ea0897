#!/usr/bin/env bash
# Install what the PostgreSQL runs of the server suite need: Debian's `postgresql`
# package, whose initdb/pg_ctl (under /usr/lib/postgresql/*/bin) start a throwaway
# cluster per test binary (crates/agentd-testkit/src/pg.rs). No cluster is created or
# started here (the package's own is left alone). Idempotent; fine as root under CI=true.
set -euo pipefail

found() {
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1
}

if ! found; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-postgres: initdb is missing and apt-get is not available" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-postgres: installing Debian's postgresql"
  $sudo apt-get update -qq
  # The package's postinst may try to start its own cluster; without an init system
  # that fails harmlessly, and policy-rc.d keeps it from starting where one runs.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    postgresql postgresql-client >/dev/null
fi
if ! found; then
  echo "install-postgres: postgresql is installed but initdb is still not found" >&2
  exit 1
fi
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
"${bin:-$(dirname "$(command -v initdb)")}/initdb" --version
# As root, the test clusters run as an unprivileged user (initdb refuses root).
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1 && ! id nobody >/dev/null 2>&1; then
  echo "install-postgres: running as root with neither a postgres nor a nobody user" >&2
  exit 1
fi
