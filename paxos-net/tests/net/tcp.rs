//! TcpTransport on loopback: delivery, authenticated senders, reconnects, refusals.

use crate::{tag_sender, tagged};
use paxos_core::{Message, NodeId, Transport};
use paxos_net::{NetConfig, TcpTransport};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::{Instant, sleep, timeout};

pub const PATIENCE: Duration = Duration::from_secs(15);

/// Timings short enough for tests on loopback.
pub fn fast(cfg: NetConfig) -> NetConfig {
    cfg.with_connect_timeout(Duration::from_millis(500))
        .with_write_timeout(Duration::from_millis(500))
        .with_keepalive(Duration::from_millis(100), Duration::from_millis(800))
        .with_backoff(Duration::from_millis(10), Duration::from_millis(200))
}

/// Bind `n` listeners on port 0, then start nodes 1..=n knowing each other's addresses.
pub async fn cluster(n: u64, tweak: impl Fn(NetConfig) -> NetConfig) -> Vec<TcpTransport<u64>> {
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    }
    let addrs: BTreeMap<NodeId, String> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| {
            (
                NodeId(i as u64 + 1),
                l.local_addr().expect("addr").to_string(),
            )
        })
        .collect();
    listeners
        .into_iter()
        .enumerate()
        .map(|(i, listener)| {
            let id = NodeId(i as u64 + 1);
            let peers = addrs
                .iter()
                .filter(|(p, _)| **p != id)
                .map(|(p, a)| (*p, a.clone()))
                .collect();
            let cfg = tweak(fast(NetConfig::new(id, peers)).with_seed(i as u64));
            TcpTransport::with_listener(listener, cfg).expect("start")
        })
        .collect()
}

/// Receive until a message satisfies `want`; panics after [`PATIENCE`].
pub async fn recv_until(
    t: &mut TcpTransport<u64>,
    mut want: impl FnMut(NodeId, &Message<u64>) -> bool,
) -> (NodeId, Message<u64>) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, t.recv()).await {
            Ok(Ok((from, m))) if want(from, &m) => return (from, m),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("{}: recv failed: {e}", t.id()),
            Err(_) => panic!("{}: no matching message within {PATIENCE:?}", t.id()),
        }
    }
}

/// `from` keeps sending tagged messages to `to` until `to` receives one sent at or after
/// `first_seq`; returns how long that took.
pub async fn keep_sending_until_received(
    from: &TcpTransport<u64>,
    to: &mut TcpTransport<u64>,
    first_seq: u64,
) -> Duration {
    let start = Instant::now();
    let (src, dst) = (from.id(), to.id());
    let mut seq = first_seq;
    loop {
        assert!(
            start.elapsed() < PATIENCE,
            "{src} -> {dst}: delivery did not resume"
        );
        let _ = from.send(dst, tagged(src.0, seq)).await;
        seq += 1;
        if let Ok(Ok((f, m))) = timeout(Duration::from_millis(50), to.recv()).await
            && f == src
            && matches!(m, Message::Decided { instance, .. } if instance.0 >= first_seq)
        {
            return start.elapsed();
        }
    }
}

#[tokio::test]
async fn all_pairs_deliver_with_authenticated_senders() {
    let mut nodes = cluster(3, |c| c).await;
    for from in &nodes {
        for to in 1..=3 {
            if to != from.id().0 {
                for seq in 0..10 {
                    from.send(NodeId(to), tagged(from.id().0, seq))
                        .await
                        .expect("queued");
                }
            }
        }
    }
    for node in &mut nodes {
        let mut seen = BTreeMap::new();
        while seen.values().map(|v: &Vec<u64>| v.len()).sum::<usize>() < 20 {
            let (from, m) = recv_until(node, |_, _| true).await;
            assert_eq!(
                tag_sender(&m),
                Some(from.0),
                "the sender id is the authenticated one"
            );
            assert_ne!(from, node.id());
            seen.entry(from).or_default().push(match m {
                Message::Decided { instance, .. } => instance.0,
                _ => unreachable!(),
            });
        }
        for seqs in seen.values() {
            // One connection per direction: order is kept.
            assert_eq!(seqs, &(0..10).collect::<Vec<_>>());
        }
        assert_eq!(node.dropped(), 0);
    }
}

#[tokio::test]
async fn unknown_peer_is_an_error_and_local_addr_is_bound() {
    let nodes = cluster(2, |c| c).await;
    assert!(nodes[0].local_addr().port() != 0);
    assert!(matches!(
        nodes[0].send(NodeId(9), Message::Heartbeat).await,
        Err(paxos_core::TransportError::UnknownPeer(NodeId(9)))
    ));
}

