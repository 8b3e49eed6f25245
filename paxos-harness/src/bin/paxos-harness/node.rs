//! `paxos-harness node`: a standalone node on RocksDB + TCP.
//!
//! `paxos-harness node --id 1 --listen 127.0.0.1:7001 --peers 2=127.0.0.1:7002,3=127.0.0.1:7003
//! --data-dir ./n1` runs one Paxos node until SIGINT (Ctrl-C) or SIGTERM:
//! - **Service**: a replicated key-value map ([`paxos_harness::service`]): `put`, `cas` and
//!   `delete` go through the log (exactly once with a session id), `get` is a linearizable
//!   read that skips the log (ReadIndex: the leader confirms its ballot with a quorum, the
//!   answering node waits until it applied up to the leader's frontier). Plain `propose`
//!   values (UTF-8 strings) are in the log too and change no key. The state is snapshotted
//!   every `--snapshot-every` entries and the log compacted below.
//! - **Storage**: a RocksDB directory at `--data-dir` (created if missing; synced writes). Restart
//!   the node on the same directory and it resumes with everything it promised and accepted.
//! - **Peers**: `--listen` is the Paxos (node-to-node) address, `--peers` lists every *other*
//!   node as `ID=HOST:PORT`. Links are mutual TLS 1.3: `--certs DIR` holds the cluster CA
//!   (`ca.pem`) and this node's certificate and key (`node-<id>.pem`, `node-<id>.key`, made by
//!   `paxos-harness certs`); a peer is known by the node id its certificate names, and every
//!   frame is encrypted and authenticated. Without `--certs` the node refuses to start unless
//!   given `--insecure` (plaintext links anyone who can reach `--listen` can join; it warns at
//!   every start). `--cluster-id` and `--secret-file` (the file's bytes, one trailing newline
//!   stripped, proven with HMAC-SHA256 in every handshake) must match on all nodes.
//! - **Joining**: `--join` starts a node outside a running cluster: `--peers` lists the nodes the
//!   cluster *started* with. It waits until `paxos-harness reconfigure` adds it as a learner
//!   (with `--address ID=` its `--listen`), catches up from the members (snapshot and log
//!   tail), and from then on follows the log; a second change makes it an acceptor. Restart it
//!   with the same flags: its log says what the cluster is now. A founder restarts with its
//!   original `--peers` too.
//! - **Leader mode**: `--elected` (the default) elects the lowest live id as leader, which runs
//!   phase 1 once and then only phase 2 (Multi-Paxos); followers forward proposals to it.
//!   `--leaderless` lets every node propose directly (duelling proposers back off randomly).
//! - **Timing**: one tick is `--tick` (default 5ms); a phase is retried after 50 ticks, a
//!   leader heartbeats every 20 ticks and is suspected after 100 silent ticks, missed decisions
//!   are fetched from peers every 50 ticks.
//! - **Client port**: `--client` (default: the `--listen` host with port + 1000) speaks the
//!   newline-delimited JSON of `paxos_harness::client::protocol`. A follower forwards a
//!   proposal to the leader over the node-to-node link, and again if the leader changes. The
//!   port holds at most `--client-max-connections` (256; at the cap a connection that never
//!   completed a request, else the one idle longest, is closed to make room), closes one idle
//!   for `--client-idle-timeout` (30 s), and buffers at most `--client-max-line` bytes (64 KiB)
//!   of a request; with `--client-token-file` a connection must first prove the token
//!   (`{"auth":{"token":...}}`) or it is closed. The file descriptor limit is raised (toward its hard limit) to hold the cap
//!   beside what peer links and storage need, or the cap is lowered with a warning.
//! - **Logs**: `tracing` to stderr, `info` when `RUST_LOG` is unset.
//!
//! ## What "propose" guarantees
//!
//! A propose request is answered `{"instance":i,"value":v}` only once `v` itself (this request,
//! not an equal value of another) is in the log at `i` and every instance below `i` is decided:
//! acknowledgements come in log order. A request sent with an `id` from a session is applied
//! **exactly once**, however often it is retried (after a timeout, a lost connection, or through
//! another node): a retry is answered with the instance of the first copy. Without an id each
//! request is new, so a retry of it may be applied twice.

