#!/usr/bin/env bash
# Install the agent CLIs agentd's real-CLI tests run, at pinned versions (the versions
# whose output formats the parsers were written against; docs/agents.md lists them), into
# a project-local npm prefix.
#
#   scripts/install-agent-clis.sh            # all of them
#   scripts/install-agent-clis.sh claude qwen
#
# Prefix: $AGENTD_CLI_PREFIX, default <repo>/.cache/agent-clis (git-ignored). Binaries end up
# in $prefix/bin. Idempotent: a package already at its pinned version is skipped.
# npm install scripts must run (claude and opencode hard-link their native binaries in
# postinstall; with --ignore-scripts they are stubs).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${AGENTD_CLI_PREFIX:-$repo_root/.cache/agent-clis}"

# name  npm package  pinned version  binary
pins=(
  "claude   @anthropic-ai/claude-code 2.1.330 claude"
  "codex    @openai/codex             0.169.0 codex"
  "opencode opencode-ai               1.18.33 opencode"
  "gemini   @google/gemini-cli        0.61.0  gemini"
  "qwen     @qwen-code/qwen-code      0.24.4  qwen"
  "pi       @mariozechner/pi-coding-agent 0.73.1 pi"
  "kilo     @kilocode/cli             7.7.7   kilo"
  "continue @continuedev/cli          1.5.47  cn"
)

if ! command -v npm >/dev/null 2>&1; then
  echo "install-agent-clis: npm not found on PATH" >&2
  exit 1
fi

wanted=("$@")
want() {
  [ "${#wanted[@]}" -eq 0 ] && return 0
  local w
  for w in "${wanted[@]}"; do [ "$w" = "$1" ] && return 0; done
  return 1
}

installed_version() {
  # Version recorded in the package's own package.json, or nothing.
  local pkg_json="$prefix/lib/node_modules/$1/package.json"
  [ -f "$pkg_json" ] || return 0
  node -e 'process.stdout.write(require(process.argv[1]).version || "")' "$pkg_json" 2>/dev/null || true
}

mkdir -p "$prefix"
status=0
for line in "${pins[@]}"; do
  read -r name pkg version bin <<<"$line"
  want "$name" || continue
  have="$(installed_version "$pkg")"
  if [ "$have" = "$version" ] && [ -x "$prefix/bin/$bin" ]; then
    echo "install-agent-clis: $name $version already installed"
    continue
  fi
  echo "install-agent-clis: installing $pkg@$version (had: ${have:-none})"
  if ! npm install --global --prefix "$prefix" --no-fund --no-audit --loglevel=error "$pkg@$version"; then
    echo "install-agent-clis: FAILED to install $pkg@$version" >&2
    status=1
  fi
done

echo
echo "install-agent-clis: prefix $prefix"
for line in "${pins[@]}"; do
  read -r name pkg version bin <<<"$line"
  if [ -x "$prefix/bin/$bin" ]; then
    echo "  $name: $prefix/bin/$bin ($(installed_version "$pkg"))"
  else
    echo "  $name: not installed"
  fi
done
exit "$status"
