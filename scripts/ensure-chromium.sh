#!/usr/bin/env bash
# Make Debian's Chromium available for the dashboard's browser tests.
# Never fails the build: where it cannot be installed (no apt, not root, no registry), the
# browser tests skip and say why.
set -u
CHROMIUM="${BOUNDGATE_TEST_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: no apt-get here; browser tests will be skipped" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "ensure-chromium: not root and no sudo; browser tests will be skipped" >&2
        exit 0
    fi
fi
echo "ensure-chromium: installing Debian's chromium for the browser tests" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q chromium >/dev/null 2>&1; then
    $SUDO apt-get update -q >/dev/null 2>&1 || true
    $SUDO apt-get install -y -q chromium >/dev/null 2>&1 \
        || echo "ensure-chromium: apt-get could not install chromium; browser tests will be skipped" >&2
fi
exit 0
