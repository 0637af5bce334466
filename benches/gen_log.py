#!/usr/bin/env python3
"""Generate a seeded, realistic marketplace interaction log for trustmesh benchmarks.

Writes Parquet files in trustmesh's log schema (README.md, "Interaction log"):

    ts       timestamp[ms, UTC]   strictly time-ordered across the whole log
    src      utf8 (dictionary)    rater, "a<number>"
    dst      utf8 (dictionary)    ratee, "a<number>"
    layer    utf8 (dictionary)    default `payment` and `review`
    outcome  float64 in [-1, 1]
    weight   float64 >= 0         payment amounts log-normal, other layers 1

The model, in short (every number is a flag):

* Popularity is a power law in rank, P(rank <= k) = (k/A)^(1-s), separately
  for raters (--rater-exp, 0.5) and ratees (--ratee-exp, 0.7), with an
  independent random rank -> agent permutation for each role.  That gives
  degree distributions with tails P(deg > x) ~ x^-(1/s): a few hubs with tens
  of thousands of rows, most agents with a handful.
* The first layer is the costly one (payments): log-normal amounts rounded to
  cents (median --amount-median 30, --amount-sigma 1.2).  Every further layer
  is review-like (weight 1) and --follow (0.8) of its rows rate a pair that
  dealt in the first layer shortly before (within the last 65,536 first-layer
  rows of the same block), as a review follows a sale.
* A share --bad-share (5 %) of agents are bad sellers: a row that rates one
  is negative with probability --bad-neg (0.6), otherwise --good-neg (0.04).
  Payment outcomes: +1, or a partial value in (0, 1) (10 %); negatives are
  -1 (chargeback, half of them) or a partial refund in (-1, 0).  Review
  outcomes are 1-5 stars mapped to -1, -0.5, 0, 0.5, 1.
* Self-ratings are excluded (a drawn ratee equal to the rater is moved to the
  next agent), except for --self-share (default 0) of the rows, which are
  made self-ratings on purpose to exercise trustmesh's `self_rating` drop
  count; the manifest records how many there are.

Determinism: the log is produced in fixed blocks of 2^20 rows, each from its
own numpy Generator seeded by (seed, block index), so the rows depend only on
the seed and the model flags, not on --files: `--files 1` and `--files 8`
give the same rows in the same order, cut at different places.  Files are
byte-identical for the same flags and the same numpy/pyarrow versions, which
manifest.json records beside the files (with counts and SHA-256 per file;
it holds no timings so that it is reproducible too).

Memory does not grow with --rows: at most three blocks are alive (one being
generated, one queued, one being written) plus per-agent arrays (about 30
bytes per agent); peak RSS measured 0.40 GB at 10M rows and 0.65 GB at 100M
rows (5.2M agents).  A background thread generates the next block while the
current one is encoded and written, so both cores are busy; 100M rows took
96-131 s on a 2-core machine that was also compiling.

Examples:
    python3 benches/gen_log.py --rows 1000000 --seed 1 --out /tmp/log1m
    python3 benches/gen_log.py --rows 3840000 --agents 200000 --out /tmp/log3m8
    python3 benches/gen_log.py --rows 100000000 --files 8 --out /data/log100m
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import queue
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# Rows per generated block.  Fixed, not a flag: the random streams are keyed
# by block index, so changing it would change the log.  It is also the
# largest row group written (a file boundary inside a block splits it).
BLOCK_ROWS = 1 << 20
# How far back (in first-layer rows) a review looks for the sale it rates.
FOLLOW_WINDOW = 1 << 16


# --------------------------------------------------------------------------
# Agents
# --------------------------------------------------------------------------


def agent_names(n: int) -> pa.StringArray:
    """The ids "a0" .. "a<n-1>" as one Arrow string array, built in numpy.

    A Python list of millions of str objects would take seconds and hundreds
    of MB; writing the UTF-8 buffer directly takes a fraction of that.
    """
    idx = np.arange(n, dtype=np.int64)
    ndig = np.ones(n, dtype=np.int64)
    x = idx // 10
    while x.any():
        ndig += x > 0
        x //= 10
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(1 + ndig, out=offsets[1:])
    data = np.empty(int(offsets[-1]), dtype=np.uint8)
    data[offsets[:-1]] = ord("a")
    # Fill digits from the right: the k-th digit from the end of id i sits at
    # offsets[i+1] - 1 - k, for every i that has more than k digits.
    x = idx.copy()
    ends = offsets[1:] - 1
    k = 0
    live = np.arange(n)
    while live.size:
        data[ends[live] - k] = ord("0") + (x[live] % 10)
        x[live] //= 10
        k += 1
        live = live[ndig[live] > k]
    if offsets[-1] < 2**31:
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data))
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data)).cast(pa.string())


class Agents:
    """Per-agent state drawn once from the seed: role permutations and quality."""

    def __init__(self, n: int, seed: int, args: argparse.Namespace):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
        self.n = n
        # rank -> agent index, independently per role, so the busiest buyer is
        # not automatically the busiest seller (and hub ids are not just a0, a1).
        self.rater_of_rank = rng.permutation(n).astype(np.int32)
        self.ratee_of_rank = rng.permutation(n).astype(np.int32)
        bad = rng.random(n) < args.bad_share
        self.p_neg = np.where(bad, args.bad_neg, args.good_neg)
        self.bad = int(bad.sum())
        self.names = agent_names(n)


def power_law_rank(rng: np.random.Generator, n: int, agents: int, s: float) -> np.ndarray:
    """Ranks in [0, agents) with P(rank <= k) = (k/agents)^(1-s) (Zipf-like in rank).

    Inverse-CDF sampling of the continuous approximation: one pow per row, no
    table of cumulative weights (that would be as large as the agent set and
    need a binary search per row).
    """
    u = rng.random(n)
    r = (agents * u ** (1.0 / (1.0 - s))).astype(np.int64)
    np.minimum(r, agents - 1, out=r)
    return r


# --------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------


def gen_block(b: int, start: int, n: int, ag: Agents, args, t0_ms: int, span_ms: int) -> dict:
    """Rows [start, start+n) of the log, from the random stream of block b."""
    rng = np.random.default_rng(np.random.SeedSequence(args.seed, spawn_key=(1, b)))
    nl = len(args.layers)

    # Time: row g at t0 + (g + u) * span / rows, so the whole log is ordered
    # in time (like a real append-only log) and --files cuts it into periods.
    ts = t0_ms + ((np.arange(start, start + n, dtype=np.float64) + rng.random(n))
                  * (span_ms / args.rows)).astype(np.int64)

    # Layer: the first (costly) layer takes --first-share, the rest split evenly.
    if nl == 1:
        layer = np.zeros(n, dtype=np.int32)
    else:
        rest = (1.0 - args.first_share) / (nl - 1)
        cum = np.cumsum([args.first_share] + [rest] * (nl - 1))[:-1]
        layer = np.searchsorted(cum, rng.random(n), side="right").astype(np.int32)

    src = ag.rater_of_rank[power_law_rank(rng, n, ag.n, args.rater_exp)]
    dst = ag.ratee_of_rank[power_law_rank(rng, n, ag.n, args.ratee_exp)]

    # Reviews mostly rate a pair that dealt in the first layer shortly before
    # (one of the last FOLLOW_WINDOW first-layer rows of the block), as a
    # review follows a sale; a row with no earlier sale keeps its own pair.
    first = np.flatnonzero(layer == 0)
    if nl > 1 and first.size:
        follow = np.flatnonzero((layer != 0) & (rng.random(n) < args.follow))
        before = np.searchsorted(first, follow)  # first-layer rows before each
        back = (rng.random(follow.size) * np.minimum(before, FOLLOW_WINDOW)).astype(np.int64)
        ok = before > 0
        pick = first[(before - 1 - back)[ok]]
        src[follow[ok]] = src[pick]
        dst[follow[ok]] = dst[pick]

    # No self-ratings by construction (the next agent is as random as any) ...
    same = src == dst
    dst[same] = (dst[same] + 1) % ag.n
    # ... except a deliberate, counted share when asked for.
    if args.self_share > 0:
        selfr = rng.random(n) < args.self_share
        dst[selfr] = src[selfr]
    n_self = int((src == dst).sum())

    # Outcomes depend on the ratee's quality, so bad sellers collect negatives
    # from many raters (what EigenTrust is meant to pick up).
    neg = rng.random(n) < ag.p_neg[dst]
    u1 = rng.random(n)
    u2 = rng.random(n)
    outcome = np.empty(n, dtype=np.float64)
    pay = layer == 0
    # Payments: +1, 10 % partial positive, negatives half -1 half partial refund.
    out_pay = np.where(neg, np.where(u1 < 0.5, -1.0, -np.round(0.01 + 0.99 * u2, 2)),
                       np.where(u1 < 0.9, 1.0, np.round(0.2 + 0.8 * u2, 2)))
    # Reviews: stars 5/4 for a good experience, 1/2/3 for a bad one.
    out_rev = np.where(neg, np.where(u1 < 0.6, -1.0, np.where(u1 < 0.85, -0.5, 0.0)),
                       np.where(u1 < 0.75, 1.0, 0.5))
    np.copyto(outcome, np.where(pay, out_pay, out_rev))
    np.clip(outcome, -1.0, 1.0, out=outcome)

    # Payment amounts in cents, at least 0.01; reviews weigh 1.
    amount = np.round(rng.lognormal(np.log(args.amount_median), args.amount_sigma, n), 2)
    np.maximum(amount, 0.01, out=amount)
    weight = np.where(pay, amount, 1.0)

    return dict(ts=ts, src=src, dst=dst, layer=layer, outcome=outcome, weight=weight,
                n_self=n_self, n_neg=int((outcome < 0).sum()),
                per_layer=np.bincount(layer, minlength=nl))


def id_column(idx: np.ndarray, ag: Agents, dictionary: bool, seen: np.ndarray) -> pa.Array:
    """Agent ids of a slice as Arrow: compact per-slice dictionary or plain utf8."""
    seen[idx] = True
    if not dictionary:
        return ag.names.take(pa.array(idx))
    # Dictionary of only the ids used in this slice (a row group), in agent
    # order; a mark array + cumsum is O(agents + rows), no sort.  Writing the
    # full agent dictionary into every row group would blow up the pages.
    used = np.zeros(ag.n, dtype=bool)
    used[idx] = True
    uniq = np.flatnonzero(used)
    remap = np.cumsum(used, dtype=np.int32) - 1
    return pa.DictionaryArray.from_arrays(pa.array(remap[idx]), ag.names.take(pa.array(uniq)))


def to_table(blk: dict, lo: int, hi: int, ag: Agents, layers: pa.Array, dictionary: bool,
             seen: np.ndarray, schema: pa.Schema) -> pa.Table:
    lay = pa.DictionaryArray.from_arrays(pa.array(blk["layer"][lo:hi]), layers)
    if not dictionary:
        lay = lay.cast(pa.string())
    cols = [
        pa.array(blk["ts"][lo:hi]).cast(pa.timestamp("ms", tz="UTC")),
        id_column(blk["src"][lo:hi], ag, dictionary, seen),
        id_column(blk["dst"][lo:hi], ag, dictionary, seen),
        lay,
        pa.array(blk["outcome"][lo:hi]),
        pa.array(blk["weight"][lo:hi]),
    ]
    return pa.Table.from_arrays(cols, schema=schema)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_rows(s: str) -> int:
    v = int(s.replace("_", ""))
    if v < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return v


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults in --help, except where there is none or the text gives it."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="The model and the determinism contract are described at the top of this file.",
        formatter_class=DefaultsFormatter)
    ap.add_argument("--rows", type=parse_rows, required=True, help="rows in the whole log (1_000_000 style ok)")
    ap.add_argument("--agents", type=parse_rows, help="agent ids to draw from (default rows/19.2, "
                    "so 3.84M rows <-> 200k agents)")
    ap.add_argument("--layers", default="payment,review",
                    help="comma-separated layer names; the first carries the amounts")
    ap.add_argument("--seed", type=int, default=1, help="random seed")
    ap.add_argument("--files", type=int, default=1, help="split the log into this many files")
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--strings", choices=("dictionary", "utf8"), default="dictionary",
                    help="Arrow type of src/dst/layer")
    ap.add_argument("--force", action="store_true",
                    help="replace part-*.parquet and manifest.json already in --out")
    g = ap.add_argument_group("model")
    g.add_argument("--rater-exp", type=float, default=0.5, help="rank exponent s of rater popularity, 0 <= s < 1")
    g.add_argument("--ratee-exp", type=float, default=0.7, help="rank exponent s of ratee popularity, 0 <= s < 1")
    g.add_argument("--first-share", type=float, default=0.6, help="share of rows in the first layer (if >1 layer)")
    g.add_argument("--follow", type=float, default=0.8, help="share of other-layer rows that rate a first-layer pair")
    g.add_argument("--bad-share", type=float, default=0.05, help="share of bad agents")
    g.add_argument("--good-neg", type=float, default=0.04, help="P(negative) when rating a good agent")
    g.add_argument("--bad-neg", type=float, default=0.6, help="P(negative) when rating a bad agent")
    g.add_argument("--self-share", type=float, default=0.0, help="share of rows made self-ratings on purpose")
    g.add_argument("--amount-median", type=float, default=30.0, help="median payment amount")
    g.add_argument("--amount-sigma", type=float, default=1.2, help="sigma of log(amount)")
    g.add_argument("--days", type=float, default=365.0, help="time span of the log")
    g.add_argument("--end", default="2026-01-01", help="end of the time span (UTC date)")
    args = ap.parse_args(argv)

    args.layers = [s.strip() for s in args.layers.split(",") if s.strip()]
    if not args.layers or len(set(args.layers)) != len(args.layers):
        ap.error("--layers needs distinct, non-empty names")
    if args.agents is None:
        args.agents = max(2, args.rows * 5 // 96)
    if args.agents < 2:
        ap.error("--agents must be >= 2 (self-ratings are excluded)")
    if not 1 <= args.files <= args.rows:
        ap.error("--files must be between 1 and --rows")
    for name in ("rater_exp", "ratee_exp"):
        if not 0.0 <= getattr(args, name) < 1.0:
            ap.error(f"--{name.replace('_', '-')} must be in [0, 1)")
    for name in ("first_share", "follow", "bad_share", "good_neg", "bad_neg", "self_share"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            ap.error(f"--{name.replace('_', '-')} must be in [0, 1]")

    os.makedirs(args.out, exist_ok=True)
    stale = sorted(f for f in os.listdir(args.out) if f.endswith(".parquet") or f == "manifest.json")
    if stale:
        if not args.force:
            ap.error(f"{args.out} already holds {stale[0]} (and {len(stale) - 1} more); use --force or another --out")
        # Check before deleting anything: never remove files we did not write.
        if any(f.endswith(".parquet") and not f.startswith("part-") for f in stale):
            ap.error(f"{args.out} holds Parquet files this script did not write; refusing to mix")
        for f in stale:
            os.remove(os.path.join(args.out, f))

    t_start = time.perf_counter()
    end_ms = int(dt.datetime.fromisoformat(args.end).replace(tzinfo=dt.timezone.utc).timestamp() * 1000)
    span_ms = int(args.days * 86_400_000)
    t0_ms = end_ms - span_ms

    ag = Agents(args.agents, args.seed, args)
    seen = np.zeros(args.agents, dtype=bool)
    sid = pa.dictionary(pa.int32(), pa.string()) if args.strings == "dictionary" else pa.string()
    schema = pa.schema([("ts", pa.timestamp("ms", tz="UTC")), ("src", sid), ("dst", sid),
                        ("layer", sid), ("outcome", pa.float64()), ("weight", pa.float64())])
    layers = pa.array(args.layers, pa.string())
    print(f"gen_log: {args.rows:,} rows, {args.agents:,} agents ({ag.bad:,} bad), layers "
          f"{','.join(args.layers)}, seed {args.seed}, {args.files} file(s) -> {args.out} "
          f"[setup {time.perf_counter() - t_start:.2f} s]", flush=True)

    # File f holds global rows [bounds[f], bounds[f+1]).
    bounds = [args.rows * f // args.files for f in range(args.files + 1)]
    nblocks = (args.rows + BLOCK_ROWS - 1) // BLOCK_ROWS

    # Producer thread: numpy releases the GIL in its kernels and the Parquet
    # writer releases it while encoding/compressing, so generating block b+1
    # overlaps writing block b.  maxsize bounds memory to ~3 blocks.
    q: queue.Queue = queue.Queue(maxsize=1)

    def produce():
        try:
            for b in range(nblocks):
                start = b * BLOCK_ROWS
                q.put((b, start, gen_block(b, start, min(BLOCK_ROWS, args.rows - start), ag, args, t0_ms, span_ms)))
        except BaseException as e:  # hand the failure to the writer instead of hanging it
            q.put(e)
        q.put(None)

    threading.Thread(target=produce, daemon=True).start()

    files = []
    totals = dict(self_ratings=0, negative=0)
    per_layer = np.zeros(len(args.layers), dtype=np.int64)
    writer = None
    f = -1
    written = 0
    last_print = time.perf_counter()

    def open_next():
        nonlocal writer, f
        if writer is not None:
            writer.close()
        f += 1
        path = os.path.join(args.out, f"part-{f:05d}.parquet")
        files.append(dict(name=os.path.basename(path), rows=0, row_groups=0))
        # Dictionary pages for ids and outcomes (few distinct values per row
        # group), raised page limit so they do not fall back to plain half-way;
        # ts is nearly unique per row, so no dictionary for it.
        writer = pq.ParquetWriter(path, schema, compression="zstd",
                                  use_dictionary=["src", "dst", "layer", "outcome", "weight"],
                                  dictionary_pagesize_limit=64 << 20)

    open_next()
    while True:
        item = q.get()
        if item is None:
            break
        if isinstance(item, BaseException):
            raise item
        b, start, blk = item
        totals["self_ratings"] += blk["n_self"]
        totals["negative"] += blk["n_neg"]
        per_layer += blk["per_layer"]
        n = blk["ts"].size
        lo = 0
        while lo < n:
            while start + lo >= bounds[f + 1]:
                open_next()
            hi = min(n, bounds[f + 1] - start)
            writer.write_table(to_table(blk, lo, hi, ag, layers, args.strings == "dictionary", seen, schema),
                               row_group_size=BLOCK_ROWS)
            files[-1]["rows"] += hi - lo
            files[-1]["row_groups"] += 1
            written += hi - lo
            lo = hi
        now = time.perf_counter()
        if now - last_print >= 2.0 or written == args.rows:
            el = now - t_start
            print(f"  {written:>13,} rows ({100 * written / args.rows:5.1f} %)  {el:7.1f} s  "
                  f"{written / el / 1e6:6.2f} M rows/s", flush=True)
            last_print = now
    writer.close()

    # Hash what was written (a fraction of the generation time; lets two runs
    # be compared without keeping both copies).
    total_bytes = 0
    for fi in files:
        path = os.path.join(args.out, fi["name"])
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(8 << 20):
                h.update(chunk)
        fi["bytes"] = os.path.getsize(path)
        fi["sha256"] = h.hexdigest()
        total_bytes += fi["bytes"]

    manifest = {
        "generator": "benches/gen_log.py",
        # Not --out or --force: two runs into different directories should
        # give identical manifests.
        "flags": {k: v for k, v in vars(args).items() if k not in ("out", "force")},
        "rows": args.rows,
        "agents_drawn_from": args.agents,
        "agents_in_log": int(seen.sum()),
        "bad_agents": ag.bad,
        "rows_per_layer": {name: int(c) for name, c in zip(args.layers, per_layer)},
        "self_ratings": totals["self_ratings"],
        "negative_outcomes": totals["negative"],
        "ts_range_ms": [t0_ms, end_ms],
        "block_rows": BLOCK_ROWS,
        "files": files,
        "bytes": total_bytes,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "pyarrow": pa.__version__},
    }
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2)
        fh.write("\n")

    el = time.perf_counter() - t_start
    print(f"gen_log: wrote {args.rows:,} rows in {len(files)} file(s), {total_bytes / 1e6:,.1f} MB "
          f"({total_bytes / args.rows:.1f} B/row), {manifest['agents_in_log']:,} agents in the log, "
          f"{totals['self_ratings']:,} self-ratings, {totals['negative']:,} negative; "
          f"total {el:.1f} s ({args.rows / el / 1e6:.2f} M rows/s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
