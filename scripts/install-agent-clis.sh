#!/usr/bin/env bash
# Install the agent CLIs agentd's real-CLI tests run, at the versions pinned in
# /work/shared/guides/real-agents.md and docs/agents.md (the versions whose output formats
# the parsers were written against): npm packages into a project-local npm prefix, PyPI
# packages into one virtualenv each under the same prefix (their dependency pins clash).
#
#   scripts/install-agent-clis.sh            # all of them
#   scripts/install-agent-clis.sh claude hermes
#
# Prefix: $AGENTD_CLI_PREFIX, default <repo>/.cache/agent-clis (git-ignored). Binaries end up
# in $prefix/bin (PyPI ones as symlinks into $prefix/venv-<package>/bin). Idempotent: a
# package already at its pinned version is skipped.
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
  "copilot  @github/copilot           1.0.102 copilot"
)

# name  npm package of a native binary  pinned version  path of the binary in the package.
# Factory Droid: its launcher package @factory/cli 0.225.1 names a platform package
# version the registry does not have, so the platform package is installed on its own.
native_pins=(
  "droid    @factory/cli-linux-x64    0.225.2 bin/droid"
)

# name  PyPI package  pinned version  binary (python3 >= 3.11 with venv)
py_pins=(
  "hermes   hermes-agent   0.19.0 hermes"
  "mini     mini-swe-agent 2.4.6  mini"
)

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

py_installed_version() {
  # Version of the dist-info in the package's venv, or nothing.
  local venv="$prefix/venv-$1" dist="${1//-/_}" info
  for info in "$venv"/lib/python3*/site-packages/"$dist"-*.dist-info; do
    [ -d "$info" ] || continue
    info="${info##*/$dist-}"
    echo "${info%.dist-info}"
    return 0
  done
}

mkdir -p "$prefix/bin"
status=0
for line in "${py_pins[@]}"; do
  read -r name pkg version bin <<<"$line"
  want "$name" || continue
  venv="$prefix/venv-$pkg"
  have="$(py_installed_version "$pkg")"
  if [ "$have" = "$version" ] && [ -x "$venv/bin/$bin" ]; then
    echo "install-agent-clis: $name $version already installed"
  else
    echo "install-agent-clis: installing $pkg==$version into $venv (had: ${have:-none})"
    if ! { [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"; } ||
      ! "$venv/bin/pip" install --quiet --disable-pip-version-check "$pkg==$version"; then
      echo "install-agent-clis: FAILED to install $pkg==$version" >&2
      status=1
      continue
    fi
  fi
  ln -sfn "../venv-$pkg/bin/$bin" "$prefix/bin/$bin"
done

npm_wanted=0
for line in "${pins[@]}" "${native_pins[@]}"; do
  read -r name _ <<<"$line"
  if want "$name"; then npm_wanted=1; fi
done
if [ "$npm_wanted" = 1 ] && ! command -v npm >/dev/null 2>&1; then
  echo "install-agent-clis: npm not found on PATH" >&2
  exit 1
fi

for line in "${native_pins[@]}"; do
  read -r name pkg version path <<<"$line"
  want "$name" || continue
  have="$(installed_version "$pkg")"
  if [ "$have" = "$version" ] && [ -x "$prefix/lib/node_modules/$pkg/$path" ]; then
    echo "install-agent-clis: $name $version already installed"
  else
    echo "install-agent-clis: installing $pkg@$version (had: ${have:-none})"
    if ! npm install --global --prefix "$prefix" --no-fund --no-audit --loglevel=error "$pkg@$version"; then
      echo "install-agent-clis: FAILED to install $pkg@$version" >&2
      status=1
      continue
    fi
  fi
  ln -sfn "../lib/node_modules/$pkg/$path" "$prefix/bin/$name"
done

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
for line in "${native_pins[@]}"; do
  read -r name pkg version _ <<<"$line"
  if [ -x "$prefix/bin/$name" ]; then
    echo "  $name: $prefix/bin/$name ($(installed_version "$pkg"))"
  else
    echo "  $name: not installed"
  fi
done
for line in "${py_pins[@]}"; do
  read -r name pkg version bin <<<"$line"
  if [ -x "$prefix/bin/$bin" ]; then
    echo "  $name: $prefix/bin/$bin ($(py_installed_version "$pkg"))"
  else
    echo "  $name: not installed"
  fi
done
exit "$status"
