//! [`LinkProxy`]: one TCP forwarder per ordered pair of nodes, so the nemesis can cut and heal
//! the link between any two real node processes without touching the kernel's firewall.
//!
//! The TCP transport sends `i -> j` traffic over a connection that `i` dials to the address it
//! was given for `j` (and reads `j`'s pongs back over the same connection). So node `i` is told,
//! as `j`'s address, the proxy listener `P(i -> j)` ([`LinkProxy::addr`]), which forwards to
//! `j`'s real listen address. Cutting the link `{i, j}` cuts both `P(i -> j)` and `P(j -> i)`.
//!
//! ## What a cut does
//!
//! A cut is a **blackhole**, like a partition that drops packets: the proxy keeps every
//! connection on the link open and keeps reading both sides, but throws away every byte it
//! reads instead of forwarding it. Neither node sees an error; they see silence, and only their
//! own keepalive / idle / handshake timeouts tell them the link is gone, as on a real
//! partition. A close (or a reset, e.g. from a killed process) is lost the same way: the other
//! end is not told. New connections on a cut link are accepted (the dialer sees a connect
//! succeed) and then blackholed the same way, so the dialer's handshake times out.
//!
//! One difference from a real partition: since the proxy keeps draining, a node's writes never
//! block on a cut link (on a real network the unacknowledged send buffer fills up), so it is
//! the transport's idle timeout, not its write timeout, that notices the cut.
//!
//! (Closing connections at the cut instead would be simpler, but a partition does not close
//! anything: the nodes would learn of it at once from the close, and their keepalive, idle and
//! handshake timeouts would never be exercised.)
//!
//! A TCP stream never loses bytes in the middle, and the transport's framing relies on that: a
//! connection that lost bytes during a cut must never forward again. So once the link heals,
//! every connection that dropped bytes (and every one accepted while cut, which has no upstream)
//! is **closed**; the nodes see the connection end and redial, and the new connections work.
//! A connection that carried nothing during a short cut simply resumes, as TCP would.
//!
//! A connection on a healthy link whose upstream cannot be dialed (the target node is down) is
//! closed at once: the dialer sees its connect succeed and then the connection end, the
//! proxy's version of "connection refused".

use paxos_core::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

/// Bytes read from one side per read.
const BUFFER: usize = 16 * 1024;
/// How long the proxy waits to connect to a node's real address before giving up on it.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What [`LinkProxy`] could not do.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A proxy listener could not be bound.
    #[error("cannot bind the proxy listener for {from} -> {to}: {source}")]
    Bind {
        /// The node that will dial this listener.
        from: NodeId,
        /// The node it forwards to.
        to: NodeId,
        /// Why.
        source: std::io::Error,
    },
    /// A listener was bound but its address could not be read.
    #[error("cannot read the address of the proxy listener for {from} -> {to}: {source}")]
    LocalAddr {
        /// The node that will dial this listener.
        from: NodeId,
        /// The node it forwards to.
        to: NodeId,
        /// Why.
        source: std::io::Error,
    },
    /// No link between these two nodes (an unknown node, or a node and itself).
    #[error("no link between {0} and {1}")]
    UnknownLink(NodeId, NodeId),
    /// A partition names a node the proxy does not know.
    #[error("{0} is not a node of the proxy")]
    UnknownNode(NodeId),
}

/// Traffic through one proxy listener `P(from -> to)`, since the proxy started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Connections accepted (from `from`).
    pub connections: u64,
    /// Accepted on a healthy link but closed at once: `to`'s real address did not answer.
    pub refused: u64,
    /// Accepted while the link was cut (blackholed, then closed at the heal).
    pub blackholed: u64,
    /// Closed by the proxy after a heal, because they had lost bytes (or a close) to the cut.
    pub severed: u64,
    /// Bytes forwarded `from -> to`.
    pub bytes_forward: u64,
    /// Bytes forwarded back `to -> from` (handshake replies, pongs).
    pub bytes_back: u64,
    /// Bytes thrown away (either way) because the link was cut.
    pub bytes_dropped: u64,
}

/// The counters behind one [`LinkStats`], shared by the listener's connection tasks.
#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    refused: AtomicU64,
    blackholed: AtomicU64,
    severed: AtomicU64,
    bytes_forward: AtomicU64,
    bytes_back: AtomicU64,
    bytes_dropped: AtomicU64,
}

