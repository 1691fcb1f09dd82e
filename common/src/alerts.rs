//! `[alerts]` in a task file: what the coordinator leader tells a webhook
//! about the task (its failure, its latency, a full sync running long),
//! once per incident, and again when the incident clears.

use crate::spec::SpecError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// Where notifications are POSTed as JSON (`http://` or `https://`).
    pub webhook: String,
    /// Notify when the task fails (default true).
    #[serde(default = "yes")]
    pub on_failure: bool,
    /// Notify when the latency exceeds this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_seconds: Option<u64>,
    /// Notify when the full sync has run longer than this many hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_sync_hours: Option<u64>,
}

fn yes() -> bool {
    true
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Failure,
    Latency,
    FullSyncHours,
}

impl AlertKind {
    pub const ALL: [AlertKind; 3] = [Self::Failure, Self::Latency, Self::FullSyncHours];

    pub fn name(self) -> &'static str {
        match self {
            Self::Failure => "failure",
            Self::Latency => "latency",
            Self::FullSyncHours => "full_sync_hours",
        }
    }
}

impl AlertSettings {
    pub fn validate(&self) -> Result<(), SpecError> {
        let rest = self
            .webhook
            .strip_prefix("https://")
            .or_else(|| self.webhook.strip_prefix("http://"));
        if rest.is_none_or(|r| r.split('/').next().is_none_or(str::is_empty)) {
            return Err(SpecError::new(
                "alerts.webhook",
                "must be an http:// or https:// URL with a host",
            ));
        }
        if self.latency_seconds == Some(0) {
            return Err(SpecError::new(
                "alerts.latency_seconds",
                "must be at least 1",
            ));
        }
        if self.full_sync_hours == Some(0) {
            return Err(SpecError::new(
                "alerts.full_sync_hours",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// The webhook as shown to people: its path and query may hold a
    /// token (a chat service's incoming hook), so only the host is kept.
    pub fn redacted(&self) -> Self {
        let (scheme, rest) = self
            .webhook
            .split_once("://")
            .unwrap_or(("", &self.webhook));
        let host = rest.split('/').next().unwrap_or_default();
        Self {
            webhook: format!("{scheme}://{host}/…"),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(webhook: &str) -> AlertSettings {
        AlertSettings {
            webhook: webhook.into(),
            on_failure: true,
            latency_seconds: Some(30),
            full_sync_hours: None,
        }
    }

    #[test]
    fn a_webhook_needs_a_scheme_and_a_host_and_is_shown_without_its_path() {
        assert!(settings("https://hooks.example/T0/B1/secret")
            .validate()
            .is_ok());
        assert!(settings("ftp://x").validate().is_err());
        assert!(settings("http:///path").validate().is_err());
        assert_eq!(
            settings("https://hooks.example/T0/B1/secret")
                .redacted()
                .webhook,
            "https://hooks.example/…"
        );
    }
}
