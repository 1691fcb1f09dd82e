//! Thin gRPC adapters over [`Coordinator`](crate::node::Coordinator).

pub mod admin;
pub mod connections;
pub mod convert;
pub mod raft;
pub mod worker;
