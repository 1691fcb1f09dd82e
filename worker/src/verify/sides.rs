//! One table as verification reads it on both sides: the columns the route
//! lets through, named as the source and as the destination has them, the
//! source rows the route's WHERE filter takes, and on the destination the
//! rows this source table owns (a merge's source column). Values are read as
//! [`read_expression`] has them, so both sides compare as the apply stage's
//! conflict detection compares (see `sink::conflict`).

use crate::error::{DriverResultExt, Side, SyncResult};
use crate::sink::conflict::{differs, json_of, key_bytes, read_expression};
use crate::sink::convert::{bound_rows, placeholder, push_hex, push_rendered};
use crate::source::catalog::{Column, Table};
use crate::source::keyset::{after, between, order_by, params_of};
use crate::verify::difference::{Difference, DifferenceKind};
use dts_common::mysql::quote_ident;
use mysql_async::prelude::Queryable;
use mysql_async::{Row, Value};
use std::collections::{BTreeMap, HashMap};

/// Rows by [`key_bytes`] of their key, values in [`TableSides::columns`] order.
pub type Rows = HashMap<Vec<u8>, Vec<Value>>;

/// A key range: after `lower` (exclusive), up to `upper` (inclusive); an
/// open end where `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Range {
    pub lower: Option<Vec<Value>>,
    pub upper: Option<Vec<Value>>,
}

#[derive(Debug, Clone)]
pub struct TableSides {
    /// The source table, as the route narrowed it.
    pub source: Table,
    /// The same table under its destination names (for key ranges there).
    destination: Table,
    /// The compared columns (source definitions, source names).
    pub columns: Vec<Column>,
    /// Their names on the destination.
    targets: Vec<String>,
    /// Positions of the key's columns among `columns`.
    key: Vec<usize>,
    source_filter: Option<String>,
    /// Only the destination rows that came from this source table.
    destination_filter: Option<String>,
    /// Other selected tables merge into the same destination table.
    merged: bool,
}

impl TableSides {
    /// `merged`: other tables of the task go to the same destination table.
    pub fn new(table: &Table, merged: bool) -> Self {
        let writable: Vec<(usize, &Column)> = table.writable().collect();
        let columns: Vec<Column> = writable.iter().map(|(_, c)| (*c).clone()).collect();
        let targets: Vec<String> = writable
            .iter()
            .map(|(i, _)| table.column_target(*i).to_string())
            .collect();
        let key = table
            .key
            .iter()
            .filter_map(|k| writable.iter().position(|(i, _)| i == k))
            .collect();
        let mut destination = table.clone();
        for (i, column) in destination.columns.iter_mut().enumerate() {
            column.name = table.column_target(i).to_string();
        }
        destination.db = table.target.db.clone();
        destination.name = table.target.name.clone();
        destination.column_targets = None;
        destination.filter = None;
        let destination_filter = table.source_column.as_ref().map(|column| {
            let mut sql = format!("{} = _utf8mb4 X'", quote_ident(column));
            push_hex(&mut sql, table.source_label().as_bytes());
            sql.push('\'');
            sql
        });
        Self {
            source: table.clone(),
            destination,
            columns,
            targets,
            key,
            source_filter: table.filter.as_ref().map(|f| format!("({})", f.to_sql())),
            destination_filter,
            merged,
        }
    }

    /// `db.table` on the source.
    pub fn source_label(&self) -> String {
        self.source.source_label()
    }

    /// `db.table` on the destination.
    pub fn destination_label(&self) -> String {
        format!("{}.{}", self.destination.db, self.destination.name)
    }

    /// Whether the destination table may hold rows of other sources that
    /// cannot be told apart: a merge without a source column. Rows there
    /// that this source lacks are not differences.
    pub fn shares_destination(&self) -> bool {
        self.merged && self.destination_filter.is_none()
    }

    fn table(&self, side: Side) -> &Table {
        match side {
            Side::Source => &self.source,
            Side::Destination => &self.destination,
        }
    }