use crate::duration;
use crate::server::{self, ClientLimits};
use paxos_core::testing::{AcceptorFaults, ProposerFaults};
use paxos_core::{Config, Fatal, LeaderMode, Node, NodeId, ReadPolicy};
use paxos_harness::client::protocol::MAX_LINE;
use paxos_harness::ports::bind_with_retry;
use paxos_harness::service::{KvService, LogValue};
use paxos_net::{NetConfig, TcpTransport};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a shutting-down node may take to finish its current step.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Flags of `paxos-harness node`.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeArgs {
    /// This node's id (unique in the cluster).
    #[arg(long)]
    pub id: u64,
    /// Address of the Paxos (node-to-node) listener, e.g. 127.0.0.1:7001.
    #[arg(long)]
    pub listen: String,
    /// Every other node as ID=HOST:PORT (their --listen), comma-separated or repeated.
    #[arg(long, value_delimiter = ',', value_parser = parse_peer)]
    pub peers: Vec<(u64, String)>,
    /// Join a running cluster: --peers are the nodes it started with; wait until a
    /// `reconfigure` adds this node (see `paxos-harness reconfigure`).
    #[arg(long)]
    pub join: bool,
    /// RocksDB directory (created if missing); reuse it to restart the node.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Address of the client listener [default: the --listen host, port + 1000].
    #[arg(long)]
    pub client: Option<String>,
    /// Cluster id; nodes with another id are refused.
    #[arg(long, default_value_t = 0)]
    pub cluster_id: u64,
    /// File holding the shared secret every peer must prove (one trailing newline is ignored).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// Directory of this node's TLS credentials: `ca.pem`, `node-<id>.pem`, `node-<id>.key`
    /// (see `paxos-harness certs`). Required unless --insecure.
    #[arg(long, conflicts_with = "insecure")]
    pub certs: Option<PathBuf>,
    /// Client connections held at most; at the cap the one idle longest is closed to make
    /// room (one waiting for its answer never is). Lowered, with a warning, if the file
    /// descriptor limit cannot hold it besides what peer links and storage need.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub client_max_connections: u64,
    /// A client connection that sends no complete request for this long is closed.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub client_idle_timeout: Duration,
    /// Longest client request line in bytes (at most 1 MiB): what one connection may make the
    /// node buffer.
    #[arg(long, default_value_t = 64 * 1024, value_parser = clap::value_parser!(u64).range(64..=1 << 20))]
    pub client_max_line: u64,
    /// File holding the token every client connection must prove first
    /// (`{"auth":{"token":...}}`; one trailing newline is ignored). Without it the client port
    /// is open to anyone who can reach it.
    #[arg(long)]
    pub client_token_file: Option<PathBuf>,
    /// Run the peer links without TLS: unencrypted, and open to anyone who can reach
    /// --listen (unless --secret-file, which authenticates only the handshake). For tests.
    #[arg(long)]
    pub insecure: bool,
    /// Every node proposes directly (no leader).
    #[arg(long, conflicts_with = "elected")]
    pub leaderless: bool,
    /// An elected leader proposes; followers forward to it (the default).
    #[arg(long)]
    pub elected: bool,
    /// Length of one protocol tick (`5ms`; at most 1s).
    #[arg(long, default_value = "5ms", value_parser = tick)]
    pub tick: Duration,
    /// Seed of the backoff jitter [default: from the clock and the process id].
    #[arg(long)]
    pub seed: Option<u64>,
    /// How `get` is answered: `index` (ReadIndex: one quorum round trip per batch of reads)
    /// or `lease` (the leader answers alone while a quorum's lease holds; safe while clocks
    /// drift less than --lease-drift). The same on every node.
    #[arg(long, value_enum, default_value = "index")]
    pub read_policy: ReadPolicyArg,
    /// With `--read-policy lease`: how long a lease lasts (below the leader timeout of 100
    /// ticks, or a dead leader's lease delays the next election).
    #[arg(long, default_value = "300ms", value_parser = duration)]
    pub lease: Duration,
    /// With `--read-policy lease`: the bound on clock drift over one lease.
    #[arg(long, default_value = "30ms", value_parser = duration)]
    pub lease_drift: Duration,
    /// Run this node's clock (what leases are measured with) at this many times real time,
    /// from 0.5 to 2: to test clock drift (leases are safe while two nodes' clocks disagree by
    /// less than --lease-drift over one --lease).
    #[arg(long, default_value_t = 1.0, value_parser = clock_rate)]
    pub clock_rate: f64,
    /// Snapshot the key-value state every this many applied entries and drop the log below
    /// (0: never).
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_every: u64,
    /// Break the node on purpose, to prove a test catches it: `stale-reads` answers `get`
    /// from the local state at once, with no read index.
    #[arg(long = "break", value_enum, hide = true)]
    pub break_on_purpose: Option<Breakage>,
}

