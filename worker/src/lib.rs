//! The dts worker: registers with the coordinators, heartbeats, runs the task
//! runtimes it is assigned (each under a fencing epoch), and stops everything
//! by itself when it cannot reach the coordinators for longer than its lease.

pub mod agent;
pub mod allocator;
pub mod config;
pub mod endpoint;
pub mod error;
pub mod meta;
pub mod phases;
pub mod probe;
pub mod progress;
pub mod runtime;
pub mod sink;
pub mod source;
pub mod transform;
pub mod verify;