/// Add `n` to one of the [`Counters`].
fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> LinkStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LinkStats {
            connections: get(&self.connections),
            refused: get(&self.refused),
            blackholed: get(&self.blackholed),
            severed: get(&self.severed),
            bytes_forward: get(&self.bytes_forward),
            bytes_back: get(&self.bytes_back),
            bytes_dropped: get(&self.bytes_dropped),
        }
    }
}

/// One (unordered) link `{a, b}`: whether it is cut. Both listeners of the link watch it, so a
/// cut or heal reaches every connection on the link at once.
struct Link {
    cut: watch::Sender<bool>,
}

impl Link {
    fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }

    /// Set the state; wakes the link's connections only if it changed.
    fn set_cut(&self, cut: bool) {
        self.cut
            .send_if_modified(|now| std::mem::replace(now, cut) != cut);
    }
}

/// One listener `P(from -> to)`.
struct Route {
    listen: SocketAddr,
    counters: Arc<Counters>,
}

/// The proxies between every ordered pair of nodes. Dropping it stops every listener and closes
/// every connection through it.
pub struct LinkProxy {
    routes: BTreeMap<(NodeId, NodeId), Route>,
    /// Keyed by `(min, max)`.
    links: BTreeMap<(NodeId, NodeId), Arc<Link>>,
    /// The accept loops; each owns its connections' tasks, so aborting it ends them too.
    accept_loops: Vec<AbortHandle>,
}

/// The key of the unordered link `{a, b}`.
fn link_key(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    (a.min(b), a.max(b))
}

impl LinkProxy {
    /// Bind one loopback listener per ordered pair `(i, j)`, `i != j`, of the nodes in `real`
    /// (each node's real listen address), forwarding to `j`'s real address. Every link starts
    /// healthy. Must be called within a tokio runtime, which then runs the forwarding.
    ///
    /// The listeners bind port 0 (the kernel picks): unlike a node's own port, a proxy port is
    /// held for the whole run and never bound again, so [`crate::ports::free_port`]'s reason
    /// to stay below the ephemeral range does not apply, and port 0 cannot race another binder.
    ///
    /// # Errors
    /// A listener could not be bound.
    pub async fn start(real: &BTreeMap<NodeId, SocketAddr>) -> Result<LinkProxy, ProxyError> {
        let mut links = BTreeMap::new();
        for &a in real.keys() {
            for &b in real.keys().filter(|&&b| b > a) {
                let (cut, _) = watch::channel(false);
                links.insert((a, b), Arc::new(Link { cut }));
            }
        }
        let mut proxy = LinkProxy {
            routes: BTreeMap::new(),
            links,
            accept_loops: Vec::new(),
        };
        for (&from, _) in real.iter() {
            for (&to, &upstream) in real.iter().filter(|(to, _)| **to != from) {
                let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                    .await
                    .map_err(|source| ProxyError::Bind { from, to, source })?;
                let listen = listener
                    .local_addr()
                    .map_err(|source| ProxyError::LocalAddr { from, to, source })?;
                let counters = Arc::new(Counters::default());
                let link = proxy.links[&link_key(from, to)].clone();
                let accept = tokio::spawn(accept_loop(
                    listener,
                    upstream,
                    link,
                    counters.clone(),
                    (from, to),
                ));
                proxy.accept_loops.push(accept.abort_handle());
                proxy.routes.insert((from, to), Route { listen, counters });
                tracing::debug!(%from, %to, %listen, %upstream, "link proxy listening");
            }
        }
        Ok(proxy)
    }

    /// The address node `from` must be given as `to`'s address (`None` if either is unknown or
    /// they are the same node).
    pub fn addr(&self, from: NodeId, to: NodeId) -> Option<SocketAddr> {
        self.routes.get(&(from, to)).map(|r| r.listen)
    }

    /// Every other node's address as node `from` must be given them (its `--peers`).
    pub fn peers_of(&self, from: NodeId) -> BTreeMap<NodeId, SocketAddr> {
        self.routes
            .iter()
            .filter(|((f, _), _)| *f == from)
            .map(|(&(_, to), r)| (to, r.listen))
            .collect()
    }

    fn link(&self, a: NodeId, b: NodeId) -> Result<&Link, ProxyError> {
        self.links
            .get(&link_key(a, b))
            .map(Arc::as_ref)
            .ok_or(ProxyError::UnknownLink(a, b))
    }

