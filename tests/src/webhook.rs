//! A webhook receiver for alert tests: an HTTP server on a free loopback
//! port that keeps every JSON body POSTed to it and answers 200.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Webhook {
    pub url: String,
    received: Arc<Mutex<Vec<serde_json::Value>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Webhook {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook/secret-token", listener.local_addr()?);
        let received = Arc::new(Mutex::new(Vec::new()));
        let kept = received.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    if let Ok(Some(body)) = read_request(stream).await {
                        kept.lock().unwrap_or_else(|p| p.into_inner()).push(body);
                    }
                });
            }
        });
        Ok(Self {
            url,
            received,
            server,
        })
    }

    /// Every body received so far, in order.
    pub fn received(&self) -> Vec<serde_json::Value> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Reads one request (headers, then `Content-Length` bytes of body),
/// answers 200 and returns the body as JSON.
async fn read_request(
    mut stream: tokio::net::TcpStream,
) -> anyhow::Result<Option<serde_json::Value>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < header_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await?;
    let body = &buffer[header_end..(header_end + length).min(buffer.len())];
    Ok(serde_json::from_slice(body).ok())
}
