#!/usr/bin/env bash
# The device check: the equivalence referee, then the mesh tables, in one go.
# Runs unchanged on CPU; on a machine with a GPU (and a TensorFlow that sees
# it) the tables also run on 4 logical GPUs split from the first one.
# On a 16-core Xeon (2026-12-04): equivalence 187 s, collectives and the first
# table about 2 minutes, the `steps_per_execution=8` table more than 240 s
# while each mesh compiled 8 unrolled steps (they now run in a loop).
#
#   bash benchmarks/accelerator_check.sh            # results under benchmarks/results/
#   OUT=/some/dir bash benchmarks/accelerator_check.sh
#   EQUIVALENCE=0 DEVICES=GPU bash benchmarks/accelerator_check.sh  # GPU tables only
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
export TF_CPP_MIN_LOG_LEVEL=3
status=0

gpu=0
python -c "import sys, tensorflow as tf; sys.exit(0 if tf.config.list_physical_devices('GPU') else 1)" && gpu=1
echo "GPU present: $gpu" | tee "$out/machine.txt"
nproc >> "$out/machine.txt"

# 1. Sharded == single device, on 8 CPU virtual devices (the referee is the same
#    on every machine; the GPU is hidden so meshes are built on CPUs). About 3
#    minutes on 16 cores; a 2-core machine needs about 15.
limit=420
[ "$(nproc)" -lt 8 ] && limit=1200
[ "${EQUIVALENCE:-1}" = 0 ] || CUDA_VISIBLE_DEVICES= timeout "$limit" python -m pytest -q -p no:cacheprovider -n 4 --run-slow \
  tests/parallel/model_parallel_equivalence_test.py \
  tests/parallel/dropout_drift_test.py \
  tests/parallel/grouped_all_reduces_test.py \
  tests/parallel/output_layouts_test.py \
  tests/parallel/steps_per_execution_test.py 2>&1 | tail -n 5 | tee "$out/equivalence.txt" || status=1

# 2. The tables: what a collective costs, then tiny BERT and MiniLM on meshes.
devices="CPU"
[ "$gpu" = 1 ] && devices="CPU GPU"
devices="${DEVICES:-$devices}"
for device in $devices; do
  timeout 120 python benchmarks/bench_collectives.py --device "$device" --rounds 5 \
    | tail -n 1 | tee "$out/bench_collectives_$device.json" || status=1
  timeout 240 python benchmarks/bench_mesh.py --model tiny --device "$device" --rounds 5 \
    | tail -n 1 | tee "$out/bench_mesh_tiny_$device.json" || status=1
  # The first `fit` of each mesh compiles its steps: in a loop since the device
  # check found this table past 240 s with 8 unrolled steps (benchmarks/README).
  timeout 600 python benchmarks/bench_mesh.py --model tiny --device "$device" --rounds 5 \
    --setups 1x2,2x1,2x2 --steps 32 --steps-per-execution 8 \
    | tail -n 1 | tee "$out/bench_mesh_tiny_spe8_$device.json" || status=1
done
if [ "$gpu" = 1 ] && [[ " $devices " == *" GPU "* ]]; then
  timeout 240 python benchmarks/bench_mesh.py --device GPU --rounds 5 \
    | tail -n 1 | tee "$out/bench_mesh_minilm_GPU.json" || status=1
fi
echo "seconds: $SECONDS" | tee -a "$out/machine.txt"
exit "$status"
