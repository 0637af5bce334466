#!/usr/bin/env python3
"""Time NVIDIA cuSPARSE (through CuPy) on the very matrix trustmesh iterates.

Reads the binary CSR written by ``trustmesh bench --save-matrix FILE`` (see
``save_matrix`` in src/bench.rs), builds A = C^T as a float32 / int32 CSR
matrix on the GPU and times, with CUDA events, after warm-up, as the median of
``--repeat`` batches of R products (R chosen so a batch lasts >= ~50 ms):

  copy   device-to-device copy of a >= 1 GiB buffer (GB/s, read + write): the
         practical bandwidth bound every other row is compared with;
  spmv   y = A x (cuSPARSE SpMV: CuPy's ``A @ x``, ``cupyx.cusparse.spmv`` into
         a preallocated y, and the raw generic API with each CSR algorithm);
  spmm   Y = A X for each K in ``--k``, X dense n x K in C (row-major) and F
         (column-major) order, every variant CuPy offers plus the raw generic
         API with each CSR algorithm; the best per layout and overall (ms/K);
  iter   one whole EigenTrust iteration for K = 1
             t' = (1-a)(A t + (d.t) p) + a p,   r = |t' - t|_1
         with CuPy array operations and with fused custom kernels, the
         residual kept on the device (no host sync inside a batch);
  check  50 iterations from t = p (uniform) in float64 and in float32 on the
         GPU and the L1 distance between the two results.

Prints a table; ``--json OUT`` also writes every number. ``--dry-run-scipy``
runs the same code path on the CPU with numpy/scipy stand-ins (perf_counter
instead of CUDA events) so the script can be tested without a GPU; those
timings mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

MAGIC = b"TMCSR001"
HEADER_BYTES = 8 + 3 * 8
INT32_MAX = 2**31 - 1

# cuSPARSE generic-API algorithm ids (cusparse.h, CUDA 11.2+). CuPy 14 exports
# only the legacy names for some (CUSPARSE_CSRMV_ALG1 = 2, ...), so the numbers
# are written out; the C enums take plain ints.
SPMV_ALGS = {"ALG_DEFAULT": 0, "CSR_ALG1": 2, "CSR_ALG2": 3}
SPMM_ALGS = {"ALG_DEFAULT": 0, "CSR_ALG1": 4, "CSR_ALG2": 6, "CSR_ALG3": 12}
# Order tried per dense layout, most promising first (NVIDIA documents CSR_ALG2
# as the fast one for row-major), so a --budget-s cut drops the least useful.
SPMM_ORDER = {"C": ("CSR_ALG2", "ALG_DEFAULT", "CSR_ALG1", "CSR_ALG3"),
              "F": ("ALG_DEFAULT", "CSR_ALG1", "CSR_ALG3", "CSR_ALG2")}
CUDA_R_32F, CUDA_R_64F = 0, 1  # cudaDataType, fallback if CuPy's helper moved

T0 = time.perf_counter()


def log(msg: str) -> None:
    """Progress line with seconds since start (the run has a hard time limit)."""
    print(f"[{time.perf_counter() - T0:6.1f} s] {msg}", flush=True)


NOTES: list[str] = []


def note(msg: str) -> None:
    """Something skipped or replaced by a fallback: printed now and kept for the JSON."""
    NOTES.append(msg)
    log(f"note: {msg}")


# --------------------------------------------------------------------------
# Matrix file
# --------------------------------------------------------------------------


class MatrixFile:
    """Host arrays of a TMCSR001 file, validated."""

    def __init__(self, path: str):
        self.path = path
        try:
            size = os.path.getsize(path)
            fh = open(path, "rb")
        except OSError as e:
            raise SystemExit(f"{path}: cannot open ({e.strerror})")
        with fh:
            head = fh.read(HEADER_BYTES)
            if len(head) < HEADER_BYTES:
                raise SystemExit(f"{path}: {size} bytes, too short for the {HEADER_BYTES}-byte header")
            if head[:8] != MAGIC:
                raise SystemExit(f"{path}: bad magic {head[:8]!r}, expected {MAGIC!r} "
                                 "(write the file with `trustmesh bench --save-matrix FILE`)")
            n, nnz, kind = (int(v) for v in np.frombuffer(head, dtype="<u8", count=3, offset=8))
            if kind not in (0, 1):
                raise SystemExit(f"{path}: weight kind {kind}, expected 0 (per source) or 1 (per edge)")
            if n == 0:
                raise SystemExit(f"{path}: the matrix has no agents")
            # int32 indices and row offsets for cuSPARSE (as trustmesh uses u32).
            if n > INT32_MAX or nnz > INT32_MAX:
                raise SystemExit(f"{path}: n = {n}, nnz = {nnz}; this script needs both < 2^31 "
                                 "(int32 CSR indices)")
            n_w = n if kind == 0 else nnz
            expect = HEADER_BYTES + 4 * (n + 1) + 4 * nnz + 8 * n_w + 8 * n
            if size != expect:
                raise SystemExit(f"{path}: {size} bytes, but n = {n}, nnz = {nnz}, kind = {kind} "
                                 f"need exactly {expect} (truncated or not a TMCSR001 file)")
            # np.fromfile reads straight into fresh (hence aligned) arrays: the f64
            # sections need not start at a multiple of 8 in the file.
            self.ptr = self._read(fh, "<u4", n + 1, "ptr")
            self.src = self._read(fh, "<u4", nnz, "src")
            self.weights = self._read(fh, "<f8", n_w, "weights")
            self.deficit = self._read(fh, "<f8", n, "deficit")
        self.n, self.nnz, self.kind, self.bytes = n, nnz, kind, size
        # Cheap host checks (8M entries): offsets are what could crash a kernel.
        if self.ptr[0] != 0 or int(self.ptr[-1]) != nnz:
            raise SystemExit(f"{path}: ptr[0] = {self.ptr[0]}, ptr[n] = {self.ptr[-1]}; expected 0 and nnz = {nnz}")
        if n > 0 and np.any(self.ptr[1:] < self.ptr[:-1]):
            raise SystemExit(f"{path}: ptr is not non-decreasing")
        self.dangling = int(np.count_nonzero(self.deficit >= 1.0))

    def _read(self, fh, dtype: str, count: int, what: str) -> np.ndarray:
        a = np.fromfile(fh, dtype=dtype, count=count)
        if a.size != count:
            raise SystemExit(f"{self.path}: truncated in {what} ({a.size} of {count} values)")
        return a


# --------------------------------------------------------------------------
# Backends: CuPy/cuSPARSE on the GPU, numpy/scipy stand-ins for the dry run
# --------------------------------------------------------------------------


class CpuBackend:
    """numpy/scipy with the GPU backend's interface, to test the script anywhere."""

    name = "scipy (dry run)"
    gpu = False

    def __init__(self):
        import scipy
        import scipy.sparse as sp
        self.xp = np
        self.sp = sp
        self.versions = {"numpy": np.__version__, "scipy": scipy.__version__}

    # -- memory and time -------------------------------------------------
    def asarray(self, host: np.ndarray):
        return np.array(host, copy=True)  # a device upload is a copy too

    def to_host(self, a) -> np.ndarray:
        return np.asarray(a)

    def scalar(self, a) -> float:
        return float(a)

    def sync(self) -> None:
        pass

    def free(self) -> None:
        pass

    def mem_free(self) -> int | None:
        return None

    def time_batch(self, fn, count: int) -> float:
        t0 = time.perf_counter()
        for _ in range(count):
            fn()
        return (time.perf_counter() - t0) * 1e3

    def device_info(self) -> dict:
        return {"device": f"cpu {platform.processor() or platform.machine()} (scipy dry run)",
                "driver_version": None, "runtime_version": None, "cusparse_version": None}

    # -- matrix ----------------------------------------------------------
    def csr(self, data, indices, indptr, n: int):
        A = self.sp.csr_matrix((data, indices, indptr), shape=(n, n), copy=False)
        A.has_canonical_format = True  # trustmesh sorts by (target, source), merges duplicates
        return A

    # -- kernels ---------------------------------------------------------
    def spmv_variants(self, A, x, y):
        def into():
            np.copyto(y, A @ x)
            return y
        return [("A @ x", lambda: A @ x), ("A @ x -> y", into)]

    def spmm_variants(self, A, XF, XC, Y):
        return [("A @ X", "F", lambda: A @ XF), ("A @ X", "C", lambda: A @ XC)]

    def raw(self, A):
        return CpuRaw(A)

    def step_kernels(self, dtype):
        """(dot, update, l1): the fused-iteration building blocks."""
        def update(y, p, m, a, out):
            np.multiply(p, m, out=out)
            out += y
            out *= 1 - a
            out += a * p
            return out
        return (lambda d, t: np.dot(d, t), update, lambda x, y: np.abs(x - y).sum())

    def spmv_into(self, A, x, y):
        np.copyto(y, A @ x)
        return y

    def copy_variants(self, src, dst):
        return [("np.copyto", lambda: np.copyto(dst, src))]


