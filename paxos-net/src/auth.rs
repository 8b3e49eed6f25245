//! Shared-secret authentication of the handshake: HMAC-SHA256 over the listener's challenge.
//!
//! The listener sends a fresh nonce; the dialer answers
//! `HMAC-SHA256(secret, "paxos-net/1" ‖ version ‖ cluster ‖ dialer ‖ listener ‖ nonce)` (integers
//! little-endian u64, version one byte). Binding the proof to both ids and the cluster means a
//! proof captured on one connection is useless on any other; the nonce makes it single-use.
//! A stranger without the secret cannot join, so it cannot inject messages either: messages are
//! only accepted on authenticated inbound connections, and their sender is the proven id.

use hmac::{Hmac, Mac};
use paxos_core::NodeId;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const DOMAIN: &[u8] = b"paxos-net/1";

fn mac(
    secret: &[u8],
    version: u8,
    cluster_id: u64,
    dialer: NodeId,
    listener: NodeId,
    nonce: &[u8; 32],
) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail; fall back to an empty-keyed MAC
    // rather than panic if the crate ever changes that.
    let mut mac = HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| <HmacSha256 as Mac>::new(&Default::default()));
    mac.update(DOMAIN);
    mac.update(&[version]);
    mac.update(&cluster_id.to_le_bytes());
    mac.update(&dialer.0.to_le_bytes());
    mac.update(&listener.0.to_le_bytes());
    mac.update(nonce);
    mac
}

/// The proof a dialer sends in its [`crate::codec::Hello`].
pub fn prove(
    secret: &[u8],
    version: u8,
    cluster_id: u64,
    dialer: NodeId,
    listener: NodeId,
    nonce: &[u8; 32],
) -> [u8; 32] {
    mac(secret, version, cluster_id, dialer, listener, nonce)
        .finalize()
        .into_bytes()
        .into()
}

/// Whether `proof` is right; compares in constant time.
pub fn verify(
    secret: &[u8],
    version: u8,
    cluster_id: u64,
    dialer: NodeId,
    listener: NodeId,
    nonce: &[u8; 32],
    proof: &[u8; 32],
) -> bool {
    mac(secret, version, cluster_id, dialer, listener, nonce)
        .verify_slice(proof)
        .is_ok()
}
