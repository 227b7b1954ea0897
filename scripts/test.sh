#!/usr/bin/env bash
# The whole test suite, from a fresh machine: formatting, lints, the agent CLIs the
# end-to-end tests drive (pinned versions, installed project-locally), then every test.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== installing bubblewrap (agents run sandboxed by default; the sandbox tests need it)"
scripts/install-sandbox.sh || echo "WARNING: bubblewrap unavailable; sandbox tests will print SKIP"

echo "== installing PostgreSQL (the server suite runs a second time on it)"
scripts/install-postgres.sh

echo "== installing HAProxy (the scale-out tests put it in front of several servers)"
scripts/install-haproxy.sh

if [ -x scripts/install-agent-clis.sh ]; then
  echo "== installing pinned agent CLIs (tests that need one skip with a printed reason if this fails)"
  scripts/install-agent-clis.sh || echo "WARNING: agent CLI install failed; real-CLI tests will print SKIP"
fi

echo "== installing the OpenID provider (npm oidc-provider) the OIDC sign-in tests run against"
scripts/install-oidc-provider.sh || echo "WARNING: oidc-provider install failed; OIDC tests will print SKIP"

if [ -x scripts/install-browser.sh ]; then
  echo "== installing Chromium + playwright-core for the board's browser test"
  scripts/install-browser.sh || echo "WARNING: browser install failed; web_e2e will print SKIP"
fi

echo "== cargo test"
status=0
cargo test --workspace --no-fail-fast || status=$?

echo "== cargo test -p agentd-server on PostgreSQL (the same suite, the other backend)"
AGENTD_TEST_DATABASE=postgres cargo test -p agentd-server --no-fail-fast || status=$?
exit $status
