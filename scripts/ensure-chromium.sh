#!/usr/bin/env bash
# The browser tests use Debian's Chromium (driven by Playwright with executable_path):
# Playwright's own browser download is not available here. Install it when it is missing, and
# a Japanese font with it, so screenshots of the Japanese UI show text rather than boxes.
set -euo pipefail
have_chromium() {
  { [ -n "${CHROMIUM_PATH:-}" ] && [ -x "${CHROMIUM_PATH}" ]; } \
    || command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]
}
have_japanese_font() {
  command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list :lang=ja 2>/dev/null | head -n 1)" ]
}
if have_chromium && have_japanese_font; then exit 0; fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  packages=()
  have_chromium || packages+=(chromium)
  have_japanese_font || packages+=(fonts-noto-cjk)
  echo "Installing ${packages[*]} for the browser tests…"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
  exit 0
fi
if have_chromium; then
  echo "No Japanese font found: screenshots will show boxes for Japanese text." >&2
  exit 0
fi
echo "The browser tests need Chromium: install it (or set CHROMIUM_PATH) and run make test again." >&2
exit 1
