//! Bayesian Stackelberg games (`trustmesh stackelberg`, docs/mechanism.md):
//! published values, exact against search on random games, the GPU against
//! the CPU on the same candidates, and malformed games refused with the
//! field named.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use trustmesh::graph::synthetic::SplitMix64;
use trustmesh::mechanism::stackelberg::bench::random_game;
use trustmesh::mechanism::stackelberg::eval::{level_replies, tie_tolerances, DEFAULT_EPSILON};
use trustmesh::mechanism::stackelberg::grid::Level;
use trustmesh::mechanism::stackelberg::search::level_bounds;
use trustmesh::mechanism::stackelberg::{
    parse_game, search, solve_exact, Device, ExactConfig, Game, SearchConfig, Solution,
};

use crate::util::trustmesh;

/// A game's JSON from per-type (name, prob, leader, follower) matrices.
fn game_json(types: &[(&str, f64, Value, Value)]) -> Value {
    let rows = |v: &Value| v.as_array().unwrap().len();
    let cols = |v: &Value| v[0].as_array().unwrap().len();
    let (m, n) = (rows(&types[0].2), cols(&types[0].2));
    json!({
        "leader_actions": (0..m).map(|i| format!("l{i}")).collect::<Vec<_>>(),
        "follower_actions": (0..n).map(|j| format!("f{j}")).collect::<Vec<_>>(),
        "types": types.iter().map(|(name, p, l, f)| json!({
            "name": name, "prob": p, "leader_payoff": l, "follower_payoff": f
        })).collect::<Vec<_>>(),
    })
}

fn game(types: &[(&str, f64, Value, Value)]) -> Game {
    parse_game(&game_json(types).to_string()).unwrap()
}

fn exact(g: &Game) -> Solution {
    solve_exact(g, &ExactConfig::default()).unwrap()
}

fn searched(g: &Game) -> Solution {
    search(g, &SearchConfig::default(), &Device::Cpu).unwrap()
}

/// The games with published leader values, with the value.
fn published() -> Vec<(&'static str, Game, f64)> {
    vec![
        // OpenSpiel, python/algorithms/stackelberg_lp_test.py.
        (
            "openspiel 2x2",
            game(&[("t", 1.0, json!([[2, 4], [1, 3]]), json!([[1, 0], [0, 1]]))]),
            3.5,
        ),
        (
            "openspiel 2x3",
            game(&[(
                "t",
                1.0,
                json!([[2, 0, 0], [1, 0, 0]]),
                json!([[0, 2, 5], [0, -1, -4]]),
            )]),
            4.0 / 3.0,
        ),
        // Paruchuri et al., "Playing games for security" (DOBSS), AAMAS 2008:
        // the introductory game, 11/3 at x = (2/3, 1/3).
        (
            "dobss",
            game(&[("t", 1.0, json!([[2, 4], [1, 3]]), json!([[1, 0], [0, 2]]))]),
            11.0 / 3.0,
        ),
        // Two types, constructed. With x = P(l0):
        //   type A (p ½): C = [[1,0],[0,1]], so f1 is a best response iff
        //     x ≤ ½; R(·, f1) = (4, 3) gives 3 + x, R(·, f0) = (2, 1) gives 1 + x.
        //   type B (p ½): C = [[0,1],[1,0]], so f0 is a best response iff
        //     x ≤ ½; R(·, f0) = (5, 0) gives 5x, R(·, f1) = (1, 2) gives 2 − x.
        // x < ½ (A f1, B f0): ½(3 + x) + ½·5x = 1.5 + 3x, up to 3.0 at x = ½.
        // x > ½ (A f0, B f1): ½(1 + x) + ½(2 − x) = 1.5.
        // At x = ½ both types are indifferent; the leader's ties give A f1
        // (3.5) and B f0 (2.5): 3.0, the maximum. An argmax of the follower's
        // utility at x = ½ could give A f0 and B f1 instead: 1.5.
        (
            "two types",
            game(&[
                ("A", 0.5, json!([[2, 4], [1, 3]]), json!([[1, 0], [0, 1]])),
                ("B", 0.5, json!([[5, 1], [0, 2]]), json!([[0, 1], [1, 0]])),
            ]),
            3.0,
        ),
    ]
}

