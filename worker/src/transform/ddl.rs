//! DDL from the binlog made the destination's: whether the task follows it,
//! and its text under the destination's names.
//!
//! A table several source tables merge into (shards, by a [[routes]] rule)
//! takes no DDL from any of them: one shard's ALTER would change the table
//! every shard writes to. Such DDL is skipped, with a warning and an entry
//! in the task's `ddl skipped` list; a new shard created onto an existing
//! merged table just joins it.

use crate::error::{SyncError, SyncResult};
use crate::meta::schema_history;
use crate::source::catalog::{Table, TableName};
use crate::source::ddl::{DdlKind, ObjectName};
use crate::transform::{columns, names, sql_text};
use dts_common::mysql::quote_ident;
use dts_common::route::{ColumnMap, Route};
use std::collections::{BTreeSet, HashMap};

/// A statement to run on the destination server, in database `schema`
/// (none when empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdlRun {
    pub schema: String,
    pub sql: String,
    /// What shows that it took effect, when it fails as already applied on
    /// the first statement after a restart; `None`: the error is proof.
    pub proof: Option<Proof>,
}

/// The destination table as a table DDL leaves it: equal to the schema
/// history's definition (which took the statement first) under the route's
/// column map, or gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub source: TableName,
    pub target: TableName,
    pub columns: ColumnMap,
    pub gone: bool,
}

/// What to do with a DDL statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DdlPlan {
    /// It names nothing the task selects.
    Ignore,
    Follow {
        /// Keeps the schema history (see `meta::schema_history`) as the
        /// source's: run first, whatever the destination gets.
        history: Vec<DdlRun>,
        /// The statement under the destination's names; none where it
        /// changes a merged table.
        destination: Option<DdlRun>,
        /// The merged table it would have changed.
        merged: Option<TableName>,
        /// Why the destination does not get it though the task selects
        /// its object (the table's `ddl` option, `triggers = "skip"`).
        left_out: Option<&'static str>,
    },
}

impl DdlPlan {
    /// Every statement to run, the history's first.
    pub fn runs(&self) -> Vec<DdlRun> {
        match self {
            DdlPlan::Ignore => Vec::new(),
            DdlPlan::Follow {
                history,
                destination,
                ..
            } => history.iter().chain(destination).cloned().collect(),
        }
    }
}

/// Which source tables go to each destination table, kept as DDL creates,
/// drops and renames them.
#[derive(Debug, Default)]
struct Merges {
    sources: HashMap<TableName, BTreeSet<TableName>>,
}

impl Merges {
    fn add(&mut self, source: TableName, target: TableName) {
        self.sources.entry(target).or_default().insert(source);
    }

    fn remove(&mut self, source: &TableName, target: &TableName) {
        if let Some(sources) = self.sources.get_mut(target) {
            sources.remove(source);
        }
    }

    /// Whether a source table other than `source` goes to `target`.
    fn shared(&self, target: &TableName, source: &TableName) -> bool {
        self.sources
            .get(target)
            .is_some_and(|sources| sources.iter().any(|s| s != source))
    }
}

pub struct DdlRouter<'a> {
    route: &'a Route,
    merges: Merges,
    /// Whose schema history the shadows are.
    task_id: String,
    /// CREATE/DROP TRIGGER reach the destination (`triggers` is not "skip").
    follow_triggers: bool,
}

/// A table DDL names, and where the route sends it.
struct Named {
    source: TableName,
    target: Option<TableName>,
    columns: ColumnMap,
    /// The table's `ddl` option lets this kind through.
    applies: bool,
}

impl<'a> DdlRouter<'a> {
    /// `tables`: the selected source tables, as the prechecks found them.
    pub fn new(route: &'a Route, tables: &[Table], task_id: &str) -> Self {
        let mut merges = Merges::default();
        for table in tables {
            merges.add(table.source_name(), table.target.clone());
        }
        Self {
            route,
            merges,
            task_id: task_id.to_string(),
            follow_triggers: true,
        }
    }

    /// With `triggers = "skip"`, trigger DDL is listed as skipped.
    pub fn with_triggers(mut self, follow: bool) -> Self {
        self.follow_triggers = follow;
        self
    }

