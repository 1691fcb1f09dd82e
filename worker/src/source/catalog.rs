//! What the task's objects look like on the source: which tables the route
//! selects, where it sends them, their columns, and the key that identifies
//! a row.

use crate::error::{DriverResultExt, Side, SyncError, SyncResult};
use dts_common::route::{Claim, ColumnMap, Route};
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
    /// Collation of text columns (`utf8mb4_general_ci`, ...).
    pub collation: Option<String>,
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
    /// Where the route sends the table: its name on the destination (its
    /// own name for a definition read there).
    pub target: TableName,
    /// What selected it (for a definition read on the destination: nothing).
    pub claim: Option<Claim>,
    /// Which columns the route lets through, by source name (see `narrowed`).
    pub column_map: ColumnMap,
    /// Each column's name on the destination, where the route renames any.
    pub column_targets: Option<Vec<String>>,
    /// Only rows this condition holds for are copied (source column names).
    pub filter: Option<std::sync::Arc<dts_common::filter::RowFilter>>,
    /// The destination column that records the source table (merges).
    pub source_column: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    pub db: String,
    pub name: String,
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`.`{}`", self.db, self.name)
    }
}

impl Table {
    /// A table read on either side, routed nowhere yet: its target is itself.
    pub fn new(
        db: &str,
        name: &str,
        columns: Vec<Column>,
        key: Vec<usize>,
        unique_keys: Vec<Vec<usize>>,
    ) -> Self {
        Self {
            db: db.to_string(),
            name: name.to_string(),
            columns,
            key,
            unique_keys,
            estimated_rows: 0,
            target: TableName {
                db: db.to_string(),
                name: name.to_string(),
            },
            claim: None,
            column_map: ColumnMap::default(),
            column_targets: None,
            filter: None,
            source_column: None,
        }
    }

    /// What the source column records for this table's rows: its source
    /// `database.table`.
    pub fn source_label(&self) -> String {
        format!("{}.{}", self.db, self.name)
    }

    /// The destination name of column `index`.
    pub fn column_target(&self, index: usize) -> &str {
        match &self.column_targets {
            Some(targets) => &targets[index],
            None => &self.columns[index].name,
        }
    }

    /// The table as the route lets it through: only the columns `map` takes
    /// (keys remapped; a unique key losing a column is gone), each with its
    /// destination name. `field` names the table's entry in the spec.
    pub fn narrowed(mut self, map: ColumnMap, field: &str) -> SyncResult<Self> {
        let unknown = map.named().into_iter().find(|(_, name)| {
            !self
                .columns
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(name))
        });
        if let Some((key, name)) = unknown {
            return Err(SyncError::InvalidSpec(dts_common::SpecError::new(
                format!("{field}.{key}"),
                format!(
                    "column `{name}` is not in source table `{}`.`{}`",
                    self.db, self.name
                ),
            )));
        }
        if map.is_identity() {
            return Ok(self);
        }
        let targets: Vec<Option<String>> =
            self.columns.iter().map(|c| map.target(&c.name)).collect();
        let new_index: Vec<Option<usize>> = targets
            .iter()
            .scan(0usize, |next, t| {
                Some(t.as_ref().map(|_| {
                    *next += 1;
                    *next - 1
                }))
            })
            .collect();
        let remap =
            |key: &[usize]| -> Option<Vec<usize>> { key.iter().map(|&i| new_index[i]).collect() };
        let Some(key) = remap(&self.key) else {
            let left_out: Vec<&str> = self
                .key
                .iter()
                .filter(|&&i| new_index[i].is_none())
                .map(|&i| self.columns[i].name.as_str())
                .collect();
            return Err(SyncError::InvalidSpec(dts_common::SpecError::new(
                field.to_string(),
                format!(
                    "leaves out `{}`, part of the key of `{}`.`{}`; dts needs the key on the destination",
                    left_out.join("`, `"),
                    self.db,
                    self.name
                ),
            )));
        };
        self.key = key;
        self.unique_keys = self.unique_keys.iter().filter_map(|k| remap(k)).collect();
        let mut columns = Vec::new();
        let mut names = Vec::new();
        for (column, target) in self.columns.into_iter().zip(targets) {
            if let Some(target) = target {
                columns.push(column);
                names.push(target);
            }
        }
        self.columns = columns;
        self.column_targets = Some(names);
        self.column_map = map;
        Ok(self)
    }

    /// The table's quoted name where it was read.
    pub fn qualified(&self) -> String {
        dts_common::mysql::quote_table(&self.db, &self.name)
    }

    /// The quoted name of the table the route sends it to.
    pub fn target_qualified(&self) -> String {
        dts_common::mysql::quote_table(&self.target.db, &self.target.name)
    }

    pub fn source_name(&self) -> TableName {
        TableName {
            db: self.db.clone(),
            name: self.name.clone(),
        }
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

/// Every source table the route selects, with its columns, key and target.
/// A database or table the spec names outright must exist.
pub async fn load_tables(conn: &mut mysql_async::Conn, route: &Route) -> SyncResult<Vec<Table>> {
    let all_databases: Vec<String> = conn
        .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
        .await
        .on(Side::Source, CTX)?;
    for named in route.named_databases() {
        if !all_databases.iter().any(|d| d == named) {
            return Err(SyncError::MissingDatabase(named.to_string()));
        }
    }
    let mut tables = Vec::new();
    let mut collations = crate::transform::filter::collation::Collations::default();
    for db in all_databases.iter().filter(|d| route.selects_database(d)) {
        let base_tables: Vec<(String, Option<u64>)> = conn
            .exec(
                "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
                (db,),
            )
            .await
            .on(Side::Source, CTX)?;
        for named in route.named_tables(db) {
            if !base_tables.iter().any(|(t, _)| t == named) {
                return Err(SyncError::MissingTable {
                    db: db.clone(),
                    table: named.to_string(),
                });
            }
        }
        for (name, rows) in base_tables {
            let Some(routed) = route.table(db, &name).map_err(SyncError::RouteConflict)? else {
                continue;
            };
            let mut table = load_table(conn, db, &name).await?;
            table.estimated_rows = rows.unwrap_or(0);
            table.target = TableName {
                db: routed.db,
                name: routed.table,
            };
            let field = routed.claim.to_string();
            if let Some(filter) = &routed.filter {
                // Bound to the whole definition: the condition may read
                // columns the route leaves out.
                crate::transform::filter::bind(filter, &table, &mut collations, conn)
                    .await
                    .map_err(|e| filter_error(Side::Source, &field, e))?;
            }
            table.filter = routed.filter;
            table.source_column = routed.source_column;
            table.claim = Some(routed.claim);
            tables.push(table.narrowed(routed.columns, &field)?);
        }
    }
    Ok(tables)
}

/// A filter the source's definition cannot take, as the spec field's error.
/// (A server that could not be asked is a query error, retried.)
pub fn filter_error(
    side: Side,
    field: &str,
    error: crate::transform::filter::FilterError,
) -> SyncError {
    use crate::transform::filter::{collation::CollationError, FilterError};
    match error {
        FilterError::Collation(CollationError::Server { name, detail }) => SyncError::Query {
            side,
            context: format!("reading collation {name} for {field}.where"),
            detail,
        },
        other => SyncError::InvalidSpec(dts_common::SpecError::new(
            format!("{field}.where"),
            other.to_string(),
        )),
    }
}

/// Destination table definitions by name, read once and kept until DDL.
#[derive(Default)]
pub struct TableCache {
    /// Database -> table -> definition: looked up by `&str` for every rows
    /// event a lane applies, without building a key.
    tables: foldhash::HashMap<String, foldhash::HashMap<String, std::sync::Arc<Table>>>,
}

impl TableCache {
    pub async fn get(
        &mut self,
        conn: &mut mysql_async::Conn,
        db: &str,
        name: &str,
    ) -> SyncResult<std::sync::Arc<Table>> {
        if let Some(table) = self.tables.get(db).and_then(|tables| tables.get(name)) {
            return Ok(table.clone());
        }
        let table = std::sync::Arc::new(load_table_from(conn, Side::Destination, db, name).await?);
        self.tables
            .entry(db.to_string())
            .or_default()
            .insert(name.to_string(), table.clone());
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
        Option<String>,
    );
    // COLUMN_TYPE as it is: its words are lower case already, and ENUM and
    // SET labels keep theirs.
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, LOWER(DATA_TYPE), COLUMN_TYPE, IS_NULLABLE, GENERATION_EXPRESSION, EXTRA, \
             CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (db, name),
        )
        .await
        .on(side, CTX)?;
    let columns: Vec<Column> = rows
        .into_iter()
        .map(
            |(name, data_type, column_type, nullable, generation, extra, charset, collation)| {
                Column {
                    name,
                    data_type,
                    column_type,
                    nullable: nullable == "YES",
                    generated: generation.is_some_and(|g| !g.is_empty()),
                    virtual_generated: extra.to_ascii_uppercase().contains("VIRTUAL"),
                    auto_increment: extra.to_ascii_lowercase().contains("auto_increment"),
                    charset,
                    collation,
                }
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
    Ok(Table::new(
        db,
        name,
        columns,
        key,
        indexes.into_iter().map(|(_, cols)| cols).collect(),
    ))
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
