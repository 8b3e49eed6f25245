//! `paxos-harness node` and `paxos-harness propose`: a standalone node on RocksDB + TCP, and a
//! client that proposes to it. (Being written.)

/// Flags of `paxos-harness node`.
#[derive(clap::Args, Debug)]
pub struct NodeArgs {}

/// Flags of `paxos-harness propose`.
#[derive(clap::Args, Debug)]
pub struct ProposeArgs {}

/// Run `paxos-harness node`.
pub fn node_main(_args: NodeArgs) -> std::process::ExitCode {
    eprintln!("not implemented yet");
    std::process::ExitCode::FAILURE
}

/// Run `paxos-harness propose`.
pub fn propose_main(_args: ProposeArgs) -> std::process::ExitCode {
    eprintln!("not implemented yet");
    std::process::ExitCode::FAILURE
}