    /// Cut the link between `a` and `b`, both ways (see the module doc for what a cut does).
    ///
    /// # Errors
    /// No such link.
    pub fn cut(&self, a: NodeId, b: NodeId) -> Result<(), ProxyError> {
        self.link(a, b)?.set_cut(true);
        Ok(())
    }

    /// Heal the link between `a` and `b`: connections that lost bytes are closed, new ones
    /// forward again.
    ///
    /// # Errors
    /// No such link.
    pub fn heal(&self, a: NodeId, b: NodeId) -> Result<(), ProxyError> {
        self.link(a, b)?.set_cut(false);
        Ok(())
    }

    /// Make the network exactly this partition: the link between two nodes is cut when both
    /// are in some side but no side holds both of them; every other link is healed. Sides may
    /// overlap: `[{n1,n2,n3}, {n3,n4,n5}]` is a bridge, where `n3` sees everyone and the
    /// others only their own half. A node in no side keeps all its links.
    ///
    /// # Errors
    /// A side names a node the proxy does not know; then nothing changes.
    pub fn partition(&self, sides: &[BTreeSet<NodeId>]) -> Result<(), ProxyError> {
        let known: BTreeSet<NodeId> = self.routes.keys().map(|&(from, _)| from).collect();
        if let Some(&stranger) = sides.iter().flatten().find(|n| !known.contains(n)) {
            return Err(ProxyError::UnknownNode(stranger));
        }
        let placed = |n: NodeId| sides.iter().any(|s| s.contains(&n));
        for (&(a, b), link) in &self.links {
            let together = sides.iter().any(|s| s.contains(&a) && s.contains(&b));
            link.set_cut(placed(a) && placed(b) && !together);
        }
        Ok(())
    }

    /// Heal every link.
    pub fn heal_all(&self) {
        for link in self.links.values() {
            link.set_cut(false);
        }
    }

    /// The links cut now, each as `(lower id, higher id)`.
    pub fn cut_links(&self) -> BTreeSet<(NodeId, NodeId)> {
        self.links
            .iter()
            .filter(|(_, link)| link.is_cut())
            .map(|(&key, _)| key)
            .collect()
    }

    /// Traffic through each listener `P(from -> to)`, keyed by `(from, to)`.
    pub fn stats(&self) -> BTreeMap<(NodeId, NodeId), LinkStats> {
        self.routes
            .iter()
            .map(|(&key, r)| (key, r.counters.snapshot()))
            .collect()
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        for accept in &self.accept_loops {
            accept.abort();
        }
    }
}

/// Accept connections to `P(from -> to)` and serve each in its own task (owned here, so they
/// end with this loop).
async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    link: Arc<Link>,
    counters: Arc<Counters>,
    (from, to): (NodeId, NodeId),
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    add(&counters.connections, 1);
                    conns.spawn(serve(client, upstream, link.clone(), counters.clone()));
                }
                Err(e) => {
                    tracing::warn!(%from, %to, error = %e, "link proxy: accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            },
        }
    }
}

/// One connection through the proxy, until either side closes it or a heal severs it.
async fn serve(client: TcpStream, upstream: SocketAddr, link: Arc<Link>, counters: Arc<Counters>) {
    // Small frames (pings, promises) must not wait for Nagle.
    let _ = client.set_nodelay(true);
    // Subscribed before the first look at the state, so no heal can slip between the two.
    let mut changes = link.cut.subscribe();
    if *changes.borrow_and_update() {
        add(&counters.blackholed, 1);
        blackhole(client, changes, &counters).await;
        return;
    }
    let dialed = tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(upstream)).await;
    let Ok(Ok(server)) = dialed else {
        add(&counters.refused, 1);
        return;
    };
    let _ = server.set_nodelay(true);
    forward(client, server, &link, changes, &counters).await;
}

/// A connection accepted while the link was cut: it has no upstream, so swallow what it sends
/// until it closes or the link heals (then close it; the node redials).
async fn blackhole(mut client: TcpStream, mut changes: watch::Receiver<bool>, counters: &Counters) {
    let mut buf = vec![0u8; BUFFER];
    loop {
        tokio::select! {
            read = client.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => add(&counters.bytes_dropped, n),
            },
            changed = changes.changed() => {
                if changed.is_err() || !*changes.borrow_and_update() {
                    return;
                }
            }
        }
    }
}