    /// The read expressions of the compared columns on `side`.
    fn expressions(&self, side: Side) -> Vec<String> {
        self.columns
            .iter()
            .zip(&self.targets)
            .map(|(column, target)| match side {
                Side::Source => read_expression(column),
                Side::Destination => read_expression(&Column {
                    name: target.clone(),
                    ..column.clone()
                }),
            })
            .collect()
    }

    /// The row condition of `range` on `side`, with its parameters.
    fn range_condition(&self, side: Side, range: &Range) -> (String, Vec<Value>) {
        let (mut terms, params) = between(
            self.table(side),
            range.lower.as_deref(),
            range.upper.as_deref(),
        );
        terms.extend(self.side_filter(side));
        (conjunction(terms), params)
    }

    fn side_filter(&self, side: Side) -> Option<String> {
        match side {
            Side::Source => self.source_filter.clone(),
            Side::Destination => self.destination_filter.clone(),
        }
    }

    /// The number of rows in `range` and a checksum of their values: equal
    /// on both sides when the rows are (a text representation each side
    /// computes alike; rows tell the truth when it differs).
    pub async fn checksum(
        &self,
        conn: &mut mysql_async::Conn,
        side: Side,
        range: &Range,
    ) -> SyncResult<(u64, u64)> {
        let expressions = self.expressions(side);
        let nulls: Vec<String> = expressions.iter().map(|e| format!("ISNULL({e})")).collect();
        let (condition, params) = self.range_condition(side, range);
        let sql = format!(
            "SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS('#', {}, CONCAT({})))), 0) \
             FROM {} WHERE {condition}",
            expressions.join(", "),
            nulls.join(", "),
            self.table(side).qualified(),
        );
        let found: Option<(u64, u64)> = conn
            .exec_first(sql, params_of(params))
            .await
            .on(side, &self.context(side, "checksumming a chunk"))?;
        Ok(found.unwrap_or((0, 0)))
    }

    /// The rows in `range`.
    pub async fn rows_in(
        &self,
        conn: &mut mysql_async::Conn,
        side: Side,
        range: &Range,
    ) -> SyncResult<Rows> {
        let (condition, params) = self.range_condition(side, range);
        let sql = format!(
            "SELECT {} FROM {} WHERE {condition}",
            self.expressions(side).join(", "),
            self.table(side).qualified(),
        );
        self.read(conn, side, sql, params, "reading a chunk's rows")
            .await
    }

    /// The rows with `keys` (key values as the rows carry them).
    pub async fn rows_with_keys(
        &self,
        conn: &mut mysql_async::Conn,
        side: Side,
        keys: &[Vec<Value>],
    ) -> SyncResult<Rows> {
        if keys.is_empty() {
            return Ok(Rows::new());
        }
        let table = self.table(side);
        let key_columns: Vec<Column> = self
            .key
            .iter()
            .map(|&i| Column {
                name: match side {
                    Side::Source => self.columns[i].name.clone(),
                    Side::Destination => self.targets[i].clone(),
                },
                ..self.columns[i].clone()
            })
            .collect();
        let names: Vec<String> = key_columns.iter().map(|c| quote_ident(&c.name)).collect();
        let tuple: Vec<String> = key_columns.iter().map(placeholder).collect();
        let tuple = format!("({})", tuple.join(", "));
        let list = vec![tuple; keys.len()].join(", ");
        let mut terms = vec![format!("({}) IN ({list})", names.join(", "))];
        terms.extend(self.side_filter(side));
        let sql = format!(
            "SELECT {} FROM {} WHERE {}",
            self.expressions(side).join(", "),
            table.qualified(),
            conjunction(terms)
        );
        let key_columns: Vec<&Column> = key_columns.iter().collect();
        let params = bound_rows(&key_columns, keys.iter().flatten().cloned().collect());
        self.read(conn, side, sql, params, "re-reading rows that differed")
            .await
    }

