//! Iteration parameters of the power iteration: teleport weight, stopping
//! rule and cap (DESIGN.md §3), defaults from [`IterParams::default`].

use clap::Args;

use trustmesh::score::{ScoreConfig, DEFAULT_FLAT_TAIL_TOP};
use trustmesh::trust::{FlatTail, IterParams};

#[derive(Args, Debug, Clone, PartialEq)]
pub struct IterArgs {
    /// Teleport probability (weight of pre-trust).
    #[arg(long, default_value_t = IterParams::default().alpha)]
    pub alpha: f64,
    /// Stop when the L1 change is below this (default 1e-9 on CPU, 1e-6 on GPU).
    #[arg(long)]
    pub epsilon: Option<f64>,
    /// Iteration cap.
    #[arg(long, default_value_t = IterParams::default().max_iter)]
    pub max_iter: u32,
    /// Also stop once the top order is unchanged for this many iterations.
    #[arg(long)]
    pub flat_tail: Option<u32>,
    /// How many top agents --flat-tail watches.
    #[arg(long, default_value_t = DEFAULT_FLAT_TAIL_TOP, requires = "flat_tail")]
    pub flat_tail_top: usize,
}

impl IterArgs {
    /// Sets the iteration fields of `cfg`; the library validates them.
    pub fn apply(&self, cfg: &mut ScoreConfig) {
        cfg.alpha = self.alpha;
        cfg.epsilon = self.epsilon;
        cfg.max_iter = self.max_iter;
        cfg.flat_tail = self.flat_tail.map(|iterations| FlatTail {
            iterations,
            top: self.flat_tail_top,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        iter: IterArgs,
    }

    fn parse(args: &[&str]) -> Result<IterArgs, clap::Error> {
        T::try_parse_from(std::iter::once("t").chain(args.iter().copied())).map(|t| t.iter)
    }

    #[test]
    fn defaults_are_the_library_defaults() {
        let mut cfg = ScoreConfig::default();
        parse(&[]).unwrap().apply(&mut cfg);
        let lib = ScoreConfig::new(Vec::new());
        assert_eq!(
            (cfg.alpha, cfg.epsilon, cfg.max_iter, cfg.flat_tail),
            (lib.alpha, None, lib.max_iter, None),
            "epsilon stays the back end's"
        );
    }

    #[test]
    fn flat_tail_top_goes_with_flat_tail() {
        let mut cfg = ScoreConfig::default();
        parse(&["--flat-tail", "5"]).unwrap().apply(&mut cfg);
        assert_eq!(
            cfg.flat_tail,
            Some(FlatTail {
                iterations: 5,
                top: DEFAULT_FLAT_TAIL_TOP
            })
        );
        let e = parse(&["--flat-tail-top", "20"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }
}
