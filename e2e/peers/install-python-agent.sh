#!/usr/bin/env bash
# A virtualenv with the OpenTelemetry SDK, the OTLP/HTTP exporter, the OpenAI client and its
# official GenAI instrumentation, from PyPI at pinned versions, for agent.py; prints its python.
# opentelemetry-util-genai stays at 1.1b0: the newest openai-v2 (2.4b0) imports a module that
# 1.2b0 renamed; httpx is imported by openai-v2 and no longer brought by openai 3.
set -euo pipefail
cache="${REVERIE_CACHE:-$HOME/.cache/reverie}"
venv="$cache/py-agent-1"
packages=(
  "openai==3.63.0"
  "opentelemetry-api==1.45.2"
  "opentelemetry-sdk==1.45.2"
  "opentelemetry-exporter-otlp-proto-http==1.45.2"
  "opentelemetry-instrumentation-openai-v2==2.4b0"
  "opentelemetry-util-genai==1.1b0"
  "httpx==0.29.0"
)
if [[ -x "$venv/bin/python" ]] && [[ -f "$venv/.complete" ]]; then
  echo "$venv/bin/python"
  exit 0
fi
command -v python3 >/dev/null || { echo "install-python-agent: python3 is needed" >&2; exit 1; }
rm -rf "$venv"
echo "install-python-agent: creating $venv from PyPI" >&2
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}" >&2
touch "$venv/.complete"
echo "$venv/bin/python"
