#!/usr/bin/env python3
"""`trustmesh score` done with DuckDB (aggregation) + scipy (power iteration).

A peer to time against `trustmesh score` on the same Parquet logs (issue 11:
"DuckDB aggregation + scipy iteration doing the same job").  It computes the
model of docs/trust-model.md §1-2 with score's default flags:

  * agents: every src and dst of every row read (self-ratings included);
  * rows with src == dst dropped; per (layer k, src i, dst j)
        s_k(i,j) = sum weight * outcome            (weight null -> 1)
    times 2^(-(t_now - ts)/h) with --half-life h, t_now = max ts of all rows;
  * per scored layer (default: all layers read) and rater i, with
    P_i = sum_j max(s_k(i,j), 0):  c_k(i,j) = max(s_k(i,j), 0) / P_i, and
    row i dangling in k when P_i = 0 (also when i rated nobody in k);
  * C = sum_k lambda_k c_k with uniform lambda, d_i = sum_k lambda_k [i dangling in k];
  * p uniform over all agents, t(0) = p,
        t(n+1) = (1 - a)(C^T t(n) + (d . t(n)) p) + a p
    until ||t(n+1) - t(n)||_1 < epsilon or --max-iter; the output is t(n+1).

Division of work, chosen by measuring (see `build` for the alternative that
lost): DuckDB reads the files and groups them by (src, dst, layer) on all
threads and hands the groups over as Arrow; Arrow's hash kernel gives the
agents dense ids (first-seen order, so the output order may vary between
runs; the check joins on the id); numpy row-normalises with one bincount per
(rater, layer); scipy builds the CSR of C^T once; the iteration is one CSR
mat-vec plus three in-place vector passes and a reduction.

Not reproduced: trustmesh's validation of bad rows, --since/--until, cheap
layers, pre-trusted sets, distrust, per-topic scoring.  trustmesh sums every
group smallest-first for bit-reproducibility; DuckDB sums in its own order, a
difference of a few ulps per sum, far below the 1e-9 check.

Examples:
    python3 benches/peers/duckdb_scipy.py --log /tmp/log1m --out /tmp/peer.parquet
    python3 benches/peers/duckdb_scipy.py --log /tmp/log1m --check /tmp/tm.parquet --json peer.json
"""

from __future__ import annotations

import time

# Whole-process clock, started before the heavy imports so that their cost
# (part of what a user waits for) is visible as the `startup` stage.
T_PROCESS = time.perf_counter()

import os  # noqa: E402

# One BLAS thread (unless the caller says otherwise), set before numpy loads:
# the only BLAS call is the dot product d.t, and a second OpenBLAS thread
# spinning for a 50k-element dot cost ~10 ms per iteration on a busy 2-core
# machine, more than the sparse product.  OMP_NUM_THREADS is left alone on
# purpose: Arrow sizes its thread pool by it.
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import scipy  # noqa: E402
import scipy.sparse as sp  # noqa: E402


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


def expand_logs(specs: list[str]) -> list[str]:
    """Files for --log specs as `trustmesh score` reads them: a file, a
    directory (its *.parquet), or a glob; each must match something."""
    files: list[str] = []
    for spec in specs:
        if os.path.isdir(spec):
            got = sorted(glob.glob(os.path.join(spec, "*.parquet")))
        elif os.path.isfile(spec):
            got = [spec]
        else:
            got = sorted(p for p in glob.glob(spec) if os.path.isfile(p))
        if not got:
            sys.exit(f"error: --log {spec}: no Parquet file found")
        files.extend(got)
    return files


def parse_duration_s(s: str) -> float:
    """`7d`, `12h`, `30m`/`30min`, `45s`, `2w` or bare seconds, as trustmesh parses them."""
    s = s.strip()
    cut = next((i for i, ch in enumerate(s) if ch.isalpha()), len(s))
    mult = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0,
            "w": 7 * 86400.0}.get(s[cut:])
    try:
        v = float(s[:cut])
    except ValueError:
        v = float("nan")
    if mult is None or not (v > 0 and np.isfinite(v)):
        raise argparse.ArgumentTypeError(f"cannot parse duration `{s}` (e.g. 7d, 12h, 3600)")
    return v * mult


def sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


# --------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------


class Stages:
    """perf_counter timings of named stages, in order."""

    def __init__(self, start: float):
        self.seconds: dict[str, float] = {}
        self.peak_rss: dict[str, int] = {}  # process peak so far, after each stage
        self._t = start

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._t
        self.peak_rss[name] = peak_rss_bytes()
        self._t = now


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def aggregate(con, files: list[str], half_life_s: float | None, info: dict) -> pa.Table:
    """DuckDB: read the files and group them by (src, dst, layer).

    Returns an Arrow table (src, dst, layer, s, n).  Self-ratings stay in it
    as their own groups (dropped in `build`) so that their agents are still
    in the agent set, as in trustmesh, without a second scan of the files.
    """
    src = f"read_parquet([{', '.join(sql_str(f) for f in files)}], union_by_name = true)"
    cols = {r[0]: r[1].upper() for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
    for c in ("ts", "src", "dst", "layer", "outcome"):
        if c not in cols:
            sys.exit(f"error: the logs have no column `{c}`")
    weight = "coalesce(CAST(weight AS DOUBLE), 1.0)" if "weight" in cols else "1.0"
    trust = f"{weight} * CAST(outcome AS DOUBLE)"
    if half_life_s is not None:
        # ts in epoch milliseconds, whether stored as a timestamp or as int64.
        ts_ms = "ts" if cols["ts"] in ("BIGINT", "INTEGER") else "epoch_ms(ts)"
        now = con.execute(f"SELECT max({ts_ms}) FROM {src}").fetchall()[0][0]
        info["t_now_ms"] = int(now)
        # The same expression and association as trustmesh's ingest:
        # weight * outcome * 2^((ts - now) / (h * 1000)).
        trust += f" * power(2.0, CAST({ts_ms} - {int(now)} AS DOUBLE) / {float(half_life_s) * 1000.0!r})"
    # The layer set first (one cheap scan of a dictionary-encoded column), so
    # that the grouping can emit layer as an ENUM: Arrow then receives it
    # dictionary-encoded and we need not hash millions of layer strings.
    layers = [r[0] for r in con.sql(f"SELECT DISTINCT CAST(layer AS VARCHAR) FROM {src} ORDER BY 1").fetchall()]
    if any(x is None for x in layers):
        sys.exit("error: the logs have a null `layer`")
    info["layers_read"] = layers
    enum = f"ENUM({', '.join(map(sql_str, layers))})"
    rel = con.sql(f"""
        SELECT CAST(src AS VARCHAR) AS src, CAST(dst AS VARCHAR) AS dst,
               CAST(CAST(layer AS VARCHAR) AS {enum}) AS layer, sum({trust}) AS s, count(*) AS n
        FROM {src}
        GROUP BY ALL""")
    # to_arrow_table() since DuckDB 1.4; fetch_arrow_table() before.
    return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.fetch_arrow_table()


def encode(chunked: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Dense int codes and the dictionary of a string column (Arrow hash kernel).

    dictionary_encode on a ChunkedArray shares one memo table over the chunks,
    so every chunk's dictionary is the final one; checked, and unified the
    slow way if an Arrow version ever does otherwise.
    """
    enc = pc.dictionary_encode(chunked)
    if enc.num_chunks == 0:
        return np.zeros(0, dtype=np.int32), pa.array([], pa.string())
    last = enc.chunk(enc.num_chunks - 1).dictionary
    if not all(ch.dictionary.equals(last) for ch in enc.chunks):
        enc = enc.unify_dictionaries()
        last = enc.chunk(0).dictionary
    codes = np.concatenate([ch.indices.to_numpy(zero_copy_only=False) for ch in enc.chunks])
    return codes.astype(np.int32, copy=False), last


def build(agg: pa.Table, scored: list[str] | None, info: dict):
    """Dense ids, row normalisation and layer sum in numpy; CSR of C^T once.

    Returns (CT, d, names): CT the n x n CSR of C^T, d the deficit vector and
    names the agent ids (Arrow) in dense-id order.

    Measured alternative: doing the ids (UNION + row_number), the two id joins
    and the per-(rater, layer) normalisation in DuckDB and fetching (i, j, w)
    took about twice as long on the 3.84M-row log as this: the string hashing
    is needed either way, and DuckDB's joins and window/group-by on the
    aggregated rows cost more than numpy's bincount on dense ids.
    """
    m = agg.num_rows
    # One code space for raters and ratees: encode src and dst together.
    codes, names = encode(pa.chunked_array(agg.column("src").chunks + agg.column("dst").chunks,
                                           type=pa.string()))
    n = len(names)
    src, dst = codes[:m], codes[m:]
    # Layer arrives dictionary-encoded (an ENUM in DuckDB), every chunk with
    # the ENUM's full value list as its dictionary; checked, not assumed.
    lchunks = agg.column("layer").chunks
    lnames = lchunks[0].dictionary.to_pylist() if lchunks else info["layers_read"]
    if any(ch.dictionary.to_pylist() != lnames for ch in lchunks):
        sys.exit("error: DuckDB returned layer chunks with different dictionaries")
    lcode = np.concatenate([ch.indices.to_numpy(zero_copy_only=False) for ch in lchunks]
                           or [np.zeros(0, dtype=np.uint8)])
    s = agg.column("s").to_numpy()
    cnt = agg.column("n").to_numpy()
    info["agents"] = n

    layers_read = sorted(lnames)
    if scored is None:
        scored = layers_read
    else:
        unknown = [x for x in scored if x not in layers_read]
        if unknown:
            sys.exit(f"error: --layers: {', '.join(unknown)} not in the logs (have {', '.join(layers_read)})")
    L = len(scored)
    lam = 1.0 / L
    info["layers"] = {k: lam for k in scored}
    # Dictionary code -> index among the scored layers, -1 if not scored.
    to_scored = np.array([scored.index(x) if x in scored else -1 for x in lnames], dtype=np.int32)
    lk = to_scored[lcode]

    not_self = src != dst
    info["rows_read"] = int(cnt.sum())
    info["rows_dropped"] = {"self_rating": int(cnt[~not_self].sum()),
                            "layer_not_selected": int(cnt[not_self & (lk < 0)].sum())}
    used = not_self & (lk >= 0)
    info["edges_per_layer"] = {scored[k]: int(c) for k, c in enumerate(np.bincount(lk[used], minlength=L))}

    # Positive trust only (negative s is clipped to 0 and contributes nothing).
    keep = used & (s > 0)
    i, j, k, v = src[keep], dst[keep], lk[keep], s[keep]
    info["positive_edges_per_layer"] = {scored[x]: int(c) for x, c in enumerate(np.bincount(k, minlength=L))}
    key = i.astype(np.int64) * L + k
    P = np.bincount(key, weights=v, minlength=n * L)  # P_i per (rater, layer)
    w = v / P[key] * lam                              # lambda_k * c_k(i,j)

    # CSR of C^T (row j = in-edges of j); tocsr() sums the entries of a pair
    # that appears in several layers, giving C(i,j) = sum_k lambda_k c_k(i,j).
    CT = sp.coo_matrix((w, (j, i)), shape=(n, n)).tocsr()
    info["edges"] = int(CT.nnz)

    # d_i = sum over scored layers of lambda_k where i has no positive row in k
    # (also when i never rated in k), summed in layer order as in the model, so
    # a row full in every layer has d_i = 0 exactly.
    full = P.reshape(n, L) > 0
    d = np.zeros(n, dtype=np.float64)
    for x in range(L):
        d += np.where(full[:, x], 0.0, lam)
    info["dangling_rows"] = int((~full).any(axis=1).sum())
    return CT, d, names


try:  # y += A x into a caller's buffer; private but stable since scipy 0.x
    from scipy.sparse._sparsetools import csr_matvec as _csr_matvec
except ImportError:  # pragma: no cover - fall back to the public operator
    _csr_matvec = None


def iterate(CT, d, alpha: float, epsilon: float, max_iter: int):
    """t(n+1) = (1-a)(C^T t + (d.t) p) + a p from t = p (uniform), L1 stop.

    Every vector lives in a buffer allocated once: a fresh n-element
    temporary per operation is an mmap + page faults for large n, which cost
    more than the arithmetic.
    """
    n = CT.shape[0]
    pv = 1.0 / n  # uniform pre-trust: every p_j is this one value
    t = np.full(n, pv)
    y = np.empty(n)
    diff = np.empty(n)
    r = float("inf")
    it = 0
    stop = "max_iter"
    while it < max_iter:
        if _csr_matvec is not None:
            y.fill(0.0)
            _csr_matvec(n, n, CT.indptr, CT.indices, CT.data, t, y)
        else:
            y[:] = CT @ t
        # In place, in the model's order: ((C^T t) + (d.t) p) * (1-a) + a p.
        y += float(d @ t) * pv
        y *= 1.0 - alpha
        y += alpha * pv
        np.subtract(y, t, out=diff)
        np.abs(diff, out=diff)
        r = float(diff.sum())
        t, y = y, t
        it += 1
        if r < epsilon:
            stop = "converged"
            break
    return t, it, r, stop


def check(con, ours: pa.Table, path: str, tol: float) -> dict:
    """Join our scores with trustmesh's on agent; L1 and max |diff|."""
    theirs = pq.read_table(path, columns=["agent", "score"])
    con.register("ours_t", ours)
    con.register("theirs_t", theirs)
    only_ours, only_theirs, l1, mx = con.execute("""
        SELECT count(*) FILTER (WHERE b.agent IS NULL), count(*) FILTER (WHERE a.agent IS NULL),
               sum(abs(a.score - b.score)), max(abs(a.score - b.score))
        FROM ours_t a FULL OUTER JOIN theirs_t b ON a.agent = CAST(b.agent AS VARCHAR)""").fetchall()[0]
    res = {"against": path, "agents_only_here": int(only_ours), "agents_only_there": int(only_theirs),
           "l1": float(l1 or 0.0), "max_abs_diff": float(mx or 0.0), "tolerance": tol}
    res["ok"] = bool(only_ours == 0 and only_theirs == 0 and res["l1"] <= tol)
    return res


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults in --help, except where there is none or the text gives it."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Model: docs/trust-model.md sections 1-2 with `trustmesh score` defaults.",
        formatter_class=DefaultsFormatter)
    ap.add_argument("--log", nargs="+", action="extend", required=True, metavar="PATH",
                    help="Parquet file, directory of *.parquet or glob; repeatable")
    ap.add_argument("--alpha", type=float, default=0.15, help="teleport weight of pre-trust")
    ap.add_argument("--epsilon", type=float, default=1e-9, help="stop when the L1 change is below this")
    ap.add_argument("--max-iter", type=int, default=200, help="iteration cap")
    ap.add_argument("--half-life", type=parse_duration_s, metavar="D",
                    help="time decay half-life (7d, 12h, 30m, 45s or seconds); now = max ts")
    ap.add_argument("--layers", help="layers to score, comma-separated (default: all in the logs)")
    ap.add_argument("--threads", type=int, help="DuckDB threads (default: all cores)")
    ap.add_argument("--out", metavar="FILE", help="write scores as Parquet (agent, score)")
    ap.add_argument("--check", metavar="SCORES", help="trustmesh scores Parquet to compare with; "
                    "exit 1 if the L1 distance exceeds --tolerance or the agent sets differ")
    ap.add_argument("--tolerance", type=float, default=1e-9, help="L1 limit for --check")
    ap.add_argument("--json", metavar="OUT", help="write timings, counts and versions as JSON")
    args = ap.parse_args(argv)
    if not 0.0 < args.alpha <= 1.0 or args.epsilon <= 0 or args.max_iter < 1:
        ap.error("need 0 < --alpha <= 1, --epsilon > 0, --max-iter >= 1")

    st = Stages(T_PROCESS)
    st.done("startup")  # interpreter + imports
    files = expand_logs(args.log)
    con = duckdb.connect()
    if args.threads:
        con.execute(f"SET threads TO {int(args.threads)}")
    # Row order of the results is irrelevant here; not preserving it lets
    # DuckDB stream and parallelise more freely.
    con.execute("SET preserve_insertion_order = false")
    threads = int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])
    info: dict = {"files": len(files)}

    agg = aggregate(con, files, args.half_life, info)
    st.done("read+aggregate")
    scored = [x.strip() for x in args.layers.split(",")] if args.layers else None
    CT, d, names = build(agg, scored, info)
    del agg  # the aggregated strings are not needed any more
    st.done("build")
    t, iters, resid, stop = iterate(CT, d, args.alpha, args.epsilon, args.max_iter)
    st.done("iterate")
    ours = pa.table({"agent": names.cast(pa.string()), "score": pa.array(t)})
    if args.out:
        pq.write_table(ours, args.out, compression="zstd")
    st.done("write")
    total = sum(st.seconds.values())
    peak_rss = peak_rss_bytes()

    result = {
        "tool": "duckdb+scipy",
        "logs": files,
        **info,
        "alpha": args.alpha, "epsilon": args.epsilon, "max_iter": args.max_iter,
        "half_life_s": args.half_life,
        "iterations": iters, "residual": resid, "error_bound": resid / args.alpha, "stop": stop,
        "score_sum": float(t.sum()),
        "seconds": {**st.seconds, "total": total},
        "peak_rss_bytes": peak_rss,
        "peak_rss_after_stage_bytes": st.peak_rss,
        "duckdb_threads": threads,
        "versions": {"python": platform.python_version(), "duckdb": duckdb.__version__,
                     "numpy": np.__version__, "scipy": scipy.__version__, "pyarrow": pa.__version__},
        "machine": {"cpu_count": os.cpu_count(), "machine": platform.machine()},
    }

    print(f"duckdb+scipy: {info['rows_read']:,} rows in {len(files)} file(s), "
          f"{info['rows_dropped']['self_rating']:,} self-ratings dropped, {info['agents']:,} agents, "
          f"{info['edges']:,} edges ({', '.join(f'{k} {v:,}' for k, v in info['edges_per_layer'].items())}), "
          f"{info['dangling_rows']:,} rows dangling in some layer")
    print(f"iterations {iters}, residual {resid:.3g}, error bound {resid / args.alpha:.3g}, {stop}; "
          f"DuckDB threads {threads}, peak RSS {peak_rss / 1e6:,.0f} MB "
          f"({peak_rss / max(1, info['rows_read']):.0f} B/row)")
    print(f"\n{'stage':<16} {'seconds':>9} {'share':>7} {'peak RSS MB':>12}")
    for k, v in st.seconds.items():
        print(f"{k:<16} {v:>9.3f} {100 * v / total:>6.1f}% {st.peak_rss[k] / 1e6:>12,.0f}")
    print(f"{'total':<16} {total:>9.3f}")

    rc = 0
    if args.check:
        res = check(con, ours, args.check, args.tolerance)
        result["check"] = res
        print(f"\ncheck vs {args.check}: L1 {res['l1']:.3e}, max |diff| {res['max_abs_diff']:.3e}, "
              f"agents only here {res['agents_only_here']}, only there {res['agents_only_there']}: "
              f"{'OK' if res['ok'] else 'FAIL'} (tolerance {args.tolerance:g})")
        rc = 0 if res["ok"] else 1
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
            fh.write("\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
