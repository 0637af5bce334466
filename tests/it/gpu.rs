//! The GPU back end: its entry in the conformance suite (conformance/, which
//! checks it against the CPU reference on every kernel path: short rows,
//! segmented long rows, per-source and per-edge weights, split matrices,
//! scalar and vec4 blocks, device-side stopping) and what only a GPU has:
//! adapters, contexts, a lowered binding limit.
//!
//! With no Vulkan/Metal/DX12 adapter at all each GPU test and conformance
//! case prints `SKIPPED (no GPU adapter): <reason>` and leaves the GPU out;
//! set TRUSTMESH_REQUIRE_GPU=1 to make that a failure instead (CI on
//! lavapipe). An adapter that exists but fails to open is always a failure.

use std::io::Write;
use std::sync::{Arc, OnceLock};

use trustmesh::gpu::{list_adapters, GpuBackend, GpuContext, READBACK_EVERY};
use trustmesh::trust::TrustBackend;

use crate::conformance::{Budget, Subject, SPLIT_BINDING};

/// One device for the whole test binary: opening lavapipe and compiling the
/// pipelines is the slow part.
pub fn context() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Result<Arc<GpuContext>, String>> = OnceLock::new();
    let r = CTX.get_or_init(|| {
        if list_adapters().is_empty() {
            return Err("no Vulkan, Metal or DX12 adapter on this machine".to_string());
        }
        Ok(Arc::new(GpuContext::new(None).expect(
            "an adapter exists but the GPU context failed to open",
        )))
    });
    match r {
        Ok(c) => Some(Arc::clone(c)),
        Err(why) => {
            if std::env::var("TRUSTMESH_REQUIRE_GPU").is_ok_and(|v| v != "0") {
                panic!("TRUSTMESH_REQUIRE_GPU is set but: {why}");
            }
            // Straight to the stderr handle, not eprintln!: the test harness
            // captures the print macros of passing tests, and a skip must show.
            let _ = writeln!(std::io::stderr(), "SKIPPED (no GPU adapter): {why}");
            None
        }
    }
}

fn gpu() -> Option<GpuBackend> {
    context().map(|c| GpuBackend::from_context(c).unwrap())
}

/// A context whose storage-binding limit is lowered to `bytes`, so that the
/// matrix is split into chunks.
fn gpu_split(bytes: u64) -> Option<GpuBackend> {
    static SMALL: OnceLock<Arc<GpuContext>> = OnceLock::new();
    context()?;
    let ctx = SMALL.get_or_init(|| {
        Arc::new(
            GpuContext::new(None)
                .expect("second GPU context")
                .with_max_binding(bytes),
        )
    });
    assert_eq!(ctx.max_binding(), bytes);
    Some(GpuBackend::from_context(Arc::clone(ctx)).unwrap())
}

/// The GPU's f32 budget (DESIGN.md §6).
const F32: Budget = Budget {
    l1: 1e-6,
    l1_exact: 1e-7,
    iterations: 2,
    sum: 1e-5,
    // The ranking is read back, and the flat tail checked, every
    // READBACK_EVERY iterations.
    flat_tail_lag: READBACK_EVERY,
};

/// The GPU back end for the conformance suite, with its split variant; None
/// (after a SKIPPED line) without an adapter.
pub fn subject() -> Option<Subject> {
    let split = gpu_split(SPLIT_BINDING)?;
    Some(Subject::new("gpu", gpu()?, F32).with_split(split))
}

/// `score --device gpu` on the bundled Bitcoin Alpha log into `out`, with
/// the kernel tuning variables `env`; not yet run.
fn gpu_score(out: &std::path::Path, env: &[(&str, &str)]) -> crate::util::Trustmesh {
    let log = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/bitcoin-alpha.parquet");
    let cmd = crate::util::Trustmesh::new()
        .args(["score", "--device", "gpu", "--log"])
        .arg(log)
        .arg("--out")
        .arg(out);
    env.iter().fold(cmd, |c, (k, v)| c.env(k, v))
}

/// [`gpu_score`] run to success in `dir`, and its scores.
fn gpu_scores(dir: &std::path::Path, env: &[(&str, &str)]) -> Vec<(String, f64, u32)> {
    let name: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let out = dir.join(format!("{}.parquet", name.join(",")));
    gpu_score(&out, env).ok();
    crate::common::read_scores(&out)
}

