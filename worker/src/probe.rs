//! `dtsctl connection test`: a login to an endpoint from this worker, so
//! that what is checked is what a task would see (this host's network,
//! its password files and variables), not the admin's laptop.

use crate::endpoint::Database;
use crate::error::{Side, SyncError};
use dts_common::spec::Endpoint;
use dts_proto::pb;
use mysql_async::prelude::Queryable;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn item(name: &str, passed: bool, detail: impl Into<String>) -> pb::ProbeItem {
    pb::ProbeItem {
        name: name.to_string(),
        passed,
        detail: detail.into(),
    }
}

/// Each check in order; the first that fails ends the list.
pub async fn check(endpoint: &Endpoint) -> Vec<pb::ProbeItem> {
    let mut items = Vec::new();
    let address = format!("{}:{}", endpoint.host, endpoint.port);
    let reached = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
    )
    .await;
    match reached {
        Ok(Ok(_)) => items.push(item("reachable", true, format!("{address} accepts TCP"))),
        Ok(Err(e)) => {
            items.push(item("reachable", false, format!("{address}: {e}")));
            return items;
        }
        Err(_) => {
            items.push(item(
                "reachable",
                false,
                format!(
                    "{address}: no answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ),
            ));
            return items;
        }
    }
    if let Err(detail) = endpoint.resolve_password() {
        items.push(item("password", false, detail));
        return items;
    }
    items.push(item("password", true, password_source(endpoint)));
    let database = match Database::new(Side::Source, endpoint, 1) {
        Ok(database) => database,
        Err(e) => {
            items.push(item("login", false, e.to_string()));
            return items;
        }
    };
    let mut conn = match database.dedicated_conn().await {
        Ok(conn) => conn,
        Err(e) => {
            let name = match e {
                SyncError::Tls { .. } => "tls",
                _ => "login",
            };
            items.push(item(name, false, e.to_string()));
            return items;
        }
    };
    let version: Option<String> = conn.query_first("SELECT VERSION()").await.ok().flatten();
    items.push(item(
        "login",
        true,
        format!(
            "logged in as `{}` to {} ({}{})",
            endpoint.user,
            address,
            version.unwrap_or_else(|| "version unknown".into()),
            if endpoint.tls.enabled { ", TLS" } else { "" }
        ),
    ));
    let _ = conn.disconnect().await;
    items
}

/// Where the password was read from, for the report (never the password).
fn password_source(endpoint: &Endpoint) -> String {
    if let Some(name) = &endpoint.password_env {
        format!("read from the environment variable {name} on this worker")
    } else if let Some(path) = &endpoint.password_file {
        format!("read from {path} on this worker")
    } else if endpoint.password.is_empty() {
        "none given (an empty password)".to_string()
    } else {
        "given in the profile or task (sealed in the cluster)".to_string()
    }
}
