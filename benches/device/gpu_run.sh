#!/usr/bin/env bash
# One prepared measurement run on a GPU host (docs/benchmarks.md, "GPU"):
# trustmesh `bench` on the 200M-edge synthetic graph and on cnr-2000 at
# K = 1 and 32 with each kernel timed, the kernel variants beside the default
# (row layout, subgroup tree, lanes, gather-ahead), `score --device gpu`
# against `--device cpu` on real logs, Stackelberg best responses, cuSPARSE
# through CuPy on the very same matrices (benches/peers/gpu_peers.py) and the
# 32M-agent shape.
# Ordered by what is still unmeasured (docs/benchmarks.md): a run cut short by
# its time limit keeps the figures that matter most.
#
#   benches/device/gpu_run.sh OUTDIR [full|small|quick|ab]
#
# Reads (from the repository root): .dev/trustmesh(.xz) (release build),
# .dev/cnr-2000.arcs.tsv.gz.
# `small` runs every step on small graphs, to try the script on lavapipe;
# `quick` runs steps 1 to 4 and the peers on full-size graphs (a confirming
# run). `ab` times the defaults of this build against a baseline build,
# .dev/trustmesh_base(.xz), on the same saved matrices in the same run, then
# checks agreement and runs the peers (AB_SHORT=1: fewer repeats, no peers). Many output files: the caller tars OUTDIR (a device run returns few
# files).
# Every step has its own time limit, prints its exit status and goes on.
set -u
OUT=${1:?usage: gpu_run.sh OUTDIR [full|small|quick|ab]}
SCALE=${2:-full}
mkdir -p "$OUT"
W=/tmp/tm-run
mkdir -p $W

if [ -f .dev/trustmesh.xz ] && [ ! -x .dev/trustmesh ]; then
    xz -dk .dev/trustmesh.xz && chmod +x .dev/trustmesh
fi
BIN=.dev/trustmesh
if [ -f .dev/trustmesh_base.xz ] && [ ! -x .dev/trustmesh_base ]; then
    xz -dk .dev/trustmesh_base.xz && chmod +x .dev/trustmesh_base
fi
BASE=.dev/trustmesh_base
if [ "$SCALE" != small ]; then
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

if [ "$SCALE" = ab ]; then
    ab() { # ab NAME GRAPH K: this build, the baseline, this build again
        local name=$1 graph=$2 k=$3
        step 90 $BIN bench --graph $graph --k $k --device gpu --iters 40 $BW --profile-kernels \
            --json "$OUT/ab_${name}_new.json"
        step 90 $BASE bench --graph $graph --k $k --device gpu --iters 40 $BW --profile-kernels \
            --json "$OUT/ab_${name}_base.json"
        step 90 $BIN bench --graph $graph --k $k --device gpu --iters 40 $BW --profile-kernels \
            --json "$OUT/ab_${name}_new2.json"
    }
    step 40 $BIN bench --graph $W/cnr.parquet --k 1 --device gpu --iters 5 --save-matrix $W/cnr.bin
    ab cnr_k1 $W/cnr.bin 1
    ab cnr_k32 $W/cnr.bin 32
    step 150 $BIN bench --synthetic $BIG --k 1 --device gpu --iters 5 --save-matrix $W/big.bin
    ab big_k1 $W/big.bin 1
    # AB_SHORT=1: K = 32 on the big graph once per build, last (each run
    # takes over a minute), and no peers.
    [ "${AB_SHORT:-0}" = 1 ] || ab big_k32 $W/big.bin 32
fi
if [ "$SCALE" != ab ]; then
# 1. The big synthetic graph, K = 1 and 32, each kernel timed (--profile-kernels),
#    saved for the variants and the peer, with the default kernels.
step 150 $BIN bench --synthetic $BIG --k 1,32 --device gpu --iters 20 $BW --profile-kernels \
    --save-matrix $W/big.bin --json "$OUT/bench_big.json"
# 2. K = 1 variants on the same matrix, one switch from the defaults each
#    (row layout chosen per matrix, gather-ahead on, subgroup tree off): each
#    layout forced, the plain loop, the subgroup tree, and the kernels before
#    binning (consecutive rows, plain loop).
variant() { # variant NAME GRAPH ENV...
    local name=$1 graph=$2; shift 2
    step 60 env "$@" $BIN bench --graph $graph --k 1 --device gpu --iters 40 $BW --profile-kernels \
        --json "$OUT/variant_${name}.json"
}
variant big_binned $W/big.bin TRUSTMESH_GPU_BINNED=1
variant big_consec $W/big.bin TRUSTMESH_GPU_BINNED=0
variant big_plain $W/big.bin TRUSTMESH_GPU_GATHER_AHEAD=0
variant big_sg $W/big.bin TRUSTMESH_GPU_SUBGROUPS=1
variant big_old $W/big.bin TRUSTMESH_GPU_BINNED=0 TRUSTMESH_GPU_GATHER_AHEAD=0
# 3. cnr-2000 with the defaults (K = 1, 32), then the same K = 1 variants.
step 40 $BIN bench --graph $W/cnr.parquet --k 1,32 --device gpu --iters 40 $BW --profile-kernels \
    --save-matrix $W/cnr.bin --json "$OUT/bench_cnr.json"