    async fn read(
        &self,
        conn: &mut mysql_async::Conn,
        side: Side,
        sql: String,
        params: Vec<Value>,
        what: &str,
    ) -> SyncResult<Rows> {
        let rows: Vec<Row> = conn
            .exec(sql, params_of(params))
            .await
            .on(side, &self.context(side, what))?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let values = row.unwrap();
                (self.key_of(&values), values)
            })
            .collect())
    }

    /// The upper bound of the chunk of `rows` rows after `lower` on the
    /// source, or `None` when fewer remain (the last chunk is open).
    pub async fn next_bound(
        &self,
        conn: &mut mysql_async::Conn,
        lower: Option<&[Value]>,
        rows: u64,
    ) -> SyncResult<Option<Vec<Value>>> {
        let (condition, params) = match lower {
            Some(lower) => after(&self.source, lower),
            None => ("TRUE".to_string(), Vec::new()),
        };
        let keys = order_by(&self.source);
        let sql = format!(
            "SELECT {keys} FROM {} WHERE {condition} ORDER BY {keys} LIMIT 1 OFFSET {}",
            self.source.qualified(),
            rows.saturating_sub(1)
        );
        let row: Option<Row> = conn
            .exec_first(sql, params_of(params))
            .await
            .on(Side::Source, &self.context(Side::Source, "cutting a chunk"))?;
        Ok(row.map(Row::unwrap))
    }

    /// The key values of a row read by this table's statements.
    pub fn key_values(&self, row: &[Value]) -> Vec<Value> {
        self.key.iter().map(|&i| row[i].clone()).collect()
    }

    fn key_of(&self, row: &[Value]) -> Vec<u8> {
        self.key_bytes(&self.key_values(row))
    }

    /// What [`Rows`] are keyed by, for key values.
    pub fn key_bytes(&self, key: &[Value]) -> Vec<u8> {
        let columns: Vec<&Column> = self.key.iter().map(|&i| &self.columns[i]).collect();
        key_bytes(&columns, key)
    }

    /// Whether two rows (in `columns` order) are the same values.
    pub fn same_row(&self, source: &[Value], destination: &[Value]) -> bool {
        let columns: Vec<&Column> = self.columns.iter().collect();
        !differs(&columns, source, destination)
    }

    /// Whether a source row and a destination row with one key agree
    /// (`None`: no row): the same values, or both absent, or a row only the
    /// destination has in a table other sources merge into.
    pub fn in_step(&self, source: Option<&Vec<Value>>, destination: Option<&Vec<Value>>) -> bool {
        match (source, destination) {
            (Some(s), Some(d)) => self.same_row(s, d),
            (None, None) => true,
            (None, Some(_)) => self.shares_destination(),
            (Some(_), None) => false,
        }
    }

    /// The keys of `source` and `destination` whose rows are not in step,
    /// with their key values.
    pub fn differing(&self, source: &Rows, destination: &Rows) -> Vec<Vec<Value>> {
        let mut keys = Vec::new();
        for (key, row) in source {
            if !self.in_step(Some(row), destination.get(key)) {
                keys.push(self.key_values(row));
            }
        }
        for (key, row) in destination {
            if !source.contains_key(key) && !self.in_step(None, Some(row)) {
                keys.push(self.key_values(row));
            }
        }
        keys
    }

    /// A difference as reported, with the statement that repairs the
    /// destination.
    pub fn difference(
        &self,
        key: &[Value],
        source: Option<&[Value]>,
        destination: Option<&[Value]>,
    ) -> Difference {
        let kind = match (source, destination) {
            (Some(_), Some(_)) => DifferenceKind::Differs,
            (Some(_), None) => DifferenceKind::Missing,
            _ => DifferenceKind::Extra,
        };
        let as_json = |row: &[Value]| -> BTreeMap<String, serde_json::Value> {
            self.columns
                .iter()
                .zip(&self.targets)
                .zip(row)
                .map(|((c, target), v)| (target.clone(), json_of(c, v)))
                .collect()
        };
        let key_json = self
            .key
            .iter()
            .zip(key)
            .map(|(&i, v)| (self.targets[i].clone(), json_of(&self.columns[i], v)))
            .collect();
        Difference {
            table: self.destination_label(),
            source_table: self.source_label(),
            kind,
            key: key_json,
            source: source.map(as_json),
            destination: destination.map(as_json),
            fix: self.fix(key, source),
        }
    }

    /// The statement that makes the destination row what the source has.
    fn fix(&self, key: &[Value], source: Option<&[Value]>) -> String {
        let target = self.source.target_qualified();
        match source {
            Some(row) => {
                let mut columns: Vec<String> =
                    self.targets.iter().map(|t| quote_ident(t)).collect();
                let mut values: Vec<String> = self
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| {
                        let mut out = String::new();
                        push_rendered(&mut out, c, v);
                        out
                    })
                    .collect();
                if let Some(column) = &self.source.source_column {
                    columns.push(quote_ident(column));
                    let mut label = String::from("_utf8mb4 X'");
                    push_hex(&mut label, self.source.source_label().as_bytes());
                    label.push('\'');
                    values.push(label);
                }
                format!(
                    "REPLACE INTO {target} ({}) VALUES ({});",
                    columns.join(", "),
                    values.join(", ")
                )
            }
            None => {
                let mut terms: Vec<String> = self
                    .key
                    .iter()
                    .zip(key)
                    .map(|(&i, v)| {
                        let mut out = format!("{} = ", quote_ident(&self.targets[i]));
                        push_rendered(&mut out, &self.columns[i], v);
                        out
                    })
                    .collect();
                terms.extend(self.destination_filter.clone());
                format!("DELETE FROM {target} WHERE {};", terms.join(" AND "))
            }
        }
    }

    fn context(&self, side: Side, what: &str) -> String {
        let table = match side {
            Side::Source => self.source_label(),
            Side::Destination => self.destination_label(),
        };
        format!("verification: {what} of {table}")
    }
}

