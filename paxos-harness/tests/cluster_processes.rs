//! Real `paxos-harness node` processes on RocksDB + TCP. Three of them: 1,000 proposals through the
//! client port while one node is SIGKILLed and restarted, then another, then the leader is
//! paused (SIGSTOP) for 4 s and resumed. Every acknowledged value
//! must be in every node's log at the acknowledged instance, the logs must agree, and no value
//! is in the applied log twice: each worker retries a request, through any node, under the
//! same id of its session, and the log applies it once. And three growing to five and
//! shrinking back to three under load, through `paxos-harness reconfigure`.

#![cfg(feature = "rocksdb")]

use paxos_core::{ClientId, ProposalId};
use paxos_harness::client::Client;
use paxos_harness::client::protocol::Decision;
use paxos_harness::ports::free_port;
use paxos_harness::wait::{Look, eventually};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{Instant, sleep, timeout};

const NODES: usize = 3;
const VALUES: usize = 1000;
/// Concurrent client connections (proposals in flight).
const IN_FLIGHT: usize = 8;
/// Acknowledgements after which: node 1 is killed, restarted; node 2 is killed, restarted.
const KILL_1: usize = 250;
const RESTART_1: usize = 400;
const KILL_2: usize = 600;
const RESTART_2: usize = 750;
/// Acknowledgements after which the leader (node 1) is paused (SIGSTOP) for [`PAUSE`].
const PAUSE_1: usize = 850;
/// Longer than a leader timeout and than a node's old re-proposal timer (3 s).
const PAUSE: Duration = Duration::from_secs(4);

struct Proc {
    id: u64,
    /// Started with `--join`: not one of the nodes the cluster started with.
    join: bool,
    listen: String,
    client: String,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// The node processes; dropping it SIGKILLs every one still running (and, when the test is
/// failing, prints the end of each node's log).
struct Cluster {
    _dir: tempfile::TempDir,
    nodes: Vec<Proc>,
    /// Flags every node gets besides its addresses.
    flags: Vec<String>,
    /// The client token the nodes ask for (`--client-token-file`), if any.
    token: Option<String>,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster::with(NODES, NODES, &[])
    }

    /// `total` nodes, of which the first `founders` make up the initial configuration and the
    /// others start with `--join`.
    fn with(total: usize, founders: usize, flags: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        // The nodes' credentials, made the way the README makes them.
        let ids: Vec<String> = (1..=total).map(|id| id.to_string()).collect();
        let made = Command::new(env!("CARGO_BIN_EXE_paxos-harness"))
            .args(["certs", "--cluster-id", "6", "--nodes", &ids.join(",")])
            .arg("--out")
            .arg(dir.path().join("certs"))
            .output()
            .expect("run paxos-harness certs");
        assert!(made.status.success(), "certs: {made:?}");
        // Below the ephemeral range: a killed node's port must still be free at its restart.
        let ports: Vec<u16> = (0..2 * total)
            .map(|_| free_port().expect("a free port"))
            .collect();
        let nodes = (0..total)
            .map(|i| {
                let id = i as u64 + 1;
                Proc {
                    id,
                    join: i >= founders,
                    listen: format!("127.0.0.1:{}", ports[i]),
                    client: format!("127.0.0.1:{}", ports[total + i]),
                    data_dir: dir.path().join(format!("n{id}")),
                    log: dir.path().join(format!("n{id}.log")),
                    child: None,
                }
            })
            .collect();
        Cluster {
            _dir: dir,
            nodes,
            flags: flags.iter().map(|f| f.to_string()).collect(),
            token: None,
        }
    }

