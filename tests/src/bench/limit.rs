//! The destination's own limit: the cheapest way the destination server can
//! take the same rows, with everything a copier must do beforehand (reading
//! the source, folding the changes) already done and not timed. dts is
//! reported as a fraction of it, which is the figure to push up; no copier
//! can pass it.
//!
//! - Full sync: one `LOAD DATA INFILE` per table from a file the source wrote
//!   beforehand, into a table without its secondary indexes, which are added
//!   afterwards; a session per table, as many at once as the copiers' threads.
//! - Catch-up: the backlog's net changes (the last image of every row it
//!   touched, and the keys it removed), folded from the source beforehand,
//!   applied in one session: a `LOAD DATA ... REPLACE` per table and one
//!   `DELETE` per table.

use crate::MariaDb;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One table, ready to load: its definition split into what is created
/// before the rows and what is added after them.
struct TableLoad {
    table: String,
    /// `CREATE TABLE` with the primary key but no secondary index.
    create: String,
    /// `ADD KEY ...` clauses, empty when the table has none.
    secondary: Vec<String>,
    file: PathBuf,
}

/// The source's tables written to files the destination server can read.
pub struct LoadFiles {
    database: String,
    tables: Vec<TableLoad>,
    _dir: tempfile::TempDir,
}

impl LoadFiles {
    /// Has the source write every table to a file (untimed).
    pub async fn prepare(
        source: &MariaDb,
        database: &str,
        tables: &[String],
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("dts-bench-limit-")
            .tempdir()?;
        let mut conn = source.conn().await?;
        let mut loads = Vec::new();
        for table in tables {
            let file = dir.path().join(format!("{table}.tsv"));
            conn.query_drop(format!(
                "SELECT * INTO OUTFILE {} FROM `{database}`.`{table}`",
                quoted_path(&file)?
            ))
            .await?;
            let shown: Option<(String, String)> = conn
                .query_first(format!("SHOW CREATE TABLE `{database}`.`{table}`"))
                .await?;
            let (_, definition) =
                shown.ok_or_else(|| anyhow::anyhow!("{database}.{table} has no definition"))?;
            let (create, secondary) = split_secondary_indexes(&definition);
            loads.push(TableLoad {
                table: table.clone(),
                create,
                secondary,
                file,
            });
        }
        Ok(Self {
            database: database.to_string(),
            tables: loads,
            _dir: dir,
        })
    }

    /// Loads every table into `destination` (which has no such database
    /// yet), `sessions` tables at once; `binlog`: whether the load is written
    /// to the destination's binlog. Returns the time from the first
    /// statement to the last index built.
    pub async fn load(
        &self,
        destination: &MariaDb,
        sessions: usize,
        binlog: bool,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        destination
            .exec(&format!("CREATE DATABASE `{}`", self.database))
            .await?;
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(&self.tables)
            .map(|load| self.load_table(destination, load, binlog))
            .buffer_unordered(sessions.max(1))
            .collect()
            .await;
        for result in results {
            result?;
        }
        Ok(started.elapsed())
    }

    async fn load_table(
        &self,
        destination: &MariaDb,
        load: &TableLoad,
        binlog: bool,
    ) -> anyhow::Result<()> {
        let mut conn = destination.conn().await?;
        conn.query_drop(format!(
            "SET SESSION sql_log_bin = {}, unique_checks = 0, foreign_key_checks = 0",
            u8::from(binlog)
        ))
        .await?;
        conn.query_drop(format!("USE `{}`", self.database)).await?;
        conn.query_drop(&load.create).await?;
        conn.query_drop(format!(
            "LOAD DATA INFILE {} INTO TABLE `{}`",
            quoted_path(&load.file)?,
            load.table
        ))
        .await?;
        if !load.secondary.is_empty() {
            conn.query_drop(format!(
                "ALTER TABLE `{}` {}",
                load.table,
                load.secondary.join(", ")
            ))
            .await?;
        }
        Ok(())
    }
}

/// Splits `SHOW CREATE TABLE` output into the statement without its
/// secondary indexes and `ADD ...` clauses for them.
fn split_secondary_indexes(definition: &str) -> (String, Vec<String>) {
    let mut kept: Vec<String> = Vec::new();
    let mut secondary = Vec::new();
    for line in definition.lines() {
        let body = line.trim().trim_end_matches(',');
        let is_secondary = ["KEY ", "UNIQUE KEY ", "FULLTEXT KEY ", "SPATIAL KEY "]
            .iter()
            .any(|prefix| body.starts_with(prefix));
        if is_secondary {
            secondary.push(format!("ADD {body}"));
        } else {
            kept.push(line.to_string());
        }
    }
    // The line before the closing parenthesis must not end with a comma.
    if let Some(close) = kept.iter().position(|l| l.starts_with(')')) {
        if let Some(last) = close.checked_sub(1).and_then(|i| kept.get_mut(i)) {
            *last = last.trim_end_matches(',').to_string();
        }
    }
    (kept.join("\n"), secondary)
}

/// The net changes of a backlog per table: the last image of each row whose
/// image differs from the starting data, and the keys that are gone.
pub struct NetChanges {
    database: String,
    tables: Vec<TableChanges>,
    pub rows_replaced: u64,
    pub rows_deleted: u64,
    _dir: tempfile::TempDir,
}

/// One table's net changes, as the statements that apply them.
struct TableChanges {
    table: String,
    /// The rows to replace, for `LOAD DATA ... REPLACE`.
    file: PathBuf,
    /// The `DELETE` of the keys that are gone, if any are.
    delete: Option<String>,
}

