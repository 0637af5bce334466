#!/usr/bin/env python3
"""Independent reference implementation of the trustmesh trust model.

This script recomputes multi-layer EigenTrust scores from the same Parquet
interaction logs that trustmesh reads, using only numpy, scipy and pyarrow.
A Rust integration test runs it and compares the per-agent scores with
trustmesh's own output (1e-9 absolute tolerance).  It is deliberately written
from the model description, not from the Rust code, so that the two can
disagree when either one is wrong.

Model summary (see ``--help`` for the options):

* Agents: every ``src`` and ``dst`` of every row read, indexed in sorted
  (byte-lexicographic) order of their ids.
* Rows with ``src == dst`` are dropped.  With ``--layers``, only the listed
  layers are scored, but rows of ``--costly`` layers are kept as evidence.
* Decay (``--half-life h`` seconds): factor = 2^(-(now - ts)/1000/h) with
  ``now`` the largest timestamp of all rows read (milliseconds).
* Per layer k and pair (i, j): s_k = sum(weight*outcome*factor) and
  volume_k = sum(weight*factor).
* Local trust: c_k(i, j) = max(s_k, 0) / sum_j max(s_k, 0); cheap layers keep
  the fraction f = beta + (1 - beta) * min(1, v/tau) of each edge, v being the
  costly-layer volume in both directions.  Mass that is not placed on an edge
  (empty rows, cut cheap edges) is the row deficit d_i and teleports to p.
* C = sum_k lambda_k f c_k, and t' = (1 - a)(C^T t + (d.t) p) + a p from t = p
  until ||t' - t||_1 < epsilon or max-iter.
* ``--distrust discount``: one-shot discount u_j = max(0, t_j - sum_i t_i D_ij)
  renormalised, with D the lambda-weighted row-normalised negative trust.

Output: CSV ``agent,score`` with one row per agent in index order, scores
printed with 17 significant digits.

``--self-test`` runs a small hand-computed case and exits.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import tempfile
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp


# --------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------

REQUIRED_COLUMNS = ("ts", "src", "dst", "layer", "outcome")


class ModelError(Exception):
    """Invalid input or parameters; reported on stderr with exit status 2."""


@dataclass
class Log:
    """All rows of all input files, normalised to plain numpy arrays."""

    ts_ms: np.ndarray  # int64 epoch milliseconds
    src: np.ndarray  # object (str)
    dst: np.ndarray  # object (str)
    layer: np.ndarray  # object (str)
    outcome: np.ndarray  # float64
    weight: np.ndarray  # float64


def _as_string(col: pa.ChunkedArray, name: str, path: str) -> np.ndarray:
    """Decode a utf8 / large_utf8 / dictionary column into a numpy object array."""
    typ = col.type
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
        col = col.cast(typ)
    if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
        raise ModelError(f"{path}: column `{name}` must be utf8 or dictionary<utf8>, got {col.type}")
    if col.null_count:
        raise ModelError(f"{path}: column `{name}` has {col.null_count} null value(s)")
    return np.asarray(col.to_pylist(), dtype=object)


def _as_millis(col: pa.ChunkedArray, path: str) -> np.ndarray:
    """Timestamps of any unit (or integers, taken as milliseconds) → int64 ms."""
    if col.null_count:
        raise ModelError(f"{path}: column `ts` has {col.null_count} null value(s)")
    typ = col.type
    if pa.types.is_timestamp(typ):
        # Drop the time zone (the epoch value is unaffected), change unit, and
        # read the raw int64.  Finer units are truncated to whole milliseconds.
        col = col.cast(pa.timestamp(typ.unit), safe=False)
        col = col.cast(pa.timestamp("ms"), safe=False)
        col = col.cast(pa.int64())
    elif pa.types.is_integer(typ):
        col = col.cast(pa.int64())
    else:
        raise ModelError(f"{path}: column `ts` must be a timestamp or int64 milliseconds, got {typ}")
    return col.to_numpy().astype(np.int64, copy=False)


def _as_float(col: pa.ChunkedArray, name: str, path: str, fill: float | None) -> np.ndarray:
    """A float column as float64; nulls become ``fill`` (or are an error)."""
    if not pa.types.is_floating(col.type):
        raise ModelError(f"{path}: column `{name}` must be float32/float64, got {col.type}")
    if col.null_count:
        if fill is None:
            raise ModelError(f"{path}: column `{name}` has {col.null_count} null value(s)")
        col = pc.fill_null(col, fill)
    return col.cast(pa.float64()).to_numpy().astype(np.float64, copy=False)


def read_logs(paths: list[str]) -> Log:
    """Read and concatenate every Parquet log, checking the schema."""
    parts = []
    for path in paths:
        table = pq.read_table(path)
        missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
        if missing:
            raise ModelError(f"{path}: missing column(s) {', '.join(missing)}")
        n = table.num_rows
        if "weight" in table.column_names:
            weight = _as_float(table.column("weight"), "weight", path, fill=1.0)
        else:
            weight = np.ones(n, dtype=np.float64)
        outcome = _as_float(table.column("outcome"), "outcome", path, fill=None)
        if np.any(~np.isfinite(outcome)) or np.any(np.abs(outcome) > 1.0):
            raise ModelError(f"{path}: column `outcome` has values outside [-1, 1]")
        if np.any(~np.isfinite(weight)) or np.any(weight < 0.0):
            raise ModelError(f"{path}: column `weight` has negative or non-finite values")
        parts.append(
            Log(
                ts_ms=_as_millis(table.column("ts"), path),
                src=_as_string(table.column("src"), "src", path),
                dst=_as_string(table.column("dst"), "dst", path),
                layer=_as_string(table.column("layer"), "layer", path),
                outcome=outcome,
                weight=weight,
            )
        )
    if not parts:
        raise ModelError("no --log given")
    return Log(
        ts_ms=np.concatenate([p.ts_ms for p in parts]),
        src=np.concatenate([p.src for p in parts]),
        dst=np.concatenate([p.dst for p in parts]),
        layer=np.concatenate([p.layer for p in parts]),
        outcome=np.concatenate([p.outcome for p in parts]),
        weight=np.concatenate([p.weight for p in parts]),
    )


def read_pretrusted(path: str) -> list[str]:
    """One agent id per line; blank lines and lines starting with # are ignored."""
    names = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            name = line.strip()
            if name and not name.startswith("#"):
                names.append(name)
    return names


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------