    fn clients(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.client.clone()).collect()
    }

    /// Start node `i`; its peers are the other founders (a joiner: all of them).
    fn start(&mut self, i: usize) {
        let n = &self.nodes[i];
        let peers = self
            .nodes
            .iter()
            .filter(|p| !p.join && p.id != n.id)
            .map(|p| format!("{}={}", p.id, p.listen))
            .collect::<Vec<_>>()
            .join(",");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .expect("open node log");
        let child = Command::new(env!("CARGO_BIN_EXE_paxos-harness"))
            .args(["node", "--id", &n.id.to_string(), "--listen", &n.listen])
            .args(["--peers", &peers])
            .args(["--client", &n.client, "--cluster-id", "6"])
            .arg("--data-dir")
            .arg(&n.data_dir)
            .arg("--certs")
            .arg(self._dir.path().join("certs"))
            .args(n.join.then_some("--join"))
            .args(&self.flags)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn paxos-harness node");
        self.nodes[i].child = Some(child);
    }

    /// Send `signal` (`STOP`, `CONT`) to node `i`'s process.
    fn signal(&self, i: usize, signal: &str) {
        let pid = self.nodes[i]
            .child
            .as_ref()
            .map(Child::id)
            .expect("running");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            child.kill().expect("SIGKILL node");
            let _ = child.wait();
        }
    }

    /// Wait until node `i` answers a status request.
    async fn wait_ready(&self, i: usize) {
        let addr = &self.nodes[i].client;
        eventually(
            Duration::from_secs(30),
            Duration::from_millis(50),
            || async {
                let probe = async {
                    let mut c = Client::connect_with(addr, self.token.as_deref())
                        .await
                        .ok()?;
                    c.status().await.ok()
                };
                Ok(match timeout(Duration::from_secs(1), probe).await {
                    Ok(Some(_)) => Look::Done(()),
                    _ => Look::Wait(format!("node {} never came up", i + 1)),
                })
            },
        )
        .await
        .expect("node up");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        if std::thread::panicking() {
            for n in &self.nodes {
                eprintln!(
                    "---- last lines of node {} ({}) ----",
                    n.id,
                    n.log.display()
                );
                if let Ok(f) = File::open(&n.log) {
                    let lines: Vec<String> =
                        BufReader::new(f).lines().map_while(Result::ok).collect();
                    for l in &lines[lines.len().saturating_sub(40)..] {
                        eprintln!("{l}");
                    }
                }
            }
        }
    }
}

/// The writers' shared state: which value to write next, and what was acknowledged when.
struct Load {
    /// Values `next..limit` are still to write; storing `limit` here stops the writers.
    next: AtomicUsize,
    limit: usize,
    acks: Mutex<Vec<Ack>>,
    acked: AtomicUsize,
}

/// One acknowledged write.
#[derive(Clone, Debug)]
struct Ack {
    value: String,
    instance: u64,
    at: Instant,
}

impl Load {
    fn new(limit: usize) -> Arc<Load> {
        Arc::new(Load {
            next: AtomicUsize::new(0),
            limit,
            acks: Mutex::new(Vec::new()),
            acked: AtomicUsize::new(0),
        })
    }

    /// Writers take no new value after this.
    fn stop(&self) {
        self.next.store(self.limit, Ordering::SeqCst);
    }

    fn acked(&self) -> usize {
        self.acked.load(Ordering::SeqCst)
    }

    /// The acknowledged writes as (value, instance).
    fn acks(&self) -> Vec<(String, u64)> {
        let acks = self.acks.lock().expect("acks");
        acks.iter().map(|a| (a.value.clone(), a.instance)).collect()
    }

    /// The longest time without an acknowledgement between `from` and `to`.
    fn longest_pause(&self, from: Instant, to: Instant) -> Duration {
        let acks = self.acks.lock().expect("acks");
        let mut times: Vec<Instant> = acks.iter().map(|a| a.at).collect();
        times.sort();
        let mut last = from;
        let mut longest = Duration::ZERO;
        for t in times
            .into_iter()
            .filter(|t| *t > from && *t <= to)
            .chain([to])
        {
            longest = longest.max(t - last);
            last = t;
        }
        longest
    }
}

