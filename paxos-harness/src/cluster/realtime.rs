//! The real-time driver: every node a tokio task on one thread, over loopback TCP or
//! in-process channels. Time is real; a run is as repeatable as the machine is.

use super::{BodyFuture, Failure, Lifecycle, Shared, TransportKind, lock, net_config};
use crate::invariants::Checkable;
use crate::ports::{bind_with_retry, free_port};
use paxos_core::testing::ChannelNetwork;
use paxos_core::{Fatal, NodeId};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// The nodes' network and their running tasks.
pub(super) struct State<V> {
    transport: TransportKind,
    /// TCP: every node's listen address, fixed for the run (a restart binds it again).
    addrs: Mutex<BTreeMap<NodeId, String>>,
    /// Channels: the in-process network (a restart replaces the node's endpoint).
    channels: ChannelNetwork<V>,
    /// The task of every running node.
    tasks: Mutex<BTreeMap<NodeId, JoinHandle<Result<(), Fatal>>>>,
}

impl<V: Checkable> State<V> {
    pub(super) fn new(transport: TransportKind) -> Self {
        State {
            transport,
            addrs: Mutex::new(BTreeMap::new()),
            channels: ChannelNetwork::new(),
            tasks: Mutex::new(BTreeMap::new()),
        }
    }
}

fn state<V>(shared: &Shared<V>) -> Result<&State<V>, Failure> {
    match &shared.driver {
        super::Driver::Realtime(s) => Ok(s),
        #[cfg(feature = "turmoil")]
        super::Driver::Sim(_) => Err(Failure("not a real-time cluster".into())),
    }
}

/// Start (or restart) node `id` on its network.
async fn start<V: Checkable>(shared: &Arc<Shared<V>>, id: NodeId) -> Result<(), Failure> {
    let state = state(shared)?;
    let run = match state.transport {
        TransportKind::Channel => shared.incarnate(id, state.channels.endpoint(id))?,
        _ => {
            let (listen, peers) = {
                let addrs = lock(&state.addrs);
                let peers: BTreeMap<NodeId, String> = addrs
                    .iter()
                    .filter(|(n, _)| **n != id)
                    .map(|(n, a)| (*n, a.clone()))
                    .collect();
                (addrs.get(&id).cloned().unwrap_or_default(), peers)
            };
            let config = net_config(&shared.spec, &shared.env, id, peers)?;
            let transport = bind_with_retry(&listen, || {
                paxos_net::TcpTransport::<V>::bind(&listen, config.clone())
            })
            .await
            .map_err(|e| Failure(format!("{id} bind {listen}: {e}")))?;
            shared.incarnate(id, transport)?
        }
    };
    let task = tokio::spawn(async move {
        let result = run.await;
        if let Err(e) = &result {
            tracing::warn!(node = %id, error = %e, "node stopped");
        }
        result
    });
    lock(&state.tasks).insert(id, task);
    Ok(())
}

/// Carry out a crash or a restart at once. A crash returns only once the node's task is gone
/// (its storage closed and its sockets released), so a restart can reopen them.
pub(super) async fn lifecycle<V: Checkable>(
    shared: &Arc<Shared<V>>,
    what: Lifecycle,
) -> Result<(), Failure> {
    match what {
        Lifecycle::Crash(n) => {
            let task = lock(&state(shared)?.tasks).remove(&n);
            if let Some(task) = task {
                task.abort();
                let _ = task.await;
            }
            Ok(())
        }
        Lifecycle::Restart(n) => start(shared, n).await,
    }
}

/// Run `body` against the nodes of `shared`, all on one tokio thread.
pub(super) fn run<V: Checkable, R: 'static>(
    shared: &Arc<Shared<V>>,
    body: BodyFuture<R>,
) -> (Result<R, Failure>, Duration) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return (Err(Failure(format!("tokio runtime: {e}"))), Duration::ZERO),
    };
    let limit = shared.spec.time_limit;
    rt.block_on(async {
        let start_at = tokio::time::Instant::now();
        let result = async {
            let state = state(shared)?;
            if state.transport == TransportKind::Tcp {
                // Every node's port first, so every node knows every address.
                for id in shared.spec.nodes() {
                    let port = free_port().map_err(|e| Failure(format!("port: {e}")))?;
                    lock(&state.addrs).insert(id, format!("127.0.0.1:{port}"));
                }
            }
            for id in shared.spec.nodes() {
                start(shared, id).await?;
            }
            match tokio::time::timeout(limit, body).await {
                Ok(r) => r,
                Err(_) => Err(Failure(format!(
                    "scenario exceeded its time limit of {limit:?}"
                ))),
            }
        }
        .await;
        let elapsed = start_at.elapsed();
        if let Ok(state) = state(shared) {
            let tasks: Vec<_> = std::mem::take(&mut *lock(&state.tasks))
                .into_values()
                .collect();
            for task in tasks {
                task.abort();
                let _ = task.await;
            }
        }
        (result, elapsed)
    })
}
