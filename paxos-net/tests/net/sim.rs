//! TurmoilTransport in a seeded simulation: delivery, partition + repair, bounce; every link
//! inside TLS (feature `tls`), so the same seed giving the same run covers the TLS handshake.

use crate::{secured, tag_sender, tagged};
use paxos_core::{NodeId, Transport};
use paxos_net::{NetConfig, TurmoilTransport};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SEED: u64 = 42;
const PORT: u16 = 7000;
const NODES: u64 = 3;

/// Deliveries seen so far: (receiver, sender) → count.
type Log = Arc<Mutex<BTreeMap<(u64, u64), u64>>>;

fn host(id: u64) -> String {
    format!("n{id}")
}

fn count(log: &Log, to: u64, from: u64) -> u64 {
    log.lock()
        .expect("log")
        .get(&(to, from))
        .copied()
        .unwrap_or(0)
}

fn snapshot(log: &Log) -> BTreeMap<(u64, u64), u64> {
    log.lock().expect("log").clone()
}

/// A sim with `NODES` hosts; each sends a tagged message to every peer every 50 ms and logs
/// every delivery (checking the authenticated sender matches the tag).
fn sim(log: &Log) -> turmoil::Sim<'static> {
    let mut sim = turmoil::Builder::new()
        .rng_seed(SEED)
        .simulation_duration(Duration::from_secs(600))
        .build();
    for id in 1..=NODES {
        let log = log.clone();
        sim.host(host(id), move || {
            let log = log.clone();
            async move {
                let peers = (1..=NODES)
                    .filter(|p| *p != id)
                    .map(|p| (NodeId(p), format!("{}:{PORT}", host(p))))
                    .collect();
                let cfg = secured(NetConfig::new(NodeId(id), peers).with_seed(SEED).with_cluster_id(1));
                let mut net = TurmoilTransport::<u64>::bind(&format!("0.0.0.0:{PORT}"), cfg).await?;
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                let mut seq = 0;
                loop {
                    tokio::select! {
                        biased;
                        got = net.recv() => {
                            let (from, message) = got?;
                            assert_eq!(tag_sender(&message), Some(from.0), "sender is authenticated");
                            *log.lock().expect("log").entry((id, from.0)).or_default() += 1;
                        }
                        _ = tick.tick() => {
                            for p in (1..=NODES).filter(|p| *p != id) {
                                let _ = net.send(NodeId(p), tagged(id, seq)).await;
                            }
                            seq += 1;
                        }
                    }
                }
            }
        });
    }
    sim
}

/// Step until `done` holds; fails after `limit` of simulated time.
fn step_until(
    sim: &mut turmoil::Sim<'_>,
    limit: Duration,
    what: &str,
    mut done: impl FnMut() -> bool,
) {
    let start = sim.elapsed();
    while !done() {
        assert!(
            sim.elapsed() - start < limit,
            "{what}: not within {limit:?} (seed {SEED})"
        );
        sim.step().expect("sim step");
    }
}

fn run_for(sim: &mut turmoil::Sim<'_>, d: Duration) {
    let start = sim.elapsed();
    while sim.elapsed() - start < d {
        sim.step().expect("sim step");
    }
}

fn pairs() -> impl Iterator<Item = (u64, u64)> {
    (1..=NODES).flat_map(|a| (1..=NODES).filter(move |b| *b != a).map(move |b| (a, b)))
}

fn all_pairs_deliver(sim: &mut turmoil::Sim<'_>, log: &Log) {
    step_until(sim, Duration::from_secs(5), "all pairs deliver", || {
        pairs().all(|(to, from)| count(log, to, from) > 0)
    });
}

/// Every pair delivers more than in `before`.
fn all_pairs_progress(
    sim: &mut turmoil::Sim<'_>,
    log: &Log,
    what: &str,
    before: &BTreeMap<(u64, u64), u64>,
) {
    step_until(sim, Duration::from_secs(20), what, || {
        pairs()
            .all(|(to, from)| count(log, to, from) > before.get(&(to, from)).copied().unwrap_or(0))
    });
}

#[test]
fn three_hosts_exchange_messages() {
    let log = Log::default();
    let mut sim = sim(&log);
    all_pairs_deliver(&mut sim, &log);
}

fn partition_and_repair() -> BTreeMap<(u64, u64), u64> {
    let log = Log::default();
    let mut sim = sim(&log);
    all_pairs_deliver(&mut sim, &log);

    sim.partition(host(1), host(2));
    run_for(&mut sim, Duration::from_secs(5));
    let during = snapshot(&log);
    run_for(&mut sim, Duration::from_secs(2));
    let later = snapshot(&log);
    assert_eq!(later.get(&(1, 2)), during.get(&(1, 2)), "n2 -> n1 is cut");
    assert_eq!(later.get(&(2, 1)), during.get(&(2, 1)), "n1 -> n2 is cut");
    assert!(
        later.get(&(3, 1)) > during.get(&(3, 1)),
        "n1 -> n3 still flows"
    );

    sim.repair(host(1), host(2));
    all_pairs_progress(&mut sim, &log, "delivery resumes after repair", &later);
    run_for(&mut sim, Duration::from_secs(1));
    snapshot(&log)
}

#[test]
fn partition_then_repair_resumes_delivery() {
    partition_and_repair();
}

#[test]
fn same_seed_same_run() {
    assert_eq!(partition_and_repair(), partition_and_repair());
}

#[test]
fn bounced_host_rebinds_and_peers_reconnect() {
    let log = Log::default();
    let mut sim = sim(&log);
    all_pairs_deliver(&mut sim, &log);

    sim.crash(host(2));
    run_for(&mut sim, Duration::from_secs(3));
    sim.bounce(host(2));
    let before = snapshot(&log);
    all_pairs_progress(&mut sim, &log, "delivery resumes after bounce", &before);
}
