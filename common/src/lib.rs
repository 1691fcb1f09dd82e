//! What every dts process shares: the task spec model and its validation, the
//! domain vocabulary (worker and task states), the leader-aware coordinator client,
//! the leader-hint header contract and telemetry set-up.

pub mod accounts;
pub mod alerts;
pub mod client;
pub mod config_file;
pub mod conflict;
pub mod connection;
pub mod filter;
pub mod leader_hint;
pub mod metrics;
pub mod model;
pub mod mysql;
pub mod online_ddl;
pub mod precheck;
pub mod route;
pub mod secret;
pub mod signal;
pub mod spec;
pub mod telemetry;
pub mod time;
pub mod tls;
pub mod topology;

pub use client::{ClientError, CoordinatorClient};
pub use spec::{SpecError, TaskSpec};
