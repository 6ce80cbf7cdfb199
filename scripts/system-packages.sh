#!/usr/bin/env bash
# Debian packages the hub needs beyond Python; kept here so no step is by hand (run by `make install`).
#   chromium: the quality page is opened in a real headless browser by the tests (Playwright drives
#             /usr/bin/chromium; Playwright's own browser download is never used).
set -euo pipefail
needed=(chromium)
missing=()
for pkg in "${needed[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
