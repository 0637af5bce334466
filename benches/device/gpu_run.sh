#!/usr/bin/env bash
# One prepared measurement run on a GPU host (docs/benchmarks.md, "GPU"):
# trustmesh `bench` on the 200M-edge synthetic graph and on cnr-2000 at
# K = 1, 8, 32, cuSPARSE through CuPy on the very same matrices
# (benches/peers/gpu_peers.py), the lane-tuning variants, `score --device gpu`
# against `--device cpu` on real logs, the graph shapes that once gave no
# figure, and the baseline binary in the same run. Ordered by what is still
# unmeasured (docs/benchmarks.md): a run cut short by its time limit keeps the
# figures that matter most.
#
#   benches/device/gpu_run.sh OUTDIR [full|small]
#
# Reads (from the repository root): .dev/trustmesh(.xz) (release build),
# optional .dev/trustmesh-base(.xz) (the baseline), .dev/cnr-2000.arcs.tsv.gz.
# `small` runs every step on small graphs, to try the script on lavapipe.
# Every step has its own time limit, prints its exit status and goes on.
set -u
OUT=${1:?usage: gpu_run.sh OUTDIR [full|small]}
SCALE=${2:-full}
mkdir -p "$OUT"
W=/tmp/tm-run
mkdir -p $W

for b in trustmesh trustmesh-base; do
    if [ -f .dev/$b.xz ] && [ ! -x .dev/$b ]; then xz -dk .dev/$b.xz && chmod +x .dev/$b; fi
done
BIN=.dev/trustmesh
BASE=.dev/trustmesh-base
if [ "$SCALE" = full ]; then
    BIG=8000000,200000000; MID=8000000,50000000; HUGE=32000000,200000000
    # The copy bandwidth measured on an H200 (4.2 TB/s); elsewhere `bench`
    # reports times only and gpu_peers.py measures the copy bandwidth.
    BW=
    if nvidia-smi -L 2>/dev/null | grep -q H200; then BW=--gpu-bandwidth=4200; fi
else
    BIG=200000,2000000; MID=200000,500000; HUGE=400000,2000000; BW=
fi

log() { echo "== $(date +%T) $*"; }
step() { # step SECONDS command...
    local t=$1; shift
    log "$*"
    timeout "$t" "$@" 2>&1
    echo "== rc=$?"
}

log "host: $(nproc) cores; $(nvidia-smi -L 2>/dev/null || echo 'no nvidia-smi')"
step 60 $BIN devices
step 120 $BIN convert --from tsv .dev/cnr-2000.arcs.tsv.gz --out $W/cnr.parquet --layer link

# 1. The big synthetic graph: all widths, saved for the peer and the variants.
step 200 $BIN bench --synthetic $BIG --k 1,8,32 --device gpu --iters 20 $BW \
    --save-matrix $W/big.bin --json "$OUT/bench_big.json"
# 2. cuSPARSE on the same matrix.
step 120 python3 -u benches/peers/gpu_peers.py --matrix $W/big.bin --k 8,32 --no-f64 \
    --json "$OUT/peers_big.json"
# 3. Shapes that gave no figure on main at c4d4d07.
step 90 $BIN bench --synthetic $MID --k 1,32 --device gpu $BW
step 150 $BIN bench --synthetic $HUGE --k 1,32 --device gpu $BW
# 4. Lane tuning: entries per lane 4 and 16 beside the default 8 above.
for p in 4 16; do
    step 60 env TRUSTMESH_GPU_PER_LANE=$p $BIN bench --graph $W/big.bin --k 1,32 --device gpu $BW
    step 30 env TRUSTMESH_GPU_PER_LANE=$p $BIN bench --graph $W/cnr.parquet --k 1,32 --device gpu --iters 40 $BW
done
# 5. cnr-2000: GPU and CPU in one run, then the peer.
step 100 $BIN bench --graph $W/cnr.parquet --k 1,8,32 --device gpu,cpu --iters 40 $BW \
    --save-matrix $W/cnr.bin --json "$OUT/bench_cnr.json"
step 60 python3 -u benches/peers/gpu_peers.py --matrix $W/cnr.bin --k 8,32 \
    --json "$OUT/peers_cnr.json"
# 6. Agreement with the f64 CPU path on real logs, single and batched.
ba=data/bitcoin-alpha.parquet
printf 'set,agent\n' >$W/sets.csv
for s in 0 1 2 3 4 5 6 7 8 9; do
    for a in $((s + 1)) $((s * 7 + 2)) $((s * 13 + 3)); do printf '%s,%s\n' "s$s" "$a" >>$W/sets.csv; done
done
for dev in gpu cpu; do
    step 30 $BIN score --log $ba --device $dev --epsilon 1e-7 --out $W/ba_$dev.parquet --top 3
    step 30 $BIN score --log $ba --device $dev --epsilon 1e-7 --pretrusted-sets $W/sets.csv --out $W/sets_$dev.parquet --top 1
    step 60 $BIN score --log $W/cnr.parquet --device $dev --epsilon 1e-7 --out $W/cnr_$dev.parquet --top 3
done
step 20 python3 benches/device/compare_scores.py $W/ba_gpu.parquet $W/ba_cpu.parquet
step 20 python3 benches/device/compare_scores.py $W/sets_gpu.parquet $W/sets_cpu.parquet
step 30 python3 benches/device/compare_scores.py $W/cnr_gpu.parquet $W/cnr_cpu.parquet
# 7. The baseline binary on the same graphs, same machine.
if [ -x $BASE ]; then
    step 120 $BASE bench --synthetic $BIG --k 1,32 --device gpu $BW
    step 50 $BASE bench --graph $W/cnr.parquet --k 1,32 --device gpu --iters 40 $BW
fi
log done