#[tokio::test]
async fn full_queue_drops_and_counts() {
    let mut nodes = cluster(2, |c| c.with_queue_capacity(4)).await;
    let b = nodes.pop().expect("b");
    let a = nodes.pop().expect("a");
    drop(b); // nobody listens: the queue fills
    let mut dropped = 0;
    for seq in 0..100 {
        if a.send(NodeId(2), tagged(1, seq)).await.is_err() {
            dropped += 1;
        }
    }
    assert!(dropped >= 90, "{dropped}");
    assert_eq!(a.dropped(), dropped);
}

/// A Promise of `entries` accepted entries: a large frame (about 12 bytes an entry).
fn promise(entries: u64) -> Message<u64> {
    use paxos_core::{AcceptedEntry, Ballot, Entry, InstanceId, ProposalId};
    Message::Promise {
        ballot: Ballot::new(1, NodeId(1)),
        first: InstanceId(0),
        accepted: (0..entries)
            .map(|i| AcceptedEntry {
                instance: InstanceId(i),
                ballot: Ballot::new(1, NodeId(1)),
                entry: Entry::Value {
                    id: ProposalId::default(),
                    value: i,
                },
            })
            .collect(),
        more: None,
        compacted: InstanceId(0),
    }
}

/// Issue 20: a queue of 4,096 frames of up to 16 MiB each could hold 64 GiB for a dead peer.
/// Now it also holds at most `queue_bytes`: with room for 4,096 frames but 1 MiB, about 1 MiB
/// of 100 KiB frames is queued and the rest dropped and counted.
#[tokio::test]
async fn a_full_queue_is_bounded_in_bytes_not_only_in_frames() {
    let mut nodes = cluster(2, |c| {
        c.with_max_frame_len(1 << 20).with_queue_bytes(1 << 20)
    })
    .await;
    let b = nodes.pop().expect("b");
    let a = nodes.pop().expect("a");
    drop(b);
    let big = promise(8_000);
    let len = paxos_net::codec::EncodedFrame::encode(
        &paxos_net::codec::Frame::Message(big.clone()),
        1 << 20,
    )
    .expect("fits")
    .as_bytes()
    .len();
    assert!(len > 90_000, "{len}");
    let mut dropped = 0;
    for _ in 0..100 {
        if a.send(NodeId(2), big.clone()).await.is_err() {
            dropped += 1;
        }
    }
    // At most 1 MiB queued (plus what the outbound task took off the queue for a write that
    // cannot happen): 10 or 11 frames, not 100.
    let queued = 100 - dropped;
    assert!(
        (8..=12).contains(&queued),
        "{queued} frames of {len} bytes queued"
    );
    assert_eq!(a.dropped(), dropped);
}

#[tokio::test]
async fn peer_restart_reconnects_and_delivery_resumes() {
    let mut nodes = cluster(2, |c| c).await;
    let mut b = nodes.pop().expect("b");
    let mut a = nodes.pop().expect("a");
    keep_sending_until_received(&a, &mut b, 0).await;
    keep_sending_until_received(&b, &mut a, 0).await;

    // Restart b on the same address.
    let addr = b.local_addr();
    let peers = BTreeMap::from([(NodeId(1), a.local_addr().to_string())]);
    b.shutdown().await;
    drop(b);
    sleep(Duration::from_millis(300)).await;
    let mut b =
        TcpTransport::<u64>::bind(&addr.to_string(), fast(NetConfig::new(NodeId(2), peers)))
            .await
            .expect("rebind");
    keep_sending_until_received(&a, &mut b, 1_000).await;
    keep_sending_until_received(&b, &mut a, 1_000).await;
    assert!(a.metrics().connects >= 2, "{:?}", a.metrics());
}

#[tokio::test]
async fn shutdown_closes_the_listener() {
    let mut nodes = cluster(1, |c| c).await;
    let addr = nodes[0].local_addr();
    nodes[0].shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    assert!(matches!(
        nodes[0].recv().await,
        Err(paxos_core::TransportError::Closed)
    ));
}

/// Start node 1 (cluster 7, members {2}) and a stranger configured by `stranger`; the
/// stranger must be refused and nothing it sends may arrive.
pub async fn assert_refused(
    stranger: impl FnOnce(String) -> NetConfig,
    node1: impl FnOnce(NetConfig) -> NetConfig,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr1 = listener.local_addr().expect("addr").to_string();
    let cfg1 = node1(fast(
        NetConfig::new(
            NodeId(1),
            BTreeMap::from([(NodeId(2), "127.0.0.1:9".to_string())]),
        )
        .with_cluster_id(7),
    ));
    let mut one = TcpTransport::<u64>::with_listener(listener, cfg1).expect("start");
    let cfg = stranger(addr1);
    let other_id = cfg.id;
    let other = TcpTransport::<u64>::bind("127.0.0.1:0", cfg)
        .await
        .expect("start");
    let start = Instant::now();
    while one.metrics().refused == 0 {
        assert!(start.elapsed() < PATIENCE, "never refused");
        let _ = other.send(NodeId(1), tagged(other_id.0, 0)).await;
        sleep(Duration::from_millis(20)).await;
    }
    assert!(
        timeout(Duration::from_millis(300), one.recv())
            .await
            .is_err(),
        "a refused peer's message arrived"
    );
}

