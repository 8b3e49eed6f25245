//! Mutually authenticated TLS 1.3 peer links: a cluster CA, a certificate per node, and the
//! checks that tie a connection to a node id.
//!
//! Why TLS (rustls) and not a Noise handshake: certificates name the node, so identity comes
//! from something the cluster's operator issued rather than from a claim; operators already
//! know how to make, rotate and inspect them; and rustls is audited, widely deployed and
//! builds with the *ring* provider from a plain C compiler.
//!
//! - Every node holds the cluster CA's certificate, its own certificate (issued by that CA,
//!   with the DNS name [`node_name`]`(id)`, e.g. `node-2.paxos`) and its private key:
//!   [`TlsCredentials`]. [`ClusterCa`] makes them.
//! - The dialer checks that the listener's certificate names the peer it meant to reach, so a
//!   fake listener gets no frame of cluster traffic. The listener requires a client
//!   certificate from the CA, and the `Hello` inside the encrypted stream must claim the very
//!   node that certificate names ([`crate::codec::Refusal::NotYourCertificate`]).
//! - Every frame after that travels inside TLS records: a byte changed, added or dropped on the
//!   path fails the record's authentication and closes the link.
//! - Only TLS 1.3, no session resumption (every connection proves its certificate afresh), and
//!   Ed25519 keys, whose signatures are deterministic and of fixed size, so simulated runs
//!   exchange the same number of bytes on every run.

use crate::error::NetError;
use paxos_core::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ED25519, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

/// What making, reading or using credentials can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM text holds no (or a malformed) item of the kind expected.
    #[error("{what}: {reason}")]
    Pem {
        /// Which item (e.g. "node certificate").
        what: &'static str,
        /// Why it could not be read.
        reason: String,
    },
    /// A credentials file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Making a key or certificate failed.
    #[error("generating credentials: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the credentials (e.g. the key does not match the certificate).
    #[error("unusable credentials: {0}")]
    Unusable(String),
}

/// The DNS name a node's certificate carries: `node-<id>.paxos`.
pub fn node_name(node: NodeId) -> String {
    format!("node-{}.paxos", node.0)
}

/// A node's TLS identity: the cluster CA's certificate (whom to trust), the node's
/// certificate chain and its private key (PKCS#8), all DER.
///
/// Read them with [`TlsCredentials::from_pem`] or [`TlsCredentials::load`]; make them with
/// [`ClusterCa::issue`]. `Debug` never prints the key.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsCredentials {
    node: NodeId,
    ca: Vec<u8>,
    chain: Vec<Vec<u8>>,
    key: Vec<u8>,
}

