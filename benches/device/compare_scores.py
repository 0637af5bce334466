#!/usr/bin/env python3
"""Agreement of two trustmesh score files (e.g. `--device gpu` against
`--device cpu`): per vector (the `set`, `layer` or `topic` column when there is
one), the L1 distance between the scores and whether the top N agents come in
the same order. Exits 1 when the files do not hold the same vectors and
agents, or a distance exceeds --max-l1.

    python3 benches/device/compare_scores.py gpu.parquet cpu.parquet [--top 100] [--max-l1 1e-6]
"""
import argparse
import sys

import pyarrow.parquet as pq


def vectors(path):
    t = pq.read_table(path).to_pydict()
    group = next((c for c in ("set", "layer", "topic") if c in t), None)
    out = {}
    keys = t[group] if group else [""] * len(t["agent"])
    for g, a, s in zip(keys, t["agent"], t["score"]):
        out.setdefault(g, {})[a] = s
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--top", type=int, default=100)
    ap.add_argument("--max-l1", type=float, default=1e-6)
    ap.add_argument("--tie", type=float, default=1e-9,
                    help="reference scores closer than this are near-ties")
    args = ap.parse_args()
    va, vb = vectors(args.a), vectors(args.b)
    if va.keys() != vb.keys():
        sys.exit(f"different vectors: {sorted(va)[:5]} vs {sorted(vb)[:5]}")
    worst, ok = 0.0, True
    for g in sorted(va):
        x, y = va[g], vb[g]
        if x.keys() != y.keys():
            sys.exit(f"vector {g!r}: different agents")
        l1 = sum(abs(x[k] - y[k]) for k in x)
        # Ties broken by agent id, as trustmesh ranks them.
        top = lambda v: sorted(v, key=lambda k: (-v[k], len(k), k))[: args.top]
        tx, ty = top(x), top(y)
        # Pairs the two files order differently; fine only between near-ties
        # of the reference (second file).
        pos = {k: i for i, k in enumerate(tx)}
        swaps = [(a, b) for i, a in enumerate(ty) for b in ty[i + 1:]
                 if a in pos and b in pos and pos[a] > pos[b]]
        real = [(a, b) for a, b in swaps if abs(y[a] - y[b]) > args.tie]
        same = set(tx) == set(ty) and not real
        worst = max(worst, l1)
        ok &= same and l1 <= args.max_l1
        order = "identical" if not swaps else (
            f"identical up to {len(swaps)} near-tie swap(s)" if same else "DIFFERENT")
        print(f"{g or 'scores'}: L1 {l1:.3e}, top-{args.top} {order}, "
              f"sums {sum(x.values()):.9f} / {sum(y.values()):.9f}")
    print(f"worst L1 {worst:.3e} over {len(va)} vector(s): {'OK' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
