//! `trustmesh sign-log`: a rater signs its rows of a log.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

#[derive(Args, Debug)]
pub struct SignLogArgs {
    /// The rater's key file (`id new`).
    #[arg(long)]
    key: PathBuf,
    /// The rater: rows whose `src` is this id are signed.
    #[arg(long)]
    agent: String,
    /// Log to read.
    input: PathBuf,
    /// Log to write: the input with `sig` filled for the agent's rows.
    output: PathBuf,
}

pub fn run(a: SignLogArgs) -> Result<()> {
    let key =
        trustmesh::identity::read_key_file(&a.key).with_context(|| a.key.display().to_string())?;
    let c = trustmesh::ingest::sign::sign_log(&a.input, &a.output, &key, &a.agent)?;
    println!(
        "signed {} of {} rows (rater `{}`) into {}",
        c.signed,
        c.rows,
        a.agent,
        a.output.display()
    );
    Ok(())
}