fn pem_error(what: &'static str) -> impl Fn(rustls::pki_types::pem::Error) -> TlsError {
    move |e| TlsError::Pem {
        what,
        reason: e.to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::File {
        path: path.display().to_string(),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<(), TlsError> {
    std::fs::write(path, text).map_err(|source| TlsError::File {
        path: path.display().to_string(),
        source,
    })
}

/// Write a private key: created readable by its owner only (never briefly readable by
/// others), and narrowed to that if the file was already there.
fn write_private(path: &Path, text: &str) -> Result<(), TlsError> {
    use std::io::Write;
    let file_error = |source| TlsError::File {
        path: path.display().to_string(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(file_error)?;
    restrict_to_owner(path)?;
    file.write_all(text.as_bytes()).map_err(file_error)?;
    file.sync_all().map_err(file_error)
}

impl TlsCredentials {
    /// Node `node`'s credentials from PEM texts: the CA certificate, the node's certificate
    /// (chain, leaf first) and its PKCS#8 private key.
    ///
    /// # Errors
    /// [`TlsError::Pem`] for a text without the expected item; [`TlsError::Unusable`] if the
    /// key does not match the certificate or the certificate does not name `node`.
    pub fn from_pem(
        node: NodeId,
        ca_pem: &[u8],
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<Self, TlsError> {
        let ca = CertificateDer::from_pem_slice(ca_pem).map_err(pem_error("CA certificate"))?;
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_error("node certificate"))?;
        if chain.is_empty() {
            return Err(TlsError::Pem {
                what: "node certificate",
                reason: "no certificate in the text".into(),
            });
        }
        let key =
            PrivatePkcs8KeyDer::from_pem_slice(key_pem).map_err(pem_error("node private key"))?;
        let creds = TlsCredentials {
            node,
            ca: ca.to_vec(),
            chain,
            key: key.secret_pkcs8_der().to_vec(),
        };
        // Fail here, at start-up, rather than at the first connection.
        Contexts::new(&creds)?;
        Ok(creds)
    }

    /// Read node `node`'s credentials from `dir`, as [`TlsCredentials::save`] and
    /// `paxos-harness certs` write them: `ca.pem`, `node-<id>.pem`, `node-<id>.key`.
    ///
    /// # Errors
    /// [`TlsError::File`] naming a file that cannot be read, else as [`TlsCredentials::from_pem`].
    pub fn load(dir: &Path, node: NodeId) -> Result<Self, TlsError> {
        let (cert, key) = Self::file_names(node);
        Self::from_pem(
            node,
            &read(&dir.join("ca.pem"))?,
            &read(&dir.join(cert))?,
            &read(&dir.join(key))?,
        )
    }

    /// Write these credentials into `dir` (which must exist) under the names
    /// [`TlsCredentials::load`] reads; the key file is made readable by its owner only.
    ///
    /// # Errors
    /// [`TlsError::File`] naming the file that could not be written.
    pub fn save(&self, dir: &Path) -> Result<(), TlsError> {
        let (cert, key) = Self::file_names(self.node);
        write(&dir.join("ca.pem"), &self.ca_pem())?;
        write(&dir.join(cert), &self.cert_pem())?;
        write_private(&dir.join(key), &self.key_pem())
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        pem("CERTIFICATE", &self.ca)
    }

    /// The node's certificate chain, PEM, leaf first.
    pub fn cert_pem(&self) -> String {
        self.chain.iter().map(|c| pem("CERTIFICATE", c)).collect()
    }

    /// The node's private key, PEM (PKCS#8). Keep it secret.
    pub fn key_pem(&self) -> String {
        pem("PRIVATE KEY", &self.key)
    }

    fn file_names(node: NodeId) -> (String, String) {
        (
            format!("node-{}.pem", node.0),
            format!("node-{}.key", node.0),
        )
    }

    /// The node these credentials are for.
    pub fn node(&self) -> NodeId {
        self.node
    }
}

#[cfg(unix)]
fn restrict_to_owner(path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        TlsError::File {
            path: path.display().to_string(),
            source,
        }
    })
}

#[cfg(not(unix))]
fn restrict_to_owner(_: &Path) -> Result<(), TlsError> {
    Ok(())
}

fn pem(tag: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(tag, der))
}

impl fmt::Debug for TlsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsCredentials")
            .field("node", &self.node)
            .field("chain", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// A cluster's certificate authority: issues every node's [`TlsCredentials`].
///
/// Keep its key (`ca.key`) off the nodes: it is needed only to issue certificates for new
/// nodes ([`ClusterCa::from_pem`] reloads it).
pub struct ClusterCa {
    params: CertificateParams,
    key: KeyPair,
    cert_der: Vec<u8>,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

/// The CA's parameters: the same for a cluster whether made or reloaded, so a reloaded CA
/// issues certificates that chain to the certificate made first.
fn ca_params(cluster_id: u64) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(
        DnType::CommonName,
        format!("paxos cluster {cluster_id:#x} CA"),
    );
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(SerialNumber::from(1u64));
    params
}

impl ClusterCa {
    /// A new CA for cluster `cluster_id`, with a fresh Ed25519 key.
    ///
    /// # Errors
    /// [`TlsError::Generate`] if the key or certificate cannot be made.
    pub fn generate(cluster_id: u64) -> Result<Self, TlsError> {
        let key = KeyPair::generate_for(&PKCS_ED25519)?;
        let params = ca_params(cluster_id);
        let cert_der = params.self_signed(&key)?.der().to_vec();
        Ok(ClusterCa {
            params,
            key,
            cert_der,
        })
    }

    /// Reload cluster `cluster_id`'s CA from its certificate and key (PEM), to issue more.
    ///
    /// # Errors
    /// [`TlsError::Pem`] for a text without the expected item; [`TlsError::Unusable`] if the
    /// certificate is another cluster's or the key is not its key.
    pub fn from_pem(cluster_id: u64, cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let cert = CertificateDer::from_pem_slice(cert_pem).map_err(pem_error("CA certificate"))?;
        let key_text = std::str::from_utf8(key_pem).map_err(|e| TlsError::Pem {
            what: "CA private key",
            reason: e.to_string(),
        })?;
        let key = KeyPair::from_pem(key_text).map_err(|e| TlsError::Pem {
            what: "CA private key",
            reason: e.to_string(),
        })?;
        // The CA certificate is a pure function of the cluster id and the key (fixed
        // parameters, deterministic Ed25519), so remaking it proves both belong together and
        // that what this CA issues will chain to it.
        let params = ca_params(cluster_id);
        if params.self_signed(&key)?.der().as_ref() != cert.as_ref() {
            return Err(TlsError::Unusable(format!(
                "the CA certificate is not cluster {cluster_id}'s, or not this key's"
            )));
        }
        Ok(ClusterCa {
            params,
            key,
            cert_der: cert.to_vec(),
        })
    }

    /// The CA certificate, PEM (every node trusts it).
    pub fn cert_pem(&self) -> String {
        pem("CERTIFICATE", &self.cert_der)
    }

    /// The CA private key, PEM. Keep it secret, and off the nodes.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Write the CA into `dir` (which must exist) as `ca.pem` and `ca.key`, the key readable
    /// by its owner only; [`ClusterCa::load`] reads them back.
    ///
    /// # Errors
    /// [`TlsError::File`] naming the file that could not be written.
    pub fn save(&self, dir: &Path) -> Result<(), TlsError> {
        write(&dir.join("ca.pem"), &self.cert_pem())?;
        write_private(&dir.join("ca.key"), &self.key_pem())
    }

    /// Read cluster `cluster_id`'s CA from `dir` (`ca.pem`, `ca.key`).
    ///
    /// # Errors
    /// [`TlsError::File`] naming a file that cannot be read, else as [`ClusterCa::from_pem`].
    pub fn load(dir: &Path, cluster_id: u64) -> Result<Self, TlsError> {
        Self::from_pem(
            cluster_id,
            &read(&dir.join("ca.pem"))?,
            &read(&dir.join("ca.key"))?,
        )
    }

    /// Issue node `node`'s credentials: a fresh Ed25519 key and a certificate naming
    /// [`node_name`]`(node)`, good for both ends of a link.
    ///
    /// # Errors
    /// [`TlsError::Generate`] if the key or certificate cannot be made.
    pub fn issue(&self, node: NodeId) -> Result<TlsCredentials, TlsError> {
        let key = KeyPair::generate_for(&PKCS_ED25519)?;
        let mut params = CertificateParams::new(vec![node_name(node)])?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, node_name(node));
        params.distinguished_name = name;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        // A fixed-width serial (DER integers shed leading zero bytes, so a hashed one would
        // vary in length): the top bit set keeps it positive-looking yet eight bytes wide.
        params.serial_number = Some(SerialNumber::from(node.0 | 1 << 62));
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(TlsCredentials {
            node,
            ca: self.cert_der.clone(),
            chain: vec![cert.der().to_vec()],
            key: key.serialize_der(),
        })
    }
}

/// The rustls configurations of one node: one to dial with, one to accept with.
#[derive(Clone)]
// Without a transport compiled in, `tls` only makes and reads credentials.
#[cfg_attr(not(any(feature = "tcp", feature = "turmoil")), allow(dead_code))]
pub(crate) struct Contexts {
    connector: TlsConnector,
    acceptor: TlsAcceptor,
}

impl fmt::Debug for Contexts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contexts").finish_non_exhaustive()
    }
}

