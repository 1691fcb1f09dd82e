//! A source workload that keeps writing while a test kills things: inserts,
//! updates, deletes and a counter table, in real transactions, until stopped.

use crate::MariaDb;
use mysql_async::prelude::Queryable;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;

pub const LOAD_SCHEMA: &str = "
CREATE DATABASE IF NOT EXISTS load_db;
USE load_db;
CREATE TABLE IF NOT EXISTS load_db.items (
  id BIGINT PRIMARY KEY, grp INT NOT NULL, name VARCHAR(64), price DECIMAL(12,2), updated DATETIME(6), KEY (grp));
CREATE TABLE IF NOT EXISTS load_db.counters (id INT PRIMARY KEY, n BIGINT NOT NULL);
INSERT IGNORE INTO load_db.counters SELECT seq, 0 FROM seq_1_to_10;
";

pub struct Load {
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Load {
    /// Starts writing to `load_db` (created by [`LOAD_SCHEMA`]) on `server`.
    pub async fn start(server: &MariaDb, seed: u64) -> anyhow::Result<Self> {
        let mut conn = server.conn().await?;
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicU64::new(0));
        let (s, c) = (stop.clone(), committed.clone());
        let handle = tokio::spawn(async move {
            let mut n = seed * 1_000_000;
            while !s.load(Ordering::Relaxed) {
                n += 1;
                let mut tx = conn.start_transaction(Default::default()).await?;
                tx.exec_drop(
                    "INSERT INTO load_db.items VALUES (?, ?, CONCAT('item-', ?), ? / 100, NOW(6))",
                    (n, n % 13, n, n % 100_000),
                )
                .await?;
                tx.exec_drop("UPDATE load_db.items SET price = price + 1, updated = NOW(6) WHERE grp = ? AND id > ? - 40", (n % 13, n)).await?;
                if n.is_multiple_of(3) {
                    tx.exec_drop("DELETE FROM load_db.items WHERE id = ?", (n - 2,))
                        .await?;
                }
                tx.exec_drop(
                    "UPDATE load_db.counters SET n = n + 1 WHERE id = ?",
                    (n % 10 + 1,),
                )
                .await?;
                tx.commit().await?;
                c.fetch_add(1, Ordering::Relaxed);
            }
            conn.disconnect().await?;
            Ok(())
        });
        Ok(Self {
            stop,
            committed,
            handle,
        })
    }

    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    /// Waits until the load has committed `more` transactions beyond now.
    pub async fn wait_for_more(
        &self,
        more: u64,
        timeout: std::time::Duration,
    ) -> anyhow::Result<()> {
        let target = self.committed() + more;
        crate::wait_for(
            &format!("{more} more source transactions"),
            timeout,
            || async { Ok((self.committed() >= target).then_some(())) },
        )
        .await
    }

    /// Stops writing; returns how many transactions were committed.
    pub async fn stop(self) -> anyhow::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await??;
        Ok(self.committed.load(Ordering::Relaxed))
    }
}
