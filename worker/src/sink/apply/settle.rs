//! The apply stage's slow path: changes whose destination rows are looked
//! at before they are written. Taken for every batch when the task compares
//! rows (`conflicts.compare_rows`), and otherwise only for the part of a
//! batch whose statements found the destination other than the source had
//! it (a delete or update counting fewer rows, an insert meeting a key),
//! once that part is undone to a savepoint. It reads the rows the changes
//! touch, locking them so they hold still until commit, tells the
//! conflicts (see `sink::conflict`), lets the table's policy settle each,
//! records them in the transaction, and writes what the policy chose.

use super::{chunks, key_predicate, Applier};
use crate::error::{DriverResultExt, Side, SyncError, SyncResult};
use crate::sink::compact::{First, Folded};
use crate::sink::conflict::{
    decide, differs, failure, key_bytes, read_expression, Decision, Kind, Meeting, Record,
    Resolution,
};
use crate::sink::convert::{bound_rows, placeholder, push_rendered};
use crate::sink::lanes::RowsWork;
use crate::source::catalog::{Column, Table};
use dts_common::conflict::Policy;
use dts_common::mysql::quote_ident;
use mysql_async::prelude::Queryable;
use mysql_async::{Params, Value};
use std::collections::HashMap;

/// Keys read per statement; the statement is padded to the next power of
/// two, so a table has a handful of statement shapes, each prepared once.
const KEYS_PER_READ: usize = 256;

/// A table's conflict policy, bound to its destination definition.
#[derive(Debug, Clone)]
pub struct TablePolicy {
    pub policy: Policy,
    /// The compared column's position among the writable columns.
    pub column: Option<usize>,
}

/// One change as the slow path takes it; rows are the destination table's
/// writable columns.
pub(super) struct Change<'a> {
    pub key: &'a [Value],
    pub first: First,
    /// The row the change expected (only when rows are compared).
    pub before: Option<&'a [Value]>,
    /// The row it leaves; `None`: deleted.
    pub after: Option<&'a [Value]>,
}

impl Applier {
    /// The policy for the rows of `work`, which go to `table`.
    pub(super) fn table_policy(&self, work: &RowsWork, table: &Table) -> SyncResult<TablePolicy> {
        // Rules name tables as on the task file's source, which is a
        // reverse task's destination.
        let policy = if self.conflicts.by_destination {
            self.conflicts.rules.policy(work.db(), work.table())
        } else {
            self.conflicts
                .rules
                .policy(&work.source.db, &work.source.name)
        };
        let column = match &policy.column {
            None => None,
            Some(name) => Some(
                table
                    .writable()
                    .position(|(_, c)| c.name.eq_ignore_ascii_case(name))
                    .ok_or_else(|| {
                        SyncError::InvalidSpec(dts_common::SpecError::new(
                            format!("{}.column", policy.field),
                            format!(
                                "destination table `{}`.`{}` has no column `{name}` to compare",
                                table.db, table.name
                            ),
                        ))
                    })?,
            ),
        };
        Ok(TablePolicy {
            policy: policy.clone(),
            column,
        })
    }

