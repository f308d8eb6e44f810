#!/usr/bin/env bash
# GPU checks of the cuda backend on a machine with an NVIDIA GPU, PyTorch (CUDA) and CuPy.
#
#   bash scripts/gpu_check.sh OUT_DIR [STAGE...]
#
# Stages (default: all, in this order; each bounded by its own timeout):
#   decode     the GPU decoder and char-RNN tests
#   resident   the decoders' GPU tests (resident and fused, the char-RNN app, bidirectional
#              single steps) and the char-RNN benchmark (decoder forms vs cuDNN)
#   step       benchmarks/bench_cuda_step.py (one-step engines: ordinary vs dependent launches)
#   charrnn    benchmarks/bench_cuda_charrnn.py (char-RNN generation vs PyTorch cuDNN)
#   diagnose   benchmarks/cuda_rnn_diagnose.py (per-direction errors of bidirectional stacks)
#   suite      every gpu-marked test under tests/backends
#   engine     benchmarks/bench_cuda_engine.py, a reduced grid plus char-RNN and Keras GRU
#   open       the open GPU questions: bidirectional single-step and layerwise-target tests
#              (full assertion text), and the one-launch layers' early loads (default vs
#              TF2RT_CUDA_GEMV_PF=1, in one process each, same shapes), and the kernels one
#              call of fp16 H=1024 engines launches against their stacks' (engine - stack)
#   l2         one-step engines with their weights persisting in L2 against without
#              (TF2RT_CUDA_L2_PERSIST=1 / 0, one process each, same shapes)
#   pending    what no GPU has run yet: the runner's first call timing one-step stacks with
#              their weights persisting in L2 (GPU test, then the first call of fp32 H=1024
#              one-step engines with what it measured), a layout first met inside a graph
#              capture, and the bandwidth probe's streaming-read column
#   row        the row kernel's GPU tests (full assertion text) and whole engines (H 64 on one
#              SM, 256 and 512 on clusters; T=100, batch 1 and 64) and the Keras GRU classifier
#              with the row kernel against the default choice and cuDNN
#   cluster    benchmarks/cuda_cluster_probe.py: a step's h shared through thread-block
#              clusters (DSMEM stores, cluster barrier) against the tagged all-gather via L2
#   bandwidth  benchmarks/cuda_step_bandwidth_probe.py: one-step fp32 H=1024 stacks at batch 1
#              against a plain read of their weights' bytes
#   bulk       the large-batch step with its rows moved by bulk copies multicast across clusters of
#              two CTAs (the planned build): GPU tests, then fp16 H=512/1024 batch 64 stacks against
#              16-byte copies (bulk0) and with warps sharing staged values across row tiles (share)
#   bulkgrid   the same comparison at batch 16 and 32 (fp16 H=256-1024) and for fp32
#   l2pf       one-step stacks at batch 1 whose one-launch layers prefetch into L2 (the next layer's
#              rows, the rest of their own, streaming own loads: TF2RT_CUDA_GEMV_L2PF masks), with
#              and without weights persisting in L2 (after the runner's GPU test of those forms)
#   timeline   benchmarks/cuda_step_timeline.py: when each one-step layer's blocks start, stop waiting,
#              finish their products and their outputs (fp32 H=1024, L2 prefetch masks 0 / 5, +l2)
#   wgmma      benchmarks/cuda_wgmma_probe.py: one CTA's large-batch fp16 product (32 x 1024 x 64) by
#              mma.sync against Hopper's wgmma, checked against torch
#   next       what the last work left for a GPU, in one call (about 5 minutes): where an fp16 H=1024
#              batch-64 step goes (the probe, now with the gates adding one K slice: the cost of the
#              warps' split of K), and the first call of fp32 H=1024 one-step engines given states
#   fuse       one-step stacks with every layer in one launch (TF2RT_CUDA_GEMV_FUSE): GPU tests, the
#              stacks at batch 1 against a launch a layer (L2 prefetch masks 0 / 5, persisting L2),
#              then one-step engines at batch 1 (the first call times the form too)
#   l2front    one-step fp32/fp16 H=1024 stacks at batch 1 with every line of the first layers
#              persisting in L2 (TF2RT_CUDA_L2_WINDOWS=front, column +l2f) against a share of every
#              layer's (+l2) and none, then stateful fp32 H=1024 engines with each (about 5 minutes)
#   queue      everything still untimed, in order of value (about 12 minutes, more than one call allows:
#              run it as two, `xproj l2order` then `alt next`): xproj, l2order, alt, next
#   alt        one-step layers holding each row's tail every other call (TF2RT_CUDA_GEMV_ALT=1): its GPU
#              test, then H=1024 one-step engines given states with and without it in turns
#   xproj      fp16 engines whose first-layer projection is one TF32 GEMM reading fp32 x (TF2RT_CUDA_XPROJ=tf32:
#              no cast of x ahead of it): its GPU test, then T=100 engines (H 512/1024, batch 1/64) with
#              and without it in turns (about 7 minutes)
#   l2order    benchmarks/cuda_l2_order_probe.py: two layers of weights (2 x 16-72 MB) read in the same order
#              every call against each layer read backwards every other call (L2 keeping the lines the
#              last call read last)
#   firstcall  benchmarks/cuda_first_call.py: seconds to an engine's first result
#   probe1024  where a step of the fp16 H=1024 batch-64 persistent stack goes (the one shape
#              cuDNN still wins): bench_cuda_rnn.py --probe, parts of the step switched off, then
#              the large-batch step's build variants (copy groups, unrolling, no overlap, schedule)
# Each stage writes OUT_DIR/<stage>.txt (and the benchmarks their .md/.json there).
set -u
out=${1:?usage: gpu_check.sh OUT_DIR [STAGE...]}
shift
stages=${*:-decode step charrnn diagnose suite engine}
mkdir -p "$out"
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
pytest_gpu="python3 -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning -m gpu -rf"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for s in $stages; do
  echo "== $s"
  case $s in
    decode) timeout 100 $pytest_gpu tests/backends/test_cuda_decode.py -k "fused or app" \
              "tests/backends/test_cuda_stream.py::test_char_rnn_app_streams_on_cuda_and_matches_onnxruntime" ;;
    resident) timeout 200 $pytest_gpu tests/backends/test_cuda_decode.py \
                "tests/backends/test_cuda_stream.py::test_char_rnn_app_streams_on_cuda_and_matches_onnxruntime" \
                tests/backends/test_cuda_single_step.py -k "resident or fused or app or gpu_kernel or bidirectional"
              timeout 240 python3 benchmarks/bench_cuda_charrnn.py --out "$out/cuda_charrnn.md" --length 1000 --reps 3 \
                --launches 32 ;;
    step) timeout 100 python3 benchmarks/bench_cuda_step.py --out "$out/cuda_step.md" --reps 100 \
              --hiddens 512,1024 --batches 1 ;;
    charrnn) timeout 150 python3 benchmarks/bench_cuda_charrnn.py --out "$out/cuda_charrnn.md" --length 1000 --reps 3 ;;
    diagnose) timeout 60 python3 benchmarks/cuda_rnn_diagnose.py ;;
    suite) timeout 300 $pytest_gpu --maxfail=40 tests/backends ;;
    engine) timeout 240 python3 benchmarks/bench_cuda_engine.py --out "$out/cuda_engine.md" --reps 50 \
              --hiddens 512,1024 --batches 1 ;;
    open) timeout 90 $pytest_gpu -vv tests/backends/test_cuda_single_step.py -k "matches_onnxruntime and bidirectional" \
              tests/backends/test_cuda_views.py
          for pf in "" 1; do
            TF2RT_CUDA_GEMV_PF=$pf timeout 60 python3 benchmarks/bench_cuda_step.py --out "$out/cuda_step_pf${pf:-auto}.md" \
              --reps 200 --cells lstm,gru --hiddens 512,1024 --batches 1
          done
          timeout 90 python3 benchmarks/bench_cuda_engine.py --out "$out/cuda_engine_profile.md" --reps 50 \
            --hiddens 1024 --batches 1 --steps 1,100 --precisions fp16 --no-charrnn --no-keras --profile ;;
    pending) timeout 150 $pytest_gpu -vv tests/backends/test_cuda_single_step.py tests/backends/test_cuda_views.py \
               -k "large_one_step or inside_a_graph_capture or runner_runs_one_step"
             timeout 90 python3 benchmarks/cuda_first_call.py --out "$out/cuda_first_call_step.md" \
               --shapes lstm:1:1024:1:fp32,gru:1:1024:1:fp32
             timeout 90 python3 benchmarks/cuda_step_bandwidth_probe.py --out "$out/cuda_step_bandwidth_probe.md" ;;
    row) timeout 150 $pytest_gpu -vv tests/backends/test_cuda_row.py
         timeout 300 python3 benchmarks/bench_cuda_engine.py --out "$out/cuda_engine_row.md" --reps 50 \
           --hiddens 64,256,512 --batches 1,64 --steps 100 --no-charrnn --row ;;
    cluster) timeout 120 python3 benchmarks/cuda_cluster_probe.py --out "$out/cuda_cluster_probe.md" ;;
    bandwidth) timeout 60 python3 benchmarks/cuda_step_bandwidth_probe.py --out "$out/cuda_step_bandwidth_probe.md" ;;
    probe1024) timeout 240 python3 benchmarks/bench_cuda_rnn.py --probe --probe-shapes lstm:1024:64:100:float16 \
                 --reps 20 --out "$out/cuda_probe_1024.md"
               timeout 240 python3 benchmarks/bench_cuda_rnn.py --cells lstm,gru --hidden 1024 --batch 64 --T 100 \
                 --dtypes float16 --reps 20 --variants gt1,gt4,gt8,nt1,nt2,nopipe,mode --out "$out/cuda_rnn_1024_variants.md" ;;
    bulk) timeout 240 $pytest_gpu -vv tests/backends/test_cuda_persistent.py -k "bulk_copies or sharing_staged"
          timeout 150 python3 benchmarks/bench_cuda_rnn.py --cells lstm,gru --hidden 512,1024 --batch 64 --T 100 \
            --dtypes float16 --reps 20 --variants bulk0,share --out "$out/cuda_rnn_bulk.md" ;;
    bulkgrid) timeout 200 python3 benchmarks/bench_cuda_rnn.py --cells lstm,gru --hidden 256,512,1024 --batch 16,32 \
                --T 100 --dtypes float16 --reps 20 --variants bulk0,share --out "$out/cuda_rnn_bulk_grid.md"
              timeout 120 python3 benchmarks/bench_cuda_rnn.py --cells lstm,gru --hidden 512,1024 --batch 32 --T 100 \
                --dtypes float32 --reps 20 --variants bulk0 --out "$out/cuda_rnn_bulk_fp32.md" ;;
    l2pf) timeout 100 $pytest_gpu -vv tests/backends/test_cuda_single_step.py -k "large_one_step"
          timeout 240 python3 benchmarks/cuda_step_bandwidth_probe.py --prefetch-masks 0,1,5,13 --reps 100 \
            --out "$out/cuda_step_l2pf.md" ;;
    timeline) timeout 120 python3 benchmarks/cuda_step_timeline.py --out "$out/cuda_step_timeline.md" ;;
    wgmma) timeout 120 python3 benchmarks/cuda_wgmma_probe.py --out "$out/cuda_wgmma_probe.md" ;;
    fuse) timeout 150 $pytest_gpu tests/backends/test_cuda_single_step.py -k "fuse or every_layer_in_one_launch"
          timeout 150 python3 benchmarks/cuda_step_bandwidth_probe.py --prefetch-masks 0,5 --fuse 0,4 --reps 100 \
            --out "$out/cuda_step_fuse.md"
          timeout 150 python3 benchmarks/bench_cuda_engine.py --out "$out/cuda_engine_step.md" --reps 100 \
            --hiddens 512,1024 --batches 1 --steps 1 --no-charrnn --no-keras ;;
    next) timeout 240 python3 benchmarks/bench_cuda_rnn.py --probe --probe-shapes lstm:1024:64:100:float16 \
            --reps 20 --out "$out/cuda_probe_1024.md"
          timeout 90 python3 benchmarks/cuda_first_call.py --out "$out/cuda_first_call_step_state.md" \
            --shapes lstm:1:1024:1:fp32:h0,gru:1:1024:1:fp32:h0 ;;
    queue) bash "$0" "$out" xproj l2order alt next ;;
    alt) timeout 60 $pytest_gpu -vv tests/backends/test_cuda_single_step.py -k tail_every_other
         for a in "" 1 "" 1; do
           TF2RT_CUDA_GEMV_ALT=$a timeout 60 python3 benchmarks/bench_cuda_engine.py --reps 200 \
             --out "$out/cuda_engine_b1_alt$a.md" --hiddens 1024 --batches 1 --steps 1 --precisions fp32,fp16 \
             --state 1 --no-charrnn --no-keras
         done ;;
    xproj) timeout 120 $pytest_gpu -vv tests/backends/test_cuda_persistent.py -k tf32_gemm
           for x in "" tf32 "" tf32; do
             TF2RT_CUDA_XPROJ=$x timeout 100 python3 benchmarks/bench_cuda_engine.py --reps 200 \
               --out "$out/cuda_engine_t100_xproj$x.md" --hiddens 512,1024 --batches 1,64 --steps 100 \
               --precisions fp16 --no-charrnn --no-keras
           done ;;
    l2order) timeout 120 python3 benchmarks/cuda_l2_order_probe.py --out "$out/cuda_l2_order_probe.md" ;;
    l2front) timeout 200 python3 benchmarks/cuda_step_bandwidth_probe.py --prefetch-masks 0,5 --reps 60 \
               --prefetch-shapes lstm:1024:float32,gru:1024:float32,lstm:1024:float16,gru:1024:float16 \
               --out "$out/cuda_step_l2front.md"
             for w in "" front ""; do
               TF2RT_CUDA_L2_WINDOWS=$w timeout 100 python3 benchmarks/bench_cuda_engine.py --reps 200 \
                 --out "$out/cuda_engine_b1_l2$w.md" --hiddens 1024 --batches 1 --steps 1 --precisions fp32 --state 1 \
                 --no-charrnn --no-keras
             done ;;
    firstcall) timeout 150 python3 benchmarks/cuda_first_call.py --out "$out/cuda_first_call.md" ;;
    l2) for l2 in 0 1; do
          TF2RT_CUDA_L2_PERSIST=$l2 timeout 90 python3 benchmarks/bench_cuda_step.py --out "$out/cuda_step_l2_$l2.md" \
            --reps 200 --cells lstm,gru --hiddens 1024 --batches 1
        done ;;
    *) echo "unknown stage $s"; exit 2 ;;
  esac > "$out/$s.txt" 2>&1
  echo "rc=$?" >> "$out/$s.txt"
  tail -4 "$out/$s.txt"
done