@dataclass
class Params:
    layers: list[str] | None = None  # None: every layer present, sorted
    layer_weights: dict[str, float] = field(default_factory=dict)
    cheap: set[str] = field(default_factory=set)
    costly: set[str] = field(default_factory=set)
    beta: float = 0.2
    tau: float = 1.0
    pretrusted: list[str] | None = None
    alpha: float = 0.15
    epsilon: float = 1e-12
    max_iter: int = 1000
    half_life_s: float | None = None
    distrust: str = "ignore"

    def validate(self) -> None:
        if not (0.0 <= self.alpha <= 1.0):
            raise ModelError(f"--alpha must be in [0, 1], got {self.alpha}")
        if not (0.0 <= self.beta <= 1.0):
            raise ModelError(f"--beta must be in [0, 1], got {self.beta}")
        if not (self.tau > 0.0 and math.isfinite(self.tau)):
            raise ModelError(f"--tau must be positive and finite, got {self.tau}")
        if not (self.epsilon > 0.0):
            raise ModelError(f"--epsilon must be positive, got {self.epsilon}")
        if self.max_iter < 0:
            raise ModelError(f"--max-iter must be >= 0, got {self.max_iter}")
        if self.half_life_s is not None and not (self.half_life_s > 0.0 and math.isfinite(self.half_life_s)):
            raise ModelError(f"--half-life must be positive and finite, got {self.half_life_s}")
        for name, w in self.layer_weights.items():
            if not (w >= 0.0 and math.isfinite(w)):
                raise ModelError(f"--layer-weight {name}={w}: weight must be finite and >= 0")
        if self.distrust not in ("ignore", "discount"):
            raise ModelError(f"--distrust must be ignore or discount, got {self.distrust}")