/// `--read-policy`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadPolicyArg {
    /// ReadIndex.
    Index,
    /// Leader leases.
    Lease,
}

/// What `--break` breaks.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breakage {
    /// Reads without a barrier: a lagging node (or a deposed leader) answers stale values.
    StaleReads,
}

/// `--tick`: a duration from 1 ms to 1 s.
fn tick(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if d < Duration::from_millis(1) || d > Duration::from_secs(1) {
        return Err(format!("{s} is outside 1ms..=1s"));
    }
    Ok(d)
}

/// `--clock-rate`: a rate from 0.5 to 2.
fn clock_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if !(0.5..=2.0).contains(&rate) {
        return Err(format!("{s} is outside 0.5..=2"));
    }
    Ok(rate)
}

pub(crate) fn parse_peer(s: &str) -> Result<(u64, String), String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("expected ID=HOST:PORT, got {s:?}"))?;
    let id = id
        .trim()
        .parse::<u64>()
        .map_err(|e| format!("bad node id {id:?}: {e}"))?;
    let addr = addr.trim();
    if addr.is_empty() {
        return Err(format!("empty address for node {id}"));
    }
    Ok((id, addr.to_owned()))
}

/// `host:port` with the port moved up by `by`.
fn offset_port(addr: &str, by: u16) -> Result<String, String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr:?} is not HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|e| format!("bad port in {addr:?}: {e}"))?;
    let port = port
        .checked_add(by)
        .ok_or_else(|| format!("port of {addr:?} + {by} overflows"))?;
    Ok(format!("{host}:{port}"))
}

