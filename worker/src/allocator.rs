//! The worker's memory allocator: jemalloc, as in TiKV, Databend and
//! GreptimeDB.
//!
//! In catch-up the binlog reader allocates every decoded value on one thread
//! and the applier frees it on another. glibc's malloc serialises those
//! cross-thread frees on its arena lock, and malloc, free and that lock took
//! about 45% of the worker's CPU in `dts-bench --only catch-up --profile`.
//! Measured in the same benchmark (worker CPU seconds for the 200,000-event
//! backlog): glibc 4.6, mimalloc 3.0 to 3.3 (it kept faulting in fresh huge
//! pages, whatever its purge delay), jemalloc 2.4.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
