//! Task placement: a pure planning function and the leader-only driver that
//! applies its plans through Raft.

pub mod driver;
pub mod plan;

pub use plan::{plan, Plan};
