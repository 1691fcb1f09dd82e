//! The Raft layer: type configuration, sled-backed log store and state machine,
//! and the gRPC network between coordinators.

pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod store;
pub mod types;

pub use types::{NodeId, TypeConfig};

pub type Raft = openraft::Raft<TypeConfig>;