fn conjunction(terms: Vec<String>) -> String {
    if terms.is_empty() {
        "TRUE".to_string()
    } else {
        terms.join(" AND ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let column = |name: &str, data_type: &str| Column {
            name: name.into(),
            data_type: data_type.into(),
            column_type: data_type.into(),
            nullable: true,
            generated: false,
            virtual_generated: false,
            charset: None,
            collation: None,
            auto_increment: false,
        };
        Table::new(
            "shop",
            "orders",
            vec![column("id", "int"), column("amount", "decimal")],
            vec![0],
            vec![vec![0]],
        )
    }

    fn rows(sides: &TableSides, rows: &[(i64, &str)]) -> Rows {
        rows.iter()
            .map(|(id, amount)| {
                let row = vec![Value::Int(*id), Value::Bytes(amount.as_bytes().to_vec())];
                (sides.key_bytes(&row[..1]), row)
            })
            .collect()
    }

    #[test]
    fn differing_keys_are_changed_missing_and_extra_rows() {
        let sides = TableSides::new(&table(), false);
        let source = rows(&sides, &[(1, "1.50"), (2, "2.00"), (3, "3.00")]);
        let destination = rows(&sides, &[(1, "1.50"), (2, "2.50"), (4, "4.00")]);
        let mut keys: Vec<i64> = sides
            .differing(&source, &destination)
            .into_iter()
            .map(|k| match k[0] {
                Value::Int(i) => i,
                _ => -1,
            })
            .collect();
        keys.sort();
        assert_eq!(keys, vec![2, 3, 4]);
    }

    #[test]
    fn a_merged_table_without_a_source_column_has_no_extra_rows() {
        let sides = TableSides::new(&table(), true);
        let source = rows(&sides, &[(1, "1.50")]);
        let destination = rows(&sides, &[(1, "1.50"), (7, "7.00")]);
        assert!(sides.differing(&source, &destination).is_empty());
        assert!(!sides.in_step(source.values().next(), None));
    }

    #[test]
    fn the_fix_replaces_a_missing_or_changed_row_and_deletes_an_extra_one() {
        let sides = TableSides::new(&table(), false);
        let row = [Value::Int(2), Value::Bytes(b"2.00".to_vec())];
        let changed = sides.difference(&row[..1], Some(&row), Some(&row));
        assert_eq!(changed.kind, DifferenceKind::Differs);
        assert_eq!(
            changed.fix,
            "REPLACE INTO `shop`.`orders` (`id`, `amount`) VALUES (2, X'322E3030');"
        );
        let extra = sides.difference(&row[..1], None, Some(&row));
        assert_eq!(extra.kind, DifferenceKind::Extra);
        assert_eq!(extra.fix, "DELETE FROM `shop`.`orders` WHERE `id` = 2;");
    }
}
