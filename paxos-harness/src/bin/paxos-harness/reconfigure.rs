//! `paxos-harness reconfigure`: change a running cluster's membership through its client ports.
//!
//! Adding a node takes two changes: first as a learner (it catches up), then as an acceptor.
//! Start the new node with `paxos-harness node --join` (its `--peers`: the nodes the cluster
//! started with), then
//!
//! ```text
//! paxos-harness reconfigure --nodes 127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003 \
//!     --acceptors 1,2,3 --learners 4 --address 4=127.0.0.1:7004
//! paxos-harness reconfigure --nodes 127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003 \
//!     --acceptors 1,2,3,4
//! ```
//!
//! Removing a node is one change that leaves it out; replacing a dead one is one change after
//! its successor joined as a learner. The change goes to the leader among `--nodes` (found by
//! asking each for its status); the command prints the configuration in force once the
//! leader has entered it, and fails with the cluster's refusal otherwise (a change already in
//! progress, an id used before, a new acceptor that is not a learner yet, ...).

use crate::duration;
use crate::node::parse_peer;
use paxos_harness::client::protocol::{MembershipView, Roles};
use paxos_harness::client::reconfigure::{ReconfigureError, reconfigure};
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `paxos-harness reconfigure`.
#[derive(clap::Args, Debug, Clone)]
pub struct ReconfigureArgs {
    /// Client addresses (their --client) of the cluster's nodes, comma-separated; the change
    /// is sent to whichever of them leads.
    #[arg(long, value_delimiter = ',', required = true)]
    pub nodes: Vec<String>,
    /// The acceptors (voters) of the new configuration, by id, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub acceptors: Vec<u64>,
    /// Non-voting members besides the acceptors (a node catching up to become one).
    #[arg(long, value_delimiter = ',')]
    pub learners: Vec<u64>,
    /// ID=HOST:PORT: where a node the cluster does not know yet listens (its --listen).
    #[arg(long = "address", value_delimiter = ',', value_parser = parse_peer)]
    pub addresses: Vec<(u64, String)>,
    /// File holding the nodes' client token (their --client-token-file), if they ask for one.
    #[arg(long)]
    pub token_file: Option<std::path::PathBuf>,
    /// Give up after this long (`30s`, `500ms`).
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub timeout: Duration,
}

/// Run `paxos-harness reconfigure`. Exit code 1 on a refusal or when no leader answered.
pub fn main(args: ReconfigureArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paxos-harness reconfigure: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let token = match args
        .token_file
        .as_deref()
        .map(crate::read_secret_file)
        .transpose()
    {
        Ok(token) => token,
        Err(e) => {
            eprintln!("paxos-harness reconfigure: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args, token.as_deref())) {
        Ok(m) => {
            let ids = |set: &std::collections::BTreeSet<u64>| {
                set.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
            };
            println!(
                "epoch {}: acceptors {}, learners {}",
                m.epoch,
                ids(&m.acceptors),
                match m.learners.is_empty() {
                    true => "none".to_owned(),
                    false => ids(&m.learners),
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("paxos-harness reconfigure: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The change the flags name, to the leader among `--nodes`.
async fn run(
    args: &ReconfigureArgs,
    token: Option<&str>,
) -> Result<MembershipView, ReconfigureError> {
    let roles = Roles {
        acceptors: args.acceptors.iter().copied().collect(),
        learners: args.learners.iter().copied().collect(),
        addresses: args
            .addresses
            .iter()
            .map(|(id, addr)| (id.to_string(), addr.clone()))
            .collect(),
    };
    reconfigure(&args.nodes, &roles, args.timeout, token).await
}
