//! `paxos-harness`: run the Paxos suites against any storage and transport, seeded and
//! repeatable; run chaos windows, a benchmark, a real node and its client.
//!
//! Everything about the command line lives in this binary: argument parsing (one module per
//! subcommand), the node daemon and the benchmark. The checking itself is the
//! `paxos_harness` library, which your own tests can call.

mod admission;
mod bench;
mod certs;
mod chaos;
mod jepsen;
mod kv;
mod node;
mod propose;
mod reconfigure;
mod run;
mod server;
mod soak;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "paxos-harness",
    version,
    about = "Run the Paxos test suites, seeded and repeatable."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run suites (all of them by default) and print `N passed, M failed` last.
    Run(run::RunArgs),
    /// List suites and scenarios.
    List,
    /// Run one Paxos node on RocksDB + TCP until Ctrl-C.
    Node(node::NodeArgs),
    /// Make TLS credentials for a cluster: its CA and a certificate per node.
    Certs(certs::CertsArgs),
    /// Propose a value to a running node and print the chosen value and instance.
    Propose(propose::ProposeArgs),
    /// Change a running cluster's membership: add (learner, then acceptor), remove, replace.
    Reconfigure(reconfigure::ReconfigureArgs),
    /// Put, get, cas or delete a key on a running node's key-value service.
    Kv(kv::KvArgs),
    /// Random fault schedules over seeded simulations, checked by the invariant observer.
    Chaos(chaos::ChaosArgs),
    /// Throughput and latency of a real in-process cluster.
    Bench(bench::BenchArgs),
    /// Memory and disk over millions of appends with snapshots, and a node catching up.
    Soak(soak::SoakArgs),
    /// Jepsen-style test: real node processes under kills, pauses and partitions, the
    /// clients' history checked for linearizability.
    Jepsen(jepsen::JepsenArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if !cfg!(feature = "rocksdb")
        && let Some(what) = needs_rocksdb(&cli)
    {
        return usage_error(&format!(
            "{what} needs the `rocksdb` feature, which this build lacks; run: {}",
            with_rocksdb_command()
        ));
    }
    match cli.command {
        None => run::run(&run::RunArgs::default()),
        Some(Command::Run(a)) => run::run(&a),
        Some(Command::List) => run::list(),
        Some(Command::Node(a)) => node::main(a),
        Some(Command::Certs(a)) => certs::main(a),
        Some(Command::Propose(a)) => propose::main(a),
        Some(Command::Reconfigure(a)) => reconfigure::main(a),
        Some(Command::Kv(a)) => kv::main(a),
        Some(Command::Chaos(a)) => chaos::main(a),
        Some(Command::Bench(a)) => bench::main(a),
        Some(Command::Soak(a)) => soak::main(a),
        Some(Command::Jepsen(a)) => jepsen::main(a),
    }
}

/// A command line that cannot run: one line on stderr, exit code 2 (as clap's own errors).
fn usage_error(message: &str) -> ExitCode {
    eprintln!("paxos-harness: {message}");
    ExitCode::from(2)
}

/// Exit code 1 unless nothing failed.
fn exit_code(failed: u64) -> ExitCode {
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// What in `cli` needs RocksDB storage, if anything.
fn needs_rocksdb(cli: &Cli) -> Option<&'static str> {
    use paxos_harness::cluster::StorageKind::Rocksdb;
    match &cli.command {
        Some(Command::Run(a)) if a.matrix => Some("--matrix (it includes rocksdb)"),
        Some(Command::Run(a)) if a.storage == Rocksdb => Some("--storage rocksdb"),
        Some(Command::Chaos(a)) if a.storage == Rocksdb => Some("--storage rocksdb"),
        Some(Command::Bench(a)) if a.storage == Rocksdb => Some("--storage rocksdb"),
        Some(Command::Soak(a)) if a.storage == Rocksdb => Some("--storage rocksdb"),
        Some(Command::Node(_)) => Some("`node` (it stores its state in RocksDB)"),
        Some(Command::Jepsen(_)) => Some("`jepsen` (it runs `node` processes)"),
        _ => None,
    }
}

/// This very command line, built with the `rocksdb` feature.
fn with_rocksdb_command() -> String {
    let args: Vec<String> = std::env::args().skip(1).map(|a| shell_quote(&a)).collect();
    format!(
        "cargo run -p paxos-harness --features rocksdb -- {}",
        args.join(" ")
    )
}

/// `arg` as one shell word.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=,@%+".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// A secret read from a file (`--secret-file`, `--client-token-file`, `--token-file`): its
/// text without one trailing newline; an empty or unreadable file is an error.
pub(crate) fn read_secret_file(path: &std::path::Path) -> Result<String, String> {
    let mut text =
        std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(text)
}

/// A clap parser for one of `names`, parsed with the type's own `FromStr` (the library's
/// kinds carry no clap types).
fn one_of<T>(names: impl IntoIterator<Item = &'static str>) -> impl TypedValueParser<Value = T>
where
    T: FromStr + Clone + Send + Sync + 'static,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    PossibleValuesParser::new(names).try_map(|s| s.parse::<T>())
}

/// A duration with its unit, as people write them: `3s`, `500ms`, `1m 30s` (humantime).
fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write it with a unit: 3s, 500ms)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units() {
        assert_eq!(duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(duration("3").is_err(), "a bare number has no unit");
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_quote("--storage"), "--storage");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
