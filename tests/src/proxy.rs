//! A TCP proxy that sits on one link between two processes and breaks it on
//! demand: cut (connections reset, new ones refused), blackhole (bytes stop
//! flowing but connections stay open, as in a network partition; they flow
//! again when healed, like TCP retransmissions), or delay every chunk.
//!
//! It runs on its own thread and runtime, so a test that blocks its own
//! runtime (a child process, a slow query) never stalls the link.

use anyhow::Context;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Open,
    /// Every chunk waits this long before it is forwarded.
    Delayed(Duration),
    /// Open connections are closed; new ones are accepted and closed at once.
    Cut,
    /// Nothing moves in either direction; connections stay open.
    Blackhole,
}

pub struct FaultProxy {
    address: SocketAddr,
    link: watch::Sender<Link>,
    target: watch::Sender<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards every connection to `target`.
    pub fn start(target: &str) -> anyhow::Result<Self> {
        let target: SocketAddr = target
            .parse()
            .with_context(|| format!("proxy target `{target}`"))?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let (link, link_rx) = watch::channel(Link::Open);
        let (target, target_rx) = watch::channel(target);
        let (shutdown, shutdown_rx) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(format!("proxy-{}", address.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = accept_loop(listener, target_rx, link_rx) => {}
                        _ = shutdown_rx => {}
                    }
                });
                // Dropping the runtime ends every connection task.
            })?;
        Ok(Self {
            address,
            link,
            target,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:port` to give the client instead of the target's address.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    pub fn set(&self, link: Link) {
        self.link.send_replace(link);
    }

    pub fn heal(&self) {
        self.set(Link::Open);
    }

    pub fn cut(&self) {
        self.set(Link::Cut);
    }

    pub fn blackhole(&self) {
        self.set(Link::Blackhole);
    }

    pub fn delay(&self, by: Duration) {
        self.set(Link::Delayed(by));
    }

    /// New connections go to `target` from now on, as when an address moves
    /// to another server (a failover); open ones stay where they are.
    pub fn retarget(&self, target: &str) -> anyhow::Result<()> {
        let target: SocketAddr = target
            .parse()
            .with_context(|| format!("proxy target `{target}`"))?;
        self.target.send_replace(target);
        Ok(())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: watch::Receiver<SocketAddr>,
    link: watch::Receiver<Link>,
) {
    while let Ok((client, _)) = listener.accept().await {
        let to = *target.borrow();
        tokio::spawn(serve(client, to, link.clone()));
    }
}

/// Waits while the link is blackholed; `false` when it is (or becomes) cut.
async fn wait_until_passable(link: &mut watch::Receiver<Link>) -> bool {
    loop {
        let state = *link.borrow_and_update();
        match state {
            Link::Cut => return false,
            Link::Blackhole => {
                if link.changed().await.is_err() {
                    return false;
                }
            }
            Link::Open | Link::Delayed(_) => return true,
        }
    }
}

async fn serve(client: TcpStream, target: SocketAddr, mut link: watch::Receiver<Link>) {
    // A connection attempted during a blackhole completes once healed, as a
    // retransmitted SYN would.
    if !wait_until_passable(&mut link).await {
        return;
    }
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pump(client_read, server_write, link.clone()),
        pump(server_read, client_write, link),
    );
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut link: watch::Receiver<Link>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if !wait_until_passable(&mut link).await {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut buf) => read,
            // The link changed while waiting for bytes: look at it again.
            changed = link.changed() => {
                if changed.is_err() { return; }
                continue;
            }
        };
        let n = match read {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        // Bytes read just before a blackhole are held until it heals.
        if !wait_until_passable(&mut link).await {
            return;
        }
        let state = *link.borrow();
        if let Link::Delayed(by) = state {
            tokio::time::sleep(by).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// An echo server on a free port, on its own thread.
    fn echo_server() -> anyhow::Result<String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?.to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 || stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Ok(address)
    }

    fn roundtrip(stream: &mut std::net::TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(msg)?;
        let mut got = vec![0u8; msg.len()];
        stream.read_exact(&mut got)?;
        Ok(got)
    }

    #[test]
    fn forwards_blackholes_heals_delays_and_cuts() -> anyhow::Result<()> {
        let proxy = FaultProxy::start(&echo_server()?)?;
        let mut stream = std::net::TcpStream::connect(proxy.address())?;
        stream.set_read_timeout(Some(Duration::from_millis(300)))?;
        assert_eq!(roundtrip(&mut stream, b"hello")?, b"hello");

        // Blackhole: nothing comes back, but the connection survives it.
        proxy.blackhole();
        let lost = roundtrip(&mut stream, b"during");
        assert!(lost.is_err(), "bytes crossed a blackholed link");
        proxy.heal();
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut held = vec![0u8; 6];
        stream.read_exact(&mut held)?;
        assert_eq!(held, b"during", "held bytes flow once healed");

        proxy.delay(Duration::from_millis(150));
        let started = std::time::Instant::now();
        assert_eq!(roundtrip(&mut stream, b"slow")?, b"slow");
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "two delayed hops"
        );

        proxy.cut();
        let mut buf = [0u8; 4];
        let after_cut = stream.write_all(b"x").and_then(|_| stream.read(&mut buf));
        assert!(
            matches!(after_cut, Ok(0) | Err(_)),
            "a cut link still answered"
        );
        let mut again = std::net::TcpStream::connect(proxy.address())?;
        again.set_read_timeout(Some(Duration::from_secs(5)))?;
        let refused = again.write_all(b"x").and_then(|_| again.read(&mut buf));
        assert!(
            matches!(refused, Ok(0) | Err(_)),
            "a cut link accepted a new connection"
        );

        proxy.heal();
        let mut healed = std::net::TcpStream::connect(proxy.address())?;
        healed.set_read_timeout(Some(Duration::from_secs(5)))?;
        assert_eq!(roundtrip(&mut healed, b"back")?, b"back");
        Ok(())
    }
}