/// Propose values until [`Load::limit`] (a shared counter) until each is acknowledged, moving
/// to the next node whenever the current one fails, and sending a value again always under its
/// one id.
async fn worker(w: usize, clients: Arc<Vec<String>>, load: Arc<Load>) -> Result<(), String> {
    let mut target = w % clients.len();
    let mut conn: Option<Client> = None;
    let mut session: Option<ClientId> = None;
    loop {
        let i = load.next.fetch_add(1, Ordering::SeqCst);
        if i >= load.limit {
            return Ok(());
        }
        let value = format!("w{w}-v{i:04}");
        let mut failures = 0;
        loop {
            if conn.is_none() {
                match timeout(Duration::from_secs(1), Client::connect(&clients[target])).await {
                    Ok(Ok(c)) => conn = Some(c),
                    _ => {
                        failures += 1;
                        target = (target + 1) % clients.len();
                        sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
            let Some(c) = conn.as_mut() else { continue };
            if session.is_none() {
                session = timeout(Duration::from_secs(2), c.session())
                    .await
                    .ok()
                    .and_then(Result::ok);
            }
            let Some(client) = session else {
                failures += 1;
                conn = None;
                target = (target + 1) % clients.len();
                continue;
            };
            let id = ProposalId {
                client,
                seq: i as u64,
            };
            match timeout(
                Duration::from_secs(12),
                c.append(id, &value, Some(Duration::from_secs(10))),
            )
            .await
            {
                Ok(Ok(instance)) => {
                    let at = Instant::now();
                    load.acks.lock().expect("acks").push(Ack {
                        value,
                        instance,
                        at,
                    });
                    load.acked.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                Ok(Err(_)) | Err(_) => {
                    failures += 1;
                    conn = None;
                    target = (target + 1) % clients.len();
                    sleep(Duration::from_millis(50)).await;
                }
            }
            if failures > 100 {
                return Err(format!("worker {w}: {value} failed {failures} times"));
            }
        }
    }
}

async fn wait_acked(load: &Load, n: usize) {
    eventually(
        Duration::from_secs(120),
        Duration::from_millis(5),
        || async {
            Ok(match load.acked() {
                done if done >= n => Look::Done(()),
                done => Look::Wait(format!("{done} of {n} acknowledgements")),
            })
        },
    )
    .await
    .expect("acknowledgements arrive");
}

async fn decisions(addr: &str) -> Option<BTreeMap<u64, String>> {
    let work = async {
        let mut c = Client::connect(addr).await.ok()?;
        let log: Vec<Decision> = c.decisions(0).await.ok()?;
        // No-ops carry no value; the node leaves duplicates of a request out.
        Some(
            log.into_iter()
                .filter_map(|d| Some((d.instance, d.value?)))
                .collect(),
        )
    };
    timeout(Duration::from_secs(5), work).await.ok().flatten()
}

/// Wait until the node at each of `clients` holds every acknowledged value at its instance
/// (restarted and joined nodes catch up), then check that the logs agree and that no value
/// is applied twice. Returns the applied length every node holds.
async fn check_logs(clients: &[String], acks: &[(String, u64)]) -> usize {
    // Every node must learn every acknowledged value at its instance (restarted nodes catch up).
    let logs = eventually(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let mut logs = Vec::new();
            for addr in clients.iter() {
                logs.push(decisions(addr).await.unwrap_or_default());
            }
            let mut missing = Vec::new();
            for (n, log) in logs.iter().enumerate() {
                let lost: Vec<_> = acks
                    .iter()
                    .filter(|(v, i)| log.get(i) != Some(v))
                    .take(5)
                    .collect();
                if !lost.is_empty() {
                    missing.push(format!(
                        "{}: {} decisions, missing or different (first 5): {lost:?}",
                        clients[n],
                        log.len()
                    ));
                }
            }
            Ok(match missing.is_empty() {
                true => Look::Done(logs),
                false => Look::Wait(missing.join("; ")),
            })
        },
    )
    .await
    .expect("every acknowledged value in every node's log");

    // Agreement: any instance decided on two nodes has one value, so the logs are identical over
    // their common prefix (and beyond, wherever both have a decision).
    for (a, la) in logs.iter().enumerate() {
        for (b, lb) in logs.iter().enumerate().skip(a + 1) {
            for (i, va) in la {
                if let Some(vb) = lb.get(i) {
                    assert_eq!(
                        va, vb,
                        "{} and {} disagree at instance {i}",
                        clients[a], clients[b]
                    );
                }
            }
        }
    }
    // The applied logs (no-ops and duplicates left out) agree over their common length.
    let common = logs.iter().map(BTreeMap::len).min().unwrap_or(0);
    let slices: Vec<Vec<&String>> = logs
        .iter()
        .map(|l| l.values().take(common).collect())
        .collect();
    assert!(slices.windows(2).all(|w| w[0] == w[1]));
    let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
    for v in logs[0].values() {
        *counts.entry(v).or_default() += 1;
    }
    let duplicates: Vec<&&String> = counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(v, _)| v)
        .collect();
    assert!(
        duplicates.is_empty(),
        "applied twice despite one id per value: {duplicates:?}"
    );
    common
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_survive_sigkill_and_restart() {
    let started = Instant::now();
    let mut cluster = Cluster::new();
    for i in 0..NODES {
        cluster.start(i);
    }
    for i in 0..NODES {
        cluster.wait_ready(i).await;
    }
    let clients = Arc::new(cluster.clients());
    let load = Load::new(VALUES);
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|w| tokio::spawn(worker(w, clients.clone(), load.clone())))
        .collect();

    // Faults, one node down at a time; a majority stays up throughout.
    let faults = async {
        wait_acked(&load, KILL_1).await;
        cluster.kill(0);
        eprintln!("killed node 1 at {} acks", load.acked());
        wait_acked(&load, RESTART_1).await;
        cluster.start(0);
        cluster.wait_ready(0).await;
        eprintln!("node 1 back at {} acks", load.acked());
        wait_acked(&load, KILL_2).await;
        cluster.kill(1);
        eprintln!("killed node 2 at {} acks", load.acked());
        wait_acked(&load, RESTART_2).await;
        cluster.start(1);
        cluster.wait_ready(1).await;
        eprintln!("node 2 back at {} acks", load.acked());
        wait_acked(&load, PAUSE_1).await;
        cluster.signal(0, "STOP");
        eprintln!("paused node 1 at {} acks", load.acked());
        sleep(PAUSE).await;
        cluster.signal(0, "CONT");
        eprintln!("node 1 resumed at {} acks", load.acked());
    };
    let proposals = async {
        for w in workers {
            w.await.expect("worker panicked").expect("worker failed");
        }
    };
    // Joined, so a failing worker fails the test at once even while `faults` waits.
    let run = async { tokio::join!(faults, proposals) };
    timeout(Duration::from_secs(120), run)
        .await
        .expect("proposals did not finish in 120 s");
    let proposing = started.elapsed();
    let acks = load.acks();
    assert_eq!(acks.len(), VALUES);
    let common = check_logs(&clients, &acks).await;
    let max_acked = acks.iter().map(|(_, i)| *i).max().unwrap_or(0);
    eprintln!(
        "{VALUES} values acknowledged in {:.1?}; {common} applied on every node (highest acked \
         instance {max_acked}), none twice; total {:.1?}",
        proposing,
        started.elapsed()
    );
}

/// Run `paxos-harness reconfigure --nodes NODES ARGS...`; its one line of output.
fn reconfigure(nodes: &str, args: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_paxos-harness"))
        .arg("reconfigure")
        .args(["--nodes", nodes])
        .args(args)
        .output()
        .expect("run paxos-harness reconfigure");
    let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success(),
        "reconfigure {args:?} failed: {said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    said
}

/// Three processes grow to five and shrink back to three while 8 writers keep writing: two
/// nodes started with `--join` are added as learners, then as acceptors, then two founders are
/// removed, each change made with `paxos-harness reconfigure` (the admin command). Every
/// acknowledged write is then in the log of each final member, the logs agree and none is
/// applied twice; the longest pause in acknowledgements around each change is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_grow_to_five_and_shrink_to_three_under_load() {
    // The whole log stays, so every write can be checked on every node (snapshots are the
    // harness suites' business).
    let mut cluster = Cluster::with(5, 3, &["--snapshot-every", "0"]);
    for i in 0..5 {
        cluster.start(i);
    }
    for i in 0..5 {
        cluster.wait_ready(i).await;
    }
    let clients = Arc::new(cluster.clients());
    // No limit but the stop at the end (far from wrapping the counter).
    let load = Load::new(1 << 40);
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|w| tokio::spawn(worker(w, clients.clone(), load.clone())))
        .collect();
    let started = Instant::now();
    let changes = async {
        let addresses = format!(
            "4={},5={}",
            cluster.nodes[3].listen, cluster.nodes[4].listen
        );
        let steps: [(&str, Vec<&str>); 3] = [
            (
                "epoch 1: acceptors 1,2,3, learners 4,5",
                vec![
                    "--acceptors",
                    "1,2,3",
                    "--learners",
                    "4,5",
                    "--address",
                    &addresses,
                ],
            ),
            (
                "epoch 2: acceptors 1,2,3,4,5, learners none",
                vec!["--acceptors", "1,2,3,4,5"],
            ),
            (
                "epoch 3: acceptors 3,4,5, learners none",
                vec!["--acceptors", "3,4,5"],
            ),
        ];
        let mut pauses = Vec::new();
        for (expected, args) in steps {
            wait_acked(&load, load.acked() + 300).await;
            let before = Instant::now();
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let nodes = clients.join(",");
            let said = tokio::task::spawn_blocking(move || reconfigure(&nodes, &args))
                .await
                .expect("reconfigure thread");
            assert_eq!(said, expected);
            let took = before.elapsed();
            wait_acked(&load, load.acked() + 300).await;
            pauses.push((expected, took, load.longest_pause(before, Instant::now())));
        }
        load.stop();
        pauses
    };
    let writes = async {
        for w in workers {
            w.await.expect("worker panicked").expect("worker failed");
        }
    };
    let (pauses, ()) = timeout(Duration::from_secs(120), async {
        tokio::join!(changes, writes)
    })
    .await
    .expect("changes and writes did not finish in 120 s");
    let elapsed = started.elapsed();
    let acks = load.acks();
    // The final members hold every acknowledged write; the removed founders are left out.
    let common = check_logs(&clients[2..], &acks).await;
    eprintln!(
        "{} writes acknowledged in {elapsed:.1?} ({:.0}/s) by {IN_FLIGHT} writers; {common} \
         applied on every final member",
        acks.len(),
        acks.len() as f64 / elapsed.as_secs_f64()
    );
    for (change, took, pause) in pauses {
        eprintln!(
            "{change}: in force after {took:.1?}, longest pause in acknowledgements {pause:.1?}"
        );
    }
}

