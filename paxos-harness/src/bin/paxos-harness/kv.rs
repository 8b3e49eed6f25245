//! `paxos-harness kv`: a one-shot client of the key-value service of a running node
//! (`paxos-harness node`), over its client port.
//!
//! `kv --node 127.0.0.1:8001 put k v`, `get k`, `cas k old new`, `delete k`. Writes are sent
//! with a fresh session id, so the node applies each at most once. Prints the answer as
//! `k = v` (or `k is absent`); exit code 0 if the operation took effect, 3 if a `cas` did not
//! match (the key's value is printed), 1 on any error (with `maybe chosen` when a write may
//! still take effect).

use crate::duration;
use paxos_harness::client::protocol::Op;
use paxos_harness::client::{Client, ClientError, KvAnswer};
use paxos_harness::service::KvCommand;
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `paxos-harness kv`.
#[derive(clap::Args, Debug, Clone)]
pub struct KvArgs {
    /// Client address of a node (its --client), e.g. 127.0.0.1:8001. Any node answers.
    #[arg(long)]
    pub node: String,
    /// File holding the node's client token (its --client-token-file), if it asks for one.
    #[arg(long)]
    pub token_file: Option<std::path::PathBuf>,
    /// Give up after this long (`30s`, `500ms`).
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub timeout: Duration,
    /// The operation.
    #[command(subcommand)]
    pub op: KvOp,
}

/// One key-value operation: a read, or one of the service's writes.
#[derive(clap::Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum KvOp {
    /// Read KEY (linearizable: reflects every write acknowledged before it).
    Get {
        /// The key.
        key: String,
    },
    #[command(flatten)]
    Write(KvCommand),
}

impl KvOp {
    fn key(&self) -> &str {
        match self {
            KvOp::Get { key }
            | KvOp::Write(
                KvCommand::Put { key, .. } | KvCommand::Cas { key, .. } | KvCommand::Delete { key },
            ) => key,
        }
    }

    /// The protocol request, and whether it is a write (sent with a session id).
    fn request(&self) -> (Op, bool) {
        match self.clone() {
            KvOp::Get { key } => (Op::Get { key }, false),
            KvOp::Write(command) => (Op::Write(command), true),
        }
    }
}

/// Run `paxos-harness kv`.
pub fn main(args: KvArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paxos-harness kv: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The node gives up at the timeout; allow its answer a moment to arrive.
    let work =
        async { tokio::time::timeout(args.timeout + Duration::from_secs(2), run(&args)).await };
    match runtime.block_on(work) {
        Ok(Ok(answer)) => {
            let key = args.op.key();
            match &answer.value {
                Some(v) => println!("{key} = {v}"),
                None => println!("{key} is absent"),
            }
            if answer.ok {
                ExitCode::SUCCESS
            } else {
                eprintln!("paxos-harness kv: cas did not match");
                ExitCode::from(3)
            }
        }
        Ok(Err(ClientError::Node {
            error,
            maybe_chosen,
            ..
        })) => {
            let maybe = if maybe_chosen { " (maybe chosen)" } else { "" };
            eprintln!("paxos-harness kv: {error}{maybe}");
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("paxos-harness kv: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("paxos-harness kv: no answer from {} in time", args.node);
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &KvArgs) -> Result<KvAnswer, ClientError> {
    let token = match &args.token_file {
        Some(path) => Some(crate::read_secret_file(path).map_err(std::io::Error::other)?),
        None => None,
    };
    let mut client = Client::connect_with(&args.node, token.as_deref()).await?;
    let (op, write) = args.op.request();
    let id = if write {
        let client_id = client.session().await?;
        Some(paxos_core::ProposalId {
            client: client_id,
            seq: 1,
        })
    } else {
        None
    };
    client.kv(op, id, Some(args.timeout)).await
}
