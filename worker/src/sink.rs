//! What is written to the destination: the binlog applier, folding of row
//! changes into net statements, the parallel lanes, rows laid onto the
//! destination's columns, value rendering, and the full copy's row writer.

pub mod apply;
pub mod compact;
pub mod conflict;
pub mod convert;
pub mod copy_rows;
pub mod lanes;
pub mod projection;
