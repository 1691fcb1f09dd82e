//! Mutual TLS between the cluster's processes (coordinators, workers,
//! dtsctl). Every process holds the cluster CA, a certificate the CA signed
//! and its key; a coordinator refuses at the handshake whoever shows no
//! certificate of that CA, and clients accept only a server whose
//! certificate names `coordinator.dts` (only peer certificates do), so a
//! worker's or an admin's certificate cannot pose as a coordinator.
//! Plaintext is only for `--insecure`.

pub mod acceptor;
pub mod args;
pub mod identity;
pub mod pki;

pub use identity::{caller_of, Caller, Role};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// The name every coordinator certificate carries and every client checks.
pub const SERVER_NAME: &str = "coordinator.dts";

/// Where a process finds its TLS files (config `[tls]`, flags `--tls-*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM of the cluster CA.
    pub ca: Option<PathBuf>,
    /// PEM of this process's certificate.
    pub cert: Option<PathBuf>,
    /// PEM of its private key.
    pub key: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "TLS is on by default and {missing} is not given: pass --tls-ca, --tls-cert and \
         --tls-key (or DTS_TLS_CA, DTS_TLS_CERT, DTS_TLS_KEY; `dtsctl cert` makes them), \
         or --insecure to run in plaintext"
    )]
    Missing { missing: &'static str },
    #[error("--insecure and TLS files are both given: choose one")]
    Contradiction,
    #[error("{what} {path}: {reason}")]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("TLS set-up: {0}")]
    Setup(String),
}

/// How this process talks to the cluster.
#[derive(Clone)]
pub enum Transport {
    /// Plaintext, no authentication: every caller is an admin.
    Insecure,
    Tls(Box<Material>),
}

/// The loaded and checked PEM files.
#[derive(Clone)]
pub struct Material {
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    /// Who this process is, read from its own certificate.
    pub own: Caller,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Insecure => f.write_str("insecure"),
            Transport::Tls(m) => write!(f, "mTLS as {}", m.own),
        }
    }
}

impl Transport {
    /// TLS from `files`, unless `insecure`; refuses a half-given set.
    pub fn from_settings(files: &TlsFiles, insecure: bool) -> Result<Self, TlsError> {
        let any = files.ca.is_some() || files.cert.is_some() || files.key.is_some();
        if insecure {
            return if any {
                Err(TlsError::Contradiction)
            } else {
                Ok(Transport::Insecure)
            };
        }
        let ca = files.ca.as_deref().ok_or(TlsError::Missing {
            missing: "the CA (--tls-ca)",
        })?;
        let cert = files.cert.as_deref().ok_or(TlsError::Missing {
            missing: "the certificate (--tls-cert)",
        })?;
        let key = files.key.as_deref().ok_or(TlsError::Missing {
            missing: "the key (--tls-key)",
        })?;
        Ok(Transport::Tls(Box::new(Material::load(ca, cert, key)?)))
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// The scheme of URIs to the coordinators.
    pub fn scheme(&self) -> &'static str {
        match self {
            Transport::Insecure => "http",
            Transport::Tls(_) => "https",
        }
    }

    /// What a tonic channel is configured with (`None`: plaintext).
    pub fn client_config(&self) -> Option<ClientTlsConfig> {
        match self {
            Transport::Insecure => None,
            Transport::Tls(m) => Some(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(&m.ca_pem))
                    .identity(Identity::from_pem(&m.cert_pem, &m.key_pem))
                    .domain_name(SERVER_NAME),
            ),
        }
    }
}

impl Material {
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let ca_pem = read("CA", ca)?;
        let cert_pem = read("certificate", cert)?;
        let key_pem = read("key", key)?;
        let bad = |what, path: &Path, reason: String| TlsError::File {
            what,
            path: path.to_path_buf(),
            reason,
        };
        let authorities = certificates(&ca_pem).map_err(|r| bad("CA", ca, r))?;
        let chain = certificates(&cert_pem).map_err(|r| bad("certificate", cert, r))?;
        PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| bad("key", key, format!("no private key: {e}")))?;
        let own = caller_of(&chain[0]).map_err(|r| bad("certificate", cert, r))?;
        // Catch a certificate from another CA here, not at every handshake.
        let mut roots = rustls::RootCertStore::empty();
        for authority in authorities {
            roots
                .add(authority)
                .map_err(|e| bad("CA", ca, e.to_string()))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
        let now = rustls_pki_types::UnixTime::now();
        verifier
            .verify_client_cert(&chain[0], &chain[1..], now)
            .map_err(|e| {
                bad(
                    "certificate",
                    cert,
                    format!("not valid under CA {}: {e}", ca.display()),
                )
            })?;
        Ok(Self {
            ca_pem,
            cert_pem,
            key_pem,
            own,
        })
    }

    /// The server side: this process's certificate, and the CA that every
    /// client's certificate must chain to.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for authority in certificates(&self.ca_pem).map_err(TlsError::Setup)? {
            roots
                .add(authority)
                .map_err(|e| TlsError::Setup(e.to_string()))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
        let chain = certificates(&self.cert_pem).map_err(TlsError::Setup)?;
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem)
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("holds no certificate".to_string());
    }
    Ok(certs)
}
