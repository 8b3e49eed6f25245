//! The turmoil driver: every node a simulated host, time simulated, the run fixed by its seed.

use super::{BodyFuture, Failure, Lifecycle, Shared, lock, net_config};
use crate::invariants::Checkable;
use paxos_core::NodeId;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// The port every node listens on in the simulation (hosts have their own names).
const SIM_PORT: u16 = 7000;

fn host_name(id: NodeId) -> String {
    format!("n{}", id.0)
}

/// What the body and the hosts leave for the driver loop.
#[derive(Default)]
pub(super) struct State {
    /// Lifecycle requests, applied between steps, each acknowledged once done.
    queued: Mutex<Vec<(Lifecycle, oneshot::Sender<()>)>>,
    /// The kill switch of each running host incarnation (see [`run`]).
    kill: Mutex<BTreeMap<NodeId, oneshot::Sender<()>>>,
}

impl State {
    /// Queue `what` for the driver and wait until it is done.
    pub(super) async fn request(&self, what: Lifecycle) -> Result<(), Failure> {
        let (tx, rx) = oneshot::channel();
        lock(&self.queued).push((what, tx));
        rx.await.map_err(|_| Failure("simulation ended".into()))
    }
}

/// Run `body` against the nodes of `shared` on a turmoil simulation.
pub(super) fn run<V: Checkable, R: 'static>(
    shared: &Arc<Shared<V>>,
    body: BodyFuture<R>,
) -> (Result<R, Failure>, Duration) {
    let super::Driver::Sim(state) = &shared.driver else {
        return (Err(Failure("not a simulation".into())), Duration::ZERO);
    };
    let network = shared.spec.network;
    let mut builder = turmoil::Builder::new();
    builder
        .rng_seed(shared.env.seed)
        .simulation_duration(shared.spec.time_limit)
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(network.min_latency)
        .max_message_latency(network.max_latency);
    if network.random_order {
        builder.enable_random_order();
    }
    let mut sim = builder.build();
    let nodes = shared.spec.nodes();
    for &id in &nodes {
        let peers: BTreeMap<NodeId, String> = nodes
            .iter()
            .filter(|n| **n != id)
            .map(|n| (*n, format!("{}:{SIM_PORT}", host_name(*n))))
            .collect();
        let shared = shared.clone();
        sim.host(host_name(id), move || {
            let shared = shared.clone();
            let peers = peers.clone();
            let (kill, killed) = oneshot::channel::<()>();
            if let super::Driver::Sim(state) = &shared.driver {
                lock(&state.kill).insert(id, kill);
            }
            async move {
                let software = async {
                    let cfg = net_config(&shared.spec, &shared.env, id, peers)?;
                    let transport =
                        paxos_net::TurmoilTransport::<V>::bind(&format!("0.0.0.0:{SIM_PORT}"), cfg)
                            .await?;
                    let node = shared.incarnate(id, transport)?;
                    if let Err(e) = node.await {
                        // A stopped node stays down; the scenario decides whether that is a
                        // failure.
                        tracing::warn!(node = %id, error = %e, "node stopped");
                        std::future::pending::<()>().await;
                    }
                    Ok::<(), Box<dyn std::error::Error>>(())
                };
                // A crash: drop the node wherever it is waiting (a pending write is lost).
                tokio::select! {
                    biased;
                    _ = killed => Ok(()),
                    r = software => r,
                }
            }
        });
    }
    let outcome: Arc<Mutex<Option<Result<R, Failure>>>> = Arc::new(Mutex::new(None));
    let slot = outcome.clone();
    sim.client("scenario", async move {
        let r = body.await;
        *lock(&slot) = Some(r);
        Ok(())
    });
    // A crash is two-phase, for determinism: the host's kill switch makes its software return
    // (dropping the node wherever it waits, in a fixed order), and once it has, turmoil's crash
    // marks the host down. Crashing the runtime directly would drop the node's remaining tasks
    // in tokio's shard order, which follows process-global task ids: the same seed would then
    // run differently depending on what ran before it in the process.
    let mut crashing: Vec<(NodeId, oneshot::Sender<()>)> = Vec::new();
    loop {
        let queued: Vec<_> = lock(&state.queued).drain(..).collect();
        for (what, ack) in queued {
            match what {
                Lifecycle::Crash(n) => match lock(&state.kill).remove(&n) {
                    Some(kill) => {
                        let _ = kill.send(());
                        crashing.push((n, ack));
                    }
                    None => {
                        sim.crash(host_name(n));
                        let _ = ack.send(());
                    }
                },
                Lifecycle::Restart(n) => {
                    sim.bounce(host_name(n));
                    let _ = ack.send(());
                }
            }
        }
        let mut still = Vec::new();
        for (n, ack) in crashing.drain(..) {
            if sim.is_host_running(host_name(n)) {
                still.push((n, ack));
            } else {
                sim.crash(host_name(n));
                let _ = ack.send(());
            }
        }
        crashing = still;
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => return (Err(Failure(format!("simulation: {e}"))), sim.elapsed()),
        }
    }
    let result = lock(&outcome)
        .take()
        .unwrap_or_else(|| Err(Failure("scenario did not finish".into())));
    (result, sim.elapsed())
}
