#!/usr/bin/env bash
# Measures the idle footprint of `agentd daemon` with 4 runtimes registered against the
# test fake server: resident memory (VmRSS, VmHWM) and CPU time over an idle window.
#
# Usage: scripts/measure-footprint.sh [--seconds N]   (default 60)
# Environment passed through to the daemon as-is (e.g. MALLOC_ARENA_MAX) is honoured.
set -euo pipefail

SECONDS_IDLE=60
while [[ $# -gt 0 ]]; do
    case "$1" in
        --seconds) SECONDS_IDLE="$2"; shift 2 ;;
        -h|--help) sed -n 2,6p "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
ROOT=$(pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

echo "building (release)..." >&2
cargo build --release -p agentd >&2
cargo build --release -p agentd-testkit --example fake_server >&2
AGENTD="$TARGET_DIR/release/agentd"
FAKE="$TARGET_DIR/release/examples/fake_server"

TMP=$(mktemp -d)
SERVER_PID=""
DAEMON_PID=""
cleanup() {
    [[ -n "$DAEMON_PID" ]] && kill -TERM "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null || true
    [[ -n "$SERVER_PID" ]] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# Stand-in agent CLIs: each answers `--version` and nothing else.
mkdir -p "$TMP/bin" "$TMP/data"
for pair in claude:2.1.0 codex:0.169.0 opencode:1.18.33 gemini:0.61.0; do
    name=${pair%%:*}; version=${pair#*:}
    printf '#!/bin/sh\nif [ "$1" = "--version" ]; then echo "%s"; exit 0; fi\nexit 1\n' "$version" \
        > "$TMP/bin/$name"
    chmod +x "$TMP/bin/$name"
done
: > "$TMP/daemon.toml"

# Fake server: prints its URL on the first line of stdout.
"$FAKE" > "$TMP/server.out" 2> "$TMP/server.err" &
SERVER_PID=$!
for _ in $(seq 1 100); do
    [[ -s "$TMP/server.out" ]] && break
    sleep 0.1
done
URL=$(head -n1 "$TMP/server.out")
[[ -n "$URL" ]] || { echo "fake server did not start" >&2; cat "$TMP/server.err" >&2; exit 1; }

PATH="$TMP/bin:$PATH" "$AGENTD" daemon --server-url "$URL" --token tok \
    --data-dir "$TMP/data" --health-port 0 --config "$TMP/daemon.toml" \
    > "$TMP/daemon.out" 2> "$TMP/daemon.err" &
DAEMON_PID=$!

# Wait until registered: status running with 4 runtimes.
ready=""
for _ in $(seq 1 300); do
    if [[ -s "$TMP/data/daemon.health" ]]; then
        body=$(curl -fsS "http://$(cat "$TMP/data/daemon.health")/health" 2>/dev/null || true)
        if [[ -n "$body" ]] &&
            [[ $(jq -r '.status' <<<"$body") == running ]] &&
            [[ $(jq '[.workspaces[].runtimes[]] | length' <<<"$body") -ge 4 ]]; then
            ready=1; break
        fi
    fi
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.1
done
if [[ -z "$ready" ]]; then
    echo "daemon did not become ready" >&2
    tail -n 40 "$TMP/daemon.err" >&2
    exit 1
fi

TICKS=$(getconf CLK_TCK)
kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$DAEMON_PID/status"; }
# utime and stime are fields 14 and 15 of /proc/PID/stat; strip "pid (comm) " first since
# comm may contain spaces.
cpu_ticks() { sed 's/^.*) //' "/proc/$DAEMON_PID/stat" | awk '{ print $12 + $13 }'; }

rss0=$(kib VmRSS); cpu0=$(cpu_ticks); threads=$(kib Threads)
sleep "$SECONDS_IDLE"
kill -0 "$DAEMON_PID" 2>/dev/null || { echo "daemon exited during the window" >&2; exit 1; }
rss1=$(kib VmRSS); hwm=$(kib VmHWM); cpu1=$(cpu_ticks)

awk -v rss0="$rss0" -v rss1="$rss1" -v hwm="$hwm" -v c0="$cpu0" -v c1="$cpu1" \
    -v t="$TICKS" -v s="$SECONDS_IDLE" -v th="$threads" 'BEGIN {
    cpu = (c1 - c0) / t
    printf "| metric | value |\n|---|---|\n"
    printf "| RSS at start of window | %.1f MiB |\n", rss0 / 1024
    printf "| RSS at end of window | %.1f MiB |\n", rss1 / 1024
    printf "| peak RSS (VmHWM) | %.1f MiB |\n", hwm / 1024
    printf "| CPU time over %d s | %.2f s |\n", s, cpu
    printf "| CPU (%% of one core) | %.3f %% |\n", 100 * cpu / s
    printf "| threads | %d |\n", th
}'