#[test]
fn published_values_by_both_methods() {
    for (name, g, want) in published() {
        let e = exact(&g);
        let s = searched(&g);
        for (how, sol) in [("exact", &e), ("search", &s)] {
            assert!(
                (sol.leader_utility - want).abs() < 1e-7,
                "{name} {how}: {} != {want}\n{sol:#?}",
                sol.leader_utility
            );
            assert!(sol.max_regret < 1e-6, "{name} {how}: {sol:#?}");
            let total: f64 = sol.strategy().iter().sum();
            assert!((total - 1.0).abs() < 1e-12);
        }
        assert_eq!(s.search.as_ref().unwrap().polish, "optimal", "{name}");
        if name == "dobss" {
            for sol in [&e, &s] {
                assert!((sol.strategy()[0] - 2.0 / 3.0).abs() < 1e-7, "{sol:#?}");
                assert_eq!(sol.types[0].response, "f1");
            }
        }
        if name == "two types" {
            // The winning LP's own profile, not an argmax at the tie.
            for sol in [&e, &s] {
                assert_eq!(sol.responses(), [1, 0], "{sol:#?}");
                assert!((sol.strategy()[0] - 0.5).abs() < 1e-7);
            }
        }
    }
}

/// Seeded random games small enough for the exact method: the search (on the
/// CPU, default settings) must come within 1e-3 of the exact value, and can
/// never beat it beyond the LPs' tolerance.
#[test]
fn search_comes_within_1e_3_of_exact_on_random_games() {
    let mut rng = SplitMix64::new(2024);
    let mut gaps = Vec::new();
    for case in 0..30 {
        let m = 2 + (rng.next_u64() % 3) as usize;
        let n = 2 + (rng.next_u64() % 3) as usize;
        let types = 1 + (rng.next_u64() % 3) as usize;
        let g = random_game(m, n, types, 1000 + case).unwrap();
        let e = exact(&g);
        let s = searched(&g);
        let gap = e.leader_utility - s.leader_utility;
        assert!(
            gap < 1e-3 && gap > -1e-6,
            "case {case} (m {m}, n {n}, {types} types): exact {} search {}\n{e:#?}\n{s:#?}",
            e.leader_utility,
            s.leader_utility
        );
        gaps.push(gap);
    }
    // Most are found exactly (the polish reaches the optimal profile).
    let exact_hits = gaps.iter().filter(|g| g.abs() < 1e-7).count();
    assert!(exact_hits >= 27, "{gaps:?}");
}