    /// `sql` run on the selected tables' shadows instead (none for DDL that
    /// changes no table's columns).
    fn history(
        &self,
        kind: DdlKind,
        objects: &[ObjectName],
        schema: &str,
        sql: &str,
    ) -> SyncResult<Vec<DdlRun>> {
        if kind == DdlKind::TruncateTable || kind.of_whole_database() {
            return Ok(Vec::new());
        }
        let shadow = |db: &str| schema_history::shadow_database(&self.task_id, db);
        let run_in = self.route.selects_database(schema).then(|| shadow(schema));
        let rewritten =
            names::rewrite_with(sql, objects, schema, run_in.as_deref(), |db, name| {
                let selected = self
                    .route
                    .table(db, name)
                    .map_err(SyncError::RouteConflict)?;
                Ok(selected.map(|_| TableName {
                    db: shadow(db),
                    name: name.to_string(),
                }))
            })?;
        // A table created where the history had none of the database yet.
        let mut runs: Vec<DdlRun> = objects
            .iter()
            .map(|o| shadow(o.db.as_deref().unwrap_or(schema)))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|db| DdlRun {
                schema: String::new(),
                sql: format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(&db)),
                proof: None,
            })
            .collect();
        runs.push(DdlRun {
            schema: run_in.unwrap_or_default(),
            sql: rewritten,
            proof: None,
        });
        Ok(runs)
    }

    fn named(&self, kind: DdlKind, object: &ObjectName, schema: &str) -> SyncResult<Named> {
        let db = object.db.as_deref().unwrap_or(schema);
        let source = TableName {
            db: db.to_string(),
            name: object.name.clone(),
        };
        let selected = self
            .route
            .table(db, &object.name)
            .map_err(SyncError::RouteConflict)?;
        // Views and routines come with a whole database only.
        let whole_only = kind.of_whole_database();
        let selected = selected.filter(|_| !whole_only || self.route.whole_database(db).is_some());
        let columns = selected
            .as_ref()
            .map(|routed| routed.columns.clone())
            .unwrap_or_default();
        let applies = selected
            .as_ref()
            .is_none_or(|routed| routed.applies_ddl(kind.operation()));
        let target = selected.map(|routed| TableName {
            db: routed.db,
            name: routed.table,
        });
        Ok(Named {
            source,
            target,
            columns,
            applies,
        })
    }

    /// The plan for `sql`, DDL of `kind` naming `objects`, run on the source
    /// in `schema` and ending at `position`.
    pub fn plan(
        &mut self,
        kind: DdlKind,
        objects: &[ObjectName],
        schema: &str,
        sql: &str,
        position: &str,
    ) -> SyncResult<DdlPlan> {
        let named: Vec<Named> = objects
            .iter()
            .map(|o| self.named(kind, o, schema))
            .collect::<SyncResult<_>>()?;
        if named.iter().all(|n| n.target.is_none()) {
            return Ok(DdlPlan::Ignore);
        }
        let unmappable = |reason: String| SyncError::UnmappableDdl {
            statement: sql.to_string(),
            position: position.to_string(),
            reason,
        };
        if kind == DdlKind::RenameTable {
            for pair in named.chunks(2) {
                let [from, to] = pair else { continue };
                match (&from.target, &to.target) {
                    (Some(_), None) => {
                        return Err(unmappable(format!(
                            "it renames selected table {} to {}, which the task does not select \
                             (its later changes would be lost); select the new name too",
                            from.source, to.source
                        )))
                    }
                    (None, Some(_)) => {
                        return Err(unmappable(format!(
                            "it renames {}, which the task does not select and never copied, to \
                             selected name {}",
                            from.source, to.source
                        )))
                    }
                    _ => {}
                }
            }
        }
        let table_kind = !kind.of_whole_database();
        let history = self.history(kind, objects, schema, sql)?;
        let mut merged = None;
        if table_kind {
            merged = named.iter().find_map(|n| {
                n.target
                    .as_ref()
                    .filter(|target| self.merges.shared(target, &n.source))
                    .cloned()
            });
            // Merged or not, the table's shard comes, goes or changes name.
            self.follow(kind, &named);
        }
        let left_out = if kind.of_trigger() && !self.follow_triggers {
            Some("triggers = \"skip\"")
        } else if named.iter().any(|n| n.target.is_some() && !n.applies) {
            Some("left out by the table's ddl option")
        } else {
            None
        };
        let destination = match merged {
            Some(_) => None,
            None if left_out.is_some() => None,
            None => {
                let renamed = names::rewrite(self.route, schema, sql, objects)?;
                let renamed = match kind {
                    // dts's own writes must not fire it (see sql_text::guard_trigger).
                    DdlKind::CreateTrigger => sql_text::guard_trigger(&renamed)
                        .ok_or_else(|| unmappable("dts cannot find the trigger's body".into()))?,
                    _ => renamed,
                };
                let renamed = sql_text::idempotent(kind, &renamed);
                let columns = named.first().map(|n| &n.columns);
                match columns.filter(|c| !c.is_identity()) {
                    None => Some(renamed),
                    Some(columns) => {
                        let projected = match kind {
                            DdlKind::AlterTable => columns::project_alter(&renamed, columns),
                            DdlKind::CreateIndex => columns::project_index(&renamed, columns),
                            DdlKind::CreateTable => Err(
                                "it creates a table whose columns the task maps; drop the task's \
                                 column options for it, or leave it out"
                                    .to_string(),
                            ),
                            _ => Ok(Some(renamed)),
                        };
                        projected.map_err(|reason| unmappable(reason))?
                    }
                }
                .map(|sql| DdlRun {
                    schema: self.route.database(schema).unwrap_or_default(),
                    sql,
                    proof: proof(kind, &named),
                })
            }
        };
        Ok(DdlPlan::Follow {
            history,
            destination,
            merged,
            left_out,
        })
    }

    /// Keeps the merges as tables come, go and change names.
    fn follow(&mut self, kind: DdlKind, named: &[Named]) {
        match kind {
            DdlKind::CreateTable => {
                for n in named.iter().take(1) {
                    if let Some(target) = &n.target {
                        self.merges.add(n.source.clone(), target.clone());
                    }
                }
            }
            DdlKind::DropTable => {
                for n in named {
                    if let Some(target) = &n.target {
                        self.merges.remove(&n.source, target);
                    }
                }
            }
            DdlKind::RenameTable => {
                for pair in named.chunks(2) {
                    if let [from, to] = pair {
                        if let (Some(old), Some(new)) = (&from.target, &to.target) {
                            self.merges.remove(&from.source, old);
                            self.merges.add(to.source.clone(), new.clone());
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// The proof for table DDL naming one selected table; RENAME and TRUNCATE
/// (and views and routines, applied as CREATE OR REPLACE and DROP ... IF
/// EXISTS) need none.
fn proof(kind: DdlKind, named: &[Named]) -> Option<Proof> {
    let gone = match kind {
        DdlKind::AlterTable | DdlKind::CreateTable | DdlKind::CreateIndex | DdlKind::DropIndex => {
            false
        }
        DdlKind::DropTable => true,
        _ => return None,
    };
    let [one] = named else { return None };
    Some(Proof {
        source: one.source.clone(),
        target: one.target.clone()?,
        columns: one.columns.clone(),
        gone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ddl::{classify, Statement};
    use crate::transform::test_route as route;

    fn source_table(route: &Route, db: &str, name: &str) -> Table {
        let routed = route.table(db, name).ok().flatten();
        let routed = routed.unwrap_or_else(|| panic!("{db}.{name} is not selected"));
        let mut table = Table::new(db, name, Vec::new(), Vec::new(), Vec::new());
        table.target = TableName {
            db: routed.db,
            name: routed.table,
        };
        table.claim = Some(routed.claim);
        table
    }

    fn plan(router: &mut DdlRouter<'_>, schema: &str, sql: &str) -> SyncResult<DdlPlan> {
        match classify(sql) {
            Statement::Ddl { kind, objects } => {
                router.plan(kind, &objects, schema, sql, "b.000001:4")
            }
            other => panic!("{sql}: {other:?}"),
        }
    }

    fn run(schema: &str, sql: &str) -> DdlRun {
        DdlRun {
            schema: schema.into(),
            sql: sql.into(),
            proof: None,
        }
    }

    /// What the destination gets, and the merged table it does not.
    /// What the destination gets (its proof aside), and the merged table it does not.
    fn destination(plan: DdlPlan) -> (Option<DdlRun>, Option<TableName>) {
        match plan {
            DdlPlan::Follow {
                destination,
                merged,
                ..
            } => (destination.map(|run| DdlRun { proof: None, ..run }), merged),
            DdlPlan::Ignore => (None, None),
        }
    }

    fn apply(schema: &str, sql: &str) -> (Option<DdlRun>, Option<TableName>) {
        (Some(run(schema, sql)), None)
    }

    #[test]
    fn renamed_tables_take_their_ddl_under_the_new_names() -> SyncResult<()> {
        let r = route("[[objects]]\ndatabase = \"shop\"\nto = \"eu\"\ntables = [{ name = \"o\", to = \"o2\" }, \"c\"]");
        let tables = [source_table(&r, "shop", "o"), source_table(&r, "shop", "c")];
        let mut router = DdlRouter::new(&r, &tables, "task");
        let alter = plan(&mut router, "shop", "ALTER TABLE o ADD x INT")?;
        // The history takes it under the source's names, in the shadow.
        let shadow = schema_history::shadow_database("task", "shop");
        assert_eq!(
            alter.runs().first().map(|r| r.sql.clone()),
            Some(format!("CREATE DATABASE IF NOT EXISTS `{shadow}`"))
        );
        assert_eq!(
            alter.runs().get(1),
            Some(&run(&shadow, "ALTER TABLE o ADD x INT"))
        );
        assert_eq!(
            destination(alter),
            apply("eu", "ALTER TABLE `o2` ADD x INT")
        );
        assert_eq!(
            plan(&mut router, "shop", "ALTER TABLE other ADD x INT")?,
            DdlPlan::Ignore
        );
        assert_eq!(
            plan(&mut router, "shop", "CREATE VIEW v AS SELECT 1")?,
            DdlPlan::Ignore
        );
        assert!(matches!(
            plan(&mut router, "shop", "RENAME TABLE o TO o_old"),
            Err(SyncError::UnmappableDdl { .. })
        ));
        assert!(matches!(
            plan(&mut router, "shop", "RENAME TABLE unselected TO c"),
            Err(SyncError::UnmappableDdl { .. })
        ));
        assert_eq!(
            destination(plan(&mut router, "shop", "RENAME TABLE o TO c, c TO o")?),
            apply("eu", "RENAME TABLE `o2` TO c, c TO `o2`")
        );
        Ok(())
    }

    #[test]
    fn a_table_takes_only_the_ddl_its_option_lets_through() -> SyncResult<()> {
        let r = route("[[objects]]\ndatabase = \"shop\"\ntables = [{ name = \"o\", ddl = [\"create index\"] }]");
        let tables = [source_table(&r, "shop", "o")];
        let mut router = DdlRouter::new(&r, &tables, "task");
        let alter = plan(&mut router, "shop", "ALTER TABLE o ADD x INT")?;
        assert!(matches!(
            alter,
            DdlPlan::Follow {
                left_out: Some(_),
                ..
            }
        ));
        assert_eq!(alter.runs().len(), 2, "the history still takes it");
        assert_eq!(destination(alter), (None, None));
        assert_eq!(
            destination(plan(&mut router, "shop", "CREATE INDEX i ON o (x)")?),
            apply("shop", "CREATE INDEX i ON o (x)")
        );
        Ok(())
    }

    #[test]
    fn merged_tables_take_no_ddl_and_new_shards_join_them() -> SyncResult<()> {
        let r = route(
            "[[routes]]\ndatabase = \"shard_*\"\ntable = \"orders*\"\nto_database = \"merged\"\nto_table = \"orders\"\n\
             [[routes]]\ndatabase = \"shard_*\"\ntable = \"items\"\nto_database = \"merged\"",
        );
        let tables = [
            source_table(&r, "shard_1", "orders"),
            source_table(&r, "shard_2", "orders"),
            source_table(&r, "shard_1", "items"),
        ];
        let mut router = DdlRouter::new(&r, &tables, "task");
        let merged = (
            None,
            Some(TableName {
                db: "merged".into(),
                name: "orders".into(),
            }),
        );
        let alter = plan(&mut router, "shard_1", "ALTER TABLE orders ADD x INT")?;
        assert_eq!(alter.runs().len(), 2, "the history still takes it");
        assert_eq!(destination(alter), merged);
        assert_eq!(
            destination(plan(
                &mut router,
                "shard_3",
                "CREATE TABLE orders_new (id INT PRIMARY KEY)"
            )?),
            merged
        );
        assert_eq!(
            destination(plan(&mut router, "shard_1", "ALTER TABLE items ADD x INT")?),
            apply("merged", "ALTER TABLE items ADD x INT")
        );
        // The last shard but one dropped: the table is no longer shared.
        plan(&mut router, "shard_2", "DROP TABLE orders")?;
        plan(&mut router, "shard_3", "DROP TABLE orders_new")?;
        assert_eq!(
            destination(plan(
                &mut router,
                "shard_1",
                "ALTER TABLE orders ADD y INT"
            )?),
            apply("merged", "ALTER TABLE orders ADD y INT")
        );
        Ok(())
    }
}