    /// The rows with `keys`, locked, by [`key_bytes`] of their key; columns
    /// read as [`read_expression`] has them.
    async fn read_rows(
        &mut self,
        table: &Table,
        keys: &[&[Value]],
    ) -> SyncResult<HashMap<Vec<u8>, Vec<Value>>> {
        let key_columns: Vec<&Column> = table.key_columns().collect();
        let writable: Vec<usize> = table.writable().map(|(i, _)| i).collect();
        let key_positions: Vec<usize> = table
            .key
            .iter()
            .filter_map(|k| writable.iter().position(|c| c == k))
            .collect();
        let expressions: Vec<String> = table.writable().map(|(_, c)| read_expression(c)).collect();
        let (target, tuple) = match key_columns.as_slice() {
            [column] => (quote_ident(&column.name), placeholder(column)),
            columns => (
                format!(
                    "({})",
                    columns
                        .iter()
                        .map(|c| quote_ident(&c.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                format!(
                    "({})",
                    columns
                        .iter()
                        .map(|c| placeholder(c))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        };
        let context = format!("reading rows of `{}`.`{}` to compare", table.db, table.name);
        let mut found = HashMap::new();
        for chunk in keys.chunks(KEYS_PER_READ) {
            let Some(last) = chunk.last() else {
                continue;
            };
            let shape = chunk.len().next_power_of_two();
            let sql = format!(
                "SELECT {} FROM {} WHERE {target} IN ({}) FOR UPDATE",
                expressions.join(", "),
                table.qualified(),
                vec![tuple.as_str(); shape].join(", ")
            );
            let mut params: Vec<Value> = Vec::with_capacity(shape * key_columns.len());
            for key in chunk
                .iter()
                .chain(std::iter::repeat_n(last, shape - chunk.len()))
            {
                params.extend(key.iter().cloned());
            }
            let params = bound_rows(&key_columns, params);
            let rows: Vec<mysql_async::Row> = self
                .conn
                .exec(sql, Params::Positional(params))
                .await
                .on(Side::Destination, &context)?;
            for row in rows {
                let values = row.unwrap();
                let key: Vec<Value> = key_positions.iter().map(|&i| values[i].clone()).collect();
                found.insert(key_bytes(&key_columns, &key), values);
            }
        }
        Ok(found)
    }

    /// Whether `change` is to be written over `found`: yes when they do not
    /// conflict, else as the policy settles it (recorded for the commit).
    fn judge(
        &mut self,
        table: &Table,
        policy: &TablePolicy,
        columns: &[&Column],
        change: &Change<'_>,
        found: Option<&[Value]>,
    ) -> SyncResult<bool> {
        let deleted = change.after.is_none();
        let kind = match (change.first, found) {
            (First::Insert, Some(_)) => Some(Kind::InsertExists),
            (First::Insert, None) => None,
            (First::UpdateOrDelete, None) if deleted => Some(Kind::DeleteMissing),
            (First::UpdateOrDelete, None) => Some(Kind::UpdateMissing),
            (First::UpdateOrDelete, Some(found)) => change
                .before
                .filter(|before| differs(columns, before, found))
                .map(|_| {
                    if deleted {
                        Kind::DeleteDiffers
                    } else {
                        Kind::UpdateDiffers
                    }
                }),
        };
        let Some(kind) = kind else {
            return Ok(true);
        };
        let column = policy.column.map(|i| (i, columns[i]));
        let met = Meeting {
            kind,
            key: change.key,
            incoming: change.after,
            found,
        };
        match decide(&policy.policy, column, change.after, found, columns) {
            Decision::Fail => Err(SyncError::Conflict(failure(table, columns, &met))),
            Decision::Settle(resolution) => {
                self.settled.push(Record::new(
                    table,
                    columns,
                    &met,
                    policy.policy.policy,
                    resolution,
                ));
                Ok(resolution == Resolution::Applied)
            }
        }
    }

    /// Settles a folded table's net changes (its keys are distinct and its
    /// key is its only unique index, so rows are written by key in bulk).
    pub(super) async fn settle_folded(
        &mut self,
        table: &Table,
        folded: &Folded,
        policy: &TablePolicy,
    ) -> SyncResult<()> {
        let columns: Vec<&Column> = table.writable().map(|(_, c)| c).collect();
        let key_columns: Vec<&Column> = table.key_columns().collect();
        let keys: Vec<&[Value]> = folded.entries().iter().map(|e| &e.key[..]).collect();
        let found = self.read_rows(table, &keys).await?;
        let mut writes: Vec<&[Value]> = Vec::new();
        let mut deletes: Vec<&[Value]> = Vec::new();
        for entry in folded.entries() {
            let found_row = found
                .get(&key_bytes(&key_columns, &entry.key))
                .map(Vec::as_slice);
            let change = Change {
                key: &entry.key,
                first: entry.first,
                before: entry.before.as_deref(),
                after: entry.after.as_deref(),
            };
            if !self.judge(table, policy, &columns, &change, found_row)? {
                continue;
            }
            match (entry.after.as_deref(), found_row) {
                (Some(row), _) => writes.push(row),
                (None, Some(_)) => deletes.push(&entry.key),
                (None, None) => {}
            }
        }
        for keys in chunks(deletes, table.key.len()) {
            self.delete_keys(table, &keys).await?;
        }
        for rows in chunks(writes, columns.len()) {
            self.upsert_rows(table, &rows).await?;
        }
        Ok(())
    }

    /// Settles changes one at a time, in order (tables the fold does not
    /// take, where another unique index makes order matter).
    pub(super) async fn settle_each(
        &mut self,
        table: &Table,
        policy: &TablePolicy,
        changes: Vec<Change<'_>>,
    ) -> SyncResult<()> {
        let columns: Vec<&Column> = table.writable().map(|(_, c)| c).collect();
        for change in changes {
            let found = self.read_rows(table, &[change.key]).await?;
            let found_row = found.into_values().next();
            if !self.judge(table, policy, &columns, &change, found_row.as_deref())? {
                continue;
            }
            match (change.after, found_row.is_some()) {
                (Some(row), true) => self.update_row(table, change.key, row).await?,
                (Some(row), false) => {
                    self.write_rows(table, "INSERT", &[row], "").await?;
                }
                (None, true) => {
                    self.delete_keys(table, &[change.key]).await?;
                }
                (None, false) => {}
            }
        }
        Ok(())
    }

    /// Writes rows whether or not their keys are there.
    async fn upsert_rows(&mut self, table: &Table, rows: &[&[Value]]) -> SyncResult<usize> {
        match super::net::upsert_tail(table) {
            Some(tail) => self.write_rows(table, "INSERT", rows, &tail).await,
            None => self.write_rows(table, "INSERT IGNORE", rows, "").await,
        }
    }

    /// Overwrites the row with `key` (which is there, locked) with `row`.
    async fn update_row(&mut self, table: &Table, key: &[Value], row: &[Value]) -> SyncResult<()> {
        let mut sql = format!("UPDATE {} SET ", table.qualified());
        for (i, ((_, column), value)) in table.writable().zip(row).enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&quote_ident(&column.name));
            sql.push_str(" = ");
            push_rendered(&mut sql, column, value);
        }
        sql.push_str(" WHERE ");
        sql.push_str(&key_predicate(table));
        let context = format!("applying to `{}`.`{}`", table.db, table.name);
        let key_columns: Vec<&Column> = table.key_columns().collect();
        let key = bound_rows(&key_columns, key.to_vec());
        self.conn
            .exec_drop(sql, Params::Positional(key))
            .await
            .on(Side::Destination, &context)
    }
}