def _warn(msg: str) -> None:
    print(f"eigentrust_ref: warning: {msg}", file=sys.stderr)


def layer_sums(rows_i, rows_j, values, n) -> sp.csr_matrix:
    """Sum ``values`` per (i, j) pair into an n×n CSR matrix (duplicates summed)."""
    m = sp.csr_matrix((values, (rows_i, rows_j)), shape=(n, n), dtype=np.float64)
    m.sum_duplicates()
    m.sort_indices()
    return m


def compute(log: Log, prm: Params) -> tuple[list[str], np.ndarray, dict]:
    """Return (agent ids in index order, scores, diagnostics)."""
    prm.validate()

    # Agents: all src and dst of all rows, sorted (code-point order of Python
    # str equals byte order of their UTF-8 encoding).
    agents, inverse = np.unique(np.concatenate([log.src, log.dst]), return_inverse=True)
    agents = [str(a) for a in agents]
    n = len(agents)
    if n == 0:
        raise ModelError("the logs contain no rows")
    nrows = len(log.src)
    src_idx = inverse[:nrows].astype(np.int64)
    dst_idx = inverse[nrows:].astype(np.int64)

    # Decay relative to the newest row of all rows read.
    if prm.half_life_s is not None:
        now = int(log.ts_ms.max())
        age_s = (now - log.ts_ms).astype(np.float64) / 1000.0
        factor = np.exp2(-age_s / prm.half_life_s)
    else:
        factor = np.ones(nrows, dtype=np.float64)

    # Scored layers: --layers, else every layer present in the rows read.
    present = sorted(set(log.layer.tolist()))
    if prm.layers is None:
        scored = present
    else:
        scored = list(dict.fromkeys(prm.layers))  # keep order, drop repeats
        for name in scored:
            if name not in present:
                _warn(f"scored layer `{name}` has no rows (all its rows are dangling)")
    if not scored:
        raise ModelError("no layers to score")
    for name in sorted(prm.cheap | prm.costly):
        if name not in present:
            _warn(f"layer `{name}` named by --cheap/--costly has no rows")
    for name in prm.layer_weights:
        if name not in scored:
            raise ModelError(f"--layer-weight names `{name}`, which is not a scored layer")

    # λ: given weights (layers without one weigh 1), normalised to sum 1.
    raw = np.array([prm.layer_weights.get(name, 1.0) for name in scored], dtype=np.float64)
    if not raw.sum() > 0.0:
        raise ModelError("layer weights sum to zero")
    lam = raw / raw.sum()

    # Row selection: no self-ratings; scored layers plus costly layers.
    keep_layers = set(scored) | prm.costly
    keep = (src_idx != dst_idx) & np.isin(log.layer, np.array(sorted(keep_layers), dtype=object))

    def layer_matrices(name):
        sel = keep & (log.layer == name)
        i, j = src_idx[sel], dst_idx[sel]
        w = log.weight[sel] * factor[sel]
        s = layer_sums(i, j, w * log.outcome[sel], n)
        vol = layer_sums(i, j, w, n)
        return s, vol

    per_layer = {name: layer_matrices(name) for name in sorted(keep_layers)}

    # Costly volume in both directions, summed over costly layers.
    vcostly = sp.csr_matrix((n, n), dtype=np.float64)
    for name in sorted(prm.costly):
        vol = per_layer[name][1]
        vcostly = vcostly + vol + vol.T.tocsr()
    vcostly = vcostly.tocsr()

    c_total = sp.csr_matrix((n, n), dtype=np.float64)
    d_total = sp.csr_matrix((n, n), dtype=np.float64)
    deficit = np.zeros(n, dtype=np.float64)
    for lam_k, name in zip(lam, scored):
        s = per_layer[name][0].tocoo()
        i, j, val = s.row.astype(np.int64), s.col.astype(np.int64), s.data

        # Positive part → local trust c_k, row-normalised.
        posmask = val > 0.0
        pi, pj, pv = i[posmask], j[posmask], val[posmask]
        pos_sum = np.bincount(pi, weights=pv, minlength=n)
        c = pv / pos_sum[pi]
        if name in prm.cheap:
            v = np.asarray(vcostly[pi, pj]).ravel() if len(pi) else np.zeros(0)
            f = prm.beta + (1.0 - prm.beta) * np.minimum(1.0, v / prm.tau)
        else:
            f = np.ones_like(c)
        cut = np.bincount(pi, weights=(1.0 - f) * c, minlength=n)
        deficit += lam_k * np.where(pos_sum > 0.0, cut, 1.0)
        c_total = c_total + sp.csr_matrix((lam_k * f * c, (pi, pj)), shape=(n, n))

        # Negative part → distrust D_k (no cheap factor).
        if prm.distrust == "discount":
            negmask = val < 0.0
            ni, nj, nv = i[negmask], j[negmask], -val[negmask]
            neg_sum = np.bincount(ni, weights=nv, minlength=n)
            d_total = d_total + sp.csr_matrix((lam_k * nv / neg_sum[ni], (ni, nj)), shape=(n, n))

    C = c_total.tocsr()
    CT = C.T.tocsr()

    # Pre-trust.
    if prm.pretrusted is None:
        p = np.full(n, 1.0 / n)
    else:
        index = {a: k for k, a in enumerate(agents)}
        ids = set()
        for name in prm.pretrusted:
            if name not in index:
                raise ModelError(f"pre-trusted agent `{name}` does not appear in the logs")
            ids.add(index[name])
        if not ids:
            raise ModelError("no pre-trusted agents listed")
        p = np.zeros(n)
        p[sorted(ids)] = 1.0 / len(ids)

    # Power iteration.
    a = prm.alpha
    t = p.copy()
    iterations, residual, converged = 0, float("nan"), False
    for _ in range(prm.max_iter):
        t_new = (1.0 - a) * (CT @ t + float(deficit @ t) * p) + a * p
        residual = float(np.abs(t_new - t).sum())
        t = t_new
        iterations += 1
        if residual < prm.epsilon:
            converged = True
            break

    discounted = False
    if prm.distrust == "discount":
        received = d_total.tocsr().T @ t
        u = np.maximum(0.0, t - received)
        if u.sum() > 0.0:
            t = u / u.sum()
            discounted = True

    diag = {
        "agents": n,
        "scored_layers": scored,
        "lambda": lam.tolist(),
        "iterations": iterations,
        "residual": residual,
        "converged": converged,
        "discounted": discounted,
    }
    return agents, t, diag