/// How one direction of a connection ended.
enum PumpEnd {
    /// The reading side is done (closed, or failed while the link was cut); the other
    /// direction may go on.
    Done,
    /// An error on a healthy link: close the whole connection.
    Abort,
    /// Bytes arrived after the heal on a connection that had lost some: close it.
    Severed,
}

/// Forward both ways between `client` and `server`, dropping bytes while the link is cut, and
/// close both once the link heals if anything was lost.
async fn forward(
    mut client: TcpStream,
    mut server: TcpStream,
    link: &Link,
    changes: watch::Receiver<bool>,
    counters: &Counters,
) {
    let lost = AtomicBool::new(false);
    let (client_read, client_write) = client.split();
    let (server_read, server_write) = server.split();
    let forward = pump(
        client_read,
        server_write,
        link,
        &lost,
        &counters.bytes_forward,
        &counters.bytes_dropped,
    );
    let back = pump(
        server_read,
        client_write,
        link,
        &lost,
        &counters.bytes_back,
        &counters.bytes_dropped,
    );
    let healed = healed_after_loss(changes, &lost);
    tokio::pin!(forward, back, healed);
    let (mut forward_done, mut back_done) = (false, false);
    let mut severed = false;
    while !(forward_done && back_done) {
        tokio::select! {
            end = &mut forward, if !forward_done => match end {
                PumpEnd::Done => forward_done = true,
                PumpEnd::Abort => break,
                PumpEnd::Severed => { severed = true; break }
            },
            end = &mut back, if !back_done => match end {
                PumpEnd::Done => back_done = true,
                PumpEnd::Abort => break,
                PumpEnd::Severed => { severed = true; break }
            },
            () = &mut healed => { severed = true; break }
        }
    }
    if severed {
        add(&counters.severed, 1);
    }
    // Returning drops both streams: the connection is closed on both sides.
}

/// Copy `from` to `to` until `from` ends, throwing bytes away while the link is cut.
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    link: &Link,
    lost: &AtomicBool,
    forwarded: &AtomicU64,
    dropped: &AtomicU64,
) -> PumpEnd {
    let mut buf = vec![0u8; BUFFER];
    loop {
        let read = from.read(&mut buf).await;
        if link.is_cut() {
            // Whatever came (bytes, the end of the stream, a reset) is lost in the partition:
            // the other end must find out by its own timeouts, as on a real network.
            lost.store(true, Ordering::Relaxed);
            match read {
                Ok(n) if n > 0 => {
                    add(dropped, n);
                    continue;
                }
                _ => return PumpEnd::Done,
            }
        }
        let n = match read {
            Ok(0) if lost.load(Ordering::Relaxed) => return PumpEnd::Severed,
            Ok(0) => {
                // Pass the half-close on; the other direction may still have bytes to carry.
                let _ = to.shutdown().await;
                return PumpEnd::Done;
            }
            Ok(n) => n,
            Err(_) => return PumpEnd::Abort,
        };
        if lost.load(Ordering::Relaxed) {
            // Healed, but this stream has a hole in it: never forward past a hole.
            add(dropped, n);
            return PumpEnd::Severed;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return PumpEnd::Abort;
        }
        add(forwarded, n);
    }
}