fn default_seed(id: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ u64::from(std::process::id()).rotate_left(32) ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Everything `node` needs, checked.
struct Plan {
    id: NodeId,
    listen: String,
    client: String,
    peers: BTreeMap<NodeId, String>,
    data_dir: PathBuf,
    config: Config,
    net: NetConfig,
    seed: u64,
    clock_rate: f64,
    faults: ProposerFaults,
    /// Started with `--insecure`: warned about at start.
    insecure: bool,
    limits: ClientLimits,
    client_token: Option<Vec<u8>>,
}

/// Why a node without credentials does not start.
const NO_CREDENTIALS: &str = "no TLS credentials: pass --certs DIR (make them with \
     `paxos-harness certs --out DIR --nodes 1,2,3`), or --insecure to run plaintext peer links \
     that anyone who can reach --listen can join";

fn plan(args: NodeArgs) -> Result<Plan, String> {
    let id = NodeId(args.id);
    let mut peers = BTreeMap::new();
    for (peer, addr) in args.peers {
        if peer == args.id {
            return Err(format!("--peers lists this node's own id {peer}"));
        }
        if peers.insert(NodeId(peer), addr).is_some() {
            return Err(format!("--peers lists node {peer} twice"));
        }
    }
    let client = match args.client {
        Some(c) => c,
        None => offset_port(&args.listen, 1000)?,
    };
    let mode = if args.leaderless {
        LeaderMode::Leaderless
    } else {
        LeaderMode::Elected
    };
    // A joiner is given the cluster's initial configuration, which does not name it.
    let founders: Vec<NodeId> = match args.join {
        true => peers.keys().copied().collect(),
        false => peers.keys().copied().chain([id]).collect(),
    };
    let mut config = Config::symmetric(id, founders).with_leader_mode(mode);
    config.joining = args.join;
    config.tick_interval = args.tick;
    config.phase_timeout_ticks = 50;
    config.backoff_ticks = (5, 40);
    config.heartbeat_ticks = 20;
    config.leader_timeout_ticks = 100;
    config.catch_up_ticks = 50;
    config.snapshot_every_entries = args.snapshot_every;
    config.read_policy = match args.read_policy {
        ReadPolicyArg::Index => ReadPolicy::ReadIndex,
        ReadPolicyArg::Lease => ReadPolicy::Lease {
            duration: args.lease,
            max_drift: args.lease_drift,
        },
    };
    config.validate().map_err(|e| e.to_string())?;
    let seed = args.seed.unwrap_or_else(|| default_seed(args.id));
    let mut net = NetConfig::new(id, peers.clone())
        .with_cluster_id(args.cluster_id)
        .with_seed(seed);
    if let Some(path) = &args.secret_file {
        net = net.with_secret(crate::read_secret_file(path)?.into_bytes());
    }
    let client_token = match &args.client_token_file {
        Some(path) => Some(crate::read_secret_file(path)?.into_bytes()),
        None => None,
    };
    match &args.certs {
        Some(dir) => {
            let credentials = paxos_net::TlsCredentials::load(dir, id)
                .map_err(|e| format!("--certs {}: {e}", dir.display()))?;
            net = net.with_tls(credentials);
        }
        None if args.insecure => {}
        None => return Err(NO_CREDENTIALS.into()),
    }
    net.validate().map_err(|e| e.to_string())?;
    Ok(Plan {
        id,
        listen: args.listen,
        client,
        peers,
        data_dir: args.data_dir,
        config,
        net,
        seed,
        clock_rate: args.clock_rate,
        faults: ProposerFaults {
            read_without_barrier: args.break_on_purpose == Some(Breakage::StaleReads),
            ..ProposerFaults::default()
        },
        insecure: args.insecure,
        limits: ClientLimits {
            max_connections: usize::try_from(args.client_max_connections).unwrap_or(usize::MAX),
            idle_timeout: args.client_idle_timeout,
            max_line: usize::try_from(args.client_max_line).unwrap_or(MAX_LINE),
        },
        client_token,
    })
}

/// File descriptors kept for everything but client connections: the listeners, RocksDB's
/// files, logs, and per peer an inbound and an outbound link with room for a redial.
fn reserved_descriptors(peers: usize) -> u64 {
    512 + 4 * peers as u64
}

/// The client connection cap that fits a descriptor limit of `soft` (raised up to `hard` when
/// that helps), keeping `reserved` for the rest: `(new soft limit, cap)`, or `None` if not
/// even a few client connections fit.
fn descriptor_budget(soft: u64, hard: u64, want: u64, reserved: u64) -> Option<(u64, u64)> {
    let need = want.saturating_add(reserved);
    let soft = soft.max(need.min(hard));
    let cap = want.min(soft.saturating_sub(reserved));
    (cap >= 8).then_some((soft, cap))
}

/// Raise the process's descriptor limit for `limits` and `peers`, or lower the client cap to
/// what fits, so client connections can never take what peer links need.
fn reserve_descriptors(limits: &mut ClientLimits, peers: usize) -> Result<(), String> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)
        .map_err(|e| format!("read the descriptor limit: {e}"))?;
    let reserved = reserved_descriptors(peers);
    let want = limits.max_connections as u64;
    let (new_soft, cap) = descriptor_budget(soft, hard, want, reserved).ok_or_else(|| {
        format!(
            "the file descriptor limit ({soft}, at most {hard}) leaves no room for client \
             connections besides the {reserved} kept for peer links and storage: raise it \
             (ulimit -n)"
        )
    })?;
    if new_soft != soft {
        setrlimit(Resource::RLIMIT_NOFILE, new_soft, hard)
            .map_err(|e| format!("raise the descriptor limit to {new_soft}: {e}"))?;
    }
    if cap < want {
        tracing::warn!(
            limit = new_soft,
            reserved,
            "--client-max-connections {want} lowered to {cap}: the file descriptor limit holds no more"
        );
    }
    limits.max_connections = usize::try_from(cap).unwrap_or(usize::MAX);
    Ok(())
}

