#!/usr/bin/env bash
# Recompute per epoch on a growing log, cold against warm-started from the
# previous epoch's snapshot (what `serve --warm-start` does), issue 15:
#
#   python3 benches/gen_log.py --rows 2000000 --files 10 --out /tmp/grow
#   benches/warm_start.sh /tmp/grow [BIN] [FIRST]
#
# Epoch k scores the first k files (k = FIRST..all, default from half); its cold snapshot is the start of epoch
# k + 1's warm run. Prints one row per epoch: iterations and iterate seconds
# (the report's stage time) cold and warm, and the L1 distance between them.
set -eu
LOG=${1:?usage: warm_start.sh LOGDIR [BIN] [FIRST]}
BIN=${2:-target/release/trustmesh}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$BIN" id new --out "$W/k" >/dev/null
parts=("$LOG"/part-*.parquet)
n=${#parts[@]}
first=${3:-$(( n / 2 ))}
printf '%-6s %-6s %10s %10s %10s %10s %10s\n' epoch files cold_iter cold_s warm_iter warm_s L1
for ((k = first; k <= n; k++)); do
    mkdir -p "$W/logs$k"
    for ((i = 0; i < k; i++)); do ln -sf "$(realpath "${parts[$i]}")" "$W/logs$k/"; done
    "$BIN" score --log "$W/logs$k" --device cpu --top 0 --out "$W/cold$k.parquet" --report "$W/cold$k.json" >/dev/null
    "$BIN" snapshot create --scores "$W/cold$k.parquet" --key "$W/k" --epoch "$k" --out "$W/snap$k" >/dev/null
    if ((k > first)); then
        "$BIN" score --log "$W/logs$k" --device cpu --top 0 --warm-start-from "$W/snap$((k - 1))" \
            --out "$W/warm$k.parquet" --report "$W/warm$k.json" >/dev/null
        python3 - "$W" "$k" <<'PY'
import json, sys
import pyarrow.parquet as pq
w, k = sys.argv[1], sys.argv[2]
c = json.load(open(f"{w}/cold{k}.json"))
m = json.load(open(f"{w}/warm{k}.json"))
a = dict(zip(*pq.read_table(f"{w}/cold{k}.parquet", columns=["agent", "score"]).to_pydict().values()))
b = dict(zip(*pq.read_table(f"{w}/warm{k}.parquet", columns=["agent", "score"]).to_pydict().values()))
l1 = sum(abs(a[x] - b[x]) for x in a)
print(f"{k:<6} {k:<6} {c['iterations']:>10} {c['seconds']['iterate']:>10.3f} "
      f"{m['iterations']:>10} {m['seconds']['iterate']:>10.3f} {l1:>10.2e}")
PY
    fi
done