fn unusable(e: impl fmt::Display) -> TlsError {
    TlsError::Unusable(e.to_string())
}

#[cfg_attr(not(any(feature = "tcp", feature = "turmoil")), allow(dead_code))]
impl Contexts {
    pub(crate) fn new(creds: &TlsCredentials) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(creds.ca.clone()))
            .map_err(unusable)?;
        let roots = Arc::new(roots);
        let chain: Vec<CertificateDer<'static>> = creds
            .chain
            .iter()
            .map(|c| CertificateDer::from(c.clone()))
            .collect();
        let key = || PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(creds.key.clone()));
        if !names(&chain[0], creds.node) {
            return Err(TlsError::Unusable(format!(
                "the certificate does not name {} ({})",
                creds.node,
                node_name(creds.node)
            )));
        }

        let mut client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(unusable)?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(chain.clone(), key())
            .map_err(unusable)?;
        client.resumption = rustls::client::Resumption::disabled();

        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(unusable)?;
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(unusable)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key())
            .map_err(unusable)?;
        server.send_tls13_tickets = 0;
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});

        Ok(Contexts {
            connector: TlsConnector::from(Arc::new(client)),
            acceptor: TlsAcceptor::from(Arc::new(server)),
        })
    }

    /// Run the client side over `stream`, accepting only a certificate that names `peer`.
    pub(crate) async fn dial<S>(&self, stream: S, peer: NodeId) -> Result<TlsStream<S>, NetError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = ServerName::try_from(node_name(peer))
            .map_err(|e| NetError::Config(format!("no DNS name for {peer}: {e}")))?;
        let stream = self
            .connector
            .connect(name, stream)
            .await
            .map_err(handshake_error)?;
        Ok(TlsStream::Client(stream))
    }

    /// Run the server side over `stream`; returns the stream and the client's certificate
    /// (already verified to chain to the cluster CA).
    pub(crate) async fn accept<S>(
        &self,
        stream: S,
    ) -> Result<(TlsStream<S>, CertificateDer<'static>), NetError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = self
            .acceptor
            .accept(stream)
            .await
            .map_err(handshake_error)?;
        let leaf = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .cloned()
            .ok_or(NetError::Protocol("TLS client sent no certificate"))?;
        Ok((TlsStream::Server(stream), leaf))
    }
}

