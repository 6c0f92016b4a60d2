#!/usr/bin/env bash
# The GPU checks, in one pass, on a machine with a CUDA device and PyTorch + transformers
# already installed (no venv: the machine's own python3; feedbackrl from this checkout).
#   OUT=dir bash benchmarks/gpu_check.sh
# Writes gpu.txt, tests.log, one bench_*.log per GRPO step benchmark and shop_cuda.log (the shop
# demo's loop on the GPU, its summary.json at the end) into $OUT (default ./gpu-out).
set -uo pipefail
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
$PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu.txt"
# CUDA paths vs CPU (test_fast_decode.py: the decode and its replay on both devices), and the
# policy/online-loop tests (which also run on CPU here)
timeout 240 $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_fast_decode.py tests/test_policy.py \
  tests/test_online.py 2>&1 | tee "$OUT/tests.log"
bench() { local name=$1; shift; timeout 150 $PY benchmarks/grpo_step.py "$@" 2>&1 | tee "$OUT/bench_$name.log" | grep -E "^feedbackrl|samples_per_s=|tokens/s|^  (generate|update|step) "; }
# the fixed sizes on the tiny model: GPU vs this machine's 16 CPU cores
bench tiny_cuda --device cuda --prompts 16 --generations 8 --new-tokens 16 --steps 5
bench tiny_cpu16 --device cpu --prompts 16 --generations 8 --new-tokens 16 --steps 5
# a GPT-2-small-sized Llama (hidden 768, 12 layers) in bf16, longer completions, a bigger batch
big="--device cuda --dtype bfloat16 --hidden 768 --layers 12 --heads 12 --prompts 64 --generations 8 --new-tokens 64 --steps 3"
bench 768x12_bf16 $big
# the same without feedbackrl's decoder (the model's own forward) and without the update's replay
# of the sampling pass: whether those CPU-born defaults also pay on a GPU
bench 768x12_bf16_model_forward $big --no-fast-decode
bench 768x12_bf16_no_replay $big --no-reuse-sampling-pass
# the shop demo's loop on the GPU (the query rewriter's MiniLM package is not on a bare GPU
# machine: off here, so its CTR is not the CPU demo's); SHOP=0 skips it
if [ "${SHOP:-1}" = 1 ]; then
  timeout 200 $PY -m feedbackrl.cli demo --out-dir /tmp/gpu-shop --set model.device=cuda --set shop.similar_query= \
    2>&1 | tee "$OUT/shop_cuda.log" | tail -25
  cat /tmp/gpu-shop/*/summary.json >> "$OUT/shop_cuda.log"
fi