/// The GPU evaluates the same candidates as the CPU: the same replies and
/// utilities (within f32) wherever no tie is within f32 reach; bounds that
/// never understate the f64 value by more than the slack; and a search whose
/// result is the CPU's, bit for bit.
#[test]
fn gpu_equals_cpu_on_the_same_candidates() {
    let Some(ctx) = crate::gpu::context() else {
        return;
    };
    let gpu = Device::Gpu(ctx.clone());
    let mut games: Vec<Game> = published().into_iter().map(|p| p.1).collect();
    games.push(random_game(3, 4, 3, 7).unwrap());
    games.push(random_game(5, 7, 4, 8).unwrap());
    for g in &games {
        let (m, types) = (g.m(), g.types().len());
        let ties = tie_tolerances(g, DEFAULT_EPSILON);
        let centers = vec![vec![1.0 / m as f64; m], {
            let mut c = vec![0.0; m];
            c[0] = 2.0 / 3.0;
            c[m - 1] += 1.0 / 3.0;
            c
        }];
        let levels = [
            Level::full(m, 30).unwrap(),
            Level::around(m, 12, 0.01, &centers).unwrap(),
        ];
        for level in &levels {
            // Per (candidate, type): the GPU's f32 reply against an f64
            // reference written here, unless a tie is within f32 reach.
            let game_gpu =
                trustmesh::gpu::mechanism::GpuGame::load(ctx.clone(), g, DEFAULT_EPSILON).unwrap();
            let got = game_gpu.replies(level).unwrap();
            let cpu = level_replies(g, level, &ties);
            assert_eq!(got.len(), cpu.len());
            let mut x = vec![0.0; m];
            let (mut compared, mut ambiguous) = (0, 0);
            for c in 0..level.len() {
                level.candidate(c, &mut x);
                for t in 0..types {
                    let k = c as usize * types + t;
                    let (fs, ls) = (g.follower_scale(t), g.leader_scale(t));
                    let u: Vec<f64> = (0..g.n()).map(|j| g.follower_utility(t, &x, j)).collect();
                    let best = u.iter().copied().fold(f64::MIN, f64::max);
                    let cut = best - DEFAULT_EPSILON * fs;
                    let mut v: Vec<(f64, usize)> = (0..g.n())
                        .filter(|&j| u[j] >= cut)
                        .map(|j| (g.leader_utility(t, &x, j), j))
                        .collect();
                    v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                    assert_eq!(cpu[k].action, v[0].1, "the CPU reference");
                    // A reply near the edge of the tie band (other than the
                    // best itself, which is ε from it) may fall either side in f32.
                    let top = (0..g.n()).find(|&j| u[j] == best).unwrap();
                    let near_cut = (0..g.n()).any(|j| j != top && (u[j] - cut).abs() <= 1e-5 * fs);
                    let near_tie = v.len() > 1 && v[0].0 - v[1].0 <= 1e-5 * ls;
                    if near_cut || near_tie {
                        ambiguous += 1;
                        continue;
                    }
                    compared += 1;
                    assert_eq!(
                        got[k].action, cpu[k].action,
                        "candidate {c} type {t} at {x:?}"
                    );
                    assert!((got[k].leader - cpu[k].leader).abs() <= 1e-5 * ls);
                    assert!((got[k].follower - cpu[k].follower).abs() <= 1e-5 * fs);
                }
            }
            assert!(
                ambiguous * 10 <= compared,
                "{ambiguous} ambiguous of {compared}"
            );
            // The bounds the search selects from.
            let b = level_bounds(g, level, DEFAULT_EPSILON, &gpu).unwrap();
            let exact = level_bounds(g, level, DEFAULT_EPSILON, &Device::Cpu).unwrap();
            assert_eq!(exact.slack, 0.0);
            assert!(b.slack > 0.0 && b.slack < 1e-4);
            for (c, (hi, v)) in b.upper.iter().zip(&exact.upper).enumerate() {
                assert!(
                    v <= &(hi + b.slack),
                    "candidate {c}: f64 {v} > f32 {hi} + {}",
                    b.slack
                );
            }
        }
        // The whole search: the same result.
        let cfg = SearchConfig {
            grid: Some(20),
            ..Default::default()
        };
        let on_cpu = search(g, &cfg, &Device::Cpu).unwrap();
        let on_gpu = search(g, &cfg, &gpu).unwrap();
        assert_eq!(on_cpu.strategy(), on_gpu.strategy());
        assert_eq!(on_cpu.responses(), on_gpu.responses());
        assert_eq!(on_cpu.leader_utility, on_gpu.leader_utility);
        assert_eq!(on_cpu.candidates_evaluated, on_gpu.candidates_evaluated);
        let (sc, sg) = (on_cpu.search.unwrap(), on_gpu.search.unwrap());
        assert_eq!(sc.candidate_value, sg.candidate_value);
        assert!(sg.device.contains("f32"), "{}", sg.device);
    }
    // Beyond the kernel's private arrays the GPU refuses, pointing to the CPU.
    let wide = random_game(33, 2, 1, 9).unwrap();
    let e = search(&wide, &SearchConfig::default(), &gpu).unwrap_err();
    assert!(e.to_string().ends_with("33 and 2; use device cpu"), "{e}");
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(v).unwrap()).unwrap();
    p
}