/// The node binary cannot be started open by accident: without --certs it refuses, naming
/// the way out; --insecure starts it, with a warning (at every start).
#[test]
fn a_node_without_credentials_refuses_to_start_and_insecure_warns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = |extra: &[&str]| {
        let listen = format!("127.0.0.1:{}", free_port().expect("a free port"));
        let client = format!("127.0.0.1:{}", free_port().expect("a free port"));
        Command::new(env!("CARGO_BIN_EXE_paxos-harness"))
            .args([
                "node", "--id", "1", "--listen", &listen, "--client", &client,
            ])
            .arg("--data-dir")
            .arg(dir.path().join("n1"))
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn paxos-harness node")
    };
    let refused = node(&[]).wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "started without credentials: {stderr}"
    );
    assert!(
        stderr.contains("no TLS credentials") && stderr.contains("paxos-harness certs"),
        "{stderr}"
    );

    let missing = node(&["--certs", "/nonexistent"])
        .wait_with_output()
        .expect("wait");
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        !missing.status.success() && stderr.contains("/nonexistent"),
        "{stderr}"
    );

    // --insecure runs (a one-node cluster); its first lines warn. Stop it once they are out.
    let mut open = node(&["--insecure"]);
    let mut err = BufReader::new(open.stderr.take().expect("stderr"));
    let mut warned = false;
    let mut line = String::new();
    for _ in 0..20 {
        line.clear();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if line.contains("WARN") && line.contains("--insecure") && line.contains("plaintext") {
            warned = true;
            break;
        }
    }
    let _ = open.kill();
    let _ = open.wait();
    assert!(warned, "no --insecure warning; last line: {line}");
}