class GpuBackend:
    """CuPy: cuSPARSE for products, CUDA events for time."""

    name = "cupy/cuSPARSE"
    gpu = True

    def __init__(self):
        try:
            import cupy as cp
            import cupyx.scipy.sparse as csp
        except ImportError as e:
            raise SystemExit(f"cannot import CuPy ({e}); install cupy-cuda13x, or use --dry-run-scipy")
        self.cp = cp
        self.xp = cp
        self.sp = csp
        try:
            cp.cuda.runtime.getDeviceCount()
        except Exception as e:  # noqa: BLE001 - any CUDA error means no usable GPU
            raise SystemExit(f"no usable CUDA device ({e})")
        # cupyx.cusparse loads libcusparse on import; without it no product works.
        try:
            import cupyx.cusparse as cs
        except Exception as e:  # noqa: BLE001
            raise SystemExit(f"cuSPARSE could not be loaded through cupyx.cusparse ({e}); "
                             "install cupy-cuda13x[ctk] or the CUDA toolkit libraries")
        self.cs = cs
        self.has_spmv = self._available("spmv")
        self.has_spmm = self._available("spmm")
        self.versions = {"cupy": cp.__version__, "numpy": np.__version__}
        self._kernels: dict = {}

    def _available(self, name: str) -> bool:
        try:
            ok = bool(self.cs.check_availability(name))
        except Exception as e:  # noqa: BLE001
            note(f"cupyx.cusparse.check_availability('{name}') failed ({e}); assuming unavailable")
            return False
        if not ok:
            note(f"cupyx.cusparse reports '{name}' unavailable; only A @ x / A @ X are timed")
        return ok and hasattr(self.cs, name)

    # -- memory and time -------------------------------------------------
    def asarray(self, host: np.ndarray):
        return self.cp.asarray(host)

    def to_host(self, a) -> np.ndarray:
        return self.cp.asnumpy(a)

    def scalar(self, a) -> float:
        return float(a)  # synchronises

    def sync(self) -> None:
        self.cp.cuda.Device().synchronize()

    def free(self) -> None:
        self.sync()
        self.cp.get_default_memory_pool().free_all_blocks()

    def mem_free(self) -> int | None:
        try:
            return int(self.cp.cuda.runtime.memGetInfo()[0])
        except Exception:  # noqa: BLE001
            return None

    def time_batch(self, fn, count: int) -> float:
        """Milliseconds for ``count`` calls, measured on the stream by CUDA events.

        Everything (CuPy kernels, cuSPARSE, whose handle CuPy binds to the
        current stream) runs on the current stream; nothing inside the loop
        synchronises, so the host only queues work and the events time the GPU.
        """
        cp = self.cp
        stream = cp.cuda.get_current_stream()
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record(stream)
        for _ in range(count):
            fn()
        end.record(stream)
        end.synchronize()
        return float(cp.cuda.get_elapsed_time(start, end))

    def device_info(self) -> dict:
        rt = self.cp.cuda.runtime
        props = rt.getDeviceProperties(0)
        name = props.get("name", b"?")
        name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        info = {"device": name,
                "driver_version": _try(rt.driverGetVersion),
                "runtime_version": _try(rt.runtimeGetVersion),
                "cusparse_version": _try(self.cs.getVersion),
                "total_memory_bytes": props.get("totalGlobalMem"),
                "multiprocessors": props.get("multiProcessorCount"),
                "compute_capability": f"{props.get('major', '?')}.{props.get('minor', '?')}"}
        # Theoretical DRAM bandwidth from the properties; CUDA 13 dropped
        # memoryClockRate from cudaDeviceProp, so this is best effort.
        clk, bus = props.get("memoryClockRate"), props.get("memoryBusWidth")
        if clk and bus:
            info["theoretical_bandwidth_gbps"] = 2.0 * clk * 1e3 * bus / 8 / 1e9
        return info

    # -- matrix ----------------------------------------------------------
    def csr(self, data, indices, indptr, n: int):
        # (data, indices, indptr) with int32 indices and copy=False adopts the
        # arrays as they are (one sync to check indptr[0] and indptr[-1]).
        A = self.sp.csr_matrix((data, indices, indptr), shape=(n, n), copy=False)
        try:
            # The file is sorted by (target, source) without duplicates. Setting
            # the flag skips CuPy's canonical-format check kernel and the
            # sum_duplicates() that A @ x would otherwise run first.
            A.has_canonical_format = True
        except Exception as e:  # noqa: BLE001
            note(f"could not set has_canonical_format ({e}); CuPy will check/sort the matrix itself")
        if A.indices.dtype != np.int32 or A.indptr.dtype != np.int32:
            note(f"CuPy chose index dtypes {A.indices.dtype}/{A.indptr.dtype}, not int32")
        return A

    # -- kernels ---------------------------------------------------------
    def spmv_variants(self, A, x, y):
        out = [("A @ x", lambda: A @ x)]
        if self.has_spmv:
            cs = self.cs
            out.append(("cusparse.spmv(A, x, y=y)", lambda: cs.spmv(A, x, y=y)))
        return out

    def spmm_variants(self, A, XF, XC, Y):
        """(label, layout of X, fn) for every CuPy-level way to form A X."""
        out = [("A @ X", "F", lambda: A @ XF),
               # CuPy copies a C-order X to F order first (cupy.asfortranarray),
               # so this is what a CuPy user with row-major data pays.
               ("A @ X (CuPy copies X to F)", "C", lambda: A @ XC)]
        if self.has_spmm:
            cs = self.cs
            out.append(("cusparse.spmm(A, X, c=Y)", "F", lambda: cs.spmm(A, XF, c=Y)))
            # A C-order n x K array is an F-order K x n array: hand cuSPARSE
            # X^T with opB = transpose instead of copying.
            out.append(("cusparse.spmm(A, X.T, transb)", "C",
                        lambda: cs.spmm(A, XC.T, c=Y, transb=True)))
        return out

    def raw(self, A):
        try:
            return RawCusparse(self, A)
        except Exception as e:  # noqa: BLE001
            note(f"raw cuSPARSE generic API not usable through cupy_backends ({e!r}); skipped")
            return None

    def step_kernels(self, dtype):
        """(dot, update, l1) as CuPy custom kernels: one pass each, results on the device."""
        key = np.dtype(dtype).name
        if key not in self._kernels:
            cp = self.cp
            dot = cp.ReductionKernel("T x, T y", "T z", "x * y", "a + b", "z = a", "0", "tm_dot")
            l1 = cp.ReductionKernel("T x, T y", "T z", "fabs(x - y)", "a + b", "z = a", "0", "tm_l1diff")
            upd = cp.ElementwiseKernel("T y, T p, T m, T a", "T out",
                                       "out = (1 - a) * (y + m * p) + a * p", "tm_update")
            self._kernels[key] = (dot, lambda y, p, m, a, out: upd(y, p, m, a, out), l1)
        return self._kernels[key]

    def spmv_into(self, A, x, y):
        if self.has_spmv:
            return self.cs.spmv(A, x, y=y)
        y[...] = A @ x
        return y

    def copy_variants(self, src, dst):
        nbytes = src.nbytes
        return [("cudaMemcpyAsync D2D", lambda: dst.data.copy_from_device_async(src.data, nbytes)),
                ("copy kernel (dst[...] = src)", lambda: dst.__setitem__(Ellipsis, src))]


