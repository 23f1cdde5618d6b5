#!/usr/bin/env bash
# Dream quality on real transcripts: one `reverie-dev quality --truth` pass per session folder
# of the corpus (tau2-bench by default) plus one, scope `all`, over the whole tree, each scored
# against the analyst's truth.json. Prints one summary line per scope; exits non-zero when any
# scope misses the bar (recall >= 0.9, precision >= 0.8, at most 15 lessons proposed).
#
#   REAL_CORPUS   the corpus folder (holds truth.json and sessions/<scope>/);
#                 default: ../shared/corpora/tau2-bench next to the clone
#   REVERIE_DEV_BIN  the reverie-dev binary to use; default: build it (release) into CARGO_TARGET_DIR
#   QUALITY_OUT   where each scope's JSON score goes; default: $CARGO_TARGET_DIR/quality-real
#   CI=true       a missing corpus is an error (CI always has it next to the clone)
set -euo pipefail
cd "$(dirname "$0")/.."

corpus="${REAL_CORPUS:-$(pwd)/../shared/corpora/tau2-bench}"
if [[ ! -f "$corpus/truth.json" || ! -d "$corpus/sessions" ]]; then
  echo "quality-real: no real corpus at $corpus (expected truth.json and sessions/); set REAL_CORPUS to score one" >&2
  [[ "${CI:-}" == "true" ]] && exit 1
  exit 0
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/reverie/target}"
if [[ -z "${REVERIE_DEV_BIN:-}" ]]; then
  cargo build --release --locked -q -p reverie-dev --bin reverie-dev
  REVERIE_DEV_BIN="$CARGO_TARGET_DIR/release/reverie-dev"
fi
out="${QUALITY_OUT:-$CARGO_TARGET_DIR/quality-real}"
mkdir -p "$out"

status=0
# Scores one scope: its JSON goes to $out, its summary line to stdout, anything else it said
# (what the bar missed, errors) indented to stderr.
score() {
  local scope=$1 sessions=$2
  if ! "$REVERIE_DEV_BIN" quality --truth "$corpus/truth.json" --scope "$scope" --sessions "$sessions" \
    >"$out/$scope.json" 2>"$out/$scope.log"; then
    status=1
  fi
  grep '^real\[' "$out/$scope.log" || echo "real[$scope] no score"
  grep -v '^real\[' "$out/$scope.log" | sed 's/^/  /' >&2 || true
}

for dir in "$corpus"/sessions/*/; do
  [[ -d "$dir" ]] || continue
  score "$(basename "$dir")" "${dir%/}"
done
score all "$corpus/sessions"

echo "quality-real: scores (with the false lessons and missed items) in $out" >&2
exit "$status"
