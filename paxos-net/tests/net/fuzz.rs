//! Hostile bytes against a live TcpTransport listener: nothing panics or hangs, only the bad
//! connection closes, and the node keeps talking to its legitimate peer.

use crate::tagged;
use crate::tcp::{PATIENCE, fast, recv_until};
use futures::{SinkExt, StreamExt};
use paxos_core::{Message, NodeId, Transport};
use paxos_net::codec::{
    EncodedFrame, Frame, FrameCodec, HANDSHAKE_MAX_FRAME_LEN, Hello, WIRE_VERSION,
};
use paxos_net::{NetConfig, TcpTransport, auth};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_util::codec::Framed;

const SEED: u64 = 0x5eed;
const CASES: usize = 300;
const MAX_FRAME: usize = 64 * 1024;
const SECRET: &[u8] = b"fuzz secret";

fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; rng.gen_range(0..=max)];
    rng.fill_bytes(&mut bytes);
    bytes
}

fn frame(f: Frame<u64>) -> Vec<u8> {
    let body = EncodedFrame::encode(&f, MAX_FRAME).expect("encodes");
    let mut out = (body.as_bytes().len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Handshake as member 3 (which exists in node 1's membership but is never dialled).
async fn handshake_as_member(addr: &str) -> Option<TcpStream> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let mut framed = Framed::new(stream, FrameCodec::<u64>::new(HANDSHAKE_MAX_FRAME_LEN));
    let Some(Ok(Frame::Challenge { nonce })) = framed.next().await else {
        return None;
    };
    let hello = Hello {
        version: WIRE_VERSION,
        cluster_id: 0,
        node: NodeId(3),
        auth: Some(auth::prove(
            SECRET,
            WIRE_VERSION,
            0,
            NodeId(3),
            NodeId(1),
            &nonce,
        )),
    };
    let hello = EncodedFrame::encode(&Frame::<u64>::Hello(hello), HANDSHAKE_MAX_FRAME_LEN).ok()?;
    framed.send(hello).await.ok()?;
    match framed.next().await {
        Some(Ok(Frame::Welcome { node: NodeId(1) })) => Some(framed.into_inner()),
        other => panic!("legit handshake failed: {other:?}"),
    }
}

/// One hostile case; returns after the listener closed the connection.
async fn attack(addr: &str, case: usize, rng: &mut StdRng) {
    let kind = case % 7;
    let (mut stream, payload) = match kind {
        // Random bytes from the first byte on.
        0 => (
            TcpStream::connect(addr).await.expect("connect"),
            random_bytes(rng, 2048),
        ),
        // A length prefix far above the handshake limit.
        1 => {
            let mut p = rng
                .gen_range(HANDSHAKE_MAX_FRAME_LEN as u32 + 1..=u32::MAX)
                .to_be_bytes()
                .to_vec();
            p.extend(random_bytes(rng, 64));
            (TcpStream::connect(addr).await.expect("connect"), p)
        }
        // A valid hello cut short.
        2 => {
            let hello = frame(Frame::Hello(Hello {
                version: WIRE_VERSION,
                cluster_id: 0,
                node: NodeId(3),
                auth: None,
            }));
            let cut = rng.gen_range(1..hello.len());
            (
                TcpStream::connect(addr).await.expect("connect"),
                hello[..cut].to_vec(),
            )
        }
        // A valid header and version followed by a random payload.
        3 => {
            let body = random_bytes(rng, 200);
            let mut p = ((body.len() + 1) as u32).to_be_bytes().to_vec();
            p.push(WIRE_VERSION);
            p.extend(body);
            (TcpStream::connect(addr).await.expect("connect"), p)
        }
        // Authenticated, then garbage / oversize / truncated / a message followed by garbage.
        _ => {
            let Some(stream) = handshake_as_member(addr).await else {
                return;
            };
            let p = match kind {
                4 => random_bytes(rng, 2048),
                5 => {
                    let mut p = rng
                        .gen_range(MAX_FRAME as u32 + 1..=u32::MAX)
                        .to_be_bytes()
                        .to_vec();
                    p.extend(random_bytes(rng, 64));
                    p
                }
                _ => {
                    let mut p = frame(Frame::Message(tagged(3, case as u64)));
                    let m = frame(Frame::Message(tagged(3, case as u64 + 1)));
                    p.extend_from_slice(&m[..rng.gen_range(1..m.len())]);
                    if rng.gen_bool(0.5) {
                        p.extend(random_bytes(rng, 256));
                    }
                    p
                }
            };
            (stream, p)
        }
    };
    // The listener may close on the first bad byte, so writes can fail; that is fine.
    let _ = stream.write_all(&payload).await;
    let _ = stream.shutdown().await;
    // The listener must close its side promptly: read to EOF (or reset).
    let mut sink = vec![0u8; 4096];
    let closed = timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "case {case} (kind {kind}): listener kept the connection open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_close_only_their_connection() {
    let l1 = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let l2 = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (addr1, addr2) = (
        l1.local_addr().expect("addr").to_string(),
        l2.local_addr().expect("addr").to_string(),
    );
    let cfg = |id: u64, peers: BTreeMap<NodeId, String>| {
        fast(NetConfig::new(NodeId(id), peers))
            .with_max_frame_len(MAX_FRAME)
            .with_secret(SECRET)
            .with_seed(id)
    };
    let peers1 = BTreeMap::from([(NodeId(2), addr2), (NodeId(3), "127.0.0.1:9".to_string())]);
    let mut one = TcpTransport::<u64>::with_listener(l1, cfg(1, peers1)).expect("start");
    let mut two = TcpTransport::<u64>::with_listener(
        l2,
        cfg(2, BTreeMap::from([(NodeId(1), addr1.clone())])),
    )
    .expect("start");

    let mut rng = StdRng::seed_from_u64(SEED);
    timeout(Duration::from_secs(120), async {
        for case in 0..CASES {
            attack(&addr1, case, &mut rng).await;
        }
    })
    .await
    .expect("fuzzing finished in time");
    let m = one.metrics();
    assert!(m.bad_frames > 0, "{m:?}");

    // Node 1 still works both ways with its legitimate peer.
    two.send(NodeId(1), tagged(2, 1)).await.expect("queued");
    let (from, msg) = recv_until(&mut one, |from, _| from == NodeId(2)).await;
    assert_eq!((from, msg), (NodeId(2), tagged(2, 1)));
    one.send(NodeId(2), Message::Heartbeat)
        .await
        .expect("queued");
    let (from, _) = timeout(PATIENCE, two.recv())
        .await
        .expect("in time")
        .expect("recv");
    assert_eq!(from, NodeId(1));
}
