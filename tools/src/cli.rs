//! Argument parsing, logging setup and dispatch. Adding a subcommand: a file under `cmd/`
//! (an args struct implementing [`Run`]), a `mod` line in `cmd/mod.rs`, and one line in
//! the `commands!` list below.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cmd::{self, Run};

/// Intelligent NFT agents: seal models and keys; mint, authorize and run agents on chain.
#[derive(Debug, Parser)]
#[command(name = "inft", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Print results as JSON on stdout, for scripts (also hides progress bars).
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Show token ids in full (decimal) in human output, instead of their first 8 hex digits
    /// (`1a2b3c4d`). `--json` output always has them in full.
    #[arg(long, global = true)]
    pub(crate) full_ids: bool,

    /// How log lines on stderr are written: `text` (one readable line per event: with
    /// `inft serve`, one per action and per agent state change) or `json` (one object per
    /// line, every field). RUST_LOG filters them (default `warn,inft_service=info`).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        value_name = "FORMAT"
    )]
    pub(crate) log_format: crate::log::LogFormat,

    /// The command to run.
    #[command(subcommand)]
    pub(crate) command: Commands,
}

/// Declares the subcommand enum and its dispatch from one list: `Variant(ArgsType)`, preceded by
/// `["feature"]` for a command that exists only with that cargo feature (`engine`: commands that
/// run a model and so link llama.cpp).
macro_rules! commands {
    ($( $(#[$doc:meta])* $([$feature:literal])? $variant:ident($args:ty), )*) => {
        /// The `inft` subcommands.
        #[derive(Debug, Subcommand)]
        pub(crate) enum Commands {
            $( $(#[cfg(feature = $feature)])? $(#[$doc])* $variant($args), )*
        }

        impl Commands {
            async fn run(self, ctx: &Context) -> anyhow::Result<()> {
                match self {
                    $( $(#[cfg(feature = $feature)])? Commands::$variant(args) => args.run(ctx).await, )*
                }
            }
        }
    };
}

commands! {
    /// Create and inspect X25519 sealing keys (stored encrypted under a passphrase).
    Keys(cmd::keys::KeysArgs),
    /// Seal a file: encrypt it under a fresh data key and wrap that key for a recipient.
    Seal(cmd::seal::SealArgs),
    /// Unseal a file sealed to your key; the output appears only if everything verified.
    Unseal(cmd::unseal::UnsealArgs),
    /// A local chain with everything deployed (`dev up`/`dev down`), and test models.
    Dev(cmd::dev::DevArgs),
    /// Deploy the inft contracts onto any EVM chain with a keystore wallet (checked chain id,
    /// funds, confirmations and deployed code), and write the deployment file.
    Deploy(cmd::deploy::DeployArgs),
    /// Mint an agent: seal a model, a fresh agent key and a config to your wallet.
    ["engine"] Mint(cmd::mint::MintArgs),
    /// Let another account run your agent, with scopes and an expiry.
    Authorize(cmd::authorize::AuthorizeArgs),
    /// End another account's authorization.
    Revoke(cmd::authorize::RevokeArgs),
    /// Run an agent you own or are authorized for, logging every action on chain.
    ["engine"] Run(cmd::run::RunArgs),
    /// Host many agents on schedules until stopped (one node, or a fleet on PostgreSQL), with
    /// /health, /agents and Prometheus /metrics.
    ["engine"] Serve(cmd::serve::ServeArgs),
    /// Audit an agent's action history from chain events and public records (no wallet needed).
    Audit(cmd::audit::AuditArgs),
    /// List what an agent created, and export each piece with a proof bundle anyone can check.
    Creations(cmd::creations::CreationsArgs),
    /// Who made this piece, and is it unchanged? Look it up by content, or verify a proof
    /// bundle with nothing but an RPC endpoint (`provenance verify`).
    Provenance(cmd::provenance::ProvenanceArgs),
    /// Compare trading policies on the same simulated market under the owner's firewall;
    /// nothing is sent.
    ["engine"] Backtest(cmd::backtest::BacktestArgs),
    /// An agent's earnings split: show what each party is owed, settle earnings, claim.
    Royalties(cmd::royalties::RoyaltiesArgs),
    /// Serve your blob store (sealed blobs, public action records) to other parties over HTTP.
    Gateway(cmd::gateway::GatewayArgs),
    /// Move an agent to another account: its keys rotate and the old owner is locked out.
    Transfer(cmd::transfer::TransferArgs),
    /// Sell an agent for ETH: list, buy (escrow), complete with the key rotation (the creator's
    /// royalty and the seller are paid in that transaction), cancel, refund.
    Market(cmd::market::MarketArgs),
    /// The re-encryption oracle for oracle-attested transfers.
    Oracle(cmd::oracle::OracleArgs),
}

/// Global settings every command gets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context {
    /// `--json`: machine-readable results on stdout.
    pub(crate) json: bool,
}

impl Context {
    /// Prints a result: `human` as plain text, or `json` when `--json` was given.
    pub(crate) fn emit(&self, human: impl std::fmt::Display, json: serde_json::Value) {
        if self.json {
            println!("{json}");
        } else {
            println!("{human}");
        }
    }

    /// A byte progress bar on stderr for `len` bytes; hidden with `--json`, when stderr is not
    /// a terminal, or for small inputs.
    pub(crate) fn progress(&self, len: u64, what: &str) -> indicatif::ProgressBar {
        const SHOW_FROM: u64 = 16 << 20;
        if self.json || len < SHOW_FROM || !std::io::stderr().is_terminal() {
            return indicatif::ProgressBar::hidden();
        }
        let pb = indicatif::ProgressBar::with_draw_target(
            Some(len),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg:>9} [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        ) {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_message(what.to_owned());
        pb
    }
}

impl Context {
    /// A spinner with a changing message on stderr, for step-by-step work; hidden with `--json`
    /// or when stderr is not a terminal.
    pub(crate) fn spinner(&self, message: &str) -> indicatif::ProgressBar {
        if self.json || !std::io::stderr().is_terminal() {
            return indicatif::ProgressBar::hidden();
        }
        let pb = indicatif::ProgressBar::new_spinner();
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
        pb.set_message(message.to_owned());
        pb
    }
}

/// Parses arguments, runs the command, prints any error as one line, and returns the exit code.
pub(crate) fn run() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr so stdout stays clean for results; RUST_LOG overrides the default.
    // `inft serve` has no other output: its actions, leases and shutdown are info lines.
    crate::ids::show_full_ids(cli.full_ids);
    crate::log::init(cli.log_format);
    let ctx = Context { json: cli.json };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(cli.command.run(&ctx)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