/// Runs the CLI on `g` with a change applied to its JSON; it must exit 1
/// with `needle` on the error line.
fn refused(dir: &Path, g: &Value, change: impl Fn(&mut Value), needle: &str) {
    let mut bad = g.clone();
    change(&mut bad);
    let p = write(dir, "bad.json", &bad);
    let run = trustmesh!["stackelberg", "--game", &p, "--device", "cpu"].fails(1);
    assert!(!run.stderr.contains("panicked"), "{run}");
    run.stderr_has(&[needle]);
}

#[test]
fn malformed_games_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = game_json(&[
        (
            "A",
            0.5,
            json!([[2, 4, 0], [1, 3, 0]]),
            json!([[1, 0, 0], [0, 1, 0]]),
        ),
        (
            "B",
            0.5,
            json!([[5, 1, 0], [0, 2, 0]]),
            json!([[0, 1, 0], [1, 0, 0]]),
        ),
    ]);
    refused(
        d,
        &g,
        |v| {
            v["types"][1]["follower_payoff"][0]
                .as_array_mut()
                .unwrap()
                .pop();
        },
        "bad.json: types[1].follower_payoff[0]: expected 3 values, found 2",
    );
    refused(
        d,
        &g,
        |v| {
            v["types"][0]["leader_payoff"]
                .as_array_mut()
                .unwrap()
                .truncate(1)
        },
        "types[0].leader_payoff: expected 2 rows, found 1",
    );
    refused(
        d,
        &g,
        |v| v["types"][1]["prob"] = json!(0.4),
        "types[*].prob: the probabilities sum to 0.9; they must sum to 1",
    );
    refused(
        d,
        &g,
        |v| {
            v["types"][0]["prob"] = json!(1.5);
            v["types"][1]["prob"] = json!(-0.5);
        },
        "types[1].prob: -0.5 is negative",
    );
    refused(
        d,
        &g,
        |v| v["leader_actions"] = json!([]),
        "leader_actions: expected at least one action",
    );
    refused(
        d,
        &g,
        |v| v["follower_actions"] = json!(["f0", "f1", "f0"]),
        "follower_actions[2]: duplicate name \"f0\" (same as follower_actions[0])",
    );
    refused(
        d,
        &g,
        |v| v["types"][1]["name"] = json!("A"),
        "types[1].name: duplicate name \"A\"",
    );
    refused(
        d,
        &g,
        |v| v["types"] = json!([]),
        "types: expected at least one follower type",
    );
    refused(
        d,
        &g,
        |v| v["types"][0]["follower_payoff"][1][2] = json!("x"),
        "types[0].follower_payoff[1][2]: expected a number, found a string",
    );
    // NaN and infinities are not JSON: written as text they are still named.
    let text = serde_json::to_string(&g).unwrap();
    for (bad, shown) in [
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("-1e999", "-1e999"),
    ] {
        let p = d.join("nan.json");
        std::fs::write(&p, text.replacen("[[2,4,0]", &format!("[[2,{bad},0]"), 1)).unwrap();
        trustmesh!["stackelberg", "--game", &p]
            .fails(1)
            .stderr_has(&[&format!(
                "nan.json: types[0].leader_payoff[0][1]: {shown} is not a finite number"
            )]);
    }
    trustmesh!["stackelberg", "--game", d.join("missing.json")]
        .fails(1)
        .stderr_has(&["missing.json: cannot read"]);
}

