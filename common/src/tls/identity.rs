//! Who a caller is: the name and role its certificate carries. The role is
//! the subject's organizational unit (OU), the name its common name (CN), as
//! `dtsctl cert issue` writes them.

use std::fmt;
use std::str::FromStr;

/// What a certificate lets its holder do (see the coordinator's `auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything in Admin.
    Admin,
    /// Admin's reading calls, and verification.
    Viewer,
    /// WorkerControl only: register, heartbeat, report.
    Worker,
    /// A coordinator: Raft, and its peers' node status.
    Peer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Viewer, Role::Worker, Role::Peer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
            Role::Worker => "worker",
            Role::Peer => "peer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a role (admin, viewer, worker, peer)"))
    }
}

/// The authenticated caller of one gRPC request, put into the request's
/// extensions by the coordinator's authorization layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// Who calls a cluster run with `--insecure`: anyone, as admin.
    pub fn unauthenticated() -> Self {
        Self {
            name: "(insecure)".to_string(),
            role: Role::Admin,
        }
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.role)
    }
}

/// Reads the caller out of its (already verified) DER certificate.
pub fn caller_of(der: &[u8]) -> Result<Caller, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("unreadable certificate: {e}"))?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("(no common name)")
        .to_string();
    let role = subject
        .iter_organizational_unit()
        .next()
        .and_then(|ou| ou.as_str().ok())
        .ok_or_else(|| format!("certificate of `{name}` names no role (its OU)"))?;
    let role = role
        .parse()
        .map_err(|e| format!("certificate of `{name}`: {e}"))?;
    Ok(Caller { name, role })
}
