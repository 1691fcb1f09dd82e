//! The worker's memory: its allocator, jemalloc, as in TiKV, Databend and
//! GreptimeDB; and the bound on what the MySQL driver keeps pooled.
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

/// Buffers mysql_async's process-wide pool keeps for reuse, at most.
const DRIVER_POOL_BUFFERS: usize = 32;
/// Capacity a pooled buffer keeps, at most (a bigger one is shrunk).
const DRIVER_BUFFER_BYTES: usize = 1024 * 1024;

/// Bounds mysql_async's packet buffer pool, unless the operator set its
/// variables. By default the pool keeps 128 buffers of up to 4 MiB each, and
/// a buffer grows to the biggest packet it carried: applying a backlog of
/// 1 MiB rows, the pool alone held about 150 MiB for the rest of the
/// worker's life (the worker's peak grew by 253 MiB, 85 MiB with one
/// pooled buffer). Statements and binlog events of ordinary rows stay well
/// under these caps, so they still reuse their buffers.
///
/// mysql_async reads these variables once, when a connection first takes a
/// buffer: call this before any connection and before threads start (the
/// environment is not safe to change while other threads read it).
pub fn bound_driver_buffers() {
    for (name, value) in [
        ("MYSQL_ASYNC_BUFFER_POOL_CAP", DRIVER_POOL_BUFFERS),
        ("MYSQL_ASYNC_BUFFER_SIZE_CAP", DRIVER_BUFFER_BYTES),
    ] {
        if std::env::var_os(name).is_none() {
            std::env::set_var(name, value.to_string());
        }
    }
}