impl NetChanges {
    /// Folds the changes between `before` (a copy of the starting data) and
    /// `after` (the source once the backlog ran), untimed. Every table's
    /// first column is its key, as in sysbench's.
    pub async fn fold(
        before: &MariaDb,
        after: &MariaDb,
        database: &str,
        tables: &[String],
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("dts-bench-net-")
            .tempdir()?;
        let mut folded = Vec::new();
        let (mut rows_replaced, mut rows_deleted) = (0, 0);
        for table in tables {
            let (key_column, old) = rows_by_key(before, database, table).await?;
            let (_, new) = rows_by_key(after, database, table).await?;
            let mut tsv = String::new();
            for (key, row) in &new {
                if old.get(key) != Some(row) {
                    tsv.push_str(&tsv_line(row)?);
                    rows_replaced += 1;
                }
            }
            let gone: Vec<String> = old
                .keys()
                .filter(|key| !new.contains_key(*key))
                .cloned()
                .collect();
            rows_deleted += gone.len() as u64;
            // Gone keys were rows of `before`, so it named the key column.
            let delete = match (gone.is_empty(), &key_column) {
                (true, _) => None,
                (false, Some(key)) => Some(format!(
                    "DELETE FROM `{table}` WHERE `{key}` IN ({})",
                    gone.join(", ")
                )),
                (false, None) => anyhow::bail!("{database}.{table}: keys gone but no key column"),
            };
            let file = dir.path().join(format!("{table}.tsv"));
            std::fs::write(&file, tsv)?;
            folded.push(TableChanges {
                table: table.clone(),
                file,
                delete,
            });
        }
        Ok(Self {
            database: database.to_string(),
            tables: folded,
            rows_replaced,
            rows_deleted,
            _dir: dir,
        })
    }

    /// Applies the net changes to `destination` in one session, writing its
    /// binlog as every catch-up contender does.
    pub async fn apply(&self, destination: &MariaDb) -> anyhow::Result<Duration> {
        let mut conn = destination.conn().await?;
        conn.query_drop(format!("USE `{}`", self.database)).await?;
        let started = Instant::now();
        for changes in &self.tables {
            conn.query_drop(format!(
                "LOAD DATA INFILE {} REPLACE INTO TABLE `{}`",
                quoted_path(&changes.file)?,
                changes.table
            ))
            .await?;
            if let Some(delete) = &changes.delete {
                conn.query_drop(delete).await?;
            }
        }
        Ok(started.elapsed())
    }
}

/// Every row of a table, keyed by its first column's text, and that
/// column's name (none when the table is empty).
async fn rows_by_key(
    server: &MariaDb,
    database: &str,
    table: &str,
) -> anyhow::Result<(Option<String>, BTreeMap<String, Vec<Value>>)> {
    let mut conn = server.conn().await?;
    let rows: Vec<mysql_async::Row> = conn
        .query(format!("SELECT * FROM `{database}`.`{table}`"))
        .await?;
    let key_column = rows
        .first()
        .and_then(|row| row.columns_ref().first().map(|c| c.name_str().to_string()));
    let mut by_key = BTreeMap::new();
    for row in rows {
        let values = row.unwrap();
        let key = values
            .first()
            .map(|v| v.as_sql(true))
            .ok_or_else(|| anyhow::anyhow!("{database}.{table} has a row without columns"))?;
        by_key.insert(key, values);
    }
    Ok((key_column, by_key))
}

/// A row in `LOAD DATA`'s default format: tab-separated, `\N` for NULL,
/// backslash escapes for tab, newline and backslash.
fn tsv_line(row: &[Value]) -> anyhow::Result<String> {
    let mut line = String::new();
    for (i, value) in row.iter().enumerate() {
        if i > 0 {
            line.push('\t');
        }
        match value {
            Value::NULL => line.push_str("\\N"),
            Value::Int(v) => write!(line, "{v}")?,
            Value::UInt(v) => write!(line, "{v}")?,
            Value::Float(v) => write!(line, "{v}")?,
            Value::Double(v) => write!(line, "{v}")?,
            Value::Bytes(bytes) => {
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| anyhow::anyhow!("a non-UTF-8 value in the net changes"))?;
                for c in text.chars() {
                    match c {
                        '\\' => line.push_str("\\\\"),
                        '\t' => line.push_str("\\t"),
                        '\n' => line.push_str("\\n"),
                        '\0' => line.push_str("\\0"),
                        c => line.push(c),
                    }
                }
            }
            other => anyhow::bail!("the net-change file cannot hold {other:?}"),
        }
    }
    line.push('\n');
    Ok(line)
}

fn quoted_path(path: &Path) -> anyhow::Result<String> {
    let text = path
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", path.display()))?;
    anyhow::ensure!(!text.contains('\''), "{text}: a quote in a bench file path");
    Ok(format!("'{text}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secondary_indexes_move_after_the_load() {
        let definition = "CREATE TABLE `sbtest1` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `k` int(11) NOT NULL DEFAULT 0,\n  PRIMARY KEY (`id`),\n  KEY `k_1` (`k`)\n) ENGINE=InnoDB";
        let (create, secondary) = split_secondary_indexes(definition);
        assert_eq!(
            create,
            "CREATE TABLE `sbtest1` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `k` int(11) NOT NULL DEFAULT 0,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB"
        );
        assert_eq!(secondary, vec!["ADD KEY `k_1` (`k`)".to_string()]);
    }

    #[test]
    fn tsv_escapes_what_load_data_reads_specially() -> anyhow::Result<()> {
        let row = vec![
            Value::Int(7),
            Value::NULL,
            Value::Bytes(b"a\tb\\c\nd".to_vec()),
        ];
        assert_eq!(tsv_line(&row)?, "7\t\\N\ta\\tb\\\\c\\nd\n");
        Ok(())
    }
}