class CpuRaw:
    """Dry-run stand-in for RawCusparse (same interface), so the sections that
    use the raw API run on the CPU too; ``alg`` and the layout only label rows."""

    def __init__(self, A):
        self.A = A

    def spmv(self, x, y, alg: int):
        def run():
            np.copyto(y, self.A @ x)
            return y
        return run

    def spmm(self, X, Y, alg: int, row_major: bool):
        assert X.flags.c_contiguous if row_major else X.flags.f_contiguous
        def run():
            np.copyto(Y, self.A @ X)
            return Y
        return run

    def close(self):
        pass


def _try(fn):
    try:
        return fn()
    except Exception:  # noqa: BLE001
        return None


class RawCusparse:
    """The cuSPARSE generic API (cusparseSpMV/SpMM) with explicit algorithms.

    CuPy's wrappers always pass ALG_DEFAULT, create descriptors on every call
    and support only column-major dense matrices. Here descriptors and the
    work buffer are made once per configuration, as a C caller would, and
    row-major dense matrices are allowed. Signatures are those of
    cupy_backends.cuda.libs.cusparse in CuPy 14.
    """

    def __init__(self, bk: GpuBackend, A):
        from cupy.cuda import device
        from cupy_backends.cuda.libs import cusparse as L
        self.cp, self.L = bk.cp, L
        self.handle = device.get_cusparse_handle()
        try:
            from cupy._core import _dtype
            self.dt = int(_dtype.to_cuda_dtype(A.dtype))
        except Exception:  # noqa: BLE001
            self.dt = CUDA_R_32F if A.dtype == np.float32 else CUDA_R_64F
        # alpha/beta are host scalars (CuPy's handle is in host pointer mode);
        # keep the arrays alive as long as the pointers are used.
        self.alpha = np.ones(1, dtype=A.dtype)
        self.beta = np.zeros(1, dtype=A.dtype)
        self.A = A
        n_rows, n_cols = A.shape
        self.mat = L.createCsr(n_rows, n_cols, A.nnz, A.indptr.data.ptr, A.indices.data.ptr,
                               A.data.data.ptr, L.CUSPARSE_INDEX_32I, L.CUSPARSE_INDEX_32I,
                               L.CUSPARSE_INDEX_BASE_ZERO, self.dt)
        self._destroy: list = []
        self._keep: list = []

    def close(self):
        for fn, desc in reversed(self._destroy):
            _try(lambda: fn(desc))
        self._destroy.clear()
        self._keep.clear()
        _try(lambda: self.L.destroySpMat(self.mat))

    def spmv(self, x, y, alg: int):
        L = self.L
        dx = L.createDnVec(x.size, x.data.ptr, self.dt)
        self._destroy.append((L.destroyDnVec, dx))
        dy = L.createDnVec(y.size, y.data.ptr, self.dt)
        self._destroy.append((L.destroyDnVec, dy))
        op = L.CUSPARSE_OPERATION_NON_TRANSPOSE
        a, b = self.alpha.ctypes.data, self.beta.ctypes.data
        size = L.spMV_bufferSize(self.handle, op, a, self.mat, dx, b, dy, self.dt, alg)
        buf = self.cp.empty(max(int(size), 1), dtype=self.cp.int8)
        self._keep += [x, y, buf]
        h, mat, dt, ptr = self.handle, self.mat, self.dt, buf.data.ptr

        def run():
            L.spMV(h, op, a, mat, dx, b, dy, dt, alg, ptr)
            return y
        return run

    def spmm(self, X, Y, alg: int, row_major: bool):
        L = self.L
        rows, cols = X.shape
        if row_major:
            assert X.flags.c_contiguous and Y.flags.c_contiguous
            order, ldx, ldy = L.CUSPARSE_ORDER_ROW, cols, Y.shape[1]
        else:
            assert X.flags.f_contiguous and Y.flags.f_contiguous
            order, ldx, ldy = L.CUSPARSE_ORDER_COL, rows, Y.shape[0]
        dX = L.createDnMat(rows, cols, ldx, X.data.ptr, self.dt, order)
        self._destroy.append((L.destroyDnMat, dX))
        dY = L.createDnMat(Y.shape[0], Y.shape[1], ldy, Y.data.ptr, self.dt, order)
        self._destroy.append((L.destroyDnMat, dY))
        op = L.CUSPARSE_OPERATION_NON_TRANSPOSE
        a, b = self.alpha.ctypes.data, self.beta.ctypes.data
        size = L.spMM_bufferSize(self.handle, op, op, a, self.mat, dX, b, dY, self.dt, alg)
        buf = self.cp.empty(max(int(size), 1), dtype=self.cp.int8)
        self._keep += [X, Y, buf]
        h, mat, dt, ptr = self.handle, self.mat, self.dt, buf.data.ptr

        def run():
            L.spMM(h, op, op, a, mat, dX, b, dY, dt, alg, ptr)
            return Y
        return run


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------


