//! DDL from the binlog made the destination's: whether the task follows it,
//! and its text under the destination's names.
//!
//! A table several source tables merge into (shards, by a [[routes]] rule)
//! takes no DDL from any of them: one shard's ALTER would change the table
//! every shard writes to. Such DDL is skipped, with a warning and an entry
//! in the task's `ddl skipped` list; a new shard created onto an existing
//! merged table just joins it.
//!
//! Online schema change tools (see `dts_common::online_ddl`) are followed
//! by what they mean rather than by what they run, unless the task copies
//! their tables (`online_ddl = "copy_shadow_tables"`): the history takes
//! every statement, the destination none of the tool's tables; the ALTER
//! run on a shadow table is kept (`meta::online_ddl`) and applied to the
//! real table, under its destination name, at the cut-over RENAME, which is
//! then checked against the history's definition.

use crate::error::{SyncError, SyncResult};
use crate::meta::online_ddl::{StashChange, Stashed};
use crate::meta::schema_history;
use crate::source::catalog::{Table, TableName};
use crate::source::ddl::{DdlKind, ObjectName};
use crate::transform::{columns, names, sql_text};
use dts_common::mysql::quote_ident;
use dts_common::online_ddl::{Helper, HelperKind};
use dts_common::route::{ColumnMap, Route};
use dts_common::spec::OnlineDdlMethod;
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
        /// The statement under the destination's names (an online schema
        /// change's cut-over: the ALTERs kept for it); none where it changes
        /// a merged table.
        destination: Vec<DdlRun>,
        /// The merged table it would have changed.
        merged: Option<TableName>,
        /// Why the destination does not get it though the task selects
        /// its object (the table's `ddl` option, `triggers = "skip"`).
        left_out: Option<&'static str>,
        /// What the destination table must be once it ran (a cut-over's).
        verify: Option<Proof>,
        /// Online schema changes kept or let go with the checkpoint.
        stash: Vec<StashChange>,
    },
}

/// What the apply lane does for a statement: run DDL, check the outcome,
/// and write the stash changes with the checkpoint after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DdlWork {
    /// The history's first.
    pub runs: Vec<DdlRun>,
    pub verify: Option<Proof>,
    pub stash: Vec<StashChange>,
}

impl DdlWork {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.verify.is_none() && self.stash.is_empty()
    }
}

impl DdlPlan {
    pub fn work(&self) -> DdlWork {
        match self {
            DdlPlan::Ignore => DdlWork::default(),
            DdlPlan::Follow {
                history,
                destination,
                verify,
                stash,
                ..
            } => DdlWork {
                runs: history.iter().chain(destination).cloned().collect(),
                verify: verify.clone(),
                stash: stash.clone(),
            },
        }
    }
}

/// The start of pt-online-schema-change's trigger names.
const TOOL_TRIGGER: &str = "pt_osc_";

/// What an online schema change's statement comes to.
#[derive(Default)]
struct OnlinePlan {
    destination: Vec<DdlRun>,
    merged: Option<TableName>,
    left_out: Option<&'static str>,
    verify: Option<Proof>,
    stash: Vec<StashChange>,
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

