//! Throwaway TLS credentials for the harness's own clusters, so that every test and suite runs
//! its peer links the way a deployed cluster does (mutually authenticated, encrypted) without
//! anyone making certificates by hand.
//!
//! One cluster CA per process and one certificate per node id, made on first use and handed out
//! again afterwards: a restarted node keeps its identity, and a run of thousands of seeds makes
//! a handful of keys, not thousands.
//!
//! [`make`] writes a real cluster's credentials into a directory (what `paxos-harness certs`
//! runs, and what the tests of node processes use).

use crate::cluster::Failure;
use paxos_core::NodeId;
use paxos_net::{ClusterCa, TlsCredentials, TlsError};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// The cluster id the harness's clusters share (it also names their CA).
pub const CLUSTER_ID: u64 = 0x5041_5853;

/// Node `node`'s credentials under the process's throwaway CA.
///
/// # Errors
/// A [`Failure`] if a key or certificate cannot be made (the machine's crypto is unusable).
pub fn throwaway(node: NodeId) -> Result<TlsCredentials, Failure> {
    static CA: OnceLock<Result<ClusterCa, String>> = OnceLock::new();
    static ISSUED: Mutex<BTreeMap<NodeId, TlsCredentials>> = Mutex::new(BTreeMap::new());
    let ca = CA
        .get_or_init(|| ClusterCa::generate(CLUSTER_ID).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Failure(format!("throwaway cluster CA: {e}")))?;
    let mut issued = ISSUED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(credentials) = issued.get(&node) {
        return Ok(credentials.clone());
    }
    let credentials = ca
        .issue(node)
        .map_err(|e| Failure(format!("throwaway credentials for {node}: {e}")))?;
    issued.insert(node, credentials.clone());
    Ok(credentials)
}

/// What [`make`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Made {
    /// A new CA was made (else the one in the directory issued the new certificates).
    pub new_ca: bool,
    /// Nodes given new credentials.
    pub issued: Vec<NodeId>,
    /// Nodes whose credentials were already there and were kept (a node's certificate is
    /// never replaced behind its back).
    pub kept: Vec<NodeId>,
}

/// Make cluster `cluster_id`'s credentials in `dir` (created if missing): the CA (`ca.pem`,
/// `ca.key`) unless it is there already, and for each of `nodes` without them its certificate
/// and key (`node-<id>.pem`, `node-<id>.key`). Run it again with more ids to add nodes.
///
/// # Errors
/// A [`TlsError`]: a file that cannot be read or written, a CA in `dir` that is not cluster
/// `cluster_id`'s, a node's existing files that do not load.
pub fn make(dir: &Path, cluster_id: u64, nodes: &[NodeId]) -> Result<Made, TlsError> {
    std::fs::create_dir_all(dir).map_err(|source| TlsError::File {
        path: dir.display().to_string(),
        source,
    })?;
    let new_ca = !dir.join("ca.pem").exists();
    let ca = if new_ca {
        let ca = ClusterCa::generate(cluster_id)?;
        ca.save(dir)?;
        ca
    } else {
        ClusterCa::load(dir, cluster_id)?
    };
    let mut made = Made {
        new_ca,
        issued: Vec::new(),
        kept: Vec::new(),
    };
    for &node in nodes {
        if dir.join(format!("node-{}.pem", node.0)).exists() {
            // Kept only if it still loads: a half-written or foreign pair is reported.
            TlsCredentials::load(dir, node)?;
            made.kept.push(node);
        } else {
            ca.issue(node)?.save(dir)?;
            made.issued.push(node);
        }
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_keeps_its_credentials_and_nodes_do_not_share_them() {
        let a = throwaway(NodeId(1)).unwrap();
        let again = throwaway(NodeId(1)).unwrap();
        let b = throwaway(NodeId(2)).unwrap();
        assert_eq!(a.node(), NodeId(1));
        assert_eq!(b.node(), NodeId(2));
        assert_eq!(a.cert_pem(), again.cert_pem());
        assert_ne!(a.cert_pem(), b.cert_pem());
        assert_eq!(a.ca_pem(), b.ca_pem(), "one CA for the process");
    }

    #[test]
    fn make_adds_nodes_to_an_existing_ca_and_keeps_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let first = make(dir.path(), 9, &[NodeId(1), NodeId(2)]).unwrap();
        assert_eq!(
            first,
            Made {
                new_ca: true,
                issued: vec![NodeId(1), NodeId(2)],
                kept: vec![]
            }
        );
        let n1 = TlsCredentials::load(dir.path(), NodeId(1)).unwrap();
        let again = make(dir.path(), 9, &[NodeId(1), NodeId(3)]).unwrap();
        assert_eq!(
            again,
            Made {
                new_ca: false,
                issued: vec![NodeId(3)],
                kept: vec![NodeId(1)]
            }
        );
        let n3 = TlsCredentials::load(dir.path(), NodeId(3)).unwrap();
        assert_eq!(n3.ca_pem(), n1.ca_pem(), "node 3 trusts the same CA");
        assert_eq!(TlsCredentials::load(dir.path(), NodeId(1)).unwrap(), n1);
        // The CA is cluster 9's: another cluster id is refused rather than issuing
        // certificates nobody trusts.
        assert!(make(dir.path(), 10, &[NodeId(4)]).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in ["ca.key", "node-1.key", "node-3.key"] {
                let mode = std::fs::metadata(dir.path().join(key))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o077, 0, "{key} is readable by others: {mode:o}");
            }
        }
    }
}