def write_csv(path: str, agents: list[str], scores: np.ndarray) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["agent", "score"])
        for a, s in zip(agents, scores):
            w.writerow([a, f"{float(s):.17g}"])


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _names(values: list[str] | None) -> set[str]:
    """Flatten repeated and comma-separated name options."""
    out = set()
    for v in values or []:
        out.update(x.strip() for x in v.split(",") if x.strip())
    return out


def _layer_weight(text: str) -> tuple[str, float]:
    name, sep, w = text.rpartition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=W, got `{text}`")
    try:
        return name, float(w)
    except ValueError:
        raise argparse.ArgumentTypeError(f"weight in `{text}` is not a number") from None


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--log", action="append", metavar="FILE", help="Parquet log (repeatable)")
    ap.add_argument("--out", metavar="OUT.csv", help="output CSV (agent,score)")
    ap.add_argument("--layers", help="comma-separated layers to score (default: all, sorted)")
    ap.add_argument("--layer-weight", action="append", type=_layer_weight, default=[], metavar="NAME=W",
                    help="relative weight of a scored layer (others weigh 1); normalised to sum 1")
    ap.add_argument("--cheap", action="append", metavar="NAME", help="cheap layer(s), repeatable or comma-separated")
    ap.add_argument("--costly", action="append", metavar="NAME", help="costly layer(s), repeatable or comma-separated")
    ap.add_argument("--beta", type=float, default=0.2, help="uncorroborated share kept by cheap edges")
    ap.add_argument("--tau", type=float, default=1.0, help="costly volume that fully corroborates a cheap edge")
    ap.add_argument("--pretrusted", metavar="FILE", help="pre-trusted agent ids, one per line")
    ap.add_argument("--alpha", type=float, default=0.15, help="teleport probability")
    ap.add_argument("--epsilon", type=float, default=1e-12, help="L1 convergence threshold")
    ap.add_argument("--max-iter", type=int, default=1000)
    ap.add_argument("--half-life", type=float, metavar="SECONDS", help="decay half-life in seconds")
    ap.add_argument("--distrust", choices=("ignore", "discount"), default="ignore")
    ap.add_argument("--self-test", action="store_true", help="run the built-in hand-computed checks")
    ap.add_argument("-v", "--verbose", action="store_true", help="print diagnostics on stderr")
    return ap


