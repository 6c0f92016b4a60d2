#!/usr/bin/env bash
# feedbackrl vs TRL: GRPO steps per second on the same freshly built tiny model, the same sizes,
# the same machine, back to back in one run.
#
#   bash benchmarks/compare_trl.sh [--prompts 16 --generations 8 --new-tokens 16 --steps 5 ...]
#
# Any flags are passed to both benchmarks/grpo_step.py and benchmarks/trl_grpo_step.py.
# TRL is not a dependency of feedbackrl: it lives in its own venv, FEEDBACKRL_TRL_VENV
# (default /tmp/feedbackrl-trl-venv), made on first use. torch is installed there first and
# pinned by a constraints file, and so is transformers (the project's version, so that both
# sides run the very same Llama code); otherwise resolving trl can pull another torch and with it
# gigabytes of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
[ -x "$PY" ] || { echo "compare_trl.sh: $PY not found; run 'make install' first" >&2; exit 1; }
TRL_VENV=${FEEDBACKRL_TRL_VENV:-/tmp/feedbackrl-trl-venv}
TRL_VERSION=${TRL_VERSION:-}  # empty = the newest trl that fits the pins
TORCH_VERSION=$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')
TRANSFORMERS_VERSION=$("$PY" -c 'import transformers; print(transformers.__version__)')
TRL_PY="$TRL_VENV/bin/python"
STAMP="$TRL_VENV/.installed-torch$TORCH_VERSION-transformers$TRANSFORMERS_VERSION-trl${TRL_VERSION:-latest}"

if [ ! -f "$STAMP" ]; then
  echo "== creating $TRL_VENV (torch $TORCH_VERSION, transformers $TRANSFORMERS_VERSION, trl ${TRL_VERSION:-latest})"
  base=$("$PY" -c 'import sys; print(sys._base_executable)')
  [ -x "$TRL_PY" ] || "$base" -m venv "$TRL_VENV"
  constraints="$TRL_VENV/constraints.txt"
  printf 'torch==%s\ntransformers==%s\n' "$TORCH_VERSION" "$TRANSFORMERS_VERSION" > "$constraints"
  "$TRL_PY" -m pip install -q --upgrade pip
  "$TRL_PY" -m pip install -q "torch==$TORCH_VERSION"
  "$TRL_PY" -m pip install -q -c "$constraints" "transformers==$TRANSFORMERS_VERSION" \
    "trl${TRL_VERSION:+==$TRL_VERSION}" datasets accelerate
  got=$("$TRL_PY" -c 'import torch; print(torch.__version__.split("+")[0])')
  [ "$got" = "$TORCH_VERSION" ] || { echo "compare_trl.sh: the TRL venv has torch $got, not $TORCH_VERSION" >&2; exit 1; }
  touch "$STAMP"
fi

MODEL_DIR=$(mktemp -d /tmp/feedbackrl-grpo-bench-model.XXXXXX)
trap 'rm -rf "$MODEL_DIR"' EXIT
"$PY" benchmarks/grpo_step.py --build-model "$MODEL_DIR"

echo "== load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== feedbackrl ($("$PY" -c 'import transformers, torch; print(f"torch {torch.__version__}, transformers {transformers.__version__}")'))"
ours=$("$PY" benchmarks/grpo_step.py --model "$MODEL_DIR" "$@" | tee /dev/stderr | grep '^samples_per_s=' | tail -1 | cut -d= -f2)
echo "== load between: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== TRL ($("$TRL_PY" -c 'import trl, transformers, torch; print(f"trl {trl.__version__}, torch {torch.__version__}, transformers {transformers.__version__}")'))"
# the TRL side reads prompts and checks answers with feedbackrl's own arithmetic task (plain Python)
theirs=$(PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$TRL_PY" benchmarks/trl_grpo_step.py --model "$MODEL_DIR" "$@" \
  | tee /dev/stderr | grep '^samples_per_s=' | tail -1 | cut -d= -f2)
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
ratio=$(python3 -c "print(f'{$ours / $theirs:.2f}')")
echo "feedbackrl_samples_per_s=$ours trl_samples_per_s=$theirs ratio=$ratio"
