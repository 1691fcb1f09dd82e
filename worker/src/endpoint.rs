//! Connections to a task's source or destination, with the session settings
//! that make values round-trip exactly, and connect errors said precisely.

use crate::error::{Side, SyncError, SyncResult};
use dts_common::spec::Endpoint;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};
use std::time::Duration;

/// Run on every new connection and after every pool reset (which clears
/// session state). Both sides read and write TIMESTAMP in UTC, so values do not depend on the
/// servers' or sessions' time zones; utf8mb4 carries every character.
const COMMON_INIT: [&str; 2] = ["SET NAMES utf8mb4", "SET SESSION time_zone = '+00:00'"];
/// The destination takes what the source had: zero in AUTO_INCREMENT columns,
/// zero dates, no strict-mode rejections, no foreign key order constraints.
/// `@dts_apply` keeps copied triggers from firing for our own writes.
const DESTINATION_INIT: [&str; 3] = [
    "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'",
    "SET SESSION foreign_key_checks = 0",
    "SET @dts_apply = 1",
];

#[derive(Clone)]
pub struct Database {
    pub side: Side,
    pub endpoint: Endpoint,
    opts: Opts,
    pool: Pool,
    pool_size: usize,
}

impl Database {
    pub fn new(side: Side, endpoint: &Endpoint, max_connections: usize) -> SyncResult<Self> {
        let ssl = tls_options(side, endpoint)?;
        let password = endpoint
            .resolve_password()
            .map_err(|detail| SyncError::Password { side, detail })?;
        let mut init: Vec<String> = COMMON_INIT.iter().map(|s| s.to_string()).collect();
        if side == Side::Destination {
            init.extend(DESTINATION_INIT.iter().map(|s| s.to_string()));
        }
        let constraints = PoolConstraints::new(0, max_connections.max(1)).unwrap_or_default();
        let opts: Opts = OptsBuilder::default()
            .ip_or_hostname(endpoint.host.clone())
            .tcp_port(endpoint.port)
            .user(Some(endpoint.user.clone()))
            .pass(Some(password))
            .prefer_socket(false)
            .setup(init)
            .stmt_cache_size(64)
            .tcp_nodelay(true)
            .ssl_opts(ssl)
            // UPDATE reports matched rows, so strict apply can tell "row missing"
            // from "row already had these values".
            .client_found_rows(true)
            .pool_opts(PoolOpts::default().with_constraints(constraints))
            .into();
        Ok(Self {
            side,
            endpoint: endpoint.clone(),
            pool: Pool::new(opts.clone()),
            opts,
            pool_size: max_connections.max(1),
        })
    }

    pub fn address(&self) -> String {
        format!("{}:{}", self.endpoint.host, self.endpoint.port)
    }

    /// A pooled connection.
    pub async fn conn(&self) -> SyncResult<Conn> {
        let attempt = tokio::time::timeout(Duration::from_secs(10), self.pool.get_conn()).await;
        match attempt {
            // Either the server does not answer, or every pooled connection
            // is taken (a defect in dts, once reported as "unreachable"):
            // a connection of its own tells which.
            Err(_) => {
                match tokio::time::timeout(Duration::from_secs(3), Conn::new(self.opts.clone()))
                    .await
                {
                    Ok(Ok(_)) => Err(SyncError::Query {
                        side: self.side,
                        context: "taking a connection from the pool".into(),
                        detail: format!(
                            "all {} pooled connections to {} stayed in use for 10 s, \
                         though the server accepts new ones",
                            self.pool_size,
                            self.address()
                        ),
                    }),
                    _ => Err(SyncError::Unreachable {
                        side: self.side,
                        address: self.address(),
                        detail: "connect timed out after 10 s".into(),
                    }),
                }
            }
            Ok(result) => result.map_err(|e| self.connect_error(e)),
        }
    }

    /// A connection of its own, outside the pool (for the binlog stream).
    pub async fn dedicated_conn(&self) -> SyncResult<Conn> {
        let attempt =
            tokio::time::timeout(Duration::from_secs(10), Conn::new(self.opts.clone())).await;
        match attempt {
            Err(_) => Err(SyncError::Unreachable {
                side: self.side,
                address: self.address(),
                detail: "connect timed out after 10 s".into(),
            }),
            Ok(result) => result.map_err(|e| self.connect_error(e)),
        }
    }

    fn connect_error(&self, err: mysql_async::Error) -> SyncError {
        match err {
            mysql_async::Error::Io(mysql_async::IoError::Tls(tls)) => SyncError::Tls {
                side: self.side,
                detail: tls.to_string(),
            },
            // tokio-rustls reports handshake failures (untrusted certificate,
            // wrong name) as InvalidData: a setting to fix, not a network blip.
            mysql_async::Error::Io(mysql_async::IoError::Io(io))
                if io.kind() == std::io::ErrorKind::InvalidData =>
            {
                SyncError::Tls {
                    side: self.side,
                    detail: io.to_string(),
                }
            }
            mysql_async::Error::Io(io) => SyncError::Unreachable {
                side: self.side,
                address: self.address(),
                detail: io.to_string(),
            },
            mysql_async::Error::Server(server) if server.code == 1045 => SyncError::AccessDenied {
                side: self.side,
                user: self.endpoint.user.clone(),
                detail: server.message,
            },
            other => SyncError::from_driver(self.side, "connecting", other),
        }
    }

    pub async fn close(self) {
        let _ = self.pool.disconnect().await;
    }
}

/// TLS settings of an endpoint: off, on with the system's roots, or on with
/// the given CA (read now, so that a wrong path is a clear error, not a retry).
fn tls_options(side: Side, endpoint: &Endpoint) -> SyncResult<Option<mysql_async::SslOpts>> {
    if !endpoint.tls.enabled {
        return Ok(None);
    }
    let mut ssl = mysql_async::SslOpts::default();
    if let Some(ca) = &endpoint.tls.ca {
        let pem = std::fs::read(ca).map_err(|e| SyncError::Tls {
            side,
            detail: format!("cannot read CA file {ca} on this worker: {e}"),
        })?;
        ssl = ssl.with_root_certs(vec![pem.into()]);
    }
    Ok(Some(ssl))
}
