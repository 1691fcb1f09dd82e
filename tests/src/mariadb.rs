//! Throwaway MariaDB servers: a fresh data dir, a free loopback port, binlog in
//! ROW format with FULL row images, gone when dropped.

use crate::ports::free_port;
use crate::process::Process;
use anyhow::Context;
use mysql_async::prelude::Queryable;
use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;

/// Where Debian puts the server binaries (not always on a non-root PATH).
fn find_program(name: &str) -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .with_context(|| format!("{name} not found: install mariadb-server (deploy/test.sh does)"))
}

/// A throwaway CA and a server certificate for 127.0.0.1, made with openssl.
pub struct TestCertificates {
    dir: TempDir,
}

impl TestCertificates {
    pub fn generate() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("dts-tls-").tempdir()?;
        let d = dir.path();
        std::fs::write(
            d.join("san.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )?;
        let steps: [&[&str]; 3] = [
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=dts-test-ca",
            ],
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "san.ext",
            ],
        ];
        for args in steps {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()?;
            anyhow::ensure!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Self { dir })
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Server options for `MariaDb::start_with`.
    pub fn server_options(&self) -> Vec<String> {
        let d = self.dir.path();
        vec![
            format!("--ssl-ca={}", d.join("ca.pem").display()),
            format!("--ssl-cert={}", d.join("server.pem").display()),
            format!("--ssl-key={}", d.join("server.key").display()),
        ]
    }
}

pub struct MariaDb {
    dir: TempDir,
    pub port: u16,
    pub server_id: u32,
    process: Process,
}

impl MariaDb {
    /// Initializes a data dir and starts a server; returns once it accepts queries.
    pub async fn start(server_id: u32) -> anyhow::Result<Self> {
        Self::start_with(server_id, &[]).await
    }

