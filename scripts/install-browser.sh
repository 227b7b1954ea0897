#!/usr/bin/env bash
# Install what the web board's browser test needs: Debian's Chromium (/usr/bin/chromium)
# and playwright-core + axe-core (pinned, from tests/web/package-lock.json) into a project-local,
# git-ignored node_modules. Playwright drives the system Chromium; it never downloads a
# browser of its own. Idempotent.
#
# Prefix: $AGENTD_WEB_E2E_PREFIX, default <repo>/.cache/web-e2e.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${AGENTD_WEB_E2E_PREFIX:-$repo_root/.cache/web-e2e}"

if [ ! -x /usr/bin/chromium ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: /usr/bin/chromium is missing and apt-get is not available" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-browser: installing Debian's chromium"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
/usr/bin/chromium --version

if ! command -v npm >/dev/null 2>&1; then
  echo "install-browser: npm not found on PATH" >&2
  exit 1
fi
mkdir -p "$prefix"
cp "$repo_root/tests/web/package.json" "$repo_root/tests/web/package-lock.json" "$prefix/"
# Every pinned package must be installed at its locked version (playwright-core drives
# the browser; axe-core is the accessibility checker the test injects into each page).
stale=""
for pkg in playwright-core axe-core; do
  want="$(node -p "require('$prefix/package-lock.json').packages['node_modules/$pkg'].version")"
  have="$(node -p "try { require('$prefix/node_modules/$pkg/package.json').version } catch { '' }")"
  [ "$have" = "$want" ] || stale="$stale $pkg@$want"
done
if [ -n "$stale" ]; then
  echo "install-browser: installing$stale"
  (cd "$prefix" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "install-browser: playwright-core and axe-core (as locked) in $prefix/node_modules"