/// Raise this process's descriptor limit to its hard limit: the attacks below hold thousands
/// of connections. Returns the soft limit now in force.
fn raise_descriptor_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// A process's resident memory (KiB) and open descriptors, from /proc.
fn footprint(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count();
    (rss, fds)
}

/// `n` sequential appends through `c`, each answered: their latencies, sorted.
async fn appends(c: &mut Client, client: ClientId, from: u64, n: u64) -> Vec<Duration> {
    let mut took = Vec::new();
    for seq in from..from + n {
        let id = ProposalId { client, seq };
        let start = Instant::now();
        let got = timeout(
            Duration::from_secs(12),
            c.append(id, &format!("a{seq}"), Some(Duration::from_secs(10))),
        )
        .await;
        assert!(matches!(got, Ok(Ok(_))), "append {seq}: {got:?}");
        took.push(start.elapsed());
    }
    took.sort();
    took
}

fn p99(sorted: &[Duration]) -> Duration {
    sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)]
}

/// What [`client_port_attack`] saw at the node under attack.
#[derive(Debug)]
struct Attack {
    idle_connections: usize,
    rss_before: u64,
    rss_after: u64,
    fds_before: usize,
    fds_idle: usize,
    fds_after: usize,
}

/// Issue 20's client-port attacks, against the node a client writes through (its flags
/// `flags`): 3,000 idle connections, then 300 connections each sending a 1 MiB line with no
/// end, while the client keeps appending; every append must be answered. The p99 beside the
/// quiet figure is printed, not asserted: a timed assertion on a shared machine is a flaky
/// test (the bench is where speed is judged).
async fn client_port_attack(flags: &[&str]) -> Attack {
    // One attack at a time: each holds thousands of this process's descriptors.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let limit = raise_descriptor_limit();
    // Room for the attack besides this process's own needs (the cluster's pipes, logs).
    let idle_flood = 3000.min(limit.saturating_sub(600) as usize);
    let mut cluster = Cluster::with(NODES, NODES, flags);
    for i in 0..NODES {
        cluster.start(i);
    }
    for i in 0..NODES {
        cluster.wait_ready(i).await;
    }
    let addr = cluster.nodes[0].client.clone();
    let pid = cluster.nodes[0].child.as_ref().expect("running").id();
    let mut c = Client::connect(&addr).await.expect("connect");
    let client = c.session().await.expect("session");
    let quiet = appends(&mut c, client, 0, 200).await;
    let (rss_before, fds_before) = footprint(pid);

    let mut idle = Vec::new();
    for _ in 0..idle_flood {
        let connect = tokio::net::TcpStream::connect(&addr);
        if let Ok(Ok(s)) = timeout(Duration::from_secs(1), connect).await {
            idle.push(s);
        }
    }
    let under_idle = appends(&mut c, client, 200, 200).await;
    let (_, fds_idle) = footprint(pid);

    let lines: Vec<_> = (0..300)
        .map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut s = tokio::net::TcpStream::connect(&addr).await.ok()?;
                // A node with a line bound closes the connection once that much came without
                // a newline, and the rest of the write fails. Keep the socket, as an
                // attacker would.
                let _ = timeout(Duration::from_secs(5), s.write_all(&vec![b'x'; 1 << 20])).await;
                Some(s)
            })
        })
        .collect();
    let under_lines = appends(&mut c, client, 400, 200).await;
    let mut held_lines = Vec::new();
    for l in lines {
        held_lines.extend(l.await.expect("line task"));
    }
    let (rss_after, fds_after) = footprint(pid);
    println!(
        "p99 quiet {:?}, with {} idle connections {:?}, with 300 endless lines {:?}",
        p99(&quiet),
        idle.len(),
        p99(&under_idle),
        p99(&under_lines),
    );
    // The port still takes a new client, who is answered.
    let mut late = Client::connect(&addr)
        .await
        .expect("connect after the attack");
    assert!(late.status().await.is_ok(), "a new client is served");
    let attack = Attack {
        idle_connections: idle.len(),
        rss_before,
        rss_after,
        fds_before,
        fds_idle,
        fds_after,
    };
    println!("{attack:?}");
    assert!(attack.idle_connections >= 1000, "{attack:?}");
    attack
}

