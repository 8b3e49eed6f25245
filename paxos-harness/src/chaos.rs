//! `paxos-harness chaos`: random fault schedules over seeded turmoil runs. (Being written.)

/// Flags of `paxos-harness chaos`.
#[derive(clap::Args, Debug)]
pub struct ChaosArgs {}

/// Run `paxos-harness chaos`.
pub fn chaos_main(_args: ChaosArgs) -> std::process::ExitCode {
    eprintln!("not implemented yet");
    std::process::ExitCode::FAILURE
}
