#!/usr/bin/env bash
# The main job in one command on a fresh machine (Python 3.10+, pip, a C compiler):
# create a virtualenv, install tf2rt (the plain install: numpy, onnx, onnxruntime), convert the bundled
# TensorFlow char-RNN and generate text with it. TensorFlow is NOT installed by this
# script; when it is present (e.g. VENV points at a test environment) the demo also checks
# TensorFlow's own output and prints the speed comparison.
#
#   scripts/demo.sh                 # uses/creates .venv in the repository
#   VENV=/tmp/v scripts/demo.sh --length 600 --temperature 0.6
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e .
exec "$VENV/bin/tf2rt" demo "$@"