/// Run `paxos-harness node`: one node on RocksDB + TCP until SIGINT or SIGTERM.
///
/// The node runs on a single-threaded tokio runtime. With `RUST_LOG` unset, its logs go to
/// stderr at `info` level (the binary's global default is `error`).
pub fn main(args: NodeArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paxos-harness node: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let run = || runtime.block_on(run_node(args));
    let result = if std::env::var_os("RUST_LOG").is_none() {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .finish();
        tracing::subscriber::with_default(subscriber, run)
    } else {
        run()
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("paxos-harness node: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_node(args: NodeArgs) -> Result<(), String> {
    let plan = plan(args)?;
    #[cfg(feature = "rocksdb")]
    {
        let dir = plan.data_dir.clone();
        let storage = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("create data dir {}: {e}", dir.display()))?;
            paxos_storage::RocksDbStorage::<LogValue>::open(&dir)
                .map_err(|e| format!("open RocksDB in {}: {e}", dir.display()))
        })
        .await
        .map_err(|e| format!("opening storage panicked: {e}"))??;
        serve(plan, storage).await
    }
    #[cfg(not(feature = "rocksdb"))]
    {
        let _ = plan;
        Err("this binary was built without the `rocksdb` feature".into())
    }
}

/// How the node's main loop ended.
enum End {
    Signal(&'static str),
    NodeStopped(Result<Result<(), Fatal>, tokio::task::JoinError>),
}

#[cfg_attr(not(feature = "rocksdb"), allow(dead_code))]
async fn serve<S: paxos_core::Storage<LogValue>>(plan: Plan, storage: S) -> Result<(), String> {
    let Plan {
        id,
        listen,
        client,
        peers,
        data_dir,
        config,
        net,
        seed,
        clock_rate,
        faults,
        insecure,
        mut limits,
        client_token,
    } = plan;
    reserve_descriptors(&mut limits, peers.len())?;
    if insecure {
        tracing::warn!(
            node = %id,
            %listen,
            "--insecure: peer links are plaintext; anyone who can reach the listen address can \
             read them{}",
            if net.is_authenticated() {
                " and inject frames after a handshake"
            } else {
                ", join as any node and write into the log"
            }
        );
    }
    let transport = bind_transport(&listen, net).await?;
    let client_listener = bind_client(&client).await?;
    let mode = config.leader_mode;
    let read_policy = config.read_policy;
    let (node, handle) = Node::new(config, storage, transport, seed).map_err(|e| e.to_string())?;
    if faults != ProposerFaults::default() {
        tracing::warn!(node = %id, ?faults, "broken on purpose (--break)");
    }
    let node = node
        .with_state_machine(KvService::new())
        .with_clock_rate(clock_rate)
        .with_faults(AcceptorFaults::default(), faults);
    let mut node_task = tokio::spawn(node.run());
    if client_token.is_none() {
        tracing::info!(node = %id, %client, "client port open to anyone who can reach it (no --client-token-file)");
    }
    let server = Arc::new(server::Server::new(handle.clone(), limits, client_token));
    let serve_task = tokio::spawn(server.serve(client_listener));
    tracing::info!(
        node = %id,
        %listen,
        %client,
        data_dir = %data_dir.display(),
        peers = %peers
            .iter()
            .map(|(p, a)| format!("{}={a}", p.0))
            .collect::<Vec<_>>()
            .join(","),
        mode = ?mode,
        reads = ?read_policy,
        client_max_connections = limits.max_connections,
        "node running"
    );
    let end = tokio::select! {
        signal = shutdown_signal() => End::Signal(signal),
        result = &mut node_task => End::NodeStopped(result),
    };
    serve_task.abort();
    match end {
        End::Signal(signal) => {
            tracing::info!(node = %id, signal, "shutting down");
            handle.shutdown().await;
            match tokio::time::timeout(SHUTDOWN_GRACE, node_task).await {
                Ok(Ok(Ok(()))) => {
                    tracing::info!(node = %id, "stopped");
                    Ok(())
                }
                Ok(Ok(Err(e))) => Err(format!("node failed: {e}")),
                Ok(Err(e)) => Err(format!("node task failed: {e}")),
                Err(_) => Err("node did not stop in time".into()),
            }
        }
        End::NodeStopped(Ok(Ok(()))) => Err("node stopped unexpectedly".into()),
        End::NodeStopped(Ok(Err(e))) => Err(format!("node failed: {e}")),
        End::NodeStopped(Err(e)) => Err(format!("node task failed: {e}")),
    }
}

async fn bind_transport(listen: &str, net: NetConfig) -> Result<TcpTransport<LogValue>, String> {
    bind_with_retry(listen, || {
        TcpTransport::<LogValue>::bind(listen, net.clone())
    })
    .await
    .map_err(|e| e.to_string())
}

async fn bind_client(addr: &str) -> Result<TcpListener, String> {
    bind_with_retry(addr, || TcpListener::bind(addr))
        .await
        .map_err(|e| format!("bind client address {addr}: {e}"))
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM; names the signal.
async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                () = ctrl_c => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                ctrl_c.await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        ctrl_c.await;
        "Ctrl-C"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_and_ports_parse() {
        assert_eq!(
            parse_peer("2=127.0.0.1:7002"),
            Ok((2, "127.0.0.1:7002".to_owned()))
        );
        assert!(parse_peer("x=127.0.0.1:7002").is_err());
        assert_eq!(clock_rate("0.97"), Ok(0.97));
        assert!(clock_rate("0.4").is_err() && clock_rate("2.5").is_err());
        assert!(clock_rate("NaN").is_err() && clock_rate("fast").is_err());
        assert!(parse_peer("127.0.0.1:7002").is_err());
        assert_eq!(
            offset_port("127.0.0.1:7001", 1000),
            Ok("127.0.0.1:8001".to_owned())
        );
        assert_eq!(offset_port("[::1]:7001", 1000), Ok("[::1]:8001".to_owned()));
        assert!(offset_port("h:65000", 1000).is_err());
    }

    #[test]
    fn plan_defaults() {
        let args = NodeArgs {
            id: 1,
            listen: "127.0.0.1:7001".into(),
            peers: vec![(2, "127.0.0.1:7002".into()), (3, "127.0.0.1:7003".into())],
            data_dir: "n1".into(),
            join: false,
            client: None,
            cluster_id: 0,
            secret_file: None,
            certs: None,
            insecure: true,
            client_max_connections: 256,
            client_idle_timeout: Duration::from_secs(30),
            client_max_line: 65536,
            client_token_file: None,
            leaderless: false,
            elected: false,
            tick: Duration::from_millis(5),
            seed: Some(1),
            snapshot_every: 10_000,
            break_on_purpose: None,
            read_policy: ReadPolicyArg::Index,
            lease: Duration::from_millis(300),
            lease_drift: Duration::from_millis(30),
            clock_rate: 1.0,
        };
        let founder = plan(args.clone()).expect("valid");
        assert_eq!(founder.client, "127.0.0.1:8001");
        assert_eq!(founder.config.leader_mode, LeaderMode::Elected);
        assert_eq!(founder.config.nodes.len(), 3);
        // A joiner is given the founders (its peers) as the initial configuration.
        let joiner = plan(NodeArgs {
            id: 4,
            join: true,
            ..args.clone()
        })
        .expect("a joiner");
        assert!(joiner.config.joining);
        assert_eq!(joiner.config.nodes, [2, 3].map(NodeId).into());
        // No credentials and no --insecure: refused, naming the way out.
        let open = plan(NodeArgs {
            insecure: false,
            ..args.clone()
        });
        assert_eq!(open.err().as_deref(), Some(NO_CREDENTIALS));
        // Credentials from `certs`: the links run TLS.
        let dir = tempfile::tempdir().expect("temp dir");
        paxos_harness::credentials::make(dir.path(), 0, &[NodeId(1)]).expect("certs");
        let secure = plan(NodeArgs {
            insecure: false,
            certs: Some(dir.path().into()),
            ..args
        })
        .expect("with credentials");
        assert!(secure.net.tls.is_some() && !secure.insecure);
    }

    #[test]
    fn client_connections_never_take_the_descriptors_peers_need() {
        // Room under the soft limit: as asked.
        assert_eq!(descriptor_budget(4096, 4096, 256, 520), Some((4096, 256)));
        // Raised toward the hard limit as far as needed, no further.
        assert_eq!(
            descriptor_budget(1024, 65536, 3000, 520),
            Some((3520, 3000))
        );
        // Capped by the hard limit: the client cap gives way, the reserve does not.
        assert_eq!(descriptor_budget(1024, 1024, 1100, 520), Some((1024, 504)));
        assert_eq!(descriptor_budget(1024, 2048, 4000, 520), Some((2048, 1528)));
        // Nothing left for clients: refuse to start.
        assert_eq!(descriptor_budget(256, 256, 256, 520), None);
        assert_eq!(descriptor_budget(527, 527, 256, 520), None);
        assert_eq!(descriptor_budget(528, 528, 256, 520), Some((528, 8)));
        assert_eq!(reserved_descriptors(2), 520);
    }
}
