//! What is written to the destination: the binlog applier, folding of row
//! changes into net statements, the parallel lanes, value rendering, and
//! the full copy's row writer.

pub mod apply;
pub mod compact;
pub mod convert;
pub mod copy_rows;
pub mod lanes;
