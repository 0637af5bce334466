#!/usr/bin/env python3
"""Time the EigenTrust / PageRank power iteration with peer libraries.

Reads an arc list (``src<TAB>dst``, 0-based integer ids, optional ``#``
comment lines, plain or gzip), builds the row-stochastic matrix C with
c_ij = 1/outdeg(i) (dangling rows teleport by the uniform pre-trust p), and
times, in one run on one machine:

  (a) scipy CSR: one full EigenTrust iteration
          t' = (1-a)(C^T t + (dangling . t) p) + a p,   r = ||t' - t||_1
      single-threaded, and the product C^T t alone (both as a CSR copy of
      C^T, a "gather", and as C^T @ t on the CSR of C, a "scatter");
  (b) scipy CSR times a dense n x K block (ms per vector);
  (c) NetworKit PageRank with sink distribution (if networkit is installed),
      total time / iterations, at 1 thread and at all threads;
  (d) python-graphblas / SuiteSparse:GraphBLAS (if importable), the same
      iteration, the product alone and the K-column product.

Every library runs exactly ``--iters`` iterations from t = p; the L1 distance
of its result to the scipy result is printed as an agreement check.
Prints a table; ``--json OUT`` also writes the numbers.
"""

from __future__ import annotations

import os

# Pin the thread pools of numpy's BLAS and OpenMP before numpy is imported.
# scipy's sparse kernels are single-threaded anyway; NetworKit and GraphBLAS
# are pinned explicitly through their own APIs below.  OPENBLAS_CORETYPE /
# OPENBLAS_L2_SIZE, if set, only tune dense BLAS and are left alone.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
for _var in THREAD_ENV:
    os.environ[_var] = "1"

import argparse  # noqa: E402
import gzip  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402
import scipy  # noqa: E402
import scipy.sparse as sp  # noqa: E402


# --------------------------------------------------------------------------
# Input and matrix
# --------------------------------------------------------------------------


