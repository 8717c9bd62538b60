#!/usr/bin/env bash
# The GPU benchmark: the seed preset's training step (batch 3, d2 = 64), its GPU memory, and the
# convolution and GEMM figures, as JSON. Meant for a machine with a real GPU where nothing may be
# downloaded or built: Deno's binary and its module cache travel with the working tree.
#
#   tasks/bench_gpu.sh [OUT_DIR]          # ~2-5 minutes on a recent GPU; writes OUT_DIR/bench_gpu.json
#   QUICK=1 tasks/bench_gpu.sh [OUT_DIR]  # smoke test (tiny preset, small problems), e.g. on llvmpipe
#
# Preparing the tree on a machine with network access (once):
#
#   mkdir -p .deno && cp "$(command -v deno)" .deno/deno
#   DENO_DIR=.deno/cache deno cache tasks/bench.ts tasks/synth.ts
#
# The script uses .deno/deno (or $DENO, or deno on PATH) with DENO_DIR=.deno/cache and
# --cached-only, so a missing module is an error rather than a download. The training step needs
# one real batch: a 16-sample synthetic dataset is rendered into a temporary folder first
# (seconds). The run is sized to finish well inside 8 minutes; stderr shows progress.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-${OUT:-$ROOT/runs/bench_gpu}}"
mkdir -p "$OUT"

DENO_BIN="${DENO:-}"
if [[ -z "$DENO_BIN" ]]; then
  if [[ -x "$ROOT/.deno/deno" ]]; then DENO_BIN="$ROOT/.deno/deno"; else DENO_BIN="$(command -v deno || true)"; fi
fi
if [[ -z "$DENO_BIN" || ! -x "$DENO_BIN" ]]; then
  echo "bench_gpu: no deno binary (looked for \$DENO, $ROOT/.deno/deno and deno on PATH)" >&2
  exit 2
fi
if [[ -d "$ROOT/.deno/cache" ]]; then export DENO_DIR="${DENO_DIR:-$ROOT/.deno/cache}"; fi
RUN=("$DENO_BIN" run --cached-only -A --config "$ROOT/deno.json")

DATA="$(mktemp -d "${TMPDIR:-/tmp}/volpose-bench-data.XXXXXX")"
trap 'rm -rf "$DATA"' EXIT
echo "bench_gpu: $("$DENO_BIN" --version | head -n 1); rendering a 16-sample dataset ..." >&2
"${RUN[@]}" "$ROOT/tasks/synth.ts" --out "$DATA/synth" --train 16 --test 4 --workers 0 >&2

if [[ -n "${QUICK:-}" ]]; then
  ARGS=(--only conv,train --quick --presets tiny)
else
  ARGS=(--only conv,train,memory --presets seed)
fi
echo "bench_gpu: deno task bench ${ARGS[*]} ..." >&2
"${RUN[@]}" "$ROOT/tasks/bench.ts" "${ARGS[@]}" --data "$DATA/synth" --out "$OUT/bench_gpu.json" >/dev/null
cat "$OUT/bench_gpu.json"
