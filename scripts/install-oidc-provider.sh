#!/usr/bin/env bash
# Install the OpenID provider the OIDC sign-in tests run against: npm `oidc-provider`
# (node's certified implementation), pinned, into a project-local prefix.
#
#   scripts/install-oidc-provider.sh
#
# Prefix: $AGENTD_OIDC_PREFIX, default <repo>/.cache/oidc-provider (git-ignored); the package
# ends up in $prefix/node_modules/oidc-provider. Idempotent: skipped when the pinned version
# is already there. Tests that find neither node nor the package print SKIP.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${AGENTD_OIDC_PREFIX:-$repo_root/.cache/oidc-provider}"
version="9.13.3"

command -v npm >/dev/null || { echo "npm not found; OIDC tests will print SKIP" >&2; exit 1; }

pkg_json="$prefix/node_modules/oidc-provider/package.json"
if [ -f "$pkg_json" ] && [ "$(node -e 'process.stdout.write(require(process.argv[1]).version)' "$pkg_json")" = "$version" ]; then
  echo "oidc-provider $version already installed in $prefix"
  exit 0
fi

mkdir -p "$prefix"
[ -f "$prefix/package.json" ] || echo '{"name":"agentd-oidc-test-provider","private":true}' >"$prefix/package.json"
npm install --prefix "$prefix" --no-audit --no-fund --save-exact "oidc-provider@$version"
echo "oidc-provider $version installed in $prefix"
