#!/usr/bin/env bash
# feedbackrl vs TRL: GRPO steps per second on the same freshly built tiny model, the same sizes,
# the same machine, back to back in one run.
#
#   [ROUNDS=3] [INTERLEAVE=1] [MODEL=DIR] [OURS_FLAGS="..."] bash benchmarks/compare_trl.sh [--prompts 16 --generations 8 --new-tokens 16 --steps 5 --threads 1 ...]
#
# Any flags are passed to both benchmarks/grpo_step.py and benchmarks/trl_grpo_step.py;
# OURS_FLAGS only to grpo_step.py (e.g. --skip-zero-advantage). MODEL: run both on this model
# directory (e.g. a trained checkpoint) instead of a freshly built tiny model. Each
# round runs both (alternating which goes first); the last line holds the medians and their ratio.
# On a small machine shared with other jobs pass --threads 1 (see benchmarks/README.md).
# INTERLEAVE=1 runs both sides of a round at once, taking turns step by step (benchmarks/baton.py),
# so that a drift in the machine's speed falls on both alike; each step still runs alone.
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

LOGS=$(mktemp -d /tmp/feedbackrl-grpo-bench-logs.XXXXXX)
if [ -n "${MODEL:-}" ]; then
  [ -f "$MODEL/config.json" ] || { echo "compare_trl.sh: MODEL=$MODEL holds no config.json" >&2; exit 1; }
  MODEL_DIR=$MODEL
  trap 'rm -rf "$LOGS"' EXIT
else
  MODEL_DIR=$(mktemp -d /tmp/feedbackrl-grpo-bench-model.XXXXXX)
  trap 'rm -rf "$MODEL_DIR" "$LOGS"' EXIT
  "$PY" benchmarks/grpo_step.py --build-model "$MODEL_DIR" 2>/dev/null
fi

echo "== feedbackrl: $("$PY" -c 'import transformers, torch; print(f"torch {torch.__version__}, transformers {transformers.__version__}")')"
echo "== TRL: $("$TRL_PY" -c 'import trl, transformers, torch; print(f"trl {trl.__version__}, torch {torch.__version__}, transformers {transformers.__version__}")')"

# Each benchmark prints its per-step table; the figure is its last line, samples_per_s=X.
run_ours() {
  # shellcheck disable=SC2086  # OURS_FLAGS is a list of flags
  "$PY" benchmarks/grpo_step.py --model "$MODEL_DIR" ${OURS_FLAGS:-} "$@" 2>&1 | tee "$LOGS/ours.log"
  grep '^samples_per_s=' "$LOGS/ours.log" | tail -1 | cut -d= -f2 >> "$LOGS/ours.txt"
}
run_trl() {
  # the TRL side reads prompts and checks answers with feedbackrl's own arithmetic task (plain Python)
  PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$TRL_PY" benchmarks/trl_grpo_step.py --model "$MODEL_DIR" "$@" 2>&1 \
    | tee "$LOGS/trl.log"
  grep '^samples_per_s=' "$LOGS/trl.log" | tail -1 | cut -d= -f2 >> "$LOGS/trl.txt"
}

# ROUNDS rounds, the order alternating, so that a change in the machine's load between the two
# runs of a round does not always favour the same side.
ROUNDS=${ROUNDS:-3}
for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round/$ROUNDS, load $(cut -d' ' -f1-3 /proc/loadavg)"
  if [ "${INTERLEAVE:-0}" = 1 ]; then
    # both at once, taking turns step by step (benchmarks/baton.py); the first turn alternates
    baton="$LOGS/baton-$round"
    mkdir -p "$baton"
    if [ $((round % 2)) = 1 ]; then echo -n ours > "$baton/turn"; else echo -n trl > "$baton/turn"; fi
    run_ours --baton "$baton" --baton-name ours "$@" > "$LOGS/ours-round.out" 2>&1 &
    ours_pid=$!
    run_trl --baton "$baton" --baton-name trl "$@" > "$LOGS/trl-round.out" 2>&1 &
    trl_pid=$!
    status=0
    wait "$ours_pid" || status=$?
    wait "$trl_pid" || status=$?
    cat "$LOGS/ours-round.out" "$LOGS/trl-round.out"
    [ "$status" = 0 ] || { echo "compare_trl.sh: a benchmark failed in round $round" >&2; exit 1; }
  elif [ $((round % 2)) = 1 ]; then run_ours "$@"; run_trl "$@"; else run_trl "$@"; run_ours "$@"; fi
done
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$LOGS/ours.txt" "$LOGS/trl.txt" <<'EOF_PY'
import statistics, sys
ours, trl = ([float(x) for x in open(p).read().split()] for p in sys.argv[1:3])
for i, (a, b) in enumerate(zip(ours, trl), 1):
    print(f"round {i}: feedbackrl {a:.2f} samples/s, TRL {b:.2f} samples/s, ratio {a / b:.2f}")
a, b = statistics.median(ours), statistics.median(trl)
print(f"feedbackrl_samples_per_s={a:.2f} trl_samples_per_s={b:.2f} ratio={a / b:.2f} "
      f"(medians over {len(ours)} rounds; median of per-round ratios {statistics.median(x / y for x, y in zip(ours, trl)):.2f})")
EOF_PY
