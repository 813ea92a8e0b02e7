#!/bin/sh
# Install Debian's Chromium for the leaderboard's browser test (tests/test_leaderboard.py), which
# otherwise skips. Debian (apt; on Ubuntu apt gives a snap instead); needs root (or sudo). About 290 MB installed.
#   sh scripts/install-chromium.sh
set -eu
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    echo "chromium already installed: $(command -v chromium || command -v chromium-browser)"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
chromium --version
