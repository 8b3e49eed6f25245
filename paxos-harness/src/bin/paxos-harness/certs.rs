//! `paxos-harness certs`: TLS credentials for a real cluster.
//!
//! ```text
//! paxos-harness certs --out ./certs --nodes 1,2,3
//! ```
//!
//! writes a cluster CA (`ca.pem`, and its key `ca.key`) and for every node a certificate
//! naming it (`node-<id>.pem`) with its key (`node-<id>.key`); keys are readable by their owner
//! only. Each node is started with `--certs DIR`, where DIR holds `ca.pem` and that node's two
//! files: copy those to the node's machine, and keep `ca.key` off the nodes. Run it again
//! with new ids (same `--out`, same `--cluster-id`) to add nodes: the CA there issues them,
//! and files already there are kept.

use paxos_core::NodeId;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `paxos-harness certs`.
#[derive(clap::Args, Debug, Clone)]
pub struct CertsArgs {
    /// Directory to write into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Node ids to make credentials for, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub nodes: Vec<u64>,
    /// The cluster id the nodes run with (`node --cluster-id`); it names the CA.
    #[arg(long, default_value_t = 0)]
    pub cluster_id: u64,
}

/// Run `paxos-harness certs`.
pub fn main(args: CertsArgs) -> ExitCode {
    let nodes: Vec<NodeId> = args.nodes.iter().copied().map(NodeId).collect();
    match paxos_harness::credentials::make(&args.out, args.cluster_id, &nodes) {
        Ok(made) => {
            let dir = args.out.display();
            if made.new_ca {
                println!(
                    "made the cluster CA: {dir}/ca.pem (its key {dir}/ca.key stays off the nodes)"
                );
            } else {
                println!("issued by the CA in {dir}/ca.pem");
            }
            for n in &made.issued {
                println!(
                    "node {}: {dir}/node-{}.pem, {dir}/node-{}.key",
                    n.0, n.0, n.0
                );
            }
            for n in &made.kept {
                println!("node {}: kept the credentials already in {dir}", n.0);
            }
            println!(
                "start each node with --certs DIR, DIR holding ca.pem and that node's two files"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("paxos-harness certs: {e}");
            ExitCode::FAILURE
        }
    }
}
