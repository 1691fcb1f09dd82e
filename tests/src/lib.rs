//! End-to-end test harness: real `dts-coordinator` and `dts-worker` processes on
//! free loopback ports with temporary data dirs, killable and restartable at any
//! moment, plus throwaway MariaDB instances with binlog in ROW/FULL format.

pub mod bench;
pub mod cluster;
pub mod compare;
pub mod converge;
pub mod fixtures;
pub mod load;
pub mod mariadb;
pub mod pki;
pub mod ports;
pub mod process;
pub mod proxy;
pub mod scenario;
pub mod wait;
pub mod webhook;

pub use cluster::{TestCluster, TestClusterBuilder};
pub use mariadb::{MariaDb, TestCertificates};
pub use wait::wait_for;