def measure(bk, fn, args) -> dict:
    """Warm up, size a batch to >= --target-ms, then median/min ms per call over --repeat batches."""
    for _ in range(args.warmup):
        fn()
    bk.sync()
    one = max(bk.time_batch(fn, 1), 1e-3)
    batch = int(min(max(1, math.ceil(args.target_ms / one)), 100_000))
    per_call = [bk.time_batch(fn, batch) / batch for _ in range(args.repeat)]
    return {"ms": statistics.median(per_call), "min_ms": min(per_call), "batch": batch,
            "batches": args.repeat}


def rel_err(bk, out, ref) -> float:
    """max |out - ref| / max |ref| (float64 on the host side of the reduction)."""
    xp = bk.xp
    den = bk.scalar(xp.abs(ref).max())
    return bk.scalar(xp.abs(out - ref).max()) / (den if den > 0 else 1.0)


class Run:
    """Results, the time budget and the JSON written after every section."""

    def __init__(self, args, info: dict):
        self.args = args
        self.info = info
        self.rows: list[dict] = []
        self.check: dict = {}

    def over_budget(self, what: str) -> bool:
        spent = time.perf_counter() - T0
        if spent > self.args.budget_s:
            note(f"{what}: skipped, {spent:.0f} s spent of the --budget-s {self.args.budget_s:.0f} s")
            return True
        return False

    def add(self, section: str, variant: str, k: int, layout: str, r: dict, bytes_: float,
            nnz: int, err: float | None = None, **extra) -> dict:
        sec = r["ms"] / 1e3
        row = {"section": section, "variant": variant, "k": k, "layout": layout,
               "ms": r["ms"], "min_ms": r["min_ms"], "ms_per_vector": r["ms"] / k,
               "min_ms_per_vector": r["min_ms"] / k, "batch": r["batch"], "batches": r["batches"],
               "edges_per_second": nnz * k / sec if sec > 0 else None,
               "bytes": bytes_, "gb_per_second": bytes_ / sec / 1e9 if sec > 0 else None,
               "rel_err_vs_reference": err, **extra}
        self.rows.append(row)
        gbs = f"{row['gb_per_second']:8.1f} GB/s" if row["gb_per_second"] else ""
        errs = "" if err is None else f", rel err {err:.1e}"
        log(f"  {section:<5} {variant:<34} K={k:<3} {layout:<2} {r['ms']:9.4f} ms "
            f"({r['ms'] / k:.4f} ms/vec, batch {r['batch']}) {gbs}{errs}")
        self.save()
        return row

    def best(self) -> dict:
        """Each peer in its best configuration: fastest ms per vector per (section, K, layout)."""
        out: dict = {}
        ok = [r for r in self.rows if r.get("ok", True) and r["section"] != "copy"]
        for r in ok:
            key = f"{r['section']} K={r['k']}"
            for lay in ([r["layout"]] if r["layout"] else []) + ["best"]:
                cur = out.setdefault(key, {}).get(lay)
                if cur is None or r["ms_per_vector"] < cur["ms_per_vector"]:
                    out[key][lay] = {"ms_per_vector": r["ms_per_vector"], "ms": r["ms"],
                                     "variant": r["variant"], "layout": r["layout"],
                                     "gb_per_second": r["gb_per_second"]}
        return out

    def save(self) -> None:
        if not self.args.json:
            return
        doc = {"info": self.info, "results": self.rows, "best": self.best(), "check": self.check,
               "notes": NOTES, "elapsed_s": time.perf_counter() - T0}
        tmp = self.args.json + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, default=_json_default)
            fh.write("\n")
        os.replace(tmp, self.args.json)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o)}")


