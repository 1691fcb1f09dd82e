//! Secondary indexes built after a table's rows are copied, not row by row
//! while they arrive. Inserting into a random-order secondary B-tree is most
//! of what a full copy costs the destination; building the index afterwards
//! sorts its entries once. Measured on sysbench tables (4 x 250,000 rows,
//! 4 sessions, one MariaDB 10.11): loading with `KEY k_1` took 1,124-1,147 CPU
//! ticks, loading without it and then adding it 841-874.
//!
//! Only plain (`KEY`) indexes of tables dts itself creates are deferred,
//! never PRIMARY, UNIQUE (they keep what the destination enforces), FULLTEXT
//! or SPATIAL ones, nor the index an AUTO_INCREMENT column needs, nor any
//! index of a table in a foreign-key relation. The deferred definitions are
//! recorded in the metadata schema before the table is created without them,
//! so whoever owns the task after a crash still adds them.

use crate::error::{DriverResultExt, Side, SyncResult};
use crate::meta::Meta;
use dts_common::mysql::quote_table;
use mysql_async::prelude::Queryable;
use tracing::info;

/// A plain index left out of a table's CREATE TABLE, to be added later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferredIndex {
    pub name: String,
    /// As SHOW CREATE TABLE writes it: `` KEY `k` (`a`,`b`(10)) COMMENT '...' ``.
    pub definition: String,
}

/// Splits the plain indexes off a SHOW CREATE TABLE text: the statement
/// without them, and them. An index whose first column is `auto_increment`
/// stays (InnoDB needs one such index at creation), as does anything this
/// does not recognise.
pub fn split_plain_indexes(
    create: &str,
    auto_increment: Option<&str>,
) -> (String, Vec<DeferredIndex>) {
    let lines: Vec<&str> = create.lines().collect();
    let Some(open) = lines.iter().position(|l| l.trim_end().ends_with('(')) else {
        return (create.to_string(), Vec::new());
    };
    let Some(close) = lines
        .iter()
        .skip(open + 1)
        .position(|l| l.starts_with(')'))
        .map(|p| p + open + 1)
    else {
        return (create.to_string(), Vec::new());
    };
    let mut deferred = Vec::new();
    let mut body = Vec::new();
    for line in &lines[open + 1..close] {
        let item = line.trim_end().strip_suffix(',').unwrap_or(line.trim_end());
        match plain_index(item) {
            Some((name, first_column)) if Some(first_column.as_str()) != auto_increment => {
                deferred.push(DeferredIndex {
                    name,
                    definition: item.trim_start().to_string(),
                });
            }
            _ => body.push(item),
        }
    }
    if deferred.is_empty() || body.is_empty() {
        return (create.to_string(), Vec::new());
    }
    let mut out: Vec<String> = lines[..=open].iter().map(|l| l.to_string()).collect();
    let last = body.len() - 1;
    out.extend(body.iter().enumerate().map(|(i, item)| {
        if i == last {
            item.to_string()
        } else {
            format!("{item},")
        }
    }));
    out.extend(lines[close..].iter().map(|l| l.to_string()));
    (out.join("\n"), deferred)
}

/// `` KEY `name` (`first`,...)... `` → (name, first column).
fn plain_index(item: &str) -> Option<(String, String)> {
    let rest = item.trim_start().strip_prefix("KEY `")?;
    let (name, rest) = quoted(rest)?;
    let rest = rest.trim_start().strip_prefix("(`")?;
    let (first, _) = quoted(rest)?;
    Some((name, first))
}

/// A backquoted identifier's text up to its closing quote (`` `` `` is a
/// quote inside it), and what follows.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut name = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '`' {
            name.push(c);
        } else if matches!(chars.peek(), Some((_, '`'))) {
            chars.next();
            name.push('`');
        } else {
            return Some((name, &s[i + 1..]));
        }
    }
    None
}

/// Records a table's deferred indexes; done before the table is created.
pub async fn record(
    meta: &Meta,
    dst: &mut mysql_async::Conn,
    db: &str,
    table: &str,
    indexes: &[DeferredIndex],
) -> SyncResult<()> {
    let ctx = format!("recording the indexes deferred on `{db}`.`{table}`");
    for (ordinal, index) in indexes.iter().enumerate() {
        dst.exec_drop(
            format!(
                "REPLACE INTO {} (task_id, db, tbl, index_name, ordinal, definition) \
                 VALUES (?, ?, ?, ?, ?, ?)",
                meta.table("deferred_indexes")
            ),
            (
                &meta.task_id,
                db,
                table,
                &index.name,
                ordinal,
                &index.definition,
            ),
        )
        .await
        .on(Side::Destination, &ctx)?;
    }
    Ok(())
}