/// With the defaults the port holds at most its cap (256: connections that never completed
/// a request make room first), a line is cut at 64 KiB, and the client already writing keeps
/// being answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_and_endless_lines_do_not_starve_the_client_port() {
    let a = client_port_attack(&[]).await;
    // The cap plus what the node held before (peers, storage, listeners, one client).
    for fds in [a.fds_idle, a.fds_after] {
        assert!(fds <= a.fds_before + 256 + 16, "{a:?}");
    }
    assert!(a.rss_after < a.rss_before + 64 * 1024, "{a:?}");
}

/// The proof that the attack test can fail: with the limits lifted (as the port was before
/// issue 20) the node holds a descriptor per idle connection and buffers every endless line
/// (measured: 3,024 descriptors, 34 -> 390 MB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_port_attack_hurts_a_node_without_limits() {
    let a = client_port_attack(&[
        "--client-max-connections",
        "100000",
        "--client-max-line",
        "1048576",
        "--client-idle-timeout",
        "1h",
    ])
    .await;
    assert!(a.fds_idle > a.fds_before + 900, "{a:?}");
    assert!(a.rss_after > a.rss_before + 200 * 1024, "{a:?}");
}

/// A node started with `--client-token-file` serves only connections that proved the token
/// first: a stranger's request is answered with an error and the connection closed, as is a
/// wrong token; the token opens it, for the library client and the CLI alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_token_keeps_strangers_off_the_client_port() {
    let secrets = tempfile::tempdir().expect("temp dir");
    let token_file = secrets.path().join("token");
    std::fs::write(&token_file, "open sesame\n").expect("write token");
    let path = token_file.to_str().expect("utf-8 path");
    let mut cluster = Cluster::with(NODES, NODES, &["--client-token-file", path]);
    cluster.token = Some("open sesame".into());
    for i in 0..NODES {
        cluster.start(i);
    }
    for i in 0..NODES {
        cluster.wait_ready(i).await;
    }
    let addr = cluster.nodes[0].client.clone();
    let mut stranger = Client::connect(&addr).await.expect("connect");
    let refused = stranger.status().await;
    assert!(
        matches!(&refused, Err(paxos_harness::client::ClientError::Node { error, .. }) if error.contains("authenticate")),
        "{refused:?}"
    );
    assert!(stranger.status().await.is_err(), "the connection is closed");
    let wrong = Client::connect_with(&addr, Some("open sesam")).await;
    assert!(wrong.is_err(), "a wrong token is refused");
    let mut c = Client::connect_with(&addr, Some("open sesame"))
        .await
        .expect("the token opens the port");
    assert_eq!(c.status().await.expect("status").id, 1);
    let put = Command::new(env!("CARGO_BIN_EXE_paxos-harness"))
        .args(["kv", "--node", &addr, "--token-file", path, "put", "k", "v"])
        .output()
        .expect("run kv");
    assert!(put.status.success(), "kv with the token: {put:?}");
    let open = Command::new(env!("CARGO_BIN_EXE_paxos-harness"))
        .args(["kv", "--node", &addr, "get", "k"])
        .output()
        .expect("run kv");
    assert!(
        !open.status.success(),
        "kv without the token must fail: {open:?}"
    );
}