def params_from_args(args) -> Params:
    layers = None
    if args.layers is not None:
        layers = [x.strip() for x in args.layers.split(",") if x.strip()]
    weights: dict[str, float] = {}
    for name, w in args.layer_weight:
        if name in weights:
            raise ModelError(f"--layer-weight {name} given twice")
        weights[name] = w
    return Params(
        layers=layers,
        layer_weights=weights,
        cheap=_names(args.cheap),
        costly=_names(args.costly),
        beta=args.beta,
        tau=args.tau,
        pretrusted=read_pretrusted(args.pretrusted) if args.pretrusted else None,
        alpha=args.alpha,
        epsilon=args.epsilon,
        max_iter=args.max_iter,
        half_life_s=args.half_life,
        distrust=args.distrust,
    )


def self_test() -> int:
    """Hand-computed case: a and b trust each other; p = (1, 0); alpha = 0.5.

    C = [[0, 1], [1, 0]], no deficit.  The fixed point solves
    t_a = 0.5 t_b + 0.5, t_b = 0.5 t_a, so t = (2/3, 1/3).
    """
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        log_path = os.path.join(tmp, "log.parquet")
        table = pa.table({
            "ts": pa.array([0, 1000], type=pa.timestamp("ms")),
            "src": ["a", "b"],
            "dst": ["b", "a"],
            "layer": pa.array(["x", "x"]).dictionary_encode(),
            "outcome": pa.array([1.0, 1.0], type=pa.float32()),
        })
        pq.write_table(table, log_path)
        pre_path = os.path.join(tmp, "pre.txt")
        with open(pre_path, "w", encoding="utf-8") as fh:
            fh.write("# pre-trusted\n\na\n")
        agents, t, _ = compute(read_logs([log_path]),
                               Params(pretrusted=read_pretrusted(pre_path), alpha=0.5))
        expected = {"a": 2.0 / 3.0, "b": 1.0 / 3.0}
        got = dict(zip(agents, t))
        if agents == ["a", "b"] and all(abs(got[k] - v) < 1e-12 for k, v in expected.items()):
            passed += 1
        else:
            failed += 1
            print(f"FAIL two-agent case: expected {expected}, got {got}", file=sys.stderr)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.self_test:
        return self_test()
    if not args.log or not args.out:
        build_parser().error("--log and --out are required (or use --self-test)")
    try:
        prm = params_from_args(args)
        agents, scores, diag = compute(read_logs(args.log), prm)
    except (ModelError, OSError, pa.ArrowException) as e:
        print(f"eigentrust_ref: error: {e}", file=sys.stderr)
        return 2
    if not diag["converged"] and prm.max_iter > 0:
        _warn(f"not converged after {diag['iterations']} iterations (residual {diag['residual']:.3e})")
    if args.verbose:
        for k, v in diag.items():
            print(f"{k}: {v}", file=sys.stderr)
    write_csv(args.out, agents, scores)
    return 0


if __name__ == "__main__":
    sys.exit(main())