/// Adds the table's deferred indexes that it does not have yet, in one
/// ALTER TABLE, and forgets them. Safe to repeat after a crash at any point.
pub async fn restore(
    meta: &Meta,
    dst: &mut mysql_async::Conn,
    db: &str,
    table: &str,
) -> SyncResult<()> {
    let ctx = format!("adding the deferred indexes of `{db}`.`{table}`");
    let deferred: Vec<(String, String)> = dst
        .exec(
            format!(
                "SELECT index_name, definition FROM {} WHERE task_id = ? AND db = ? AND tbl = ? \
                 ORDER BY ordinal",
                meta.table("deferred_indexes")
            ),
            (&meta.task_id, db, table),
        )
        .await
        .on(Side::Destination, &ctx)?;
    if deferred.is_empty() {
        return Ok(());
    }
    let present: Vec<String> = dst
        .exec(
            "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (db, table),
        )
        .await
        .on(Side::Destination, &ctx)?;
    let missing: Vec<&str> = deferred
        .iter()
        .filter(|(name, _)| !present.contains(name))
        .map(|(_, definition)| definition.as_str())
        .collect();
    if !missing.is_empty() {
        // Minutes on a big table: said before, not only after.
        info!(table = %quote_table(db, table), indexes = missing.len(), "adding deferred indexes");
        let started = std::time::Instant::now();
        let adds: Vec<String> = missing.iter().map(|d| format!("ADD {d}")).collect();
        dst.query_drop(format!(
            "ALTER TABLE {} {}",
            quote_table(db, table),
            adds.join(", ")
        ))
        .await
        .on(Side::Destination, &ctx)?;
        info!(
            table = %quote_table(db, table),
            indexes = missing.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "deferred indexes added"
        );
    }
    dst.exec_drop(
        format!(
            "DELETE FROM {} WHERE task_id = ? AND db = ? AND tbl = ?",
            meta.table("deferred_indexes")
        ),
        (&meta.task_id, db, table),
    )
    .await
    .on(Side::Destination, &ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SBTEST: &str = "CREATE TABLE `sbtest1` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  \
        `k` int(11) NOT NULL DEFAULT 0,\n  `c` char(120) NOT NULL DEFAULT '',\n  \
        PRIMARY KEY (`id`),\n  KEY `k_1` (`k`)\n) ENGINE=InnoDB AUTO_INCREMENT=9 DEFAULT CHARSET=latin1";

    #[test]
    fn plain_indexes_are_split_off_and_the_list_stays_well_formed() {
        let (create, deferred) = split_plain_indexes(SBTEST, Some("id"));
        assert_eq!(
            create,
            "CREATE TABLE `sbtest1` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  \
             `k` int(11) NOT NULL DEFAULT 0,\n  `c` char(120) NOT NULL DEFAULT '',\n  \
             PRIMARY KEY (`id`)\n) ENGINE=InnoDB AUTO_INCREMENT=9 DEFAULT CHARSET=latin1"
        );
        assert_eq!(
            deferred,
            vec![DeferredIndex {
                name: "k_1".into(),
                definition: "KEY `k_1` (`k`)".into()
            }]
        );
    }

    #[test]
    fn unique_fulltext_and_auto_increment_indexes_stay() {
        let create = "CREATE TABLE `t` (\n  `a` int(11) NOT NULL,\n  `n` int(11) NOT NULL AUTO_INCREMENT,\n  \
            `s` text DEFAULT NULL,\n  PRIMARY KEY (`a`),\n  UNIQUE KEY `u` (`s`(10)),\n  \
            KEY `by``n` (`n`),\n  KEY `two` (`s`(20),`a`) COMMENT 'x, y',\n  FULLTEXT KEY `f` (`s`)\n\
            ) ENGINE=InnoDB";
        let (kept, deferred) = split_plain_indexes(create, Some("n"));
        assert!(kept.contains("KEY `by``n` (`n`),"), "{kept}");
        assert!(kept.contains("UNIQUE KEY `u`"), "{kept}");
        assert!(
            kept.ends_with("  FULLTEXT KEY `f` (`s`)\n) ENGINE=InnoDB"),
            "{kept}"
        );
        assert!(!kept.contains("`two`"), "{kept}");
        assert_eq!(deferred.len(), 1);
        assert_eq!(deferred[0].name, "two");
        assert_eq!(
            deferred[0].definition,
            "KEY `two` (`s`(20),`a`) COMMENT 'x, y'"
        );
    }

    #[test]
    fn a_table_of_nothing_but_plain_indexes_is_left_alone() {
        let create = "CREATE TABLE `t` (\n  KEY `k` (`a`)\n) ENGINE=InnoDB";
        assert_eq!(
            split_plain_indexes(create, None),
            (create.to_string(), vec![])
        );
        assert_eq!(
            split_plain_indexes("not a table", None),
            ("not a table".to_string(), vec![])
        );
    }

    #[test]
    fn quoted_names_read_doubled_quotes() {
        assert_eq!(quoted("a``b` rest"), Some(("a`b".to_string(), " rest")));
        assert_eq!(quoted("open"), None);
    }
}
