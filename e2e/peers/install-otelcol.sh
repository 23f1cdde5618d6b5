#!/usr/bin/env bash
# Builds the OpenTelemetry Collector of the ingest e2e test from its Go modules, with the
# Collector's own builder (ocb), once per version; prints the binary's path on stdout.
#   REVERIE_OTELCOL_VERSION  collector release (default 0.165.0; its confmap modules are 1.71.0)
#   REVERIE_CACHE            cache root (default ~/.cache/reverie); Go caches as for Kubernetes
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="${REVERIE_OTELCOL_VERSION:-0.165.0}"
confmap="${REVERIE_OTELCOL_CONFMAP_VERSION:-1.71.0}"
cache="${REVERIE_CACHE:-$HOME/.cache/reverie}"
# A change to the builder config is a new binary: its hash is part of the cache path.
recipe="$(cat "$here/otelcol-builder.yaml" "$0" | sha256sum | cut -c1-12)"
out="$cache/otelcol-v$version-$recipe"
bin="$out/reverie-otelcol"
if [[ -x "$bin" ]]; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { echo "install-otelcol: Go is needed to build the Collector" >&2; exit 1; }
export GOMODCACHE="${GOMODCACHE:-$cache/go/mod}" GOCACHE="${GOCACHE:-$cache/go/build}" GOFLAGS="-mod=mod -trimpath" CGO_ENABLED=0
mkdir -p "$out"
log="$cache/otelcol-build.log"
echo "install-otelcol: building the OpenTelemetry Collector v$version from its Go modules (log: $log)" >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if ! { GOBIN="$work/bin" go install "go.opentelemetry.io/collector/cmd/builder@v$version" &&
       sed -e "s|@VERSION@|$version|g" -e "s|@CONFMAP@|$confmap|g" -e "s|@OUT@|$work/src|g" \
         "$here/otelcol-builder.yaml" > "$work/builder.yaml" &&
       "$work/bin/builder" --config "$work/builder.yaml"; } >"$log" 2>&1; then
  echo "install-otelcol: the build failed; the end of $log:" >&2
  tail -30 "$log" >&2
  exit 1
fi
# Moved into place last: a cached binary is always a complete one.
mv "$work/src/reverie-otelcol" "$bin.tmp" && mv "$bin.tmp" "$bin"
echo "$bin"
