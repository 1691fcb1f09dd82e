//! Who may call what. The TLS handshake has proven the caller holds a
//! certificate of the cluster CA; this layer reads the role the certificate
//! names and refuses, before any service runs, every call the role does not
//! allow. Each refusal is logged with the caller's name and address. The
//! caller goes into the request's extensions for the finer checks a service
//! makes (a viewer may ask for verification but not stop a task).

use dts_common::tls::{caller_of, Caller, Role};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::Status;
use tower::{Layer, Service};
use tracing::warn;

/// Admin calls a viewer may make. `ControlTask` is let through for its
/// VERIFY action only; the service refuses the others.
const VIEWER_CALLS: &[&str] = &[
    "ClusterStatus",
    "NodeStatus",
    "ListWorkers",
    "ListTasks",
    "GetTask",
    "ControlTask",
    "ListConnections",
    "GetConnection",
];

/// Whether `role` may call the gRPC method at `path` (`/package.Service/Method`).
pub fn permitted(path: &str, role: Role) -> bool {
    let Some((service, method)) = path.trim_start_matches('/').split_once('/') else {
        return false;
    };
    match (service, role) {
        ("dts.v1.Admin", Role::Admin) => true,
        ("dts.v1.Admin", Role::Viewer) => VIEWER_CALLS.contains(&method),
        // `cluster status` asks every member for its own view.
        ("dts.v1.Admin", Role::Peer) => method == "NodeStatus",
        ("dts.v1.WorkerControl", Role::Worker) => true,
        ("dts.v1.Raft", Role::Peer) => true,
        ("grpc.health.v1.Health", _) => true,
        ("grpc.reflection.v1.ServerReflection", Role::Admin | Role::Viewer) => true,
        _ => false,
    }
}

/// The caller a service method was called by (put there by [`Authorize`]).
pub fn caller_of_request<T>(request: &tonic::Request<T>) -> Caller {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        // Only a call that bypassed the layer has none: treat it as the
        // least privileged.
        .unwrap_or(Caller {
            name: "(unknown)".to_string(),
            role: Role::Viewer,
        })
}

/// Refused: `PERMISSION_DENIED` naming the caller's role.
pub fn refuse(caller: &Caller, what: &str) -> Status {
    refuse_from(caller, what, None)
}

/// [`refuse`], logging the caller's address too when it is known.
fn refuse_from(caller: &Caller, what: &str, peer: Option<&str>) -> Status {
    warn!(caller = %caller.name, role = %caller.role, peer = peer.unwrap_or("-"), call = what, "call refused");
    Status::permission_denied(format!(
        "permission denied: `{}` has role `{}`, which may not {what}",
        caller.name, caller.role
    ))
}

#[derive(Debug, Clone, Copy)]
pub struct AuthLayer {
    /// Off with `--insecure`: every caller is an admin.
    pub enforce: bool,
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authorize<S>;
    fn layer(&self, inner: S) -> Authorize<S> {
        Authorize {
            inner,
            enforce: self.enforce,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Authorize<S> {
    inner: S,
    enforce: bool,
}

type Response = http::Response<tonic::body::Body>;

impl<S, B> Service<http::Request<B>> for Authorize<S>
where
    S: Service<http::Request<B>, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match self.decide(&request) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Box::pin(self.inner.call(request))
            }
            Err(status) => Box::pin(async move { Ok(status.into_http()) }),
        }
    }
}

impl<S> Authorize<S> {
    fn decide<B>(&self, request: &http::Request<B>) -> Result<Caller, Status> {
        if !self.enforce {
            return Ok(Caller::unauthenticated());
        }
        let path = request.uri().path();
        let connection = request.extensions().get::<TlsConnectInfo<TcpConnectInfo>>();
        let address = connection
            .and_then(|c| c.get_ref().remote_addr())
            .map(|a| a.to_string())
            .unwrap_or_else(|| "?".to_string());
        let certificate = connection
            .and_then(|c| c.peer_certs())
            .and_then(|certs| certs.first().cloned());
        let Some(certificate) = certificate else {
            warn!(peer = %address, call = path, "call refused: no client certificate");
            return Err(Status::unauthenticated("no client certificate"));
        };
        let caller = caller_of(&certificate).map_err(|reason| {
            warn!(peer = %address, call = path, %reason, "call refused");
            Status::unauthenticated(reason)
        })?;
        if permitted(path, caller.role) {
            Ok(caller)
        } else {
            Err(refuse_from(
                &caller,
                &format!("call {path}"),
                Some(&address),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_reaches_only_its_services() {
        let admin_delete = "/dts.v1.Admin/DeleteTask";
        assert!(permitted(admin_delete, Role::Admin));
        for role in [Role::Viewer, Role::Worker, Role::Peer] {
            assert!(!permitted(admin_delete, role), "{role}");
        }
        assert!(permitted("/dts.v1.Admin/ListTasks", Role::Viewer));
        assert!(!permitted("/dts.v1.Admin/ListTasks", Role::Worker));
        assert!(permitted("/dts.v1.WorkerControl/Heartbeat", Role::Worker));
        for role in [Role::Admin, Role::Viewer, Role::Peer] {
            assert!(!permitted("/dts.v1.WorkerControl/Register", role), "{role}");
        }
        assert!(permitted("/dts.v1.Raft/AppendEntries", Role::Peer));
        for role in [Role::Admin, Role::Viewer, Role::Worker] {
            assert!(!permitted("/dts.v1.Raft/Vote", role), "{role}");
        }
        assert!(permitted("/dts.v1.Admin/NodeStatus", Role::Peer));
        assert!(!permitted("/dts.v1.Unknown/Thing", Role::Admin));
        assert!(!permitted("garbage", Role::Admin));
    }
}
