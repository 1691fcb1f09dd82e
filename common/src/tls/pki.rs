//! A cluster's certificate authority and the certificates it issues
//! (`dtsctl cert`, the local cluster and the test harness). Keys are ECDSA
//! P-256; a certificate's CN is its holder's name, its OU the holder's role.

use super::identity::Role;
use super::SERVER_NAME;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{0}` is not a valid certificate name (letters, digits, `.`, `_` and `-`)")]
    BadName(String),
}

/// The span a certificate is valid for.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// From an hour ago (clocks drift) for `days` days.
    pub fn days(days: u32) -> Self {
        let now = SystemTime::now();
        Self {
            not_before: now - Duration::from_secs(3600),
            not_after: now + Duration::from_secs(u64::from(days) * 86_400),
        }
    }
}

/// A PEM certificate and its PEM private key.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The cluster CA: what signs every node's certificate.
#[derive(Clone)]
pub struct Authority {
    pub issued: Issued,
}

impl Authority {
    pub fn generate(name: &str, validity: Validity) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished(name, None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = validity.not_before.into();
        params.not_after = validity.not_after.into();
        let cert = params.self_signed(&key)?;
        Ok(Self {
            issued: Issued {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            },
        })
    }

    /// `ca.pem` and `ca.key` in `dir`.
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        Ok(Self {
            issued: Issued {
                cert_pem: read(&dir.join("ca.pem"))?,
                key_pem: read(&dir.join("ca.key"))?,
            },
        })
    }

    /// A certificate for `name` in `role`. Coordinators (peers) also serve:
    /// their certificate carries the name clients check, `coordinator.dts`,
    /// and `hosts` (addresses or DNS names) as alternatives.
    pub fn issue(
        &self,
        name: &str,
        role: Role,
        hosts: &[String],
        validity: Validity,
    ) -> Result<Issued, PkiError> {
        check_name(name)?;
        let ca_key = KeyPair::from_pem(&self.issued.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&self.issued.cert_pem, ca_key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished(name, Some(role));
        params.not_before = validity.not_before.into();
        params.not_after = validity.not_after.into();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if role == Role::Peer {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
            let mut names = vec![SERVER_NAME.to_string()];
            names.extend(hosts.iter().cloned());
            params.subject_alt_names = names
                .into_iter()
                .map(|host| match host.parse() {
                    Ok(ip) => Ok(SanType::IpAddress(ip)),
                    Err(_) => Ok(SanType::DnsName(host.try_into()?)),
                })
                .collect::<Result<_, rcgen::Error>>()?;
        }
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Writes `ca.pem` and `ca.key` (owner-only) into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), PkiError> {
        self.issued.write(dir, "ca")
    }
}

impl Issued {
    /// Writes `<stem>.pem` and `<stem>.key` (owner-only) into `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(), PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        write(&dir.join(format!("{stem}.pem")), &self.cert_pem, false)?;
        write(&dir.join(format!("{stem}.key")), &self.key_pem, true)
    }
}

fn distinguished(name: &str, role: Option<Role>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "dts");
    if let Some(role) = role {
        dn.push(DnType::OrganizationalUnitName, role.as_str());
    }
    dn.push(DnType::CommonName, name);
    dn
}

fn check_name(name: &str) -> Result<(), PkiError> {
    let fine = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if fine {
        Ok(())
    } else {
        Err(PkiError::BadName(name.to_string()))
    }
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, text: &str, private: bool) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(path, text).map_err(io)?;
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}