# --------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------


def product_bytes(n: int, nnz: int, k: int, value_bytes: int = 4) -> float:
    """Compulsory traffic of Y = A X for cuSPARSE: indices, values and offsets
    once, X read and Y written once (gathers of X assumed to hit cache)."""
    return nnz * (4 + value_bytes) + 4 * (n + 1) + 2 * value_bytes * n * k


def trustmesh_bytes(n: int, nnz: int, kind: int, k: int, value_bytes: int = 4) -> float:
    """trustmesh::bench::bytes_per_iteration, so GB/s compare with `trustmesh bench`."""
    w, per_vec = (value_bytes, 3) if kind == 1 else (0, 5)
    return nnz * (4 + w) + 4 * n + per_vec * value_bytes * n * k


def run_variant(run: Run, bk, section, label, k, layout, fn, ref, bytes_, nnz, out_buf=None, **extra):
    """Time one variant; a failure (missing API, unsupported algorithm) becomes a note.

    ``out_buf``, the preallocated output the variant may write, is filled with
    a huge sentinel first: a call that silently writes nothing must not inherit
    the right answer from the variant before it. (Finite, not NaN: with
    beta = 0 a library may still compute beta * C, and 0 * -1e30 = 0.)
    """
    try:
        if out_buf is not None:
            out_buf.fill(-1.0e30)
        out = fn()  # also the first warm-up call
        err = rel_err(bk, out, ref) if ref is not None else None
        r = measure(bk, fn, run.args)
    except Exception as e:  # noqa: BLE001 - report and continue with the next variant
        note(f"{section} {label} K={k} {layout}: failed ({type(e).__name__}: {e})")
        return None
    ok = err is None or err < 1e-3  # NaN compares False, so NaN is not ok either
    if not ok:
        note(f"{section} {label} K={k} {layout}: result differs from the reference "
             f"(rel err {err:.2e}); excluded from the best")
    return run.add(section, label, k, layout, r, bytes_, nnz, err, ok=ok, **extra)


def section_copy(run: Run, bk, mib: int):
    log(f"copy: device-to-device, {mib} MiB buffer")
    xp = bk.xp
    count = mib * (1 << 20) // 4
    src = xp.ones(count, dtype=np.float32)
    dst = xp.empty_like(src)
    best = None
    for label, fn in bk.copy_variants(src, dst):
        try:
            r = measure(bk, fn, run.args)
        except Exception as e:  # noqa: BLE001
            note(f"copy {label}: failed ({e})")
            continue
        row = run.add("copy", label, 1, "", r, 2.0 * src.nbytes, 0, buffer_bytes=src.nbytes)
        if best is None or row["gb_per_second"] > best:
            best = row["gb_per_second"]
    del src, dst
    bk.free()
    run.info["copy_gbps_best"] = best
    return best


def section_spmv(run: Run, bk, A, n, nnz, raw=None, cupy_level=True):
    log(f"spmv: y = A x, float32{' (raw generic API)' if raw is not None else ''}")
    xp = bk.xp
    x = test_block(xp, n, 1)[:, 0].copy()
    y = xp.zeros(n, dtype=np.float32)
    ref = A @ x
    bts = product_bytes(n, nnz, 1)
    for label, fn in bk.spmv_variants(A, x, y) if cupy_level else []:
        run_variant(run, bk, "spmv", label, 1, "", fn, ref, bts, nnz, out_buf=y)
    if raw is not None:
        for alg, code in SPMV_ALGS.items():
            if run.over_budget(f"raw SpMV {alg}"):
                break
            yy = xp.zeros(n, dtype=np.float32)
            try:
                fn = raw.spmv(x, yy, code)
            except Exception as e:  # noqa: BLE001
                note(f"spmv raw cusparseSpMV {alg}: setup failed ({type(e).__name__}: {e})")
                continue
            run_variant(run, bk, "spmv", f"cusparseSpMV {alg}", 1, "", fn, ref, bts, nnz, out_buf=yy)
    bk.free()