/// rustls reports its own failures (a bad certificate, a failed record) as `InvalidData`;
/// anything else is the socket's.
fn handshake_error(e: std::io::Error) -> NetError {
    if e.kind() == std::io::ErrorKind::InvalidData {
        NetError::Tls(e)
    } else {
        NetError::Io(e)
    }
}

/// True if `cert` names `node` (carries [`node_name`]`(node)`).
pub(crate) fn names(cert: &CertificateDer<'_>, node: NodeId) -> bool {
    let Ok(name) = ServerName::try_from(node_name(node)) else {
        return false;
    };
    webpki::EndEntityCert::try_from(cert)
        .and_then(|cert| cert.verify_is_valid_for_subject_name(&name))
        .is_ok()
}

// The handshake runs over a transport's connection: tested with one compiled in.
#[cfg(all(test, any(feature = "tcp", feature = "turmoil")))]
mod tests {
    use super::*;
    use crate::codec::{FrameCodec, HANDSHAKE_MAX_FRAME_LEN, Refusal};
    use crate::handshake::{self, Identity};
    use crate::inbound::Inbound;
    use crate::link::Link;
    use crate::metrics::Counters;
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Mutex;
    use std::time::Duration;
    use tokio_util::codec::Framed;

    fn identity(id: u64, creds: &TlsCredentials) -> Arc<Identity> {
        Arc::new(Identity {
            id: NodeId(id),
            cluster_id: 0,
            members: Mutex::new(BTreeSet::from([NodeId(2), NodeId(3)])),
            secret: None,
            tls: Some(Contexts::new(creds).expect("contexts")),
        })
    }

    /// Node 1's listening side, as the transport runs it.
    fn listener(creds: &TlsCredentials) -> Inbound<u64> {
        Inbound {
            identity: identity(1, creds),
            inbox: crate::queue::bounded(1, 1 << 20).0,
            counters: Arc::new(Counters::default()),
            max_frame_len: HANDSHAKE_MAX_FRAME_LEN,
            handshake_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            live: Mutex::new(BTreeMap::new()),
            refusals: Mutex::new(crate::throttle::LogThrottle::default()),
        }
    }

