//! `paxos-harness bench`: throughput and latency of a real cluster. (Being written.)

/// Flags of `paxos-harness bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}

/// Run `paxos-harness bench`.
pub fn bench_main(_args: BenchArgs) -> std::process::ExitCode {
    eprintln!("not implemented yet");
    std::process::ExitCode::FAILURE
}