/// Resolves once the link is healthy and this connection has lost bytes (or the link is gone).
/// `changes` was subscribed before the connection forwarded anything, so it sees every heal
/// that follows a loss.
async fn healed_after_loss(mut changes: watch::Receiver<bool>, lost: &AtomicBool) {
    loop {
        if !*changes.borrow_and_update() && lost.load(Ordering::Relaxed) {
            return;
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Failure;
    use crate::wait::{Look, eventually};

    const WITHIN: Duration = Duration::from_secs(5);
    const EVERY: Duration = Duration::from_millis(10);
    /// How long a read waits before the test concludes that nothing is coming.
    const SILENCE: Duration = Duration::from_millis(300);

    /// An echo server on loopback; its task ends with the test's runtime.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind echo");
        let addr = listener.local_addr().expect("echo addr");
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = conn.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn cluster(n: u64) -> (BTreeMap<NodeId, SocketAddr>, LinkProxy) {
        let mut real = BTreeMap::new();
        for i in 1..=n {
            real.insert(NodeId(i), echo_server().await);
        }
        let proxy = LinkProxy::start(&real).await.expect("proxy starts");
        (real, proxy)
    }

    async fn connect(proxy: &LinkProxy, from: u64, to: u64) -> TcpStream {
        let addr = proxy.addr(NodeId(from), NodeId(to)).expect("a route");
        TcpStream::connect(addr)
            .await
            .expect("connect to the proxy")
    }

    /// Send `msg` and read it back, within `wait`; `None` if nothing came back in time.
    async fn echo(conn: &mut TcpStream, msg: &[u8], wait: Duration) -> Option<Vec<u8>> {
        conn.write_all(msg).await.ok()?;
        let mut got = vec![0u8; msg.len()];
        match tokio::time::timeout(wait, conn.read_exact(&mut got)).await {
            Ok(Ok(_)) => Some(got),
            _ => None,
        }
    }

    /// Wait until the proxy has closed `conn` (a read sees the end or an error).
    async fn closed(conn: &mut TcpStream) -> Result<(), Failure> {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(WITHIN, conn.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => Ok(()),
            Ok(Ok(n)) => Err(Failure(format!("read {n} bytes from a severed connection"))),
            Err(_) => Err(Failure("the connection stayed open".into())),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn every_ordered_pair_has_its_own_listener() {
        let (_real, proxy) = cluster(3).await;
        let mut addrs = BTreeSet::new();
        for from in 1..=3 {
            let peers = proxy.peers_of(NodeId(from));
            assert_eq!(peers.len(), 2, "{from}: {peers:?}");
            assert!(!peers.contains_key(&NodeId(from)));
            addrs.extend(peers.values().copied());
        }
        assert_eq!(addrs.len(), 6);
        assert_eq!(proxy.addr(NodeId(1), NodeId(1)), None);
        assert_eq!(proxy.addr(NodeId(1), NodeId(9)), None);
        assert!(proxy.cut(NodeId(1), NodeId(9)).is_err());
        assert!(proxy.cut(NodeId(2), NodeId(2)).is_err());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn data_flows_and_is_counted() {
        let (_real, proxy) = cluster(2).await;
        let mut conn = connect(&proxy, 1, 2).await;
        assert_eq!(
            echo(&mut conn, b"hello", WITHIN).await.as_deref(),
            Some(&b"hello"[..])
        );
        let stats = proxy.stats()[&(NodeId(1), NodeId(2))];
        assert_eq!(stats.connections, 1);
        assert_eq!(stats.bytes_forward, 5);
        assert_eq!(stats.bytes_back, 5);
        assert_eq!(stats.bytes_dropped, 0);
        assert_eq!(proxy.stats()[&(NodeId(2), NodeId(1))], LinkStats::default());
    }

    /// A cut silences an open connection (both ways, without closing it); the heal closes it,
    /// because it lost bytes, and a new connection works.
    #[tokio::test(flavor = "current_thread")]
    async fn a_cut_blackholes_and_a_heal_lets_a_new_connection_work() {
        let (_real, proxy) = cluster(2).await;
        let mut before = connect(&proxy, 2, 1).await;
        assert!(echo(&mut before, b"one", WITHIN).await.is_some());

        proxy.cut(NodeId(1), NodeId(2)).expect("cut");
        assert_eq!(proxy.cut_links(), BTreeSet::from([(NodeId(1), NodeId(2))]));
        assert_eq!(echo(&mut before, b"two", SILENCE).await, None);
        // A new connection on the cut link is accepted, then swallowed.
        let mut during = connect(&proxy, 1, 2).await;
        assert_eq!(echo(&mut during, b"three", SILENCE).await, None);

        proxy.heal(NodeId(2), NodeId(1)).expect("heal");
        assert!(proxy.cut_links().is_empty());
        closed(&mut before).await.expect("severed at the heal");
        closed(&mut during)
            .await
            .expect("blackholed until the heal");
        let mut after = connect(&proxy, 2, 1).await;
        assert_eq!(
            echo(&mut after, b"four", WITHIN).await.as_deref(),
            Some(&b"four"[..])
        );

        let stats = proxy.stats();
        let (two_one, one_two) = (
            stats[&(NodeId(2), NodeId(1))],
            stats[&(NodeId(1), NodeId(2))],
        );
        assert_eq!(two_one.connections, 2);
        assert_eq!(two_one.severed, 1);
        assert_eq!(two_one.bytes_dropped, 3);
        assert_eq!(one_two.blackholed, 1);
        assert_eq!(one_two.bytes_dropped, 5);
    }

    /// A close during a cut is lost like the bytes: the far end only hears of it at the heal.
    #[tokio::test(flavor = "current_thread")]
    async fn a_close_during_a_cut_does_not_cross_it() {
        let server = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let real = BTreeMap::from([
            (NodeId(1), echo_server().await),
            (NodeId(2), server.local_addr().expect("addr")),
        ]);
        let proxy = LinkProxy::start(&real).await.expect("proxy");
        let client = connect(&proxy, 1, 2).await;
        let (mut far, _) = server.accept().await.expect("the proxy dials through");
        proxy.cut(NodeId(1), NodeId(2)).expect("cut");
        drop(client);
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(SILENCE, far.read(&mut buf)).await;
        assert!(read.is_err(), "the far end heard of the close: {read:?}");
        proxy.heal(NodeId(1), NodeId(2)).expect("heal");
        closed(&mut far).await.expect("closed at the heal");
        assert_eq!(proxy.stats()[&(NodeId(1), NodeId(2))].severed, 1);
    }

    /// A connection that carried nothing while the link was cut resumes after the heal.
    #[tokio::test(flavor = "current_thread")]
    async fn a_silent_connection_survives_a_cut() {
        let (_real, proxy) = cluster(2).await;
        let mut conn = connect(&proxy, 1, 2).await;
        assert!(echo(&mut conn, b"a", WITHIN).await.is_some());
        proxy.cut(NodeId(1), NodeId(2)).expect("cut");
        proxy.heal(NodeId(1), NodeId(2)).expect("heal");
        assert_eq!(
            echo(&mut conn, b"b", WITHIN).await.as_deref(),
            Some(&b"b"[..])
        );
    }

    /// With nobody listening at a node's real address, a connection to it is closed at once.
    #[tokio::test(flavor = "current_thread")]
    async fn a_down_node_is_refused() {
        let dead = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let dead_addr = dead.local_addr().expect("addr");
        drop(dead);
        let real = BTreeMap::from([(NodeId(1), echo_server().await), (NodeId(2), dead_addr)]);
        let proxy = LinkProxy::start(&real).await.expect("proxy");
        let mut conn = connect(&proxy, 1, 2).await;
        closed(&mut conn).await.expect("closed at once");
        assert_eq!(proxy.stats()[&(NodeId(1), NodeId(2))].refused, 1);
    }

    /// A partition cuts exactly the links between its sides; a bridge node keeps all of its
    /// links; a new partition replaces the old one.
    #[tokio::test(flavor = "current_thread")]
    async fn a_partition_cuts_exactly_the_links_between_sides() {
        let (_real, proxy) = cluster(5).await;
        let ids = |v: &[u64]| v.iter().copied().map(NodeId).collect::<BTreeSet<_>>();
        let pairs = |v: &[(u64, u64)]| {
            v.iter()
                .map(|&(a, b)| (NodeId(a), NodeId(b)))
                .collect::<BTreeSet<_>>()
        };

        proxy
            .partition(&[ids(&[1, 2]), ids(&[3, 4, 5])])
            .expect("halves");
        assert_eq!(
            proxy.cut_links(),
            pairs(&[(1, 3), (1, 4), (1, 5), (2, 3), (2, 4), (2, 5)])
        );

        proxy
            .partition(&[ids(&[1, 2, 3]), ids(&[3, 4, 5])])
            .expect("bridge");
        assert_eq!(proxy.cut_links(), pairs(&[(1, 4), (1, 5), (2, 4), (2, 5)]));

        proxy.partition(&[ids(&[4])]).expect("one side");
        assert!(proxy.cut_links().is_empty());
        assert!(proxy.partition(&[ids(&[1]), ids(&[7])]).is_err());

        proxy
            .partition(&[ids(&[5]), ids(&[1, 2, 3, 4])])
            .expect("isolate");
        assert_eq!(proxy.cut_links(), pairs(&[(1, 5), (2, 5), (3, 5), (4, 5)]));
        // Traffic across the cut stops; traffic within a side flows.
        let mut across = connect(&proxy, 5, 1).await;
        assert_eq!(echo(&mut across, b"x", SILENCE).await, None);
        let mut within = connect(&proxy, 1, 2).await;
        assert!(echo(&mut within, b"y", WITHIN).await.is_some());

        proxy.heal_all();
        assert!(proxy.cut_links().is_empty());
        closed(&mut across)
            .await
            .expect("blackholed until the heal");
        // The node redials and gets through.
        eventually(WITHIN, EVERY, || async {
            let mut again = connect(&proxy, 5, 1).await;
            Ok(match echo(&mut again, b"z", SILENCE).await {
                Some(_) => Look::Done(()),
                None => Look::Wait("5 -> 1 still silent".into()),
            })
        })
        .await
        .expect("healed");
    }

    /// The real transport through the proxy: messages flow, a cut silences the link (the
    /// transport sees nothing but silence), and after the heal it redials and gets through.
    #[tokio::test(flavor = "current_thread")]
    async fn the_tcp_transport_recovers_from_a_cut() {
        use paxos_core::{Message, Transport};
        use paxos_net::{NetConfig, TcpTransport};

        let l1 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let l2 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let real = BTreeMap::from([
            (NodeId(1), l1.local_addr().expect("addr")),
            (NodeId(2), l2.local_addr().expect("addr")),
        ]);
        let proxy = LinkProxy::start(&real).await.expect("proxy");
        let transport = |id: u64, listener: TcpListener| {
            let peers = proxy
                .peers_of(NodeId(id))
                .into_iter()
                .map(|(n, a)| (n, a.to_string()))
                .collect();
            // Short deadlines, so the test sees the transport notice the silence and redial.
            let cfg = NetConfig::new(NodeId(id), peers)
                .with_keepalive(Duration::from_millis(50), Duration::from_millis(250))
                .with_connect_timeout(Duration::from_millis(250))
                .with_write_timeout(Duration::from_millis(250))
                .with_backoff(Duration::from_millis(10), Duration::from_millis(50));
            TcpTransport::<u64>::with_listener(listener, cfg).expect("transport")
        };
        let t1 = transport(1, l1);
        let mut t2 = transport(2, l2);
        let heard = Arc::new(AtomicU64::new(0));
        let counter = heard.clone();
        let receiver = tokio::spawn(async move {
            while let Ok((NodeId(1), _)) = t2.recv().await {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        let heard_now = || heard.load(Ordering::Relaxed);
        let gets_through = || async {
            let before = heard_now();
            eventually(WITHIN, EVERY, || async {
                let _ = t1.send(NodeId(2), Message::Heartbeat).await;
                Ok(match heard_now() > before {
                    true => Look::Done(()),
                    false => Look::Wait("n2 hears nothing from n1".into()),
                })
            })
            .await
        };
        gets_through().await.expect("the link works");

        proxy.cut(NodeId(1), NodeId(2)).expect("cut");
        // What was already in flight may land; after that, silence for longer than the idle
        // timeout, however much n1 sends.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = heard_now();
        for _ in 0..40 {
            let _ = t1.send(NodeId(2), Message::Heartbeat).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(heard_now(), before, "messages crossed the cut");
        assert!(proxy.stats()[&(NodeId(1), NodeId(2))].bytes_dropped > 0);

        proxy.heal(NodeId(1), NodeId(2)).expect("heal");
        gets_through().await.expect("n1 redials after the heal");
        assert!(proxy.stats()[&(NodeId(1), NodeId(2))].connections >= 2);
        receiver.abort();
    }

    /// Dropping the proxy closes its connections and its listeners.
    #[tokio::test(flavor = "current_thread")]
    async fn dropping_the_proxy_closes_everything() {
        let (_real, proxy) = cluster(2).await;
        let addr = proxy.addr(NodeId(1), NodeId(2)).expect("route");
        let mut conn = connect(&proxy, 1, 2).await;
        assert!(echo(&mut conn, b"a", WITHIN).await.is_some());
        drop(proxy);
        closed(&mut conn).await.expect("closed with the proxy");
        eventually(WITHIN, EVERY, || async {
            Ok(match TcpStream::connect(addr).await {
                Err(_) => Look::Done(()),
                Ok(_) => Look::Wait("the listener still accepts".into()),
            })
        })
        .await
        .expect("listener closed");
    }
}
