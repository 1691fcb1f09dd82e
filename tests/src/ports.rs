//! Ports for the servers the tests start, picked so that nothing else can
//! take one between the pick and the server's bind.
//!
//! A port the kernel hands out for `bind(0)` comes from the ephemeral range,
//! the same range every outgoing connection takes its local port from: a
//! worker dialing a coordinator, or a client dialing MariaDB, could hold it
//! by the time the server binds. So ports come from below that range, which
//! only listeners use. Test processes run side by side (nextest), so each
//! port is also claimed by an exclusive lock (flock) on a file, held until this
//! process exits: no two test processes pick the same port.

use anyhow::Context;
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::sync::Mutex;

/// Below this, ports belong to well-known services.
const LOWEST: u16 = 10_000;
/// Used when /proc does not say where the ephemeral range starts (Linux's default).
const EPHEMERAL_START: u16 = 32_768;

/// Lock files of the ports this process picked: dropping one would let
/// another test process take a port a server of ours still uses.
static CLAIMED: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// A port on 127.0.0.1 that is free, outside the ephemeral range, and
/// picked by no other test process.
pub fn free_port() -> anyhow::Result<u16> {
    let ceiling = ephemeral_start();
    if ceiling <= LOWEST + 1_000 {
        // No room below the ephemeral range: take what the kernel gives.
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        return Ok(listener.local_addr()?.port());
    }
    let span = u64::from(ceiling - LOWEST);
    let start = RandomState::new().hash_one(std::process::id()) % span;
    let dir = lock_dir()?;
    for step in 0..span {
        let port = LOWEST + ((start + step) % span) as u16;
        let Some(lock) = claim(&dir, port)? else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            CLAIMED
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(lock);
            return Ok(port);
        }
    }
    anyhow::bail!("no free port between {LOWEST} and {ceiling} on 127.0.0.1")
}

/// Where the ephemeral range starts, from /proc/sys/net/ipv4/ip_local_port_range.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(EPHEMERAL_START)
}

fn lock_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join("dts-test-ports");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The port's lock file, locked by us; `None` when another process (or an
/// earlier pick of ours) holds it.
fn claim(dir: &std::path::Path, port: u16) -> anyhow::Result<Option<File>> {
    let path = dir.join(port.to_string());
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_ports_are_distinct_and_below_the_ephemeral_range() -> anyhow::Result<()> {
        let ports: Vec<u16> = (0..20).map(|_| free_port()).collect::<Result<_, _>>()?;
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            ports.len(),
            "a port was picked twice: {ports:?}"
        );
        let ceiling = ephemeral_start();
        assert!(
            ports.iter().all(|p| (LOWEST..ceiling).contains(p)),
            "{ports:?}"
        );
        // What keeps another test process (or a later pick) off them.
        let dir = lock_dir()?;
        for port in ports {
            assert!(claim(&dir, port)?.is_none(), "port {port} is not held");
        }
        Ok(())
    }
}