#[test]
fn gpu_lists_adapters() {
    let Some(g) = gpu() else { return };
    let all = list_adapters();
    assert!(!all.is_empty());
    let text = all[0].to_string();
    assert!(text.contains("storage binding"), "{text}");
    assert!(g.name().contains(&g.context().adapter_info().name));
    assert_eq!(g.default_epsilon(), 1e-6);
    let filtered = GpuContext::new(Some(&all[0].name.to_uppercase())).unwrap();
    assert_eq!(filtered.adapter_info().name, all[0].name);
    let err = GpuContext::new(Some("no such adapter, surely")).unwrap_err();
    assert!(err.to_string().contains("available:"), "{err}");
}

/// A snapshot of GPU (f32) scores is not reproduced bit for bit, but its
/// bound is certified by one f64 iteration from the published vector.
#[test]
fn gpu_snapshot_audit_certifies_the_bound() {
    use crate::util::Trustmesh;
    if gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/bitcoin-alpha.parquet");
    Trustmesh::new()
        .args(["id", "new", "--out"])
        .arg(d.join("k"))
        .ok();
    Trustmesh::new()
        .args(["score", "--device", "gpu", "--log"])
        .arg(&log)
        .arg("--out")
        .arg(d.join("s.parquet"))
        .ok()
        .stdout_has(&["f32"]);
    Trustmesh::new()
        .args(["snapshot", "create", "--epoch", "1", "--scores"])
        .arg(d.join("s.parquet"))
        .arg("--key")
        .arg(d.join("k"))
        .arg("--out")
        .arg(d.join("snap"))
        .ok();
    Trustmesh::new()
        .args(["snapshot", "audit"])
        .arg(d.join("snap"))
        .arg("--log")
        .arg(&log)
        .ok()
        .stdout_has(&["an f32 snapshot", "within"]);
}

/// The gather-ahead variant of the product kernels (the default: four
/// gathers in flight per lane) adds the same entries in the same order as the
/// plain loop (`TRUSTMESH_GPU_GATHER_AHEAD=0`); the shader compiler may round
/// the unrolled code differently (lavapipe: a last-bit difference on a few
/// scores), so the two must agree within f32 accuracy, rank the top the same,
/// and each be deterministic. Run with 8 and with 64 entries per lane so that
/// lanes run long. (The conformance suite, batch = single bit for bit
/// included, runs with the default and passes with
/// TRUSTMESH_GPU_GATHER_AHEAD=0 too.)
#[test]
fn gpu_gather_ahead_agrees_with_the_plain_loop() {
    if gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = |ahead: &str, per_lane: &str| {
        gpu_scores(
            dir.path(),
            &[
                ("TRUSTMESH_GPU_GATHER_AHEAD", ahead),
                ("TRUSTMESH_GPU_PER_LANE", per_lane),
            ],
        )
    };
    for per_lane in ["8", "64"] {
        let plain = run("0", per_lane);
        let ahead = run("1", per_lane);
        assert_eq!(
            run("1", per_lane),
            ahead,
            "gather-ahead is not deterministic"
        );
        assert_eq!(plain.len(), 3783);
        assert_eq!(ahead.len(), 3783);
        let l1: f64 = plain
            .iter()
            .zip(&ahead)
            .map(|(a, b)| (a.1 - b.1).abs())
            .sum();
        assert!(
            l1 <= 1e-6,
            "per lane {per_lane}: L1 {l1} between the variants"
        );
        let top = |v: &[(String, f64, u32)]| -> Vec<String> {
            v.iter()
                .filter(|r| r.2 <= 20)
                .map(|r| r.0.clone())
                .collect()
        };
        assert_eq!(top(&plain), top(&ahead));
    }
    gpu_score(
        &dir.path().join("bad.parquet"),
        &[("TRUSTMESH_GPU_GATHER_AHEAD", "4")],
    )
    .fails(1)
    .stderr_has(&["TRUSTMESH_GPU_GATHER_AHEAD=4: expected 0 or 1"]);
}

