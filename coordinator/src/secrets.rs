//! Database passwords in task specs: sealed before a spec is proposed to
//! Raft (so the log and snapshots hold ciphertext), opened only for the
//! assignment sent to the worker that owns the task.

use dts_common::secret::{Keyring, SecretError};
use dts_common::spec::Endpoint;
use dts_common::TaskSpec;
use tracing::warn;

/// `spec` with its inline passwords sealed (as given when the cluster runs
/// without a key ring).
pub fn seal_spec(keyring: Option<&Keyring>, mut spec: TaskSpec) -> Result<TaskSpec, SecretError> {
    for endpoint in [&mut spec.source, &mut spec.destination] {
        seal_endpoint(keyring, endpoint)?;
    }
    Ok(spec)
}

pub fn seal_endpoint(
    keyring: Option<&Keyring>,
    endpoint: &mut Endpoint,
) -> Result<(), SecretError> {
    if let Some(keyring) = keyring {
        if !endpoint.password.is_empty() && !Keyring::is_sealed(&endpoint.password) {
            endpoint.password = keyring.seal(&endpoint.password)?;
        }
    }
    Ok(())
}

/// The endpoint's password in clear, for its worker. A value this node
/// cannot open stays sealed: the worker then fails the task saying which
/// key is missing, rather than logging in with a wrong password.
pub fn open_endpoint(keyring: Option<&Keyring>, endpoint: &mut Endpoint) {
    if !Keyring::is_sealed(&endpoint.password) {
        return;
    }
    let Some(keyring) = keyring else {
        warn!("a sealed password, and this coordinator has no key ring");
        return;
    };
    match keyring.open(&endpoint.password) {
        Ok(plain) => endpoint.password = plain,
        Err(e) => warn!(error = %e, "cannot open a sealed password"),
    }
}
