//! paxos-net integration tests, one binary: codec properties, TCP, fuzzing a live listener,
//! and (feature `turmoil`) simulated networks with partitions and restarts.

mod codec;
#[cfg(feature = "tcp")]
mod fuzz;
#[cfg(feature = "turmoil")]
mod sim;
#[cfg(feature = "tcp")]
mod tcp;
#[cfg(all(feature = "tls", feature = "tcp"))]
mod tls;

use paxos_core::{Entry, InstanceId, Message, ProposalId};

/// A message whose value says who sent it and which one it was: `from * 1_000_000 + seq`.
pub fn tagged(from: u64, seq: u64) -> Message<u64> {
    Message::Decided {
        instance: InstanceId(seq),
        entry: Entry::Value {
            id: ProposalId::default(),
            value: from * 1_000_000 + seq,
        },
    }
}

/// The sender encoded in a [`tagged`] message.
pub fn tag_sender(message: &Message<u64>) -> Option<u64> {
    match message {
        Message::Decided { entry, .. } => entry.value().map(|v| v / 1_000_000),
        _ => None,
    }
}

/// Node `id`'s credentials from one throwaway CA per test process (cluster 1).
#[cfg(feature = "tls")]
pub fn credentials(id: u64) -> paxos_net::TlsCredentials {
    use std::sync::OnceLock;
    static CA: OnceLock<paxos_net::ClusterCa> = OnceLock::new();
    CA.get_or_init(|| paxos_net::ClusterCa::generate(1).expect("CA"))
        .issue(paxos_core::NodeId(id))
        .expect("issue")
}

/// Links inside TLS when the crate has it (the simulation runs the same handshake code).
pub fn secured(cfg: paxos_net::NetConfig) -> paxos_net::NetConfig {
    #[cfg(feature = "tls")]
    let cfg = {
        let id = cfg.id.0;
        cfg.with_tls(credentials(id))
    };
    cfg
}
