//! `trustmesh stackelberg`: the strong Stackelberg equilibrium of a Bayesian
//! Stackelberg game, exactly (multiple LPs), by a best-response search on the
//! CPU or the GPU, or both with their gap (docs/mechanism.md).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

use trustmesh::gpu::mechanism::{MAX_M, MAX_N};
use trustmesh::mechanism::stackelberg::{
    read_game, search, solve_exact, Comparison, Device as SearchDevice, ExactConfig, Game,
    SearchConfig, Solution,
};

use super::device::{gpu_context, Device, DeviceArgs};
use super::output::write_json;

#[derive(Args, Debug)]
pub struct StackelbergArgs {
    /// Game file (JSON: leader_actions, follower_actions, types).
    #[arg(long)]
    game: PathBuf,
    /// exact (multiple LPs), search (grid of best responses, LP polish) or
    /// both (and the gap between them).
    #[arg(long, value_enum, default_value_t = Method::Exact)]
    method: Method,
    #[command(flatten)]
    device: DeviceArgs,
    /// Divisions of the search's first grid [default: the largest with at
    /// most 131072 candidates].
    #[arg(long)]
    grid: Option<u32>,
    /// Also write the result as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Method {
    Exact,
    Search,
    Both,
}

pub fn run(a: StackelbergArgs) -> Result<()> {
    let game = read_game(&a.game)?;
    let exact = || solve_exact(&game, &ExactConfig::default());
    let searched = || -> Result<Solution> {
        let cfg = SearchConfig {
            grid: a.grid,
            ..Default::default()
        };
        Ok(search(&game, &cfg, &search_device(&a.device, &game)?)?)
    };
    match a.method {
        Method::Exact => finish(&game, exact()?, &a.out),
        Method::Search => finish(&game, searched()?, &a.out),
        Method::Both => {
            let c = Comparison::new(exact()?, searched()?);
            print_solution(&game, &c.exact);
            print_solution(&game, &c.search);
            println!("gap (exact - search): {:.3e}", c.gap);
            if let Some(path) = &a.out {
                write_json(path, &c)?;
                println!("wrote {}", path.display());
            }
            Ok(())
        }
    }
}

fn finish(game: &Game, s: Solution, out: &Option<PathBuf>) -> Result<()> {
    print_solution(game, &s);
    if let Some(path) = out {
        write_json(path, &s)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The device the search runs on: `--device` as every command reads it,
/// except that `auto` keeps a game beyond the GPU kernel's limits on the CPU.
fn search_device(d: &DeviceArgs, game: &Game) -> Result<SearchDevice> {
    let ctx = gpu_context(d.device, d.adapter.adapter.as_deref())?;
    Ok(match ctx {
        None => SearchDevice::Cpu,
        Some(_)
            if d.device == Device::Auto
                && (game.m() > MAX_M as usize || game.n() > MAX_N as usize) =>
        {
            eprintln!(
                "trustmesh: the GPU search handles at most {MAX_M} leader and {MAX_N} follower actions; using the CPU"
            );
            SearchDevice::Cpu
        }
        Some(ctx) => SearchDevice::Gpu(ctx),
    })
}

fn print_solution(game: &Game, s: &Solution) {
    let how = match (&s.exact, &s.search) {
        (Some(e), _) => format!(
            "{} LPs, {} of {} replies kept, {:.0} profiles",
            e.lps_solved, e.replies_kept, e.replies, e.profiles
        ),
        (_, Some(x)) => format!(
            "{} candidates on {}, {} levels from grid {}, {} re-checked in f64, polish {}",
            s.candidates_evaluated, x.device, x.levels, x.grid, x.candidates_rechecked, x.polish
        ),
        _ => String::new(),
    };
    println!(
        "{}: leader utility {:.6} ({how}; {:.3} s)",
        serde_json::to_value(s.method)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        s.leader_utility,
        s.seconds
    );
    let strategy: Vec<String> = game
        .leader_actions()
        .iter()
        .zip(s.strategy())
        .filter(|(_, &p)| p > 0.0)
        .map(|(a, p)| format!("{a} {p:.6}"))
        .collect();
    println!("  leader strategy: {}", strategy.join(", "));
    for t in &s.types {
        println!(
            "  {:<20} p {:.4}  replies {:<16} follower {:>12.6}  leader {:>12.6}",
            t.name, t.prob, t.response, t.follower_utility, t.leader_utility
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::{parse, Command};

    #[test]
    fn defaults() {
        let Ok(Command::Stackelberg(a)) = parse(&["stackelberg", "--game", "g.json"]) else {
            panic!("`stackelberg` parses")
        };
        assert_eq!(a.method, super::Method::Exact);
        assert_eq!((a.grid, a.out), (None, None));
        assert!(parse(&["stackelberg"]).is_err(), "--game is required");
        assert!(parse(&["stackelberg", "--game", "g", "--method", "lp"]).is_err());
        let Ok(Command::Stackelberg(a)) = parse(&[
            "stackelberg",
            "--game",
            "g",
            "--method",
            "both",
            "--grid",
            "7",
            "--device",
            "cpu",
        ]) else {
            panic!("`stackelberg` parses")
        };
        assert_eq!((a.method, a.grid), (super::Method::Both, Some(7)));
    }
}
