#!/usr/bin/env bash
# Side-by-side rounds of gpuconv against the peers in ../shared/peers (torch CPU, candle CPU,
# Burn wgpu), interleaved per shape: each shape is timed by gpuconv and then by every peer
# before the next shape starts, so the compared figures are taken within a minute or two of
# each other (this machine's speed drifts by up to 2x over minutes; PERFORMANCE.md, Method).
#
# Each timed process starts after SETTLE seconds of idle (default 10): right after a long
# full-load run (Burn takes about a minute on the largest layer) this machine ran the next
# process's first op at up to half speed (median 10.1 vs 5.8 ms, PERFORMANCE.md, Method).
#
# usage: benches/side_by_side.sh PEERS_DIR OUT_DIR [ROUNDS] [SHAPES.json]
#   PEERS_DIR: a writable copy of ../shared/peers with the peers built as its README says
#   (candle and Burn under $PEERS_TARGET, torch in the venv $TORCH_PY).
#   TUNE_CACHE=FILE: gpuconv runs the tuned choices of FILE (`gpuconv bench --tune
#   --tune-cache FILE` writes one). ONLY_PEERS="torch burn": which peers run (default all three).
# Writes OUT_DIR/round-N/{gpuconv,peers}.jsonl and compare.txt per round, then
# OUT_DIR/summary.txt: each op's geomean ratios per round.
set -euo pipefail
PEERS=$(cd "$1" && pwd)
OUT=$2
ROUNDS=${3:-1}
SHAPES=$(realpath "${4:-benches/shapes.json}")
TORCH_PY=${TORCH_PY:-/tmp/torchenv/bin/python}
PEERS_TARGET=${PEERS_TARGET:-/tmp/peers-target}
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
SETTLE=${SETTLE:-10}
PEERS_RUN=${ONLY_PEERS:-torch candle burn}
TUNE_ARGS=()
if [ -n "${TUNE_CACHE:-}" ]; then TUNE_ARGS=(--tune-cache "$(realpath "$TUNE_CACHE")"); fi
HERE=$(cd "$(dirname "$0")/.." && pwd)
GPUCONV=$HERE/target/release/gpuconv

(cd "$HERE" && cargo build --release -q)
runs() { [[ " $PEERS_RUN " == *" $1 "* ]]; }
if runs candle; then (cd "$PEERS/candle_bench" && CARGO_TARGET_DIR=$PEERS_TARGET/candle cargo build --release -q); fi
if runs burn; then (cd "$PEERS/burn_bench" && CARGO_TARGET_DIR=$PEERS_TARGET/burn cargo build --release -q); fi

names=$(python3 -c 'import json, sys; print(" ".join(s["name"] for s in json.load(open(sys.argv[1]))))' "$SHAPES")
mkdir -p "$OUT"
for round in $(seq "$ROUNDS"); do
  dir=$OUT/round-$round
  mkdir -p "$dir"
  : > "$dir/gpuconv.jsonl"
  : > "$dir/peers.jsonl"
  for name in $names; do
    echo "$(date -u +%H:%M:%S) round $round: $name" >&2
    one=$(mktemp -d)
    python3 -c 'import json, sys; json.dump([s for s in json.load(open(sys.argv[1])) if s["name"] == sys.argv[2]], open(sys.argv[3], "w"))' \
      "$SHAPES" "$name" "$one/shape.json"
    sleep "$SETTLE"
    "$GPUCONV" bench --shapes "$one/shape.json" --json "$one/gpuconv.jsonl" "${TUNE_ARGS[@]}" >> "$dir/gpuconv.txt" 2>/dev/null
    if runs torch; then
      sleep "$SETTLE"
      (cd "$PEERS" && "$TORCH_PY" torch_bench.py "$one/shape.json" "$one/peers.jsonl") >> "$dir/torch.txt" 2>&1
    fi
    if runs candle; then
      sleep "$SETTLE"
      (cd "$PEERS/candle_bench" && RAYON_NUM_THREADS=2 "$PEERS_TARGET/candle/release/candle_bench" "$one/shape.json" "$one/peers.jsonl") >> "$dir/candle.txt" 2>&1
    fi
    if runs burn; then
      sleep "$SETTLE"
      (cd "$PEERS/burn_bench" && "$PEERS_TARGET/burn/release/burn_bench" "$one/shape.json" "$one/peers.jsonl") >> "$dir/burn.txt" 2>&1
    fi
    cat "$one/gpuconv.jsonl" >> "$dir/gpuconv.jsonl"
    cat "$one/peers.jsonl" >> "$dir/peers.jsonl"
    rm -r "$one"
  done
  python3 "$HERE/benches/compare_peers.py" "$dir/gpuconv.jsonl" "$dir/peers.jsonl" > "$dir/compare.txt"
done
for round in $(seq "$ROUNDS"); do
  echo "## round $round"
  sed -n '/^| op |/,$p' "$OUT/round-$round/compare.txt"
done > "$OUT/summary.txt"
cat "$OUT/summary.txt"