variant cnr_binned $W/cnr.bin TRUSTMESH_GPU_BINNED=1
variant cnr_consec $W/cnr.bin TRUSTMESH_GPU_BINNED=0
variant cnr_plain $W/cnr.bin TRUSTMESH_GPU_GATHER_AHEAD=0
variant cnr_sg $W/cnr.bin TRUSTMESH_GPU_SUBGROUPS=1
variant cnr_old $W/cnr.bin TRUSTMESH_GPU_BINNED=0 TRUSTMESH_GPU_GATHER_AHEAD=0
fi
# 4. Agreement with the f64 CPU path on real logs, single and batched.
ba=data/bitcoin-alpha.parquet
printf 'set,agent\n' >$W/sets.csv
for s in 0 1 2 3 4 5 6 7 8 9; do
    for a in $((s + 1)) $((s * 7 + 2)) $((s * 13 + 3)); do printf '%s,%s\n' "s$s" "$a" >>$W/sets.csv; done
done
for dev in gpu cpu; do
    step 30 $BIN score --log $ba --device $dev --epsilon 1e-7 --out $W/ba_$dev.parquet --top 3
    step 30 $BIN score --log $ba --device $dev --epsilon 1e-7 --pretrusted-sets $W/sets.csv --out $W/sets_$dev.parquet --top 1
    step 60 $BIN score --log $W/cnr.parquet --device $dev --epsilon 1e-7 --out $W/cnr_$dev.parquet --top 3 \
        --report "$OUT/cnr_$dev.report.json"
done
step 20 python3 benches/device/compare_scores.py $W/ba_gpu.parquet $W/ba_cpu.parquet
step 20 python3 benches/device/compare_scores.py $W/sets_gpu.parquet $W/sets_cpu.parquet
step 30 python3 benches/device/compare_scores.py $W/cnr_gpu.parquet $W/cnr_cpu.parquet
if [ "$SCALE" = ab ] && [ "${AB_SHORT:-0}" = 1 ]; then
    for b in $BIN $BASE; do
        step 120 $b bench --graph $W/big.bin --k 32 --device gpu --iters 40 $BW --profile-kernels \
            --json "$OUT/ab_big_k32_$(basename $b).json"
    done
    log done
    exit 0
fi
if [ "$SCALE" = quick ] || [ "$SCALE" = ab ]; then
    step 60 python3 -u benches/peers/gpu_peers.py --matrix $W/cnr.bin --k 32 --json "$OUT/peers_cnr.json"
    if [ "$SCALE" = ab ]; then
        step 90 python3 -u benches/peers/gpu_peers.py --matrix $W/big.bin --k 32 --no-f64 \
            --json "$OUT/peers_big.json"
        step 150 $BIN bench --synthetic $HUGE --k 1 --device gpu --iters 20 $BW --profile-kernels \
            --save-matrix $W/huge.bin --json "$OUT/ab_huge_k1_new.json"
        step 60 $BASE bench --graph $W/huge.bin --k 1 --device gpu --iters 20 $BW --profile-kernels \
            --json "$OUT/ab_huge_k1_base.json"
    fi
    log done
    exit 0
fi
# 4a. What `--flat-tail` costs on the GPU (issue 11, item 7): iterate time
#     per iteration beside cnr_gpu.report.json's.
step 60 $BIN score --log $W/cnr.parquet --device gpu --epsilon 1e-7 --flat-tail 10 --out $W/cnr_ft.parquet \
    --top 3 --report "$OUT/cnr_gpu_flattail.report.json"
# 4b. Stackelberg best responses per second (issue 13's >= 1e9/s target), and
#     the bundled game solved on the GPU against the exact method.
step 60 $BIN bench --best-response --device cpu,gpu --json "$OUT/best_response.json"
step 60 $BIN stackelberg --game data/stackelberg-game.json --method both --device gpu \
    --out "$OUT/stackelberg_gpu.json"
# 5. cuSPARSE on the same matrices.
step 60 python3 -u benches/peers/gpu_peers.py --matrix $W/big.bin --k 32 --no-f64 \
    --json "$OUT/peers_big.json"
step 40 python3 -u benches/peers/gpu_peers.py --matrix $W/cnr.bin --k 32 \
    --json "$OUT/peers_cnr.json"
# 6. More agents on the same edges (32M/200M), K = 1.
step 150 $BIN bench --synthetic $HUGE --k 1 --device gpu $BW --profile-kernels \
    --json "$OUT/bench_huge.json"
# 7. Lane tuning with the defaults, when time is left.
variant big_lane4 $W/big.bin TRUSTMESH_GPU_PER_LANE=4
variant cnr_lane4 $W/cnr.bin TRUSTMESH_GPU_PER_LANE=4
log done
