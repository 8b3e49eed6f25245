//! `paxos-harness propose`: a one-shot client of a running node's client port.

use crate::duration;
use paxos_harness::client::{Client, ClientError, protocol};
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `paxos-harness propose`.
#[derive(clap::Args, Debug, Clone)]
pub struct ProposeArgs {
    /// Client address of a node (its --client), e.g. 127.0.0.1:8001.
    #[arg(long)]
    pub node: String,
    /// File holding the node's client token (its --client-token-file), if it asks for one.
    #[arg(long)]
    pub token_file: Option<std::path::PathBuf>,
    /// The value to get chosen; prints `instance N: VALUE`.
    #[arg(required_unless_present_any = ["decisions", "status"])]
    pub value: Option<String>,
    /// Print the node's decided log instead, one `instance N: VALUE` line per decision.
    #[arg(long, conflicts_with_all = ["value", "status"])]
    pub decisions: bool,
    /// With --decisions: start at this instance.
    #[arg(long, default_value_t = 0, requires = "decisions")]
    pub from: u64,
    /// Print the node's status (id, leader, first undecided instance, decisions known).
    #[arg(long, conflicts_with = "value")]
    pub status: bool,
    /// Give up after this long (`30s`, `500ms`).
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub timeout: Duration,
}

/// Run `paxos-harness propose`: propose one value (or print the decided log, or the status) and
/// print the outcome. Exit code 1 on any error.
pub fn main(args: ProposeArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paxos-harness propose: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The node gives up at the timeout; allow its answer a moment to arrive.
    let work =
        async { tokio::time::timeout(args.timeout + Duration::from_secs(2), run(&args)).await };
    match runtime.block_on(work) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("paxos-harness propose: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!(
                "paxos-harness propose: no answer from {} in time",
                args.node
            );
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &ProposeArgs) -> Result<(), ClientError> {
    let token = match &args.token_file {
        Some(path) => Some(crate::read_secret_file(path).map_err(std::io::Error::other)?),
        None => None,
    };
    let mut client = Client::connect_with(&args.node, token.as_deref()).await?;
    if args.decisions {
        for d in client.decisions(args.from).await? {
            match d.value {
                Some(value) => println!("instance {}: {value}", d.instance),
                None => println!("instance {}: (no-op)", d.instance),
            }
        }
    } else if args.status {
        let s: protocol::Status = client.status().await?;
        let leader = s
            .leader
            .map_or_else(|| "none".to_owned(), |l| l.to_string());
        println!(
            "node {}: leader {leader}, first undecided instance {}, applied below {}, {} decisions",
            s.id, s.first_undecided, s.applied, s.decided
        );
    } else if let Some(value) = &args.value {
        let instance = client.propose(value, Some(args.timeout)).await?;
        println!("instance {instance}: {value}");
    }
    Ok(())
}