pub fn stranger(id: u64, cluster: u64) -> impl FnOnce(String) -> NetConfig {
    move |addr1| {
        fast(NetConfig::new(
            NodeId(id),
            BTreeMap::from([(NodeId(1), addr1)]),
        ))
        .with_cluster_id(cluster)
    }
}

#[tokio::test]
async fn wrong_cluster_is_refused() {
    assert_refused(stranger(2, 8), |c| c).await;
}

#[tokio::test]
async fn unknown_node_is_refused() {
    assert_refused(stranger(3, 7), |c| c).await;
}

#[tokio::test]
async fn missing_secret_is_refused() {
    assert_refused(stranger(2, 7), |c| c.with_secret("s3cret")).await;
}

#[tokio::test]
async fn wrong_secret_is_refused() {
    let s = stranger(2, 7);
    assert_refused(|a| s(a).with_secret("guess"), |c| c.with_secret("s3cret")).await;
}

#[tokio::test]
async fn right_secret_is_accepted() {
    let mut nodes = cluster(2, |c| c.with_secret("s3cret")).await;
    let mut b = nodes.pop().expect("b");
    let a = nodes.pop().expect("a");
    keep_sending_until_received(&a, &mut b, 0).await;
    assert_eq!(b.metrics().refused, 0);
}

#[tokio::test]
async fn oversize_message_is_dropped_at_send() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let peers = BTreeMap::from([(NodeId(2), "127.0.0.1:9".to_string())]);
    let cfg = fast(NetConfig::new(NodeId(1), peers)).with_max_frame_len(4096);
    let net = TcpTransport::<Vec<u8>>::with_listener(listener, cfg).expect("start");
    let big = Message::Decided {
        instance: paxos_core::InstanceId(0),
        entry: paxos_core::Entry::Value {
            id: paxos_core::ProposalId::default(),
            value: vec![0u8; 8192],
        },
    };
    assert!(matches!(
        net.send(NodeId(2), big).await,
        Err(paxos_core::TransportError::Dropped(NodeId(2), _))
    ));
    assert_eq!(net.dropped(), 1);
}

/// A membership change reaches the transport (`set_peers`): a peer gone is neither dialled
/// nor admitted (its open link is closed), it is dialled and admitted again once back, a new
/// node is dialled at the address the change names, and a new peer with no address is a
/// typed error.
#[tokio::test]
async fn set_peers_dials_new_peers_and_shuts_out_those_gone() {
    use paxos_core::{Peers, TransportError};
    let mut nodes = cluster(3, |c| c).await;
    let n3 = nodes.pop().expect("n3");
    let mut n2 = nodes.pop().expect("n2");
    let mut n1 = nodes.pop().expect("n1");
    keep_sending_until_received(&n3, &mut n1, 0).await;

    let only_n2: Peers = BTreeMap::from([(NodeId(2), None)]);
    n1.set_peers(&only_n2).await.expect("known peer");
    assert!(matches!(
        n1.send(NodeId(3), tagged(1, 0)).await,
        Err(TransportError::UnknownPeer(NodeId(3)))
    ));
    // n3 redials and is refused: nothing of it arrives any more.
    for seq in 100..120 {
        let _ = n3.send(NodeId(1), tagged(3, seq)).await;
        sleep(Duration::from_millis(25)).await;
    }
    let deadline = Instant::now() + Duration::from_millis(500);
    while let Ok(Ok((from, _))) = timeout(deadline - Instant::now(), n1.recv()).await {
        assert_ne!(from, NodeId(3), "a peer gone is shut out");
    }
    keep_sending_until_received(&n2, &mut n1, 200).await;

    // n3 is back, and n4 is new: its address comes with the change.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr4 = listener.local_addr().expect("addr").to_string();
    let to_n1 = BTreeMap::from([(NodeId(1), n1.local_addr().to_string())]);
    let mut n4 =
        TcpTransport::<u64>::with_listener(listener, fast(NetConfig::new(NodeId(4), to_n1)))
            .expect("start");
    let grown: Peers = BTreeMap::from([
        (NodeId(2), None),
        (NodeId(3), None),
        (NodeId(4), Some(addr4)),
    ]);
    n1.set_peers(&grown).await.expect("every address known");
    keep_sending_until_received(&n3, &mut n1, 300).await;
    keep_sending_until_received(&n4, &mut n1, 400).await;
    keep_sending_until_received(&n1, &mut n4, 500).await;

    let unknown: Peers = BTreeMap::from([(NodeId(2), None), (NodeId(5), None)]);
    assert!(matches!(
        n1.set_peers(&unknown).await,
        Err(TransportError::Other(_))
    ));
    keep_sending_until_received(&n1, &mut n2, 600).await;
}
