#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver, for the dashboard's browser tests; prints chromedriver's
# path. The distribution's build, not a test tool's own browser download: those downloads are
# not reachable from CI, and apt is (Debian's packages are on every CI machine's allow list).
set -euo pipefail
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  echo /usr/bin/chromedriver
  exit 0
fi
as_root=()
if [[ "$(id -u)" != 0 ]]; then
  command -v sudo >/dev/null || { echo "install-chromium: needs root or sudo to apt-get install chromium chromium-driver" >&2; exit 1; }
  as_root=(sudo)
fi
echo "install-chromium: installing Debian's chromium and chromium-driver" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq >&2
"${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2
echo /usr/bin/chromedriver