def test_block(xp, n: int, k: int, order: str = "C"):
    """Deterministic positive n x K block (same on CPU and GPU, no RNG API differences)."""
    i = xp.arange(n, dtype=np.int64)[:, None]
    j = xp.arange(k, dtype=np.int64)[None, :]
    X = ((i * 7 + j * 13) % 17 + 1).astype(np.float32) * np.float32(1.0 / n)
    return xp.asfortranarray(X) if order == "F" else xp.ascontiguousarray(X)


def section_spmm(run: Run, bk, A, n, nnz, ks, raw=None, cupy_level=True):
    xp = bk.xp
    for k in ks:
        need = 5 * 4 * n * k  # X in C and F order, Y in both, reference, operator output
        free = bk.mem_free()
        if free is not None and need > 0.8 * free:
            note(f"spmm K={k}: needs ~{need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free; skipped")
            continue
        if raw is not None and run.over_budget(f"raw SpMM K={k}"):
            break  # the budget only ever cuts the optional raw variants
        log(f"spmm: Y = A X, K = {k}, float32{' (raw generic API)' if raw is not None else ''}")
        XC = test_block(xp, n, k, "C")
        XF = xp.asfortranarray(XC)
        YF = xp.zeros((n, k), dtype=np.float32, order="F")
        ref = A @ XF
        bts = product_bytes(n, nnz, k)
        for label, layout, fn in bk.spmm_variants(A, XF, XC, YF) if cupy_level else []:
            run_variant(run, bk, "spmm", label, k, layout, fn, ref, bts, nnz, out_buf=YF)
        if raw is not None:
            YC = xp.zeros((n, k), dtype=np.float32, order="C")
            for layout, X, Y in (("C", XC, YC), ("F", XF, YF)):
                for alg in SPMM_ORDER[layout]:
                    code = SPMM_ALGS[alg]
                    if run.over_budget(f"raw SpMM {alg} K={k} {layout}"):
                        break
                    label = f"cusparseSpMM {alg} ({'row' if layout == 'C' else 'col'}-major)"
                    try:
                        fn = raw.spmm(X, Y, code, row_major=(layout == "C"))
                    except Exception as e:  # noqa: BLE001
                        note(f"spmm {label} K={k}: setup failed ({type(e).__name__}: {e})")
                        continue
                    run_variant(run, bk, "spmm", label, k, layout, fn, ref, bts, nnz, out_buf=Y)
            del YC
        del XC, XF, YF, ref
        bk.free()


def make_steps(bk, A, d, p, alpha, dtype):
    """Two implementations of one EigenTrust iteration on (t, scratch) buffers.

    Each returns step(t, y, tn) -> (t', r) with t' in tn and r the L1 residual
    as a device scalar: nothing waits for the GPU.
    """
    xp = bk.xp
    a = float(alpha)

    def ops(t, y, tn):
        # Plain CuPy array expressions: what a user writes; each operator is a
        # kernel and most allocate a temporary.
        yy = A @ t
        m = xp.dot(d, t)  # 0-d device array (a reduction kernel in CuPy, no sync)
        tn = (1.0 - a) * (yy + m * p) + a * p
        return tn, xp.abs(tn - t).sum()

    dot, update, l1 = bk.step_kernels(dtype)
    a_t = np.dtype(dtype).type(a)

    def fused(t, y, tn):
        # cuSPARSE SpMV into a preallocated y, one dot, one elementwise update,
        # one residual reduction: the minimum number of passes without writing
        # a custom SpMV.
        bk.spmv_into(A, t, y)
        m = dot(d, t)
        update(y, p, m, a_t, tn)
        return tn, l1(tn, t)

    return [("cupy array ops" if bk.gpu else "numpy array ops", ops),
            ("spmv + fused kernels" if bk.gpu else "spmv + in-place ops", fused)]


def iterate(bk, step, p, iters: int, dtype):
    """``iters`` iterations from t = p; returns (t, residual of the last one)."""
    xp = bk.xp
    n = p.shape[0]
    t = p.copy()
    y = xp.empty(n, dtype=dtype)
    tn = xp.empty(n, dtype=dtype)
    r = None
    for _ in range(iters):
        out, r = step(t, y, tn)
        if out is tn:  # swap the two buffers (the ops variant returns a new array)
            t, tn = tn, t
        else:
            t = out
    return t, r


def section_iteration(run: Run, bk, A, d32, n, nnz, kind, alpha):
    log("iter: one full EigenTrust iteration, K = 1, float32")
    xp = bk.xp
    p = xp.full(n, 1.0 / n, dtype=np.float32)
    bts = trustmesh_bytes(n, nnz, kind, 1)
    # Reference: a few iterations of the plain variant; every variant must agree.
    steps = make_steps(bk, A, d32, p, alpha, np.float32)
    ref, _ = iterate(bk, steps[0][1], p, 3, np.float32)
    for label, step in steps:
        state = {"t": p.copy(), "y": xp.empty(n, dtype=np.float32),
                 "tn": xp.empty(n, dtype=np.float32), "r": None}

        def one(step=step, state=state):
            out, state["r"] = step(state["t"], state["y"], state["tn"])
            if out is state["tn"]:
                state["t"], state["tn"] = state["tn"], state["t"]
            else:
                state["t"] = out
            return state["t"]

        try:
            t3, _ = iterate(bk, step, p, 3, np.float32)
            err = rel_err(bk, t3, ref)
            r = measure(bk, one, run.args)
            resid = bk.scalar(state["r"])
        except Exception as e:  # noqa: BLE001
            note(f"iter {label}: failed ({type(e).__name__}: {e})")
            continue
        ok = err < 1e-3 and math.isfinite(resid)
        if not ok:
            note(f"iter {label}: disagrees with the array-ops result (rel err {err:.1e}) or residual {resid}")
        run.add("iter", label, 1, "", r, bts, nnz, err, ok=ok, last_residual=resid,
                bytes_model="trustmesh::bench::bytes_per_iteration")
    bk.free()


