//! Issue 20: a catch-up storm above a gap. A node that lags below a hole nobody has filled yet
//! asks its peers for decisions from the hole on at every catch-up check. Each peer used to
//! answer every ask with everything it had decided above the hole (up to a whole batch), so
//! the traffic to the lagging node grew with the tail and with time: 180 MiB of values above
//! one gap took a node past 2 GB in 6.5 s. Now an answer is the unbroken run from the asked
//! instance: a peer that lacks it sends nothing.

use paxos_core::{InstanceId, NodeId, Outcome};
use paxos_harness::cluster::{self, Cluster, ClusterSpec, Env, Failure};
use paxos_harness::scenarios::common::until_lost;
use std::time::Duration;

const TAIL: u64 = 20;

fn n(id: u64) -> NodeId {
    NodeId(id)
}

/// The hole at i0 stays open: every proposer is broken on purpose not to fill holes with
/// no-ops, and the leader's phase timeout is too long for it to re-send its lost Accept.
fn spec() -> ClusterSpec {
    let mut spec = ClusterSpec::symmetric(3)
        .elected()
        .tune(|c| c.phase_timeout_ticks = 100_000);
    for node in spec.nodes() {
        spec.node_options
            .entry(node)
            .or_default()
            .proposer_faults
            .skip_noop_fill = true;
    }
    spec
}

/// i0 lost, i1..=TAIL decided on n1 and n2 while n3 was cut off; then n3 rejoins and asks from
/// i0 for two seconds. Returns the decisions its peers sent it in those two seconds.
async fn storm(c: Cluster) -> Result<u64, Failure> {
    for o in [2, 3] {
        c.faults().drop_kind(n(1), n(o), "accept");
    }
    let lost = c
        .propose_at(n(1), InstanceId(0), 100, Duration::from_millis(20))
        .await?;
    if lost != Outcome::TimedOut {
        return Err(Failure(format!("i0 with its Accepts lost gave {lost:?}")));
    }
    until_lost(&c, n(1), &[n(2), n(3)], "accept").await?;
    c.faults().heal();
    c.faults().isolate(n(3), c.spec().nodes());
    for k in 1..=TAIL {
        let got = c
            .propose_at(n(1), InstanceId(k), 100 + k, Duration::from_secs(2))
            .await?;
        if !matches!(&got, Outcome::Decided(e) if e.value() == Some(&(100 + k))) {
            return Err(Failure(format!("i{k} gave {got:?}")));
        }
    }
    let sent = || c.faults().sent(n(1), n(3), "decided") + c.faults().sent(n(2), n(3), "decided");
    let before = sent();
    c.faults().heal();
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(sent() - before)
}

#[test]
fn a_gap_nobody_filled_draws_no_catch_up_storm() {
    for seed in 1..=3 {
        let run = cluster::run(spec(), &Env::new(seed), |c| Box::pin(storm(c)));
        let sent = run.result.unwrap_or_else(|e| {
            panic!("seed {seed}: {e}\n    replay: cargo test -p paxos-harness --test catch_up")
        });
        assert!(
            run.observer.violations().is_empty(),
            "seed {seed}: {:?}",
            run.observer.violations()
        );
        // n3 asks every catch-up check (dozens in two seconds), both peers hold TAIL
        // decisions above the gap: the old answers sent thousands. At most one copy of the
        // tail is allowed (none is needed: nothing of it can be applied before i0).
        assert!(
            sent <= TAIL,
            "seed {seed}: {sent} decisions sent to the lagging node"
        );
    }
}
