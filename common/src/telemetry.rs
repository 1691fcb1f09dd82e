//! Tracing set-up shared by the daemons: `RUST_LOG` filters (default `info`),
//! human-readable or JSON lines, on stderr or in rotated files.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogRotation {
    Hourly,
    #[default]
    Daily,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Where the logs go (the `[log]` section of a daemon's config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Write `<prefix>.log.<date>` files here instead of stderr.
    pub dir: Option<PathBuf>,
    pub rotation: LogRotation,
    /// Rotated files kept; older ones are deleted.
    pub keep_files: usize,
    /// `DTS_LOG_FORMAT=json` also selects JSON.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            dir: None,
            rotation: LogRotation::Daily,
            keep_files: 7,
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot log to {dir}: {reason}")]
pub struct LogInitError {
    dir: String,
    reason: String,
}

/// Installs the global subscriber. Files are written synchronously, so a
/// process killed with SIGKILL loses no line it had logged.
pub fn init(config: &LogConfig, file_prefix: &str) -> Result<(), LogInitError> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn,sled=warn,h2=warn,tower=warn"));
    let json = config.format == LogFormat::Json
        || std::env::var("DTS_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // A second init (tests that start two services in one process) is harmless.
    match &config.dir {
        None => {
            // Colours only for a person at a terminal: the journal, a file
            // stderr is sent to, and whoever greps them want plain text.
            use std::io::IsTerminal;
            let builder = builder
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal());
            let _ = if json {
                builder.json().try_init()
            } else {
                builder.try_init()
            };
        }
        Some(dir) => {
            let rotation = match config.rotation {
                LogRotation::Hourly => Rotation::HOURLY,
                LogRotation::Daily => Rotation::DAILY,
                LogRotation::Never => Rotation::NEVER,
            };
            let appender = RollingFileAppender::builder()
                .rotation(rotation)
                .filename_prefix(file_prefix)
                .filename_suffix("log")
                .max_log_files(config.keep_files.max(1))
                .build(dir)
                .map_err(|e| LogInitError {
                    dir: dir.display().to_string(),
                    reason: e.to_string(),
                })?;
            let builder = builder.with_writer(appender).with_ansi(false);
            let _ = if json {
                builder.json().try_init()
            } else {
                builder.try_init()
            };
        }
    }
    Ok(())
}
