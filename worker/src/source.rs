//! What is read from the source: the binlog (events into owned items), row
//! images, positions, the catalog of table definitions, DDL statements as
//! logged, and key-ordered reads for the full copy.

pub mod binlog;
pub mod catalog;
pub mod ddl;
pub mod keyset;
pub mod position;
pub mod row_image;
