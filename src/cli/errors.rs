//! How a failed command reads on stderr. The library names parameters as it
//! calls them (`alpha`, `flat_tail.top`); a user of the command line typed
//! flags, so the line shows the flag of each parameter the error mentions.

use trustmesh::error::params;

/// Library parameter → the flag that sets it. A parameter without a flag
/// (the test's `NO_FLAG`) keeps its library name: the CLI derives it, so it
/// can only be wrong through a bug.
const FLAGS: &[(&str, &str)] = &[
    (params::ALPHA, "--alpha"),
    (params::EPSILON, "--epsilon"),
    (params::MAX_ITER, "--max-iter"),
    (params::FLAT_TAIL, "--flat-tail"),
    (params::FLAT_TAIL_TOP, "--flat-tail-top"),
    (params::LOGS, "--log"),
    (params::LAYERS, "--layers"),
    (params::LAYER_WEIGHTS, "--layer-weight"),
    (params::CHEAP, "--cheap"),
    (params::COSTLY, "--costly"),
    (params::BETA, "--beta"),
    (params::TAU, "--tau"),
    (params::DISTRUST, "--distrust"),
    (params::PER_TOPIC, "--per-topic"),
    (params::START, "--warm-start-from"),
    (params::SIGMA, "--sigma"),
    (params::RHO, "--rho"),
    (params::REGISTRY, "--registry"),
    (params::REQUIRE_SIGNATURES, "--require-signatures"),
    (params::FORMAT, "--from"),
    (params::LAYER, "--layer"),
    (params::RATING_SCALE, "--rating-scale"),
    (params::SYNTHETIC, "--synthetic"),
    (params::TIERS, "--tiers"),
    (params::TASK_VALUE, "--task-value"),
    (params::REWARD_MAX, "--reward-max"),
    (params::REWARD_STEPS, "--reward-steps"),
    (params::BUDGET, "--budget"),
    (params::UNSCORED, "--unscored"),
    (params::VECTOR, "--vector"),
    (params::METHOD, "--method"),
    (params::GRID, "--grid"),
    (params::DEVICE, "--device"),
    (params::PEERS, "--peers"),
    (params::MALICIOUS, "--malicious"),
    (params::EPOCHS, "--epochs"),
    (params::SEEDS, "--seeds"),
    (params::MODELS, "--models"),
    (params::QUERIES, "--queries"),
    (params::CANDIDATES, "--candidates"),
    (params::EXPLORATION, "--exploration"),
    (params::PRETRUSTED_PEERS, "--pretrusted-peers"),
    (params::CAMOUFLAGE, "--camouflage"),
    (params::QUERIES_PER_TOPIC, "--queries-per-topic"),
    (params::DETECTION, "--detection"),
    (params::SIM_STAKE, "--stake"),
    (params::GAIN, "--gain"),
    (params::SPY_SHARE, "--spy-share"),
    (params::NEWCOMERS, "--newcomers"),
];

/// The flag that sets library parameter `param`.
fn flag(param: &str) -> Option<&'static str> {
    FLAGS.iter().find(|(p, _)| *p == param).map(|(_, f)| *f)
}

/// The text `trustmesh` prints after `error: `: the contexts the CLI added,
/// outermost first, then the library's message with flag names. The chain
/// stops at the library error, whose message already includes its sources.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in e.chain() {
        if let Some(lib) = cause.downcast_ref::<trustmesh::Error>() {
            parts.push(lib.display_with(&flag).to_string());
            break;
        }
        parts.push(cause.to_string());
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;
    use clap::CommandFactory;
    use trustmesh::error::{Message, ResultExt};
    use trustmesh::Error;

    /// Library parameters the CLI sets from no flag (it derives them).
    const NO_FLAG: &[&str] = &[
        params::GATES,
        params::COLUMNS,
        params::BATCHES,
        params::SEARCH_EPSILON,
        params::SEARCH_WIDTH,
    ];

    #[test]
    fn every_parameter_has_a_flag_or_is_derived() {
        for p in params::ALL {
            assert!(
                flag(p).is_some() != NO_FLAG.contains(p),
                "parameter `{p}` needs exactly one of a flag in FLAGS or a place in NO_FLAG"
            );
        }
        assert_eq!(FLAGS.len() + NO_FLAG.len(), params::ALL.len());
    }

    #[test]
    fn every_flag_is_a_flag_of_some_command() {
        let cli = super::super::Cli::command();
        let longs: Vec<String> = cli
            .get_subcommands()
            .flat_map(|c| c.get_arguments())
            .filter_map(|a| a.get_long())
            .map(|l| format!("--{l}"))
            .collect();
        for (param, f) in FLAGS {
            assert!(longs.iter().any(|l| l == f), "{param} → {f}: no such flag");
        }
    }

    #[test]
    fn parameters_read_as_flags() {
        let e = Error::param_value(params::ALPHA, "must be in (0, 1], got 0");
        assert_eq!(e.to_string(), "alpha must be in (0, 1], got 0");
        let line = error_line(&anyhow::Error::from(e));
        assert_eq!(line, "--alpha must be in (0, 1], got 0");

        // Mentions inside the text, under a location, under a CLI context.
        let m = Message::new()
            .param(params::FLAT_TAIL)
            .text(" and ")
            .param(params::FLAT_TAIL_TOP)
            .text(" must be at least 1");
        let e: anyhow::Result<()> = Err(Error::param(params::FLAT_TAIL, m))
            .with_line(3)
            .with_path("p.csv")
            .context("while testing");
        assert_eq!(
            error_line(&e.unwrap_err()),
            "while testing: p.csv: line 3: --flat-tail and --flat-tail-top must be at least 1"
        );

        // A parameter without a flag keeps its library name.
        let e = Error::param(params::COLUMNS, Message::new().param(params::COLUMNS));
        assert_eq!(error_line(&e.into()), "columns");
    }

    #[test]
    fn the_chain_is_printed_once() {
        // The library's Read error holds the io::Error as its source and
        // already shows it: the line must not repeat it.
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = anyhow::Error::from(Error::read(io).with_path("a.parquet"));
        assert_eq!(error_line(&e), "a.parquet: cannot read: gone");
        assert_eq!(error_line(&anyhow::anyhow!("plain")), "plain");
    }
}
