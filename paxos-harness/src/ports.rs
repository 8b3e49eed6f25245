//! Loopback ports for real-network clusters: [`free_port`] picks one, [`bind_with_retry`]
//! binds it again after a restart.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// How often [`bind_with_retry`] tries, and how long it waits between tries (5 s in all).
const BIND_ATTEMPTS: u32 = 100;
const BIND_PAUSE: Duration = Duration::from_millis(50);

/// A free loopback port **below** the kernel's ephemeral range (32768 and up on Linux).
///
/// A node's port must stay free while the node is down, to be bound again on restart. A port
/// from the ephemeral range (what `bind(":0")` hands out) can meanwhile become the source port
/// of any outgoing connection on the machine, which then holds it for as long as that
/// connection lives, and the restart fails with "address in use".
///
/// # Errors
/// No port in the range could be bound.
pub fn free_port() -> std::io::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    const COUNT: u32 = 22_000;
    // Start each process somewhere else in the range, so parallel test processes rarely meet.
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % COUNT,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..COUNT {
        let port = FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % COUNT;
        let port = u16::try_from(port).unwrap_or(u16::MAX);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free port below the ephemeral range",
    ))
}

/// `bind()` until it succeeds, for up to 5 s: right after a crash, the dead incarnation's
/// listener (or its sockets in `TIME_WAIT`) can hold the address for a moment. Logs the first
/// failure at `warn`.
///
/// # Errors
/// The last bind error once the time is up.
pub async fn bind_with_retry<T, E: Display, Fut>(
    addr: &str,
    mut bind: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match bind().await {
            Ok(t) => return Ok(t),
            Err(e) if attempt >= BIND_ATTEMPTS => return Err(e),
            Err(e) => {
                if attempt == 1 {
                    tracing::warn!(%addr, error = %e, "cannot bind yet; retrying for 5 s");
                }
                attempt += 1;
                tokio::time::sleep(BIND_PAUSE).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_free_and_below_the_ephemeral_range() {
        let a = free_port().expect("a port");
        let b = free_port().expect("another port");
        assert_ne!(a, b);
        assert!((10_000..32_000).contains(&a), "{a}");
        assert!(std::net::TcpListener::bind(("127.0.0.1", a)).is_ok());
    }

    /// A held port is bound as soon as its holder lets go.
    #[tokio::test(flavor = "current_thread")]
    async fn bind_with_retry_waits_for_the_port_to_be_released() {
        let port = free_port().expect("a port");
        let holder = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind");
        let addr = format!("127.0.0.1:{port}");
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(120)).await;
            drop(holder);
        });
        let mut tries = 0;
        let bound = bind_with_retry(&addr, || {
            tries += 1;
            let addr = addr.clone();
            async move { tokio::net::TcpListener::bind(addr).await }
        })
        .await;
        assert!(bound.is_ok(), "{bound:?}");
        assert!(tries >= 2, "bound at once although the port was held");
        release.await.expect("released");
    }
}
