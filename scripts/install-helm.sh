#!/usr/bin/env bash
# Builds Helm (the version scripts/helm/go.mod pins) from its Go module with the machine's Go,
# caches it under $REVERIE_CACHE/tools/helm-<version>/ and links it as $REVERIE_CACHE/bin/helm.
# Idempotent: a warm machine builds nothing. Prints the path of the helm binary on stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${REVERIE_CACHE:-$HOME/.cache/reverie}"
module="$here/helm"
version="$(awk '$1 == "helm.sh/helm/v3" { print $2; exit }' "$module/go.mod")"
[[ -n "$version" ]] || { echo "install-helm: no helm.sh/helm/v3 version in $module/go.mod" >&2; exit 1; }
dir="$cache/tools/helm-$version"
helm="$dir/helm"

if [[ ! -x "$helm" ]]; then
  command -v go >/dev/null 2>&1 || { echo "install-helm: Go is needed to build Helm" >&2; exit 1; }
  mkdir -p "$dir"
  log="$cache/helm-build.log"
  echo "install-helm: building Helm $version from its Go module (log: $log)" >&2
  # The version Helm reports; its release build stamps the same variables.
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
  if ! (cd "$module" && GOMODCACHE="${GOMODCACHE:-$cache/go/mod}" GOCACHE="${GOCACHE:-$cache/go/build}" \
        GOFLAGS="-mod=mod -trimpath" CGO_ENABLED=0 \
        go build -ldflags "$ldflags" -o "$dir/.helm.tmp.$$" helm.sh/helm/v3/cmd/helm) >"$log" 2>&1; then
    echo "install-helm: go build failed; last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  mv -f "$dir/.helm.tmp.$$" "$helm"
fi
"$helm" version --short 2>/dev/null | grep -q "^$version" ||
  { echo "install-helm: $helm does not report $version" >&2; exit 1; }
mkdir -p "$cache/bin"
ln -sfn "$helm" "$cache/bin/helm"
echo "$cache/bin/helm"
