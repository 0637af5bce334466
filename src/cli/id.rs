//! `trustmesh id`: ed25519 keys and the BAID registry (an append-only,
//! hash-chained ledger binding agent ids to keys and configuration
//! commitments). Formats: docs/identity.md.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use trustmesh::identity::{self, Ledger};

#[derive(Args, Debug)]
pub struct IdArgs {
    #[command(subcommand)]
    pub command: IdCommand,
}

#[derive(Subcommand, Debug)]
pub enum IdCommand {
    /// Generate an ed25519 key into a new file (mode 0600; an existing file
    /// is never overwritten). Prints the public key; the secret is never
    /// printed.
    New {
        /// Key file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a key file's public key (64 hex characters).
    Show {
        /// Key file.
        key: PathBuf,
    },
    /// Register an agent id with a key and a salted commitment to its
    /// configuration; prints the salt, which `id reveal` needs later.
    Register {
        /// Ledger file (created if absent; verified before anything is
        /// appended).
        #[arg(long)]
        ledger: PathBuf,
        /// The agent's key file; it signs the entry.
        #[arg(long)]
        key: PathBuf,
        /// Agent id, as it appears in the logs' `src` and `dst`.
        #[arg(long)]
        agent: String,
        /// Configuration file the commitment binds (model, prompt, tool
        /// policy…); an empty configuration when absent.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Move an agent to a new key (and configuration): an entry signed by the
    /// agent's current key.
    Rotate {
        #[arg(long)]
        ledger: PathBuf,
        /// The agent's current key file.
        #[arg(long)]
        key: PathBuf,
        /// The new key file.
        #[arg(long)]
        new_key: PathBuf,
        #[arg(long)]
        agent: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Verify every entry of a ledger (signatures, hash chain, order, times);
    /// a broken one is named by line and sequence number.
    VerifyLedger {
        /// Ledger file.
        ledger: PathBuf,
    },
    /// Check that a configuration and salt are what an agent committed to.
    Reveal {
        #[arg(long)]
        ledger: PathBuf,
        #[arg(long)]
        agent: String,
        /// The configuration file registered.
        #[arg(long)]
        config: PathBuf,
        /// The salt `id register` printed (64 hex characters).
        #[arg(long)]
        salt: String,
    },
}

pub fn run(a: IdArgs) -> Result<()> {
    match a.command {
        IdCommand::New { out } => {
            let key = identity::generate();
            identity::write_key_file(&out, &key).with_context(|| out.display().to_string())?;
            println!("{}", identity::public_key_hex(&key.verifying_key()));
            eprintln!("wrote {} (mode 0600)", out.display());
        }
        IdCommand::Show { key } => {
            let k = read_key(&key)?;
            println!("{}", identity::public_key_hex(&k.verifying_key()));
        }
        IdCommand::Register {
            ledger,
            key,
            agent,
            config,
        } => {
            let k = read_key(&key)?;
            let config = read_config(config.as_deref())?;
            let (entry, salt) =
                Ledger::append_register(&ledger, &k, &agent, config.as_deref(), super::unix_now()?)
                    .with_context(|| ledger.display().to_string())?;
            println!(
                "registered `{agent}` as entry {} of {}",
                entry.seq,
                ledger.display()
            );
            println!("salt: {}", hex::encode(salt));
        }
        IdCommand::Rotate {
            ledger,
            key,
            new_key,
            agent,
            config,
        } => {
            let old = read_key(&key)?;
            let new = read_key(&new_key)?;
            let config = read_config(config.as_deref())?;
            let (entry, salt) = Ledger::append_rotate(
                &ledger,
                &old,
                &new.verifying_key(),
                &agent,
                config.as_deref(),
                super::unix_now()?,
            )
            .with_context(|| ledger.display().to_string())?;
            println!(
                "rotated `{agent}` to {} as entry {}",
                identity::public_key_hex(&new.verifying_key()),
                entry.seq
            );
            println!("salt: {}", hex::encode(salt));
        }
        IdCommand::VerifyLedger { ledger } => {
            let s =
                identity::verify_ledger(&ledger).with_context(|| ledger.display().to_string())?;
            println!(
                "{}: {} entries, {} agents, all signatures and links valid; head {}",
                ledger.display(),
                s.entries,
                s.agents,
                hex::encode(s.head)
            );
        }
        IdCommand::Reveal {
            ledger,
            agent,
            config,
            salt,
        } => {
            let l = Ledger::open(&ledger).with_context(|| ledger.display().to_string())?;
            let bytes = std::fs::read(&config)
                .with_context(|| format!("{}: cannot read", config.display()))?;
            let salt: [u8; 32] = hex::decode(salt.trim())
                .ok()
                .and_then(|v| v.try_into().ok())
                .context("--salt: expected 64 hex characters")?;
            l.reveal(&agent, &bytes, &salt)?;
            println!("`{agent}` committed to {} with this salt", config.display());
        }
    }
    Ok(())
}

fn read_key(path: &Path) -> Result<ed25519_dalek::SigningKey> {
    identity::read_key_file(path).with_context(|| path.display().to_string())
}

fn read_config(path: Option<&Path>) -> Result<Option<Vec<u8>>> {
    path.map(|p| std::fs::read(p).with_context(|| format!("{}: cannot read", p.display())))
        .transpose()
}
