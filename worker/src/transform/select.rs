//! Which source tables' row changes the task takes, and where they go: the
//! route's answer per table, looked up once (the binlog names a table in
//! every rows event).

use crate::error::{SyncError, SyncResult};
use crate::source::catalog::TableName;
use dts_common::route::{Route, TableRoute};
use foldhash::HashMap as FastMap;
use std::sync::Arc;

/// A selected source table and where it goes.
#[derive(Clone)]
pub struct Selected {
    pub source: Arc<TableName>,
    pub route: Arc<TableRoute>,
}

pub struct Selector {
    route: Arc<Route>,
    /// Database -> table -> where it goes: looked up by `&str` for every
    /// rows event, without building a key.
    known: FastMap<String, FastMap<String, Option<Selected>>>,
}

impl Selector {
    pub fn new(route: Arc<Route>) -> Self {
        Self {
            route,
            known: FastMap::default(),
        }
    }

    /// The task's meta schema, which no route selects.
    pub fn meta_schema(&self) -> &str {
        self.route.meta_schema()
    }

    /// Where `db`.`table` goes, or `None` when the task does not select it.
    /// A table two route rules claim (created after the prechecks) is an error.
    pub fn select(&mut self, db: &str, table: &str) -> SyncResult<Option<Selected>> {
        if let Some(known) = self.known.get(db).and_then(|tables| tables.get(table)) {
            return Ok(known.clone());
        }
        let routed = self
            .route
            .table(db, table)
            .map_err(SyncError::RouteConflict)?
            .map(|route| Selected {
                source: Arc::new(TableName {
                    db: db.to_string(),
                    name: table.to_string(),
                }),
                route: Arc::new(route),
            });
        self.known
            .entry(db.to_string())
            .or_default()
            .insert(table.to_string(), routed.clone());
        Ok(routed)
    }
}
