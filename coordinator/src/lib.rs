//! The dts coordinator: a Raft-replicated control plane (openraft on sled) that
//! holds workers, tasks, assignments and checkpoints, and a leader-only
//! scheduler that places tasks on workers by DU capacity.

pub mod alerts;
pub mod auth;
pub mod config;
pub mod error;
pub mod liveness;
pub mod metrics;
pub mod node;
pub mod probes;
pub mod raft;
pub mod reports;
pub mod scheduler;
pub mod secrets;
pub mod server;
pub mod service;
pub mod state;
