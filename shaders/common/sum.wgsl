// Shared by every kernel family (GpuContext::shader puts it after the family's
// prelude, which defines `V` (f32 or vec4<f32>), `LANES`, `lane` and
// `with_lane`; the family also defines `acc_one()`, see below).
// Everything is lane-wise, so one code path serves one column (f32) or four
// interleaved columns (vec4<f32>).
//
// Compensated summation. Why: the device works in f32 while the reference
// works in f64. A plain f32 running sum over a 100k-entry row loses ~log2(100k)
// bits; Neumaier's compensated sum keeps the error of a sum at about one
// rounding of its result whatever its length, and merging two compensated
// sums with TwoSum keeps that property through every level of a reduction.

// A running sum `s` and the running rounding error `c` that it has dropped.
struct Acc {
    s: V,
    c: V,
}

fn acc_zero() -> Acc {
    return Acc(V(0.0), V(0.0));
}

// Why `acc_one()` (a family function returning 1.0 read from a uniform, so the
// compiler cannot know it): shader compilers treat float ops as reassociable
// and fuse multiply-adds. Mesa's NIR rewrites t - (t - a) to a, which silently
// turns TwoSum's error term into 0 (measured on lavapipe); with every operand
// in view it also cancels bp - bp in the merge below and then folds
// s - s·one into an exact fused zero (measured: one kernel lost every merge's
// error term while another kept it, so a batch and a single column differed
// in the last bit). Every intermediate of the error terms is therefore
// multiplied by `acc_one()`: a product with an unknown factor can neither be
// reassociated nor cancelled, and multiplying by 1 is exact, so the values are
// those of the plain formulas.

// Neumaier's variant of Kahan summation: also exact when |x| > |s|.
fn acc_add(a: Acc, x: V) -> Acc {
    let one = acc_one();
    let t = (a.s + x) * one;
    let e = select((x - t) * one + a.s, (a.s - t) * one + x, abs(a.s) >= abs(x));
    return Acc(t, a.c + e);
}

// Merges two compensated sums: TwoSum (Knuth) of the heads, tails added.
fn acc_merge(a: Acc, b: Acc) -> Acc {
    let one = acc_one();
    let t = (a.s + b.s) * one;
    let bp = (t - a.s) * one;
    let tb = (t - bp) * one;
    let e = (a.s - tb) * one + (b.s - bp) * one;
    return Acc(t, (a.c + b.c) + e);
}

fn acc_value(a: Acc) -> V {
    return a.s + a.c;
}

