#!/usr/bin/env bash
# Install HAProxy (Debian's package), the load balancer the scale-out tests put in front
# of several `agentd server` instances (crates/agentd/tests/scale_out.rs). Idempotent:
# does nothing when `haproxy` is already on PATH.
set -euo pipefail

if ! command -v haproxy >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-haproxy: haproxy is missing and apt-get is not available" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-haproxy: installing Debian's haproxy"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends haproxy >/dev/null
fi
haproxy -v | head -n 1
