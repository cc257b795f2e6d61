#!/usr/bin/env bash
# The test command: the whole suite, offline. Fails when a test fails and when no test ran.
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export GRADIO_ANALYTICS_ENABLED=False TOKENIZERS_PARALLELISM=false
export VLM_CACHE="${VLM_CACHE:-$PWD/.cache/vlm}"
.venv/bin/ruff check . || exit 1
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "no tests ran: failing" >&2; exit 1; fi
exit "$rc"
