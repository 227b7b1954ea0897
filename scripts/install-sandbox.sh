#!/usr/bin/env bash
# Install what the daemon's agent sandbox needs: bubblewrap at /usr/bin/bwrap (Debian's
# package). Then check that it can create the namespaces a task uses; if it cannot, say
# why (the daemon would report the same cause as `unsandboxed` in /health). Idempotent.
set -euo pipefail

if [ ! -x /usr/bin/bwrap ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-sandbox: /usr/bin/bwrap is missing and apt-get is not available" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-sandbox: installing Debian's bubblewrap"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null
fi
/usr/bin/bwrap --version
if /usr/bin/bwrap --unshare-all --die-with-parent --new-session --cap-drop ALL \
  --ro-bind / / --dev /dev --proc /proc -- true; then
  echo "install-sandbox: bwrap can create the task namespaces here"
else
  echo "install-sandbox: bwrap is installed but cannot create namespaces here (see its message above)" >&2
  exit 1
fi