def read_arcs(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Read ``src<TAB>dst`` lines (gzip if the file starts with the gzip magic)."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if b"#" in raw:
        raw = b"\n".join(ln for ln in raw.split(b"\n") if not ln.lstrip().startswith(b"#"))
    table = pacsv.read_csv(
        io.BytesIO(raw),
        read_options=pacsv.ReadOptions(column_names=["src", "dst"]),
        parse_options=pacsv.ParseOptions(delimiter="\t"),
        convert_options=pacsv.ConvertOptions(column_types={"src": pa.int64(), "dst": pa.int64()}),
    )
    src = table.column("src").to_numpy()
    dst = table.column("dst").to_numpy()
    if len(src) and min(src.min(), dst.min()) < 0:
        raise SystemExit(f"{path}: negative node id")
    return src, dst


class Graph:
    """C (CSR), C^T (CSR), the dangling indicator and the arcs used."""

    def __init__(self, src: np.ndarray, dst: np.ndarray, drop_self_loops: bool):
        self.arcs_read = len(src)
        self.self_loops = int(np.count_nonzero(src == dst))
        if drop_self_loops:
            keep = src != dst
            src, dst = src[keep], dst[keep]
        n = int(max(src.max(), dst.max())) + 1 if len(src) else 0
        # Merge duplicate arcs so that c_ij = 1/outdeg(i) over distinct successors.
        pattern = sp.csr_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
        pattern.sum_duplicates()
        self.duplicates = len(src) - pattern.nnz
        outdeg = np.diff(pattern.indptr)
        inv = np.zeros(n)
        np.divide(1.0, outdeg, out=inv, where=outdeg > 0)
        pattern.data = np.repeat(inv, outdeg)
        self.C = pattern
        self.CT = pattern.T.tocsr()
        self.dangling = outdeg == 0
        self.n = n
        self.m = pattern.nnz
        rows = np.repeat(np.arange(n, dtype=np.int64), outdeg)
        self.src, self.dst = rows, pattern.indices.astype(np.int64)


# --------------------------------------------------------------------------
# Timing helpers
# --------------------------------------------------------------------------


def timed(fn, count: int, warmup: int, repeat: int) -> dict:
    """Run ``fn()`` ``warmup`` times, then ``repeat`` batches of ``count`` calls.

    Returns per-call milliseconds: the median and the minimum over batches.
    """
    for _ in range(warmup):
        fn()
    per_call = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(count):
            fn()
        per_call.append((time.perf_counter() - t0) * 1e3 / count)
    return {"median_ms": statistics.median(per_call), "min_ms": min(per_call)}


def scipy_iterate(g: Graph, alpha: float, iters: int) -> np.ndarray:
    """``iters`` full iterations from t = p (uniform), for the agreement check."""
    n = g.n
    p = np.full(n, 1.0 / n)
    t = p.copy()
    for _ in range(iters):
        t, _ = scipy_step(g.CT, g.dangling, p, alpha, t)
    return t


def scipy_step(CT, dangling, p, alpha, t):
    """One EigenTrust iteration and its L1 residual."""
    y = CT @ t
    dm = t[dangling].sum()
    y *= 1.0 - alpha
    y += ((1.0 - alpha) * dm + alpha) * p
    return y, float(np.abs(y - t).sum())


# --------------------------------------------------------------------------
# Peers
# --------------------------------------------------------------------------


def bench_scipy(g: Graph, args, results: list, reference: np.ndarray) -> None:
    n = g.n
    p = np.full(n, 1.0 / n)
    state = {"t": p.copy()}

    def step():
        state["t"], _ = scipy_step(g.CT, g.dangling, p, args.alpha, state["t"])

    r = timed(step, args.iters, args.warmup, args.repeat)
    results.append(dict(library="scipy", kernel="full iteration (C^T CSR)", threads=1, **r))

    t = p.copy()
    r = timed(lambda: g.CT @ t, args.iters, args.warmup, args.repeat)
    results.append(dict(library="scipy", kernel="C^T t, gather (CSR of C^T)", threads=1, **r))
    CTview = g.C.T  # CSC view of C: the product scatters row by row
    r = timed(lambda: CTview @ t, args.iters, args.warmup, args.repeat)
    results.append(dict(library="scipy", kernel="C^T t, scatter (CSR of C)", threads=1, **r))

    T = np.ascontiguousarray(np.tile(p[:, None], (1, args.k)))
    r = timed(lambda: g.CT @ T, max(1, args.iters // 4), 1, args.repeat)
    results.append(dict(library="scipy", kernel=f"C^T T, K={args.k} (per vector)", threads=1,
                        median_ms=r["median_ms"] / args.k, min_ms=r["min_ms"] / args.k))


def bench_networkit(g: Graph, args, results: list, reference: np.ndarray, info: dict) -> None:
    try:
        import networkit as nk
    except ImportError as e:
        print(f"networkit: not installed ({e}); skipped")
        info["networkit"] = None
        return
    info["networkit"] = nk.__version__
    G = nk.Graph(g.n, weighted=False, directed=True)
    G.addEdges((g.src.astype(np.uint64), g.dst.astype(np.uint64)))
    sinks = nk.centrality.SinkHandling.DistributeSinks
    max_threads = os.cpu_count() or 1
    for threads in sorted({1, max_threads}):
        nk.setNumberOfThreads(threads)
        used = nk.getMaxNumberOfThreads()
        per_iter = []
        scores = None
        # tol = 0 never converges, so each run does exactly maxIterations.
        for rep in range(args.warmup + args.repeat):
            pr = nk.centrality.PageRank(G, damp=1.0 - args.alpha, tol=0.0, distributeSinks=sinks)
            pr.norm = nk.centrality.Norm.L1_NORM
            pr.maxIterations = args.iters
            t0 = time.perf_counter()
            pr.run()
            elapsed = (time.perf_counter() - t0) * 1e3
            done = pr.numberOfIterations()
            if rep >= args.warmup:
                per_iter.append(elapsed / done)
            scores = np.asarray(pr.scores())
        results.append(dict(library="networkit", kernel="PageRank run / iterations", threads=used,
                            median_ms=statistics.median(per_iter), min_ms=min(per_iter),
                            iterations=done, l1_vs_scipy=float(np.abs(scores - reference).sum())))


def bench_graphblas(g: Graph, args, results: list, reference: np.ndarray, info: dict) -> None:
    try:
        import graphblas as gb
    except ImportError as e:
        print(f"python-graphblas: not importable ({e}); skipped")
        info["graphblas"] = None
        return
    info["graphblas"] = gb.__version__
    from graphblas import binary, monoid, semiring, unary

    n, a = g.n, args.alpha
    C = gb.Matrix.from_coo(g.src, g.dst, g.C.data, nrows=n, ncols=n, dtype="FP64")
    CT = C.T.new()
    dvec = gb.Vector.from_coo(np.flatnonzero(g.dangling), 1.0, size=n, dtype="FP64")
    p0 = 1.0 / n

    # Both forms of y = C^T t: vxm reads C by rows and scatters (push), mxv on
    # the pre-transposed, row-stored C^T gathers (pull) and is GraphBLAS's best
    # configuration here (2.6 vs 6.3 ms on cnr-2000, 2 cores); both are timed
    # so every figure is beside the peer's best.
    products = {
        "vxm": lambda t: t.vxm(C, semiring.plus_times).new(),
        "mxv, pre-transposed": lambda t: CT.mxv(t, semiring.plus_times).new(),
    }

    def step(t, product):
        y = product(t)  # y = C^T t (entries only where in-links)
        dm = t.inner(dvec, semiring.plus_times).new().get(0.0)
        out = gb.Vector("FP64", n)
        out[:] << ((1.0 - a) * dm + a) * p0
        out(accum=binary.plus) << y.apply(binary.times, right=1.0 - a)
        r = binary.minus(out | t).new().apply(unary.abs).new().reduce(monoid.plus).new().get(0.0)
        return out, r

    max_threads = os.cpu_count() or 1
    for threads in sorted({1, max_threads}):
        gb.ss.config["nthreads"] = threads
        used = gb.ss.config["nthreads"]
        for form, product in products.items():
            state = {"t": gb.Vector.from_dense(np.full(n, p0))}

            def full():
                state["t"], _ = step(state["t"], product)

            # Agreement: exactly --iters iterations from p.
            t = gb.Vector.from_dense(np.full(n, p0))
            for _ in range(args.iters):
                t, _ = step(t, product)
            l1 = float(np.abs(t.to_dense(fill_value=0.0) - reference).sum())

            r = timed(full, args.iters, args.warmup, args.repeat)
            results.append(dict(library="graphblas", kernel=f"full iteration ({form})", threads=used,
                                l1_vs_scipy=l1, **r))
            t = gb.Vector.from_dense(np.full(n, p0))
            r = timed(lambda: product(t), args.iters, args.warmup, args.repeat)
            results.append(dict(library="graphblas", kernel=f"C^T t ({form})", threads=used, **r))
        T = gb.Matrix.from_dense(np.full((n, args.k), p0))
        r = timed(lambda: CT.mxm(T, semiring.plus_times).new(), max(1, args.iters // 4), 1, args.repeat)
        results.append(dict(library="graphblas", kernel=f"C^T T, K={args.k} (per vector)", threads=used,
                            median_ms=r["median_ms"] / args.k, min_ms=r["min_ms"] / args.k))


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tsv", required=True, help="arc list src<TAB>dst (.tsv or .tsv.gz)")
    ap.add_argument("--iters", type=int, default=50, help="iterations per timed batch (default 50)")
    ap.add_argument("--k", type=int, default=16, help="columns of the dense block (default 16)")
    ap.add_argument("--alpha", type=float, default=0.15, help="teleport probability (default 0.15)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed warm-up runs (default 2)")
    ap.add_argument("--repeat", type=int, default=3, help="timed batches; median reported (default 3)")
    ap.add_argument("--drop-self-loops", action="store_true", help="drop arcs i->i (default: keep)")
    ap.add_argument("--json", metavar="OUT", help="also write the numbers as JSON")
    args = ap.parse_args(argv)
    if args.iters < 1 or args.k < 1 or args.repeat < 1 or args.warmup < 0:
        ap.error("--iters, --k and --repeat must be >= 1, --warmup >= 0")

    t0 = time.perf_counter()
    src, dst = read_arcs(args.tsv)
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    g = Graph(src, dst, args.drop_self_loops)
    build_s = time.perf_counter() - t0

    info = {
        "tsv": args.tsv,
        "nodes": g.n,
        "arcs_read": g.arcs_read,
        "arcs_used": g.m,
        "self_loops_in_input": g.self_loops,
        "self_loops_dropped": bool(args.drop_self_loops),
        "duplicates_merged": g.duplicates,
        "dangling": int(g.dangling.sum()),
        "alpha": args.alpha,
        "iters": args.iters,
        "k": args.k,
        "warmup": args.warmup,
        "repeat": args.repeat,
        "read_s": read_s,
        "build_s": build_s,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "thread_env": {v: os.environ.get(v) for v in THREAD_ENV},
        "openblas_env": {v: os.environ.get(v) for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
    }
    print(f"graph: {g.n} nodes, {g.m} arcs used ({g.arcs_read} read, {g.self_loops} self-loops "
          f"{'dropped' if args.drop_self_loops else 'kept'}, {g.duplicates} duplicates merged), "
          f"{info['dangling']} dangling; read {read_s:.2f} s, build {build_s:.2f} s")
    print("thread pinning: " + ", ".join(f"{k}={v}" for k, v in info["thread_env"].items())
          + f"; cpu_count={os.cpu_count()}")

    reference = scipy_iterate(g, args.alpha, args.iters)
    results: list[dict] = []
    bench_scipy(g, args, results, reference)
    bench_networkit(g, args, results, reference, info)
    bench_graphblas(g, args, results, reference, info)

    print(f"\n{args.iters} iterations per batch, median of {args.repeat} batches "
          f"(min in brackets), alpha={args.alpha}")
    header = f"{'library':<10} {'kernel':<30} {'threads':>7} {'ms':>9} {'(min)':>9} {'L1 vs scipy':>12}"
    print(header)
    print("-" * len(header))
    for r in results:
        l1 = f"{r['l1_vs_scipy']:.1e}" if "l1_vs_scipy" in r else ""
        print(f"{r['library']:<10} {r['kernel']:<30} {r['threads']:>7} {r['median_ms']:>9.3f} "
              f"{r['min_ms']:>9.3f} {l1:>12}")

    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"info": info, "results": results}, fh, indent=2)
            fh.write("\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
