//! What the task's objects look like on the source: which tables, their
//! columns, and the key that identifies a row.

use crate::pipeline::error::{DriverResultExt, Side, SyncError, SyncResult};
use dts_common::spec::ObjectSelector;
use mysql_async::prelude::Queryable;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// `DATA_TYPE`, lower case (`int`, `varchar`, `json`, ...).
    pub data_type: String,
    /// `COLUMN_TYPE` (`int(10) unsigned`, `enum('a','b')`, ...).
    pub column_type: String,
    pub nullable: bool,
    /// Generated columns are computed by the destination, never written.
    pub generated: bool,
    /// VIRTUAL generated columns (MariaDB leaves them out of row images).
    pub virtual_generated: bool,
    /// Character set of text columns (`utf8mb4`, `latin1`, ...).
    pub charset: Option<String>,
    pub auto_increment: bool,
}

impl Column {
    pub fn is_unsigned(&self) -> bool {
        self.column_type.contains("unsigned")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub db: String,
    pub name: String,
    pub columns: Vec<Column>,
    /// Positions in `columns` of the primary key (or NOT NULL unique key).
    pub key: Vec<usize>,
    /// Every unique index (the key included), as positions in `columns`: what
    /// parallel apply must keep in order.
    pub unique_keys: Vec<Vec<usize>>,
    pub estimated_rows: u64,
}

impl Table {
    pub fn qualified(&self) -> String {
        dts_common::mysql::quote_table(&self.db, &self.name)
    }

    /// Columns the destination accepts values for.
    pub fn writable(&self) -> impl Iterator<Item = (usize, &Column)> {
        self.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.generated)
    }

    pub fn key_columns(&self) -> impl Iterator<Item = &Column> {
        self.key.iter().map(|&i| &self.columns[i])
    }
}

const CTX: &str = "reading the source catalog";

/// Resolves the task's object selectors to tables, with their columns and keys.
pub async fn load_tables(
    conn: &mut mysql_async::Conn,
    objects: &[ObjectSelector],
) -> SyncResult<Vec<Table>> {
    let mut tables = Vec::new();
    for object in objects {
        let exists: Option<String> = conn
            .exec_first(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (&object.database,),
            )
            .await
            .on(Side::Source, CTX)?;
        if exists.is_none() {
            return Err(SyncError::MissingDatabase(object.database.clone()));
        }
        let base_tables: Vec<(String, Option<u64>)> = conn
            .exec(
                "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
                (&object.database,),
            )
            .await
            .on(Side::Source, CTX)?;
        let selected: Vec<(String, Option<u64>)> = if object.tables.is_empty() {
            base_tables
        } else {
            let mut picked = Vec::new();
            for name in &object.tables {
                match base_tables.iter().find(|(t, _)| t == name) {
                    Some(found) => picked.push(found.clone()),
                    None => {
                        return Err(SyncError::MissingTable {
                            db: object.database.clone(),
                            table: name.clone(),
                        })
                    }
                }
            }
            picked
        };
        for (name, rows) in selected {
            let mut table = load_table(conn, &object.database, &name).await?;
            table.estimated_rows = rows.unwrap_or(0);
            tables.push(table);
        }
    }
    Ok(tables)
}

/// Destination table definitions by name, read once and kept until DDL.
#[derive(Default)]
pub struct TableCache {
    tables: std::collections::HashMap<(String, String), std::sync::Arc<Table>>,
}

impl TableCache {
    pub async fn get(
        &mut self,
        conn: &mut mysql_async::Conn,
        db: &str,
        name: &str,
    ) -> SyncResult<std::sync::Arc<Table>> {
        let key = (db.to_string(), name.to_string());
        if let Some(table) = self.tables.get(&key) {
            return Ok(table.clone());
        }
        let table = std::sync::Arc::new(load_table_from(conn, Side::Destination, db, name).await?);
        self.tables.insert(key, table.clone());
        Ok(table)
    }

    /// Forgets every definition (after DDL).
    pub fn clear(&mut self) {
        self.tables.clear();
    }
}

pub async fn load_table(conn: &mut mysql_async::Conn, db: &str, name: &str) -> SyncResult<Table> {
    load_table_from(conn, Side::Source, db, name).await
}

/// Reads a table's definition from either side (the applier decodes binlog
/// rows with the destination's definition: see `incremental`).
pub async fn load_table_from(
    conn: &mut mysql_async::Conn,
    side: Side,
    db: &str,
    name: &str,
) -> SyncResult<Table> {
    type ColumnRow = (
        String,
        String,
        String,
        String,
        Option<String>,
        String,
        Option<String>,
    );
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, LOWER(DATA_TYPE), LOWER(COLUMN_TYPE), IS_NULLABLE, GENERATION_EXPRESSION, EXTRA, \
             CHARACTER_SET_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (db, name),
        )
        .await
        .on(side, CTX)?;
    let columns: Vec<Column> = rows
        .into_iter()
        .map(
            |(name, data_type, column_type, nullable, generation, extra, charset)| Column {
                name,
                data_type,
                column_type,
                nullable: nullable == "YES",
                generated: generation.is_some_and(|g| !g.is_empty()),
                virtual_generated: extra.to_ascii_uppercase().contains("VIRTUAL"),
                auto_increment: extra.to_ascii_lowercase().contains("auto_increment"),
                charset,
            },
        )
        .collect();
    if columns.is_empty() {
        return Err(match side {
            Side::Source => SyncError::MissingTable {
                db: db.to_string(),
                table: name.to_string(),
            },
            // Someone may be creating it: retried like any failing write.
            Side::Destination => SyncError::Query {
                side,
                context: format!("applying to `{db}`.`{name}`"),
                detail: format!("table `{db}`.`{name}` doesn't exist on the destination"),
            },
        });
    }
    let indexes = unique_indexes(conn, side, db, name, &columns).await?;
    let key = pick_key(&indexes, &columns).ok_or_else(|| SyncError::NoKey {
        db: db.to_string(),
        table: name.to_string(),
    })?;
    Ok(Table {
        db: db.to_string(),
        name: name.to_string(),
        columns,
        key,
        unique_keys: indexes.into_iter().map(|(_, cols)| cols).collect(),
        estimated_rows: 0,
    })
}

/// The primary key, else the narrowest unique key whose columns are all NOT NULL.
fn pick_key(indexes: &[(String, Vec<usize>)], columns: &[Column]) -> Option<Vec<usize>> {
    if let Some((_, key)) = indexes.iter().find(|(name, _)| name == "PRIMARY") {
        return Some(key.clone());
    }
    indexes
        .iter()
        .filter(|(_, cols)| cols.iter().all(|&i| !columns[i].nullable))
        .min_by_key(|(name, cols)| (cols.len(), name.clone()))
        .map(|(_, cols)| cols.clone())
}

/// Unique indexes by name, with their columns' positions.
async fn unique_indexes(
    conn: &mut mysql_async::Conn,
    side: Side,
    db: &str,
    table: &str,
    columns: &[Column],
) -> SyncResult<Vec<(String, Vec<usize>)>> {
    let rows: Vec<(String, String)> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (db, table),
        )
        .await
        .on(side, CTX)?;
    let mut indexes: Vec<(String, Vec<usize>)> = Vec::new();
    for (index, column) in rows {
        let Some(position) = columns.iter().position(|c| c.name == column) else {
            continue;
        };
        match indexes.iter_mut().find(|(name, _)| *name == index) {
            Some((_, cols)) => cols.push(position),
            None => indexes.push((index, vec![position])),
        }
    }
    Ok(indexes)
}
