#!/usr/bin/env bash
# The every-layer-in-one-launch one-step form on a GPU in about two minutes: its large-stack GPU
# tests and a few small ones, then one-step stacks at batch 1 against a launch a layer.
#   bash scripts/gpu_fuse_lean.sh OUT_DIR
set -u
out=${1:?usage: gpu_fuse_lean.sh OUT_DIR}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 100 python3 -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning -m gpu -rf \
  tests/backends/test_cuda_single_step.py -k "every_layer_in_one_launch or fuse" 2>&1 | tail -15
timeout 120 python3 benchmarks/cuda_step_bandwidth_probe.py --prefetch-masks 0,5 --fuse 0 --reps 60 \
  --prefetch-shapes lstm:1024:float32,gru:1024:float32,lstm:1024:float16,gru:1024:float16,lstm:512:float32,gru:512:float16 \
  --out "$out/cuda_step_fuse.md" 2>&1 | tail -12