def section_check(run: Run, bk, A32, A64, d32, d64, n, alpha, iters):
    log(f"check: {iters} iterations from t = p, float64 vs float32")
    xp = bk.xp
    res = {"iterations": iters, "alpha": alpha}
    out = {}
    for name, A, d, dt in (("f64", A64, d64, np.float64), ("f32", A32, d32, np.float32)):
        if A is None:
            continue
        p = xp.full(n, 1.0 / n, dtype=dt)
        step = make_steps(bk, A, d, p, alpha, dt)[0][1]
        t0 = time.perf_counter()
        t, r = iterate(bk, step, p, iters, dt)
        bk.sync()
        out[name] = t
        res[f"{name}_seconds"] = time.perf_counter() - t0
        res[f"{name}_last_residual"] = bk.scalar(r)
        res[f"{name}_sum"] = bk.scalar(t.astype(np.float64).sum())
        log(f"  {name}: {iters} iterations in {res[f'{name}_seconds']:.2f} s, last residual "
            f"{res[f'{name}_last_residual']:.3e}, sum(t) = {res[f'{name}_sum']:.9f}")
    if "f64" in out:
        l1 = bk.scalar(xp.abs(out["f32"].astype(np.float64) - out["f64"]).sum())
        res["l1_f32_vs_f64"] = l1
        log(f"  L1 distance float32 vs float64 after {iters} iterations: {l1:.3e}")
    run.check = res
    run.save()
    del out
    bk.free()


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def print_table(run: Run, copy_gbps: float | None) -> None:
    order = {"copy": 0, "spmv": 1, "spmm": 2, "iter": 3}
    rows = sorted(run.rows, key=lambda r: (order.get(r["section"], 9), r["k"]))  # stable
    print(f"\n{run.info['device']}: n = {run.info['n']:,}, nnz = {run.info['nnz']:,}, "
          f"weights {'per source' if run.info['kind'] == 0 else 'per edge'}; median of "
          f"{run.args.repeat} batches (batch sized to >= {run.args.target_ms:g} ms), min in brackets")
    head = (f"{'sect':<5} {'variant':<36} {'K':>3} {'X':>2} {'ms':>10} {'ms/vec':>9} {'(min)':>9} "
            f"{'Gedge/s':>8} {'GB/s':>7} {'%copy':>6} {'rel err':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        gbs = r["gb_per_second"] or 0.0
        frac = f"{100 * gbs / copy_gbps:6.1f}" if copy_gbps and r["section"] != "copy" else ""
        eps = f"{r['edges_per_second'] / 1e9:8.2f}" if r["section"] != "copy" and r["edges_per_second"] else ""
        err = "" if r["rel_err_vs_reference"] is None else f"{r['rel_err_vs_reference']:8.1e}"
        flag = "" if r.get("ok", True) else "  BAD"
        print(f"{r['section']:<5} {r['variant'][:36]:<36} {r['k']:>3} {r['layout']:>2} {r['ms']:10.4f} "
              f"{r['ms_per_vector']:9.4f} {r['min_ms_per_vector']:9.4f} {eps:>8} {gbs:7.1f} {frac:>6} "
              f"{err:>8}{flag}")
    print(f"\ndevice copy bandwidth (read + write): "
          + (f"{copy_gbps:.1f} GB/s" if copy_gbps else "not measured"))
    print("best configuration per kernel (ms per vector; GB/s of compulsory traffic):")
    for key, by in run.best().items():
        b = by["best"]
        parts = [f"X {lay}-order {by[lay]['ms_per_vector']:.4f} ({by[lay]['variant']})"
                 for lay in ("C", "F") if lay in by]
        print(f"  {key:<10} {b['ms_per_vector']:.4f} ms/vec, {b['gb_per_second'] or 0:.1f} GB/s "
              f"[{b['variant']}{', X ' + b['layout'] + '-order' if b['layout'] else ''}]"
              + (f"; {'; '.join(parts)}" if parts else ""))
    if run.check:
        c = run.check
        if "l1_f32_vs_f64" in c:
            print(f"\ncheck: L1(float32 - float64) after {c['iterations']} iterations = {c['l1_f32_vs_f64']:.3e}")
        else:
            print(f"\ncheck: float64 skipped; float32 last residual {c.get('f32_last_residual')}")
    if NOTES:
        print("\nnotes:")
        for m in NOTES:
            print(f"  - {m}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--matrix", required=True, metavar="FILE",
                    help="matrix written by `trustmesh bench --save-matrix FILE`")
    ap.add_argument("--k", default="8,32", help="dense block widths for SpMM (default 8,32)")
    ap.add_argument("--repeat", type=int, default=5, help="timed batches; median reported (default 5)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls before timing (default 2)")
    ap.add_argument("--target-ms", type=float, default=50.0, help="minimum batch duration (default 50)")
    ap.add_argument("--alpha", type=float, default=0.15, help="teleport probability a (default 0.15)")
    ap.add_argument("--check-iters", type=int, default=50, help="iterations of the f64/f32 check (default 50)")
    ap.add_argument("--no-f64", action="store_true", help="skip the float64 run of the check")
    ap.add_argument("--no-raw", action="store_true", help="skip the raw cuSPARSE generic-API variants")
    ap.add_argument("--copy-mib", type=int, default=None,
                    help="copy buffer in MiB (default 1024 on the GPU, 256 in the dry run)")
    ap.add_argument("--budget-s", type=float, default=45.0,
                    help="skip the remaining optional variants past this many seconds (default 45)")
    ap.add_argument("--json", metavar="OUT", help="also write every number as JSON (rewritten after each section)")
    ap.add_argument("--dry-run-scipy", action="store_true",
                    help="same code path on the CPU with numpy/scipy (tests the script; timings meaningless)")
    args = ap.parse_args(argv)
    try:
        ks = [int(v) for v in args.k.split(",") if v.strip()]
    except ValueError:
        ap.error(f"--k {args.k!r}: expected comma-separated integers")
    if not ks or min(ks) < 1 or args.repeat < 1 or args.warmup < 0 or args.check_iters < 1:
        ap.error("--k values, --repeat and --check-iters must be >= 1, --warmup >= 0")
    if not 0.0 <= args.alpha <= 1.0:
        ap.error("--alpha must be in [0, 1]")

    bk = CpuBackend() if args.dry_run_scipy else GpuBackend()
    xp = bk.xp
    dev = bk.device_info()
    log(f"backend {bk.name} on {dev['device']}; driver {dev['driver_version']}, runtime "
        f"{dev['runtime_version']}, cuSPARSE {dev['cusparse_version']}; {bk.versions}")

    # -- load --------------------------------------------------------------
    t = time.perf_counter()
    mf = MatrixFile(args.matrix)
    load_s = time.perf_counter() - t
    n, nnz, kind = mf.n, mf.nnz, mf.kind
    log(f"read {args.matrix}: n = {n:,}, nnz = {nnz:,}, weights "
        f"{'per source (kind 0)' if kind == 0 else 'per edge (kind 1)'}, {mf.dangling:,} dangling, "
        f"{mf.bytes / 1e9:.2f} GB in {load_s:.2f} s")

    info = {"device": dev["device"], **dev, **bk.versions, "backend": bk.name, "dry_run": not bk.gpu,
            "python": platform.python_version(), "matrix": os.path.abspath(args.matrix),
            "n": n, "nnz": nnz, "kind": kind, "dangling": mf.dangling, "file_bytes": mf.bytes,
            "load_s": load_s, "alpha": args.alpha, "k": ks, "repeat": args.repeat,
            "warmup": args.warmup, "target_ms": args.target_ms}
    run = Run(args, info)

    # -- upload and build ---------------------------------------------------
    t = time.perf_counter()
    # u32 -> i32 is a reinterpretation: both are < 2^31 (checked above).
    indptr = bk.asarray(mf.ptr.view(np.int32))
    indices = bk.asarray(mf.src.view(np.int32))
    w64 = bk.asarray(mf.weights)
    d64 = bk.asarray(mf.deficit)
    del mf  # drop ~1.7 GB of host copies before the GPU work
    src_max = bk.scalar(indices.max()) if nnz else -1
    if src_max >= n or (nnz and bk.scalar(indices.min()) < 0):
        raise SystemExit(f"{args.matrix}: a source index is outside [0, {n})")
    # Per-source weights become per-entry values: cuSPARSE has no such mode.
    vals64 = xp.take(w64, indices) if kind == 0 else w64
    vals32 = vals64.astype(np.float32)
    A32 = bk.csr(vals32, indices, indptr, n)
    A64 = None if args.no_f64 else bk.csr(vals64, indices, indptr, n)  # shares the index arrays
    del w64, vals64
    d32 = d64.astype(np.float32)
    if args.no_f64:
        d64 = None
    bk.free()
    info["upload_build_s"] = time.perf_counter() - t
    log(f"built A = C^T on the device in {info['upload_build_s']:.2f} s "
        f"(indices {A32.indices.dtype}, indptr {A32.indptr.dtype}, values {A32.dtype}; "
        f"{'no ' if A64 is None else ''}float64 copy)")
    run.save()

    # -- measurements -------------------------------------------------------
    raw, copy_gbps, status = None, None, 0
    try:
        copy_gbps = section_copy(run, bk, args.copy_mib or (1024 if bk.gpu else 256))
        section_spmv(run, bk, A32, n, nnz, None)
        section_spmm(run, bk, A32, n, nnz, ks, None)
        section_iteration(run, bk, A32, d32, n, nnz, kind, args.alpha)
        section_check(run, bk, A32, A64, d32, d64, n, args.alpha, args.check_iters)
        del A64, d64
        bk.free()
        # Raw generic-API calls last: they bypass CuPy's checks, so anything
        # that goes wrong there cannot spoil the numbers above.
        if not args.no_raw and not run.over_budget("raw cuSPARSE variants"):
            raw = bk.raw(A32)
            if raw is not None:
                section_spmv(run, bk, A32, n, nnz, raw, cupy_level=False)
                section_spmm(run, bk, A32, n, nnz, ks, raw, cupy_level=False)
    except Exception as e:  # noqa: BLE001 - one shot on the GPU: keep what was measured
        import traceback
        traceback.print_exc()
        note(f"aborted: {type(e).__name__}: {e}")
        status = 1
    finally:
        if raw is not None:
            raw.close()
        run.save()

    print_table(run, copy_gbps)
    if args.json:
        print(f"\nwrote {args.json}")
    log("done" if status == 0 else "stopped early (see notes)")
    return status


if __name__ == "__main__":
    sys.exit(main())
