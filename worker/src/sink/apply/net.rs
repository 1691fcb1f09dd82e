//! A table's folded net changes as the statements that write them, and
//! their text. Rendering is pure (the table and the rows only), so the
//! applier renders each statement while the one before it runs on the
//! destination (see `Applier::write_net`): rendering a thousand-row
//! statement takes about a millisecond, which the destination would
//! otherwise spend waiting between round trips.

use super::{chunks, column_list, keys_in};
use crate::sink::compact::NetStatements;
use crate::sink::convert::{push_rendered, rendered_len};
use crate::source::catalog::{Column, Table};
use dts_common::mysql::quote_ident;
use mysql_async::Value;

/// What a write statement must find for the batch to be clean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteKind {
    /// `DELETE` of keys whether or not they exist.
    TolerantDelete,
    /// `DELETE` of keys that must exist: affected rows must match.
    Delete,
    /// Upsert of rows that must exist (see `Applier::update_existing`).
    Update,
    /// `INSERT` of rows whose keys must not exist.
    Insert,
    /// `REPLACE` of rows whether or not their key exists.
    Replace,
}

/// One statement's worth of a table's net changes.
pub(super) enum NetStep<'a> {
    /// Keys (`TolerantDelete`, `Delete`) or rows of the writable columns.
    Write {
        kind: WriteKind,
        rows: Vec<&'a [Value]>,
    },
    /// Rows that must exist, of a table with nothing but its key: they are
    /// already as the source has them if they are there, so only counted.
    CheckExist(Vec<&'a [Value]>),
}

/// The table's net changes as statement-sized steps: deletes, then updates
/// of rows that must exist, then inserts (keys are distinct, so any order
/// gives the same rows). `upserts`: whether the table has a column outside
/// its key for an update to write (see [`upsert_tail`]).
pub(super) fn steps<'a>(table: &Table, net: NetStatements<'a>, upserts: bool) -> Vec<NetStep<'a>> {
    let NetStatements {
        deletes,
        tolerant_deletes,
        updates,
        inserts,
        replaces,
    } = net;
    let key_width = table.key.len();
    let width = table.writable().count();
    // `None`: the rows are only counted (a table with nothing but its key).
    let update = upserts.then_some(WriteKind::Update);
    let parts = [
        (tolerant_deletes, key_width, Some(WriteKind::TolerantDelete)),
        (deletes, key_width, Some(WriteKind::Delete)),
        (updates, width, update),
        (inserts, width, Some(WriteKind::Insert)),
        (replaces, width, Some(WriteKind::Replace)),
    ];
    let mut out = Vec::new();
    for (rows, width, kind) in parts {
        out.extend(chunks(rows, width).into_iter().map(|rows| match kind {
            Some(kind) => NetStep::Write { kind, rows },
            None => NetStep::CheckExist(rows),
        }));
    }
    out
}

impl NetStep<'_> {
    /// The statement's text; `None` for a step that only counts rows.
    pub(super) fn render(&self, table: &Table, upsert: &str) -> Option<String> {
        match self {
            Self::Write { kind, rows } => Some(render_write(table, *kind, rows, upsert)),
            Self::CheckExist(_) => None,
        }
    }
}

/// The text of a write step; `upsert` is the table's [`upsert_tail`].
pub(super) fn render_write(
    table: &Table,
    kind: WriteKind,
    rows: &[&[Value]],
    upsert: &str,
) -> String {
    match kind {
        WriteKind::TolerantDelete | WriteKind::Delete => delete_statement(table, rows),
        WriteKind::Update => rows_statement(table, "INSERT", rows, upsert),
        WriteKind::Insert => rows_statement(table, "INSERT", rows, ""),
        WriteKind::Replace => rows_statement(table, "REPLACE", rows, ""),
    }
}

/// `DELETE` of the given keys.
pub(super) fn delete_statement(table: &Table, keys: &[&[Value]]) -> String {
    format!(
        "DELETE FROM {} WHERE {}",
        table.qualified(),
        keys_in(table, keys)
    )
}

/// ` ON DUPLICATE KEY UPDATE` of every writable column outside the key;
/// `None` when there is none.
pub(super) fn upsert_tail(table: &Table) -> Option<String> {
    let assignments: Vec<String> = table
        .writable()
        .filter(|(column, _)| !table.key.contains(column))
        .map(|(_, c)| format!("{0} = VALUES({0})", quote_ident(&c.name)))
        .collect();
    if assignments.is_empty() {
        return None;
    }
    Some(format!(
        " ON DUPLICATE KEY UPDATE {}",
        assignments.join(", ")
    ))
}

/// `<verb> INTO table (writable columns) VALUES (...), ... <tail>`.
pub(super) fn rows_statement(table: &Table, verb: &str, rows: &[&[Value]], tail: &str) -> String {
    let columns: Vec<&Column> = table.writable().map(|(_, c)| c).collect();
    let head = format!(
        "{verb} INTO {} ({}) VALUES ",
        table.qualified(),
        column_list(table)
    );
    let size: usize = rows.iter().flat_map(|r| r.iter()).map(rendered_len).sum();
    let mut sql = String::with_capacity(head.len() + size + 4 * rows.len() + tail.len());
    sql.push_str(&head);
    for (n, row) in rows.iter().enumerate() {
        sql.push_str(if n == 0 { "(" } else { ", (" });
        for (i, (column, value)) in columns.iter().zip(row.iter()).enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            push_rendered(&mut sql, column, value);
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}