    /// Whether `source` is a selected table (as DDL has left them).
    fn selects(&self, source: &TableName) -> bool {
        self.sources
            .values()
            .any(|sources| sources.contains(source))
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
    /// ALTERs of shadow tables waiting for their cut-over.
    stashed: Stashed,
    /// The destination takes DDL (not the reverse task of a two-way pair).
    applies_ddl: bool,
}

/// Why the reverse task of a two-way pair applies no DDL: a statement has
/// no transaction to carry a loop marker, so DDL the forward task applied
/// would come back.
const REVERSE_TASK: &str = "two-way: DDL flows along the forward task only";

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
            stashed: Stashed::default(),
            applies_ddl: true,
        }
    }

    /// The reverse task of a two-way pair: the history takes DDL, the
    /// destination none.
    pub fn with_ddl_applied(mut self, applied: bool) -> Self {
        self.applies_ddl = applied;
        self
    }

    /// With the online schema changes kept so far (read at the start).
    pub fn with_stashed(mut self, stashed: Stashed) -> Self {
        self.stashed = stashed;
        self
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
                    .map_err(SyncError::RouteConflict)?
                    .is_some();
                // Tools' tables too: a cut-over makes one the real table.
                let tools = self
                    .route
                    .helper(db, name)
                    .map_err(SyncError::RouteConflict)?
                    .is_some();
                Ok((selected || tools).then(|| TableName {
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
        // pt-online-schema-change's triggers copy writes into its new table:
        // on the source, where they are logged as rows of it.
        if kind.of_trigger()
            && objects
                .first()
                .is_some_and(|t| t.name.starts_with(TOOL_TRIGGER))
        {
            return Ok(DdlPlan::Ignore);
        }
        if self.route.online_ddl() != OnlineDdlMethod::CopyShadowTables {
            let helpers = self.helpers(kind, objects, schema)?;
            if helpers.iter().any(Option::is_some) {
                return self.plan_online(kind, objects, &helpers, schema, sql, position);
            }
        }
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
        let left_out = if !self.applies_ddl {
            Some(REVERSE_TASK)
        } else if kind.of_trigger() && !self.follow_triggers {
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
            destination: destination.into_iter().collect(),
            merged,
            left_out,
            verify: None,
            stash: Vec::new(),
        })
    }

    /// Per table object, whether it is a tool's table for a selected one
    /// (views, routines and triggers' names are no tables; a trigger's
    /// table is).
    fn helpers(
        &self,
        kind: DdlKind,
        objects: &[ObjectName],
        schema: &str,
    ) -> SyncResult<Vec<Option<Helper>>> {
        let tables: Vec<Option<&ObjectName>> = match kind {
            DdlKind::CreateTrigger => vec![None, objects.get(1)],
            _ if kind.of_whole_database() => Vec::new(),
            _ => objects.iter().map(Some).collect(),
        };
        tables
            .into_iter()
            .map(|object| match object {
                None => Ok(None),
                Some(o) => self
                    .route
                    .helper(o.db.as_deref().unwrap_or(schema), &o.name)
                    .map_err(SyncError::RouteConflict),
            })
            .collect()
    }

    /// DDL naming a tool's table, with `online_ddl` "follow_original_ddl"
    /// or "fail": the history takes it; the destination gets a shadow's
    /// ALTERs at its cut-over, and nothing else.
    fn plan_online(
        &mut self,
        kind: DdlKind,
        objects: &[ObjectName],
        helpers: &[Option<Helper>],
        schema: &str,
        sql: &str,
        position: &str,
    ) -> SyncResult<DdlPlan> {
        let unmappable = |reason: String| SyncError::UnmappableDdl {
            statement: sql.to_string(),
            position: position.to_string(),
            reason,
        };
        let qualified = |o: &ObjectName| TableName {
            db: o.db.clone().unwrap_or_else(|| schema.to_string()),
            name: o.name.clone(),
        };
        let origin_of = |table: &TableName, helper: &Helper| TableName {
            db: table.db.clone(),
            name: helper.origin.clone(),
        };
        if kind.of_trigger() {
            // A trigger on a tool's table: the destination has no such table.
            return Ok(DdlPlan::Ignore);
        }
        let mut plan = OnlinePlan::default();
        if kind == DdlKind::RenameTable {
            for (pair, tools) in objects.chunks(2).zip(helpers.chunks(2)) {
                let ([from, to], [from_tool, to_tool]) = (pair, tools) else {
                    continue;
                };
                let (from, to) = (qualified(from), qualified(to));
                match (from_tool, to_tool) {
                    // The cut-over: the shadow becomes the table.
                    (Some(shadow), None)
                        if shadow.kind == HelperKind::Shadow && origin_of(&from, shadow) == to =>
                    {
                        self.cut_over(&from, &to, &mut plan)?;
                    }
                    // The table retired under a trash name, or a tool's
                    // table renamed to another of its names.
                    (None, Some(tool)) if origin_of(&to, tool) == from => {}
                    (Some(a), Some(b)) if a.origin == b.origin => {}
                    _ => {
                        return Err(unmappable(format!(
                            "it renames {from} to {to}, which is not how an online schema change \
                             tool's tables are renamed (see online_ddl_tables)"
                        )))
                    }
                }
            }
        } else {
            for (object, tool) in objects.iter().zip(helpers) {
                let table = qualified(object);
                let Some(tool) = tool else {
                    if self
                        .route
                        .table(&table.db, &table.name)
                        .map_err(SyncError::RouteConflict)?
                        .is_some()
                    {
                        return Err(unmappable(format!(
                            "it names selected table {table} together with an online schema \
                             change tool's table; run them apart"
                        )));
                    }
                    continue;
                };
                let origin = origin_of(&table, tool);
                let shadow = tool.kind == HelperKind::Shadow;
                match kind {
                    DdlKind::CreateTable if !self.merges.selects(&origin) => {
                        return Err(unmappable(format!(
                            "it creates {table}, named like an online schema change tool's \
                             table of {origin}, which does not exist; name it in its \
                             [[objects]] entry's tables to sync it as a table, or set \
                             online_ddl_tables to patterns it does not match"
                        )))
                    }
                    DdlKind::CreateTable
                    | DdlKind::AlterTable
                    | DdlKind::CreateIndex
                    | DdlKind::DropIndex
                        if shadow && self.route.online_ddl() == OnlineDdlMethod::Fail =>
                    {
                        return Err(SyncError::OnlineDdlRefused {
                            statement: sql.to_string(),
                            position: position.to_string(),
                            table: origin.to_string(),
                        })
                    }
                    // A tool starting (again): what an earlier run kept goes.
                    DdlKind::CreateTable | DdlKind::DropTable if shadow => {
                        plan.stash.push(self.stashed.take(&table).1);
                    }
                    DdlKind::AlterTable | DdlKind::CreateIndex | DdlKind::DropIndex if shadow => {
                        self.keep(kind, objects, schema, sql, &table, &origin, &mut plan)
                            .map_err(unmappable)?;
                    }
                    _ => {}
                }
            }
        }
        let history_sql = match kind {
            // A tool's leftover table from before the task has no history.
            DdlKind::DropTable => sql_text::drop_table_if_exists(sql),
            _ => sql.to_string(),
        };
        let history = self.history(kind, objects, schema, &history_sql)?;
        Ok(DdlPlan::Follow {
            history,
            destination: plan.destination,
            merged: plan.merged,
            left_out: plan.left_out,
            verify: plan.verify,
            stash: plan.stash,
        })
    }

    /// Keeps the destination's form of `sql`, DDL on shadow table `shadow`,
    /// for `origin`'s cut-over. `Err`: why it cannot be followed.
    #[allow(clippy::too_many_arguments)]
    fn keep(
        &mut self,
        kind: DdlKind,
        objects: &[ObjectName],
        schema: &str,
        sql: &str,
        shadow: &TableName,
        origin: &TableName,
        plan: &mut OnlinePlan,
    ) -> Result<(), String> {
        if !self.applies_ddl {
            plan.left_out = Some(REVERSE_TASK);
            return Ok(());
        }
        let routed = match self.route.table(&origin.db, &origin.name) {
            Ok(Some(routed)) => routed,
            Ok(None) => return Ok(()),
            Err(conflict) => return Err(conflict.to_string()),
        };
        let target = TableName {
            db: routed.db.clone(),
            name: routed.table.clone(),
        };
        if self.merges.shared(&target, origin) {
            plan.merged = Some(target);
            return Ok(());
        }
        if !routed.applies_ddl(kind.operation()) {
            plan.left_out = Some("left out by the table's ddl option");
            return Ok(());
        }
        let run_in = self.route.database(schema);
        let renamed = names::rewrite_with(sql, objects, schema, run_in.as_deref(), |db, name| {
            if db == shadow.db && name == shadow.name {
                return Ok(Some(target.clone()));
            }
            Ok(self
                .route
                .table(db, name)
                .map_err(SyncError::RouteConflict)?
                .map(|r| TableName {
                    db: r.db,
                    name: r.table,
                }))
        })
        .map_err(|e| e.to_string())?;
        let projected = match kind {
            DdlKind::AlterTable => columns::project_alter(&renamed, &routed.columns)?,
            DdlKind::CreateIndex => columns::project_index(&renamed, &routed.columns)?,
            _ => Some(renamed),
        };
        if let Some(sql) = projected {
            let run = DdlRun {
                schema: run_in.unwrap_or_default(),
                sql,
                proof: None,
            };
            plan.stash.push(self.stashed.add(shadow, run));
        }
        Ok(())
    }

    /// `shadow` renamed to `origin`: the kept ALTERs reach the destination
    /// table, which must then be as the history has `origin`.
    fn cut_over(
        &mut self,
        shadow: &TableName,
        origin: &TableName,
        plan: &mut OnlinePlan,
    ) -> SyncResult<()> {
        let (kept, clear) = self.stashed.take(shadow);
        plan.stash.push(clear);
        if !self.applies_ddl {
            return Ok(());
        }
        let Some(routed) = self
            .route
            .table(&origin.db, &origin.name)
            .map_err(SyncError::RouteConflict)?
        else {
            return Ok(());
        };
        let target = TableName {
            db: routed.db.clone(),
            name: routed.table.clone(),
        };
        // A merged table took none of the shard's ALTERs, nor a table whose
        // ddl option left some out: neither can be checked against the source.
        let complete = routed.ddl.is_none() && !self.merges.shared(&target, origin);
        plan.destination.extend(kept);
        if complete {
            plan.verify = Some(Proof {
                source: origin.clone(),
                target,
                columns: routed.columns,
                gone: false,
            });
        }
        Ok(())
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

    /// What the destination gets (its proof aside), and the merged table it does not.
    fn destination(plan: DdlPlan) -> (Option<DdlRun>, Option<TableName>) {
        match plan {
            DdlPlan::Follow {
                destination,
                merged,
                ..
            } => (
                destination
                    .into_iter()
                    .next()
                    .map(|run| DdlRun { proof: None, ..run }),
                merged,
            ),
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
            alter.work().runs.first().map(|r| r.sql.clone()),
            Some(format!("CREATE DATABASE IF NOT EXISTS `{shadow}`"))
        );
        assert_eq!(
            alter.work().runs.get(1),
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
        assert_eq!(alter.work().runs.len(), 2, "the history still takes it");
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
        assert_eq!(alter.work().runs.len(), 2, "the history still takes it");
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
    /// The statements of one online schema change, as gh-ost writes them.
    const GH_OST: [&str; 7] = [
        "create /* gh-ost */ table `shop`.`_orders_ghc` (id bigint auto_increment, hint varchar(64), primary key(id))",
        "create /* gh-ost */ table `shop`.`_orders_gho` like `shop`.`orders`",
        "alter /* gh-ost */ table `shop`.`_orders_gho` add column note varchar(10)",
        "create /* gh-ost */ table `shop`.`_orders_del` (id int auto_increment primary key) comment='ghost-cut-over-sentry'",
        "drop /* gh-ost */ table `shop`.`_orders_del`",
        "rename /* gh-ost */ table `shop`.`orders` to `shop`.`_orders_del`, `shop`.`_orders_gho` to `shop`.`orders`",
        "drop /* gh-ost */ table if exists `shop`.`_orders_ghc`",
    ];

    const RENAMED: &str =
        "[[objects]]\ndatabase = \"shop\"\nto = \"eu\"\ntables = [{ name = \"orders\", to = \"orders_eu\" }, \"c\"]";

    fn follow_parts(plan: DdlPlan) -> (Vec<DdlRun>, Option<Proof>, Vec<StashChange>, usize) {
        match plan {
            DdlPlan::Follow {
                history,
                destination,
                verify,
                stash,
                ..
            } => (destination, verify, stash, history.len()),
            DdlPlan::Ignore => panic!("ignored"),
        }
    }

    #[test]
    fn a_gh_ost_change_reaches_the_destination_table_at_its_cut_over_only() -> SyncResult<()> {
        let r = route(RENAMED);
        let tables = [
            source_table(&r, "shop", "orders"),
            source_table(&r, "shop", "c"),
        ];
        let mut router = DdlRouter::new(&r, &tables, "task");
        let shadow_db = schema_history::shadow_database("task", "shop");
        let mut kept = Vec::new();
        for (i, sql) in GH_OST.iter().enumerate() {
            let (destination, verify, stash, history) =
                follow_parts(plan(&mut router, "shop", sql)?);
            assert!(history > 0, "the history takes `{sql}`");
            if i == 5 {
                // The cut-over: the kept ALTER on the real table, checked.
                assert_eq!(
                    destination,
                    vec![run(
                        "eu",
                        "alter /* gh-ost */ table `eu`.`orders_eu` add column note varchar(10)"
                    )]
                );
                let verify = verify.expect("a cut-over is checked");
                assert_eq!(verify.target.to_string(), "`eu`.`orders_eu`");
                assert_eq!(verify.source.to_string(), "`shop`.`orders`");
            } else {
                assert_eq!(destination, Vec::new(), "`{sql}` reaches the destination");
                assert_eq!(verify, None);
            }
            kept.push(stash);
        }
        let shadow = TableName {
            db: "shop".into(),
            name: "_orders_gho".into(),
        };
        assert_eq!(
            kept[1],
            vec![StashChange::Clear {
                shadow: shadow.clone()
            }]
        );
        assert!(
            matches!(&kept[2][..], [StashChange::Add { seq: 1, run, .. }] if run.sql.contains("`eu`.`orders_eu`"))
        );
        assert_eq!(kept[5], vec![StashChange::Clear { shadow }]);
        // The history creates the shadow from its own copy of the table.
        let history = plan(&mut router, "shop", GH_OST[1])?.work().runs;
        assert!(
            history.iter().any(|r| r.sql
                == format!(
                "create /* gh-ost */ table `{shadow_db}`.`_orders_gho` like `{shadow_db}`.`orders`"
            )),
            "{history:?}"
        );
        // A leftover from before the task may be dropped: the history drops
        // it if it is there.
        let drop = plan(&mut router, "shop", "DROP TABLE _orders_old")?
            .work()
            .runs;
        assert_eq!(
            drop.last().map(|r| r.sql.as_str()),
            Some("DROP TABLE IF EXISTS _orders_old")
        );
        Ok(())
    }

    #[test]
    fn tools_tables_mixed_with_tables_or_without_their_table_are_refused() -> SyncResult<()> {
        let r = route(RENAMED);
        let tables = [
            source_table(&r, "shop", "orders"),
            source_table(&r, "shop", "c"),
        ];
        let mut router = DdlRouter::new(&r, &tables, "task");
        for sql in [
            "DROP TABLE c, _orders_old",
            "RENAME TABLE _orders_gho TO c",
            "RENAME TABLE orders TO _orders_old",
        ] {
            let planned = plan(&mut router, "shop", sql);
            assert!(
                matches!(planned, Err(SyncError::UnmappableDdl { .. }))
                    == (sql != "RENAME TABLE orders TO _orders_old"),
                "{sql}: {planned:?}"
            );
        }
        // `items` is not selected: its tool's tables are just unselected tables.
        assert_eq!(
            plan(&mut router, "shop", "CREATE TABLE _items_gho LIKE items")?,
            DdlPlan::Ignore
        );
        // pt-osc's triggers are left to the source.
        assert_eq!(
            plan(&mut router, "shop", "CREATE TRIGGER pt_osc_shop_orders_ins AFTER INSERT ON orders FOR EACH ROW REPLACE INTO _orders_new (id) VALUES (NEW.id)")?,
            DdlPlan::Ignore
        );
        let whole = route("[[objects]]\ndatabase = \"app\"");
        let mut router = DdlRouter::new(&whole, &[], "task");
        assert!(matches!(
            plan(&mut router, "app", "CREATE TABLE _report_old (id INT PRIMARY KEY)"),
            Err(SyncError::UnmappableDdl { reason, .. }) if reason.contains("does not exist")
        ));
        Ok(())
    }

    #[test]
    fn fail_stops_at_a_shadow_and_copy_follows_the_tools_statements() -> SyncResult<()> {
        let r = route(&format!("online_ddl = \"fail\"\n{RENAMED}"));
        let tables = [source_table(&r, "shop", "orders")];
        let mut router = DdlRouter::new(&r, &tables, "task");
        plan(&mut router, "shop", GH_OST[0])?;
        assert!(matches!(
            plan(&mut router, "shop", GH_OST[1]),
            Err(SyncError::OnlineDdlRefused { table, .. }) if table == "`shop`.`orders`"
        ));
        let r = route(&format!("online_ddl = \"copy_shadow_tables\"\n{RENAMED}"));
        let tables = [source_table(&r, "shop", "orders")];
        let mut router = DdlRouter::new(&r, &tables, "task");
        let destinations: Vec<Option<DdlRun>> = GH_OST
            .iter()
            .map(|sql| plan(&mut router, "shop", sql).map(|p| destination(p).0))
            .collect::<SyncResult<_>>()?;
        assert_eq!(
            destinations[1],
            Some(run(
                "eu",
                "create /* gh-ost */ table `eu`.`_orders_gho` like `eu`.`orders_eu`"
            ))
        );
        assert_eq!(
            destinations[2],
            Some(run(
                "eu",
                "alter /* gh-ost */ table `eu`.`_orders_gho` add column note varchar(10)"
            ))
        );
        assert_eq!(
            destinations[5],
            Some(run("eu", "rename /* gh-ost */ table `eu`.`orders_eu` to `eu`.`_orders_del`, `eu`.`_orders_gho` to `eu`.`orders_eu`"))
        );
        Ok(())
    }
}