    /// Like [`MariaDb::start`], with extra server options (`--default-time-zone=+05:00`, ...).
    pub async fn start_with(server_id: u32, options: &[&str]) -> anyhow::Result<Self> {
        let mut dir = tempfile::Builder::new().prefix("dts-mariadb-").tempdir()?;
        let data = dir.path().join("data");
        let install = std::process::Command::new(find_program("mariadb-install-db")?)
            .args([
                "--no-defaults",
                &format!("--datadir={}", data.display()),
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=root",
            ])
            .output()
            .context("run mariadb-install-db")?;
        anyhow::ensure!(
            install.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&install.stderr)
        );
        // The picked port is ours among test processes and outside the range
        // outgoing connections use, but a listener of some other program can
        // still take it first: then the server exits, and we try another.
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            let mut args = vec![
                "--no-defaults".to_string(),
                format!("--datadir={}", data.display()),
                format!("--port={port}"),
                format!("--socket={}", dir.path().join("mysqld.sock").display()),
                format!("--pid-file={}", dir.path().join("mysqld.pid").display()),
                "--bind-address=127.0.0.1".to_string(),
                format!("--server-id={server_id}"),
                format!("--log-bin={}", dir.path().join("binlog").display()),
                "--binlog-format=ROW".to_string(),
                "--binlog-row-image=FULL".to_string(),
                "--user=root".to_string(),
                "--skip-name-resolve".to_string(),
                "--innodb-buffer-pool-size=32M".to_string(),
                "--innodb-log-file-size=16M".to_string(),
                "--performance-schema=OFF".to_string(),
                // Room for the 16 MiB+ values the type tests move.
                "--max-allowed-packet=256M".to_string(),
            ];
            args.extend(options.iter().map(|o| o.to_string()));
            let log = dir.path().join("mariadb.log");
            let process = Process::start("mariadbd", find_program("mariadbd")?, args, log)?;
            let mut server = Self {
                dir,
                port,
                server_id,
                process,
            };
            match server.wait_ready(Duration::from_secs(30)).await {
                Ok(()) => return Ok(server),
                Err(e) if !server.process.is_running() => {
                    last_error = Some(e);
                    server.process.kill();
                    dir = server.dir;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("mariadb did not start")))
    }

    /// Waits until this server (identified by its data dir) answers; gives up
    /// at once when it could not bind its port.
    async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let ours = self.data_dir().display().to_string();
        loop {
            let log = self.process.log_text();
            anyhow::ensure!(
                !log.contains("Bind on TCP/IP port")
                    && !log.contains("Do you already have another server running"),
                "mariadb could not bind port {}",
                self.port
            );
            let probe = async {
                let mut conn = mysql_async::Conn::from_url(self.url()).await?;
                // The server on this port must be ours, not one that took the port.
                let datadir: Option<String> = conn.query_first("SELECT @@datadir").await?;
                conn.disconnect().await?;
                anyhow::Ok(
                    datadir.is_some_and(|d| d.trim_end_matches('/') == ours.trim_end_matches('/')),
                )
            };
            if let Ok(true) = probe.await {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "mariadb on port {} did not become ready in {timeout:?}; server log:\n{log}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/", self.port)
    }

    pub async fn conn(&self) -> anyhow::Result<mysql_async::Conn> {
        Ok(mysql_async::Conn::from_url(self.url()).await?)
    }

    /// Runs statements on a fresh connection.
    pub async fn exec(&self, sql: &str) -> anyhow::Result<()> {
        let mut conn = self.conn().await?;
        conn.query_drop(sql)
            .await
            .with_context(|| format!("exec `{sql}`"))?;
        conn.disconnect().await?;
        Ok(())
    }

    /// The first column of the first row, as text.
    pub async fn query_value(&self, sql: &str) -> anyhow::Result<Option<String>> {
        let mut conn = self.conn().await?;
        let value: Option<Option<String>> = conn
            .query_first(sql)
            .await
            .with_context(|| format!("query `{sql}`"))?;
        conn.disconnect().await?;
        Ok(value.flatten())
    }

    /// Row count and an ordered hash of every row (all columns, generated and
    /// invisible ones included, each as its exact bytes): equal on both sides
    /// iff the tables hold the same rows. (CHECKSUM TABLE is not stable for
    /// tables with VIRTUAL columns on MariaDB.)
    pub async fn checksum(&self, db: &str, table: &str) -> anyhow::Result<(u64, String)> {
        let mut conn = self.conn().await?;
        let columns: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                 ORDER BY ORDINAL_POSITION",
                (db, table),
            )
            .await?;
        anyhow::ensure!(!columns.is_empty(), "table {db}.{table} not found");
        let key: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                 AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
                (db, table),
            )
            .await?;
        let quote = |c: &String| format!("`{}`", c.replace('`', "``"));
        let row_image = columns
            .iter()
            .map(|c| format!("IFNULL(HEX(CAST({} AS BINARY)), 'NULL')", quote(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let order = if key.is_empty() { &columns } else { &key };
        let order = order.iter().map(quote).collect::<Vec<_>>().join(", ");
        conn.query_drop("SET SESSION group_concat_max_len = 1073741824, time_zone = '+00:00'")
            .await?;
        let row: Option<(u64, Option<String>)> = conn
            .query_first(format!(
                "SELECT COUNT(*), MD5(GROUP_CONCAT(MD5(CONCAT_WS('|', {row_image})) ORDER BY {order} SEPARATOR '')) \
                 FROM `{db}`.`{table}`"
            ))
            .await?;
        conn.disconnect().await?;
        let (count, hash) = row.unwrap_or_default();
        Ok((count, hash.unwrap_or_default()))
    }

    /// Every row as `column=HEX(bytes)` cells in key order, for diagnosing a
    /// checksum mismatch.
    pub async fn rows_as_hex(&self, db: &str, table: &str) -> anyhow::Result<Vec<Vec<String>>> {
        self.rows_as_hex_where(db, table, "TRUE").await
    }

    /// As [`MariaDb::rows_as_hex`], of the rows `condition` (SQL, as a user
    /// writes it) holds for.
    pub async fn rows_as_hex_where(
        &self,
        db: &str,
        table: &str,
        condition: &str,
    ) -> anyhow::Result<Vec<Vec<String>>> {
        let mut conn = self.conn().await?;
        let columns: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                 ORDER BY ORDINAL_POSITION",
                (db, table),
            )
            .await?;
        let cells = columns
            .iter()
            .map(|c| format!("CONCAT('{c}=', IFNULL(HEX(CAST(`{c}` AS BINARY)), 'NULL'))"))
            .collect::<Vec<_>>()
            .join(", ");
        conn.query_drop("SET SESSION time_zone = '+00:00'").await?;
        let rows: Vec<mysql_async::Row> = conn
            .query(format!(
                "SELECT {cells} FROM `{db}`.`{table}` WHERE {condition} ORDER BY 1"
            ))
            .await?;
        conn.disconnect().await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.get::<String, _>(i).unwrap_or_default())
                    .collect()
            })
            .collect())
    }

    /// The end of the server's binlog (SHOW MASTER STATUS): file and position.
    pub async fn binlog_end(&self) -> anyhow::Result<(String, u64)> {
        let mut conn = self.conn().await?;
        let row: Option<mysql_async::Row> = conn.query_first("SHOW MASTER STATUS").await?;
        conn.disconnect().await?;
        let row = row.ok_or_else(|| anyhow::anyhow!("the server has no binlog"))?;
        Ok((
            row.get(0).unwrap_or_default(),
            row.get(1).unwrap_or_default(),
        ))
    }

    /// Every event in the server's binlogs, as `Event_type: Info`.
    pub async fn binlog_events(&self) -> anyhow::Result<Vec<String>> {
        let mut conn = self.conn().await?;
        let files: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await?;
        let mut events = Vec::new();
        for file in files {
            let name: String = file.get(0).unwrap_or_default();
            let rows: Vec<mysql_async::Row> = conn
                .query(format!("SHOW BINLOG EVENTS IN '{name}'"))
                .await?;
            for row in rows {
                let kind: String = row.get(2).unwrap_or_default();
                let info: String = row.get(5).unwrap_or_default();
                events.push(format!("{kind}: {info}"));
            }
        }
        conn.disconnect().await?;
        Ok(events)
    }

    pub fn kill(&mut self) {
        self.process.kill();
    }

    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.process.restart()?;
        self.wait_ready(Duration::from_secs(30)).await
    }

    pub fn pid(&self) -> Option<i32> {
        self.process.pid()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}