#[test]
fn the_bundled_game_solves_and_both_methods_agree() {
    let dir = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/stackelberg-game.json");
    let out = dir.path().join("r.json");
    let run = trustmesh![
        "stackelberg",
        "--game",
        &data,
        "--method",
        "both",
        "--device",
        "cpu",
        "--out",
        &out
    ]
    .ok();
    run.stdout_has(&[
        "exact: leader utility",
        "search: leader utility",
        "gap (exact - search)",
    ]);
    let text = std::fs::read_to_string(&out).unwrap();
    let r: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["method"], "both");
    assert!(r["gap"].as_f64().unwrap().abs() < 1e-6, "{r:#}");
    let g = trustmesh::mechanism::stackelberg::read_game(&data).unwrap();
    for (key, how) in [("exact", "exact"), ("search", "search")] {
        let s = &r[key];
        assert_eq!(s["method"], how);
        let strategy = s["leader_strategy"].as_object().unwrap();
        assert_eq!(strategy.len(), g.m());
        let total: f64 = strategy.values().map(|v| v.as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-9);
        let types = s["types"].as_array().unwrap();
        assert_eq!(types.len(), g.types().len());
        for t in types {
            assert!(g
                .follower_actions()
                .contains(&t["response"].as_str().unwrap().to_string()));
            assert!(t["follower_utility"].is_f64() && t["leader_utility"].is_f64());
        }
        assert!(s["leader_utility"].is_f64() && s["seconds"].is_f64());
        assert!(s["candidates_evaluated"].as_u64().unwrap() > 0);
    }
    assert!(r["search"]["search"]["levels"].as_u64().unwrap() > 1);
    // The strategy's keys are in the game's order, not sorted (serde_json's
    // Value sorts them, so this reads the text).
    let at = text.find("\"leader_strategy\"").unwrap();
    let pos: Vec<usize> = g
        .leader_actions()
        .iter()
        .map(|a| at + text[at..].find(&format!("\"{a}\"")).unwrap())
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{text}");
    // One method alone writes the solution itself.
    trustmesh!["stackelberg", "--game", &data, "--out", &out].ok();
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(r["method"], "exact");
}

/// m = 8, n = 16, 64 types: far beyond the exact method, which refuses it
/// and points to the search; the search solves it (a coarse grid here, to
/// keep the debug build quick; docs/mechanism.md times the default).
#[test]
fn a_large_game_is_refused_by_exact_and_searched() {
    let dir = tempfile::tempdir().unwrap();
    let g = random_game(8, 16, 64, 3).unwrap();
    let v = json!({
        "leader_actions": g.leader_actions(),
        "follower_actions": g.follower_actions(),
        "types": g.types().iter().map(|t| json!({
            "name": t.name, "prob": t.prob,
            "leader_payoff": t.leader_payoff().chunks(16).collect::<Vec<_>>(),
            "follower_payoff": t.follower_payoff().chunks(16).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let p = write(dir.path(), "big.json", &v);
    let run = trustmesh!["stackelberg", "--game", &p, "--method", "exact"].fails(1);
    run.stderr_has(&["more than its bound of 1000000; use --method search"]);
    let out = dir.path().join("r.json");
    trustmesh![
        "stackelberg",
        "--game",
        &p,
        "--method",
        "search",
        "--grid",
        "3",
        "--device",
        "cpu",
        "--out",
        &out
    ]
    .ok();
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(r["search"]["polish"], "optimal", "{r:#}");
    assert!(r["max_regret"].as_f64().unwrap() < 1e-5);
    assert_eq!(r["types"].as_array().unwrap().len(), 64);
    // --grid beyond a level's capacity is a usage error of the flag.
    trustmesh![
        "stackelberg",
        "--game",
        &p,
        "--method",
        "search",
        "--grid",
        "100"
    ]
    .fails(1)
    .stderr_has(&["--grid 100 over 8 leader actions gives"]);
}
