#!/usr/bin/env bash
# Install Debian's Chromium for the browser end-to-end test, when it is missing.
# Playwright only drives it (executable_path=/usr/bin/chromium): no browser is downloaded.
# Exit status: 0 when /usr/bin/chromium is there afterwards, 1 otherwise (the test skips).
set -uo pipefail

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  echo "chromium: $("$CHROMIUM" --version 2>/dev/null | head -n1)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium is missing and there is no apt-get here: install Chromium by hand" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "chromium is missing and installing it needs root (apt-get install chromium)" >&2
    exit 1
  fi
fi
echo "installing Debian's chromium (a few minutes)..."
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
# fonts-noto-core: Telugu and Latin glyphs for screenshots (the page also ships its own).
if ! $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-noto-core >/dev/null; then
  echo "apt-get install chromium failed" >&2
  exit 1
fi
[ -x "$CHROMIUM" ] && "$CHROMIUM" --version 2>/dev/null | head -n1