    /// A dialer holding `creds` and claiming to be node `claims` meets node 1's listener.
    async fn meet(
        ca: &ClusterCa,
        creds: &TlsCredentials,
        claims: u64,
    ) -> (Result<NodeId, NetError>, Result<(), NetError>) {
        let one = listener(&ca.issue(NodeId(1)).expect("issue"));
        let dialer = identity(claims, creds);
        let (a, b) = tokio::io::duplex(64 * 1024);
        let serve = async { one.handshake(b, [9; 32]).await.map(|(_, peer)| peer) };
        let dial = async {
            let tls = dialer.tls.as_ref().expect("tls");
            let stream = tls.dial(a, NodeId(1)).await?;
            let mut conn = Framed::new(
                Link::Tls(Box::new(stream)),
                FrameCodec::<u64>::new(HANDSHAKE_MAX_FRAME_LEN),
            );
            handshake::dial(&mut conn, &dialer, NodeId(1)).await
        };
        tokio::join!(serve, dial)
    }

    /// Identity comes from the certificate: holding node 3's, a dialer cannot be node 2.
    #[tokio::test]
    async fn a_hello_must_claim_the_node_its_certificate_names() {
        let ca = ClusterCa::generate(1).expect("CA");
        let three = ca.issue(NodeId(3)).expect("issue");
        let (served, dialled) = meet(&ca, &three, 2).await;
        assert!(
            matches!(
                served,
                Err(NetError::Refused(Refusal::NotYourCertificate(NodeId(2))))
            ),
            "{served:?}"
        );
        assert!(
            matches!(
                dialled,
                Err(NetError::Refused(Refusal::NotYourCertificate(NodeId(2))))
            ),
            "{dialled:?}"
        );
        let (served, dialled) = meet(&ca, &three, 3).await;
        assert_eq!(served.expect("welcomed"), NodeId(3));
        dialled.expect("welcomed");
    }

    /// The dialer checks the listener: another node's certificate is not node 1's.
    #[tokio::test]
    async fn a_dialer_accepts_only_the_certificate_of_the_node_it_dials() {
        let ca = ClusterCa::generate(1).expect("CA");
        let two = ca.issue(NodeId(2)).expect("issue");
        let pretender = listener(&ca.issue(NodeId(3)).expect("issue"));
        let dialer = identity(2, &two);
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (served, dialled) = tokio::join!(
            pretender.handshake(b, [9; 32]),
            dialer.tls.as_ref().expect("tls").dial(a, NodeId(1))
        );
        assert!(
            matches!(dialled, Err(NetError::Tls(_))),
            "{:?}",
            dialled.err()
        );
        assert!(served.is_err());
    }

    #[test]
    fn a_reloaded_ca_issues_certificates_that_chain_to_the_first() {
        let ca = ClusterCa::generate(5).expect("CA");
        let again = ClusterCa::from_pem(5, ca.cert_pem().as_bytes(), ca.key_pem().as_bytes())
            .expect("reload");
        let creds = again.issue(NodeId(7)).expect("issue");
        assert_eq!(creds.ca_pem(), ca.cert_pem());
        // The chain is checked where it is used: a node trusting `ca` accepts it.
        let reread = TlsCredentials::from_pem(
            NodeId(7),
            ca.cert_pem().as_bytes(),
            creds.cert_pem().as_bytes(),
            creds.key_pem().as_bytes(),
        )
        .expect("reads");
        assert!(names(
            &CertificateDer::from(reread.chain[0].clone()),
            NodeId(7)
        ));
        assert!(!names(
            &CertificateDer::from(reread.chain[0].clone()),
            NodeId(8)
        ));
    }

    #[test]
    fn a_ca_reloaded_under_another_cluster_id_or_key_is_refused() {
        let ca = ClusterCa::generate(5).expect("CA");
        let other = ClusterCa::generate(5).expect("CA");
        let wrong_id = ClusterCa::from_pem(6, ca.cert_pem().as_bytes(), ca.key_pem().as_bytes());
        assert!(
            matches!(wrong_id, Err(TlsError::Unusable(_))),
            "{wrong_id:?}"
        );
        let wrong_key =
            ClusterCa::from_pem(5, ca.cert_pem().as_bytes(), other.key_pem().as_bytes());
        assert!(
            matches!(wrong_key, Err(TlsError::Unusable(_))),
            "{wrong_key:?}"
        );
    }
}