/// `simulate` batches many runs' solves into single engine calls: on the
/// GPU that is one `solve_many` over every run's matrices at once.
#[test]
fn gpu_simulate_batches_runs_and_repeats_itself() {
    use trustmesh::simulate::{self, dgpan, Model, ScenarioKind, SimConfig};
    let Some(gpu) = gpu() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig {
        peers: 40,
        epochs: 4,
        seeds: 2,
        models: vec![Model::Random, Model::Public, Model::Mg],
        ..SimConfig::new(ScenarioKind::Dgpan, vec![0.3], dir.path().to_path_buf())
    };
    cfg.dgpan.queries = 20;
    let rows = simulate::run(&cfg, &gpu).unwrap();
    assert_eq!(
        rows,
        simulate::run(&cfg, &gpu).unwrap(),
        "same device, same bits"
    );
    assert!(rows.iter().all(|r| r.value.is_finite()));
    // `random` never asks the engine: the same as on the CPU, bit for bit.
    let cpu = simulate::run(&cfg, &trustmesh::trust::CpuBackend).unwrap();
    let random = |rows: &[simulate::ResultRow]| -> Vec<f64> {
        rows.iter()
            .filter(|r| r.model == "random")
            .map(|r| r.value)
            .collect()
    };
    assert_eq!(random(&rows), random(&cpu));
    let mean = |model: &str| {
        let v: Vec<f64> = rows
            .iter()
            .filter(|r| r.model == model && r.metric == dgpan::metric::ATTACK_SUCCESS)
            .map(|r| r.value)
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(mean("mg") < mean("public"), "{rows:?}");
}

/// Binned row blocks (rows of one lane count per workgroup, the default) and
/// blocks of consecutive rows (lanes fitted to the longest) compute each row
/// with the same lanes and the same tree, so they give the same bits, whole
/// and split into chunks, single columns and batches.
#[test]
fn gpu_binned_rows_equal_consecutive_rows_bit_for_bit() {
    use crate::conformance::check::{power_law, pretrusts};
    use trustmesh::gpu::PlanConfig;
    let (Some(whole), Some(split)) = (gpu(), gpu_split(SPLIT_BINDING)) else {
        return;
    };
    let params = trustmesh::trust::IterParams {
        epsilon: 1e-12,
        max_iter: 6,
        ..Default::default()
    };
    for per_edge in [false, true] {
        let m = power_law(8_000, 2.0, 3_000, per_edge, 5);
        let cols = pretrusts(m.n(), 3, 9);
        for backend in [&whole, &split] {
            let binned = backend.clone().with_plan(PlanConfig {
                binned: Some(true),
                ..PlanConfig::default()
            });
            let consecutive = backend.clone().with_plan(PlanConfig {
                binned: Some(false),
                ..PlanConfig::default()
            });
            for c in &cols {
                let one = std::slice::from_ref(c);
                let a = binned.solve(&m, one, &params).unwrap();
                let b = consecutive.solve(&m, one, &params).unwrap();
                assert_eq!(a, b, "per_edge {per_edge}");
            }
            assert_eq!(
                binned.solve(&m, &cols, &params).unwrap(),
                consecutive.solve(&m, &cols, &params).unwrap()
            );
        }
    }
}

/// The product kernel's two trees (subgroup shuffles where a row's lanes fit
/// the adapter's smallest subgroup, workgroup memory otherwise) and the two
/// row layouts (binned by lane count, consecutive) make the same merges in
/// the same order: `score` writes the same bits with every combination. With
/// one entry per lane, rows spread over up to 32 lanes, so lavapipe (8-wide
/// subgroups) runs both trees in one solve.
#[test]
fn gpu_subgroup_tree_and_row_layouts_give_the_same_bits() {
    if gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = |sg: &str, binned: &str, per_lane: &str| {
        gpu_scores(
            dir.path(),
            &[
                ("TRUSTMESH_GPU_SUBGROUPS", sg),
                ("TRUSTMESH_GPU_BINNED", binned),
                ("TRUSTMESH_GPU_PER_LANE", per_lane),
            ],
        )
    };
    for per_lane in ["1", "8"] {
        let reference = run("0", "0", per_lane);
        assert_eq!(reference.len(), 3783);
        for (sg, binned) in [("1", "1"), ("1", "0"), ("0", "1")] {
            assert_eq!(
                run(sg, binned, per_lane),
                reference,
                "subgroups {sg}, binned {binned}, per lane {per_lane}"
            );
        }
    }
    for var in ["TRUSTMESH_GPU_SUBGROUPS", "TRUSTMESH_GPU_BINNED"] {
        gpu_score(&dir.path().join("bad.parquet"), &[(var, "yes")])
            .fails(1)
            .stderr_has(&[&format!("{var}=yes: expected 0 or 1")]);
    }
}
