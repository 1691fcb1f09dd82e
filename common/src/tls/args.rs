//! The TLS flags every dts binary takes, the same way.

use super::TlsFiles;
use std::path::PathBuf;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// PEM of the cluster CA.
    #[arg(long, global = true, env = "DTS_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// PEM of this process's certificate (signed by the cluster CA).
    #[arg(long, global = true, env = "DTS_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM of its private key.
    #[arg(long, global = true, env = "DTS_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Plaintext gRPC without authentication (TLS is on by default).
    #[arg(long, global = true, env = "DTS_INSECURE")]
    pub insecure: bool,
}

impl TlsArgs {
    /// Overrides what a config file said with what the flags say.
    pub fn apply(self, files: &mut TlsFiles, insecure: &mut bool) {
        if self.tls_ca.is_some() {
            files.ca = self.tls_ca;
        }
        if self.tls_cert.is_some() {
            files.cert = self.tls_cert;
        }
        if self.tls_key.is_some() {
            files.key = self.tls_key;
        }
        *insecure |= self.insecure;
    }

    pub fn files(&self) -> TlsFiles {
        TlsFiles {
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
        }
    }
}
