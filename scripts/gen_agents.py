#!/usr/bin/env python3
"""Generate a seeded agents table for `trustmesh mechanism` from a scores file.

Every agent of the scores file (`trustmesh score --out`) gets one row:

    agent       utf8     the agent id, in trustmesh's canonical order
                         (shorter ids first, then bytewise)
    cost        float64  cost per unit of effort: lognormal, median --cost-median
                         (10), sigma --cost-sigma (0.5), rounded to 0.1 (at least 0.1)
    capability  float64  uniform in [--cap-min (0.2), 1], rounded to 0.01

Cost and capability are drawn independently of the scores, so the trust tiers
are what tells agents apart to the leader. Only `random.Random(seed).random()`
is used (the one stream Python guarantees across versions); the normal draw is
Box-Muller on it. The bundled data/agents-bitcoin-alpha.parquet was made with

    trustmesh score --log data/bitcoin-alpha.parquet --out scores.parquet
    python3 scripts/gen_agents.py scores.parquet data/agents-bitcoin-alpha.parquet --seed 1

Needs pyarrow.
"""

import argparse
import math
import random

import pyarrow as pa
import pyarrow.parquet as pq


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scores", help="scores file (agent, score, ...)")
    ap.add_argument("out", help="agents table to write")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cost-median", type=float, default=10.0)
    ap.add_argument("--cost-sigma", type=float, default=0.5)
    ap.add_argument("--cap-min", type=float, default=0.2)
    a = ap.parse_args()

    agents = pq.read_table(a.scores, columns=["agent"]).column("agent").to_pylist()
    agents.sort(key=lambda s: (len(s.encode()), s.encode()))
    rng = random.Random(a.seed)
    cost, capability = [], []
    for _ in agents:
        u1, u2 = 1.0 - rng.random(), rng.random()
        z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        # Rounded values keep the file small (few distinct numbers); a cost
        # must stay > 0.
        cost.append(max(0.1, round(a.cost_median * math.exp(a.cost_sigma * z), 1)))
        capability.append(round(a.cap_min + (1.0 - a.cap_min) * rng.random(), 2))
    table = pa.table(
        {
            "agent": pa.array(agents, pa.string()),
            "cost": pa.array(cost, pa.float64()),
            "capability": pa.array(capability, pa.float64()),
        }
    )
    # Ids delta-encoded, the few distinct numbers as a dictionary: ~10 KB.
    pq.write_table(
        table,
        a.out,
        compression="zstd",
        compression_level=19,
        use_dictionary=["cost", "capability"],
        column_encoding={"agent": "DELTA_BYTE_ARRAY"},
    )
    print(f"wrote {len(agents)} agents to {a.out}")


if __name__ == "__main__":
    main()
