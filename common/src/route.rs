//! The task's objects compiled once into a route: which source tables are
//! selected, what they are called on the destination, and which of their row
//! changes reach it. Every phase asks the route; nothing else reads
//! `objects` or `routes`.
//!
//! Precedence, most specific first: a table named in `[[objects]]`, then a
//! `[[routes]]` rule (two rules matching one table is an error), then an
//! `[[objects]]` entry selecting its whole database.

use crate::filter::RowFilter;
use crate::online_ddl::{Helper, ToolTables};
use crate::spec::{DdlOperation, DmlOperation, NameCase, OnlineDdlMethod, SpecError, TaskSpec};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Databases no route may select or write.
pub const SYSTEM_SCHEMAS: [&str; 4] = ["mysql", "information_schema", "performance_schema", "sys"];

/// The start of the names of the databases holding tasks' schema history
/// (shadow tables): never selected, never a destination.
pub const SHADOW_PREFIX: &str = "dts_shadow_";

/// Which row changes of a table are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmlSet {
    pub insert: bool,
    pub update: bool,
    pub delete: bool,
}

impl DmlSet {
    pub const ALL: Self = Self {
        insert: true,
        update: true,
        delete: true,
    };

    fn of(operations: Option<&[DmlOperation]>) -> Self {
        let Some(operations) = operations else {
            return Self::ALL;
        };
        Self {
            insert: operations.contains(&DmlOperation::Insert),
            update: operations.contains(&DmlOperation::Update),
            delete: operations.contains(&DmlOperation::Delete),
        }
    }

    pub fn allows(&self, operation: DmlOperation) -> bool {
        match operation {
            DmlOperation::Insert => self.insert,
            DmlOperation::Update => self.update,
            DmlOperation::Delete => self.delete,
        }
    }
}

/// Which of a table's columns reach the destination, and under which names
/// (source names throughout; MySQL column names compare without case).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnMap {
    only: Option<Vec<String>>,
    except: Vec<String>,
    renames: Vec<(String, String)>,
}

impl ColumnMap {
    /// Every column, under its own name.
    pub fn is_identity(&self) -> bool {
        self.only.is_none() && self.except.is_empty() && self.renames.is_empty()
    }

    /// Whether a column added later comes in (`exclude_columns`, or no
    /// list) or stays out (a `columns` list).
    pub fn takes_new_columns(&self) -> bool {
        self.only.is_none()
    }

    /// The destination name of source column `column`, or `None` when it
    /// stays out.
    pub fn target(&self, column: &str) -> Option<String> {
        let named = |name: &String| name.eq_ignore_ascii_case(column);
        if self
            .only
            .as_ref()
            .is_some_and(|only| !only.iter().any(named))
        {
            return None;
        }
        if self.except.iter().any(named) {
            return None;
        }
        Some(
            self.renames
                .iter()
                .find(|(from, _)| named(from))
                .map_or_else(|| column.to_string(), |(_, to)| to.clone()),
        )
    }

    /// Whether `rename_columns` renames `column`.
    pub fn renames(&self, column: &str) -> bool {
        self.renames
            .iter()
            .any(|(from, _)| from.eq_ignore_ascii_case(column))
    }

    /// Each source column the spec names, with the key it is named under
    /// (`columns`, `exclude_columns`, `rename_columns`).
    pub fn named(&self) -> Vec<(&'static str, &str)> {
        let only = self.only.iter().flatten().map(|c| ("columns", c.as_str()));
        let except = self.except.iter().map(|c| ("exclude_columns", c.as_str()));
        let renames = self
            .renames
            .iter()
            .map(|(c, _)| ("rename_columns", c.as_str()));
        only.chain(except).chain(renames).collect()
    }

    fn compile(field: &str, options: &crate::spec::TableOptions) -> Result<Self, SpecError> {
        if options.columns.is_some() && options.exclude_columns.is_some() {
            return Err(SpecError::new(
                format!("{field}.exclude_columns"),
                "cannot be given with `columns`: list the columns to keep, or those to leave out",
            ));
        }
        let list = |key: &str, names: &[String]| -> Result<(), SpecError> {
            let mut seen = BTreeSet::new();
            for (k, name) in names.iter().enumerate() {
                validate_identifier(&format!("{field}.{key}[{k}]"), name)?;
                if !seen.insert(name.to_ascii_lowercase()) {
                    return Err(SpecError::new(
                        format!("{field}.{key}[{k}]"),
                        format!("column `{name}` is listed twice"),
                    ));
                }
            }
            Ok(())
        };
        if let Some(only) = &options.columns {
            if only.is_empty() {
                return Err(SpecError::new(
                    format!("{field}.columns"),
                    "must list at least the key's columns",
                ));
            }
            list("columns", only)?;
        }
        list(
            "exclude_columns",
            options.exclude_columns.as_deref().unwrap_or_default(),
        )?;
        let mut map = Self {
            only: options.columns.clone(),
            except: options.exclude_columns.clone().unwrap_or_default(),
            renames: Vec::new(),
        };
        let mut targets = BTreeSet::new();
        for (from, to) in options.rename_columns.iter().flatten() {
            let key = format!("{field}.rename_columns.{from}");
            validate_identifier(&key, from)?;
            validate_identifier(&key, to)?;
            if map.target(from).is_none() {
                return Err(SpecError::new(
                    key,
                    format!("renames column `{from}`, which the column selection leaves out"),
                ));
            }
            if !targets.insert(to.to_ascii_lowercase()) {
                return Err(SpecError::new(
                    key,
                    format!("another column is renamed to `{to}` too"),
                ));
            }
            map.renames.push((from.clone(), to.clone()));
        }
        Ok(map)
    }
}

/// What selected a table: named in the spec's words, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// `objects[i].tables[j]`
    Table { object: usize, table: usize },
    /// `routes[k]`
    Rule(usize),
    /// `objects[i]`, a whole database.
    Database(usize),
}

impl Claim {
    /// Whether several tables mapped onto one destination table is meant
    /// (a route rule is how a merge is asked for).
    pub fn merges(&self) -> bool {
        matches!(self, Self::Rule(_))
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Table { object, table } => write!(f, "objects[{object}].tables[{table}]"),
            Self::Rule(rule) => write!(f, "routes[{rule}]"),
            Self::Database(object) => write!(f, "objects[{object}]"),
        }
    }
}

/// Where a selected source table goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRoute {
    pub db: String,
    pub table: String,
    pub dml: DmlSet,
    pub columns: ColumnMap,
    /// The DDL applied to the destination table; `None`: all dts follows.
    pub ddl: Option<BTreeSet<DdlOperation>>,
    /// Only rows this condition holds for reach the destination.
    pub filter: Option<std::sync::Arc<RowFilter>>,
    /// The destination column recording each row's source table (merges).
    pub source_column: Option<String>,
    pub claim: Claim,
}

impl TableRoute {
    /// Whether DDL of this kind on the table reaches the destination.
    pub fn applies_ddl(&self, operation: DdlOperation) -> bool {
        self.ddl.as_ref().is_none_or(|ddl| ddl.contains(&operation))
    }
}

/// A source table that two rules claim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "table `{db}`.`{table}` is matched by both {first} and {second}; a table may follow one route"
)]
pub struct RouteConflict {
    pub db: String,
    pub table: String,
    pub first: Claim,
    pub second: Claim,
}

/// A name pattern of a task file: a name, a wildcard pattern (`*`, `?`) or
/// `~regex`.
#[derive(Debug, Clone)]
pub(crate) enum Pattern {
    Exact(String),
    /// `*` and `?` wildcards.
    Glob(Vec<char>),
    Regex(regex::Regex),
}

impl Pattern {
    pub(crate) fn parse(field: &str, text: &str) -> Result<Self, SpecError> {
        if let Some(expression) = text.strip_prefix('~') {
            let anchored = format!("^(?:{expression})$");
            return regex::Regex::new(&anchored)
                .map(Pattern::Regex)
                .map_err(|e| {
                    SpecError::new(field, format!("is not a valid regular expression: {e}"))
                });
        }
        if text.is_empty() {
            return Err(SpecError::new(field, "must not be empty"));
        }
        if text.contains(['*', '?']) {
            return Ok(Pattern::Glob(text.chars().collect()));
        }
        validate_identifier(field, text)?;
        Ok(Pattern::Exact(text.to_string()))
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        match self {
            Self::Exact(exact) => exact == name,
            Self::Glob(glob) => glob_matches(glob, &name.chars().collect::<Vec<_>>()),
            Self::Regex(regex) => regex.is_match(name),
        }
    }

    fn text(&self) -> String {
        match self {
            Self::Exact(exact) => exact.clone(),
            Self::Glob(glob) => glob.iter().collect(),
            Self::Regex(regex) => format!("~{}", regex.as_str()),
        }
    }
}

/// A `where` condition, parsed once and shared by every table it filters.
fn parse_filter(
    field: &str,
    text: Option<&str>,
) -> Result<Option<std::sync::Arc<RowFilter>>, SpecError> {
    text.map(|text| RowFilter::parse(field, text).map(std::sync::Arc::new))
        .transpose()
}

/// `*` matches any run of characters, `?` one; iterative with one
/// backtrack point, so no pattern is exponential.
fn glob_matches(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some('?') => {
                p += 1;
                n += 1;
            }
            Some(c) if *c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[derive(Debug, Clone)]
struct TableEntry {
    name: String,
    to: Option<String>,
    dml: DmlSet,
    columns: ColumnMap,
    ddl: Option<BTreeSet<DdlOperation>>,
    filter: Option<std::sync::Arc<RowFilter>>,
}

#[derive(Debug, Clone)]
struct DatabaseEntry {
    database: String,
    to: Option<String>,
    /// Empty: the whole database.
    tables: Vec<TableEntry>,
}

#[derive(Debug, Clone)]
struct Rule {
    database: Pattern,
    table: Pattern,
    to_database: Option<String>,
    to_table: Option<String>,
    filter: Option<std::sync::Arc<RowFilter>>,
    source_column: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Route {
    databases: Vec<DatabaseEntry>,
    rules: Vec<Rule>,
    case: NameCase,
    meta_schema: String,
    online_ddl: OnlineDdlMethod,
    tools: ToolTables,
}

impl Route {
    /// Compiles and checks the spec's `objects`, `routes` and `name_case`;
    /// an error names the field and the reason.
    pub fn compile(spec: &TaskSpec) -> Result<Self, SpecError> {
        if spec.objects.is_empty() && spec.routes.is_empty() {
            return Err(SpecError::new(
                "objects",
                "must select at least one database ([[objects]] with `database = \"...\"`, or [[routes]])",
            ));
        }
        let reserved = |field: &str, name: &str| -> Result<(), SpecError> {
            validate_identifier(field, name)?;
            if SYSTEM_SCHEMAS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(SpecError::new(
                    field,
                    format!("`{name}` is a system schema"),
                ));
            }
            if name == spec.meta_schema {
                return Err(SpecError::new(
                    field,
                    format!("`{name}` is the task's meta_schema"),
                ));
            }
            if name.starts_with(SHADOW_PREFIX) {
                return Err(SpecError::new(
                    field,
                    format!(
                        "`{name}`: names starting with {SHADOW_PREFIX} hold dts's schema history"
                    ),
                ));
            }
            Ok(())
        };
        let mut databases = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, object) in spec.objects.iter().enumerate() {
            let field = format!("objects[{i}].database");
            reserved(&field, &object.database)?;
            if !seen.insert(&object.database) {
                return Err(SpecError::new(
                    field,
                    format!(
                        "database `{}` is selected twice; list its tables in one entry",
                        object.database
                    ),
                ));
            }
            if let Some(to) = &object.to {
                reserved(&format!("objects[{i}].to"), to)?;
            }
            let mut tables = Vec::new();
            let mut names = BTreeSet::new();
            for (j, table) in object.tables.iter().enumerate() {
                let field = format!("objects[{i}].tables[{j}]");
                let name_field = match table {
                    crate::spec::TableSelector::Name(_) => field.clone(),
                    crate::spec::TableSelector::Detailed(_) => format!("{field}.name"),
                };
                validate_identifier(&name_field, table.name())?;
                if !names.insert(table.name()) {
                    return Err(SpecError::new(
                        field,
                        format!("table `{}` is listed twice", table.name()),
                    ));
                }
                if let Some(to) = table.to() {
                    validate_identifier(&format!("{field}.to"), to)?;
                }
                if let Some(dml) = table.dml() {
                    let distinct: BTreeSet<_> = dml.iter().collect();
                    if dml.is_empty() || distinct.len() != dml.len() {
                        return Err(SpecError::new(
                            format!("{field}.dml"),
                            "must list each of \"insert\", \"update\", \"delete\" at most once, and one at least",
                        ));
                    }
                }
                let columns = match table.options() {
                    Some(options) => ColumnMap::compile(&field, options)?,
                    None => ColumnMap::default(),
                };
                let ddl = table.options().and_then(|o| o.ddl.as_ref());
                if let Some(ddl) = ddl {
                    let distinct: BTreeSet<_> = ddl.iter().collect();
                    if distinct.len() != ddl.len() {
                        return Err(SpecError::new(
                            format!("{field}.ddl"),
                            "lists a kind of DDL twice",
                        ));
                    }
                }
                let filter = parse_filter(
                    &format!("{field}.where"),
                    table.options().and_then(|o| o.filter.as_deref()),
                )?;
                tables.push(TableEntry {
                    name: table.name().to_string(),
                    to: table.to().map(str::to_string),
                    dml: DmlSet::of(table.dml()),
                    columns,
                    ddl: ddl.map(|d| d.iter().copied().collect()),
                    filter,
                });
            }
            databases.push(DatabaseEntry {
                database: object.database.clone(),
                to: object.to.clone(),
                tables,
            });
        }
        let mut rules: Vec<Rule> = Vec::new();
        for (k, rule) in spec.routes.iter().enumerate() {
            let database = Pattern::parse(&format!("routes[{k}].database"), &rule.database)?;
            if let Pattern::Exact(name) = &database {
                reserved(&format!("routes[{k}].database"), name)?;
            }
            let table = Pattern::parse(&format!("routes[{k}].table"), &rule.table)?;
            if let Some(to) = &rule.to_database {
                reserved(&format!("routes[{k}].to_database"), to)?;
            }
            if let Some(to) = &rule.to_table {
                validate_identifier(&format!("routes[{k}].to_table"), to)?;
            }
            if let Some(earlier) = rules.iter().position(|r| {
                r.database.text() == database.text() && r.table.text() == table.text()
            }) {
                return Err(SpecError::new(
                    format!("routes[{k}]"),
                    format!(
                        "claims the same tables as routes[{earlier}]; a table may follow one route"
                    ),
                ));
            }
            let filter = parse_filter(&format!("routes[{k}].where"), rule.filter.as_deref())?;
            if let Some(column) = &rule.source_column {
                validate_identifier(&format!("routes[{k}].source_column"), column)?;
            }
            rules.push(Rule {
                database,
                table,
                to_database: rule.to_database.clone(),
                to_table: rule.to_table.clone(),
                filter,
                source_column: rule.source_column.clone(),
            });
        }
        let route = Self {
            databases,
            rules,
            case: spec.name_case,
            meta_schema: spec.meta_schema.clone(),
            online_ddl: spec.online_ddl,
            tools: ToolTables::compile(spec.online_ddl_tables.as_ref())?,
        };
        route.check_named_targets(spec)?;
        Ok(route)
    }

    /// What can be told without the source's catalog: two named tables
    /// mapped onto one destination table, and, with one server on both
    /// sides, a database or table synced onto itself.
    fn check_named_targets(&self, spec: &TaskSpec) -> Result<(), SpecError> {
        let same_server =
            spec.source.host == spec.destination.host && spec.source.port == spec.destination.port;
        let mut targets: BTreeMap<(String, String), String> = BTreeMap::new();
        for (i, entry) in self.databases.iter().enumerate() {
            let db = self.target_database(entry);
            if same_server && entry.tables.is_empty() && db == entry.database {
                return Err(SpecError::new(
                    format!("objects[{i}].to"),
                    format!(
                        "the destination is the source server, so database `{}` would be synced onto itself; \
                         name another database with `to`",
                        entry.database
                    ),
                ));
            }
            for (j, table) in entry.tables.iter().enumerate() {
                let target = (
                    db.clone(),
                    self.cased(table.to.as_deref().unwrap_or(&table.name)),
                );
                let field = format!("objects[{i}].tables[{j}]");
                if same_server && target == (entry.database.clone(), table.name.clone()) {
                    return Err(SpecError::new(
                        field,
                        format!(
                            "the destination is the source server, so `{}`.`{}` would be synced onto itself; \
                             rename it or its database with `to`",
                            entry.database, table.name
                        ),
                    ));
                }
                if let Some(other) = targets.insert(target.clone(), field.clone()) {
                    return Err(SpecError::new(
                        field,
                        format!(
                            "maps onto `{}`.`{}` as {other} does; merging tables is asked for with [[routes]]",
                            target.0, target.1
                        ),
                    ));
                }
            }
        }
        if same_server {
            // What is written there would be read back from the binlog.
            let read_back = |field: String, db: &str| -> Result<(), SpecError> {
                if self.selects_database(db)
                    && self.entry(db).is_none_or(|(_, e)| e.tables.is_empty())
                {
                    return Err(SpecError::new(
                        field,
                        format!(
                            "the destination is the source server, and database `{db}` is also selected \
                             as a source, so what dts writes there would be read back and synced again"
                        ),
                    ));
                }
                Ok(())
            };
            for (i, entry) in self.databases.iter().enumerate() {
                if entry.to.is_some() {
                    read_back(format!("objects[{i}].to"), &self.target_database(entry))?;
                }
            }
            for (k, rule) in self.rules.iter().enumerate() {
                if let Some(to) = &rule.to_database {
                    read_back(format!("routes[{k}].to_database"), &self.cased(to))?;
                }
                if rule.to_database.is_none() && rule.to_table.is_none() {
                    return Err(SpecError::new(
                        format!("routes[{k}]"),
                        "the destination is the source server, so the tables it matches would be synced \
                         onto themselves; give to_database or to_table",
                    ));
                }
            }
        }
        Ok(())
    }

    fn cased(&self, name: &str) -> String {
        match self.case {
            NameCase::Keep => name.to_string(),
            NameCase::Lower => name.to_lowercase(),
            NameCase::Upper => name.to_uppercase(),
        }
    }

    fn target_database(&self, entry: &DatabaseEntry) -> String {
        self.cased(entry.to.as_deref().unwrap_or(&entry.database))
    }

    fn entry(&self, db: &str) -> Option<(usize, &DatabaseEntry)> {
        self.databases
            .iter()
            .enumerate()
            .find(|(_, e)| e.database == db)
    }

    fn excluded(&self, db: &str) -> bool {
        db == self.meta_schema
            || db.starts_with(SHADOW_PREFIX)
            || SYSTEM_SCHEMAS.contains(&db.to_ascii_lowercase().as_str())
    }

    /// Where source table `db`.`table` goes, if the task selects it. An
    /// online schema change tool's table (see [`Route::helper`]) is selected
    /// only with `online_ddl = "copy_shadow_tables"`, going where its
    /// original goes under its own name.
    pub fn table(&self, db: &str, table: &str) -> Result<Option<TableRoute>, RouteConflict> {
        if self.excluded(db) {
            return Ok(None);
        }
        if let Some(helper) = self.helper(db, table)? {
            if self.online_ddl != OnlineDdlMethod::CopyShadowTables {
                return Ok(None);
            }
            let origin = self.ordinary(db, &helper.origin)?;
            return Ok(origin.map(|routed| TableRoute {
                table: self.cased(table),
                ..routed
            }));
        }
        self.ordinary(db, table)
    }

    pub fn online_ddl(&self) -> OnlineDdlMethod {
        self.online_ddl
    }

    /// Whether `db`.`table` is an online schema change tool's table for a
    /// table the task selects (by the name patterns; a table `[[objects]]`
    /// names outright is always just a table).
    pub fn helper(&self, db: &str, table: &str) -> Result<Option<Helper>, RouteConflict> {
        if self.excluded(db) || self.named_tables(db).contains(&table) {
            return Ok(None);
        }
        for reading in self.tools.readings(table) {
            if self.ordinary(db, &reading.origin)?.is_some() {
                return Ok(Some(reading));
            }
        }
        Ok(None)
    }

    /// The route's answer for a table, tools' tables aside.
    fn ordinary(&self, db: &str, table: &str) -> Result<Option<TableRoute>, RouteConflict> {
        let entry = self.entry(db);
        if let Some((i, entry)) = entry {
            if let Some((j, named)) = entry
                .tables
                .iter()
                .enumerate()
                .find(|(_, t)| t.name == table)
            {
                return Ok(Some(TableRoute {
                    db: self.target_database(entry),
                    table: self.cased(named.to.as_deref().unwrap_or(table)),
                    dml: named.dml,
                    columns: named.columns.clone(),
                    ddl: named.ddl.clone(),
                    filter: named.filter.clone(),
                    source_column: None,
                    claim: Claim::Table {
                        object: i,
                        table: j,
                    },
                }));
            }
        }
        let mut matched: Option<(usize, &Rule)> = None;
        for (k, rule) in self.rules.iter().enumerate() {
            if !(rule.database.matches(db) && rule.table.matches(table)) {
                continue;
            }
            if let Some((first, _)) = matched {
                return Err(RouteConflict {
                    db: db.to_string(),
                    table: table.to_string(),
                    first: Claim::Rule(first),
                    second: Claim::Rule(k),
                });
            }
            matched = Some((k, rule));
        }
        if let Some((k, rule)) = matched {
            // A rule without to_database keeps the database's own mapping.
            let target_db = match (&rule.to_database, entry) {
                (Some(to), _) => self.cased(to),
                (None, Some((_, entry))) => self.target_database(entry),
                (None, None) => self.cased(db),
            };
            return Ok(Some(TableRoute {
                db: target_db,
                table: self.cased(rule.to_table.as_deref().unwrap_or(table)),
                dml: DmlSet::ALL,
                columns: ColumnMap::default(),
                ddl: None,
                filter: rule.filter.clone(),
                source_column: rule.source_column.clone(),
                claim: Claim::Rule(k),
            }));
        }
        Ok(match entry {
            Some((i, entry)) if entry.tables.is_empty() => Some(TableRoute {
                db: self.target_database(entry),
                table: self.cased(table),
                dml: DmlSet::ALL,
                columns: ColumnMap::default(),
                ddl: None,
                filter: None,
                source_column: None,
                claim: Claim::Database(i),
            }),
            _ => None,
        })
    }

    pub fn meta_schema(&self) -> &str {
        &self.meta_schema
    }

    /// Whether any table of source database `db` may be selected.
    pub fn selects_database(&self, db: &str) -> bool {
        !self.excluded(db)
            && (self.entry(db).is_some() || self.rules.iter().any(|r| r.database.matches(db)))
    }

    /// The destination name of source database `db` where an `[[objects]]`
    /// entry selects it whole: its views, routines and triggers go there.
    pub fn whole_database(&self, db: &str) -> Option<String> {
        self.entry(db)
            .filter(|(_, e)| e.tables.is_empty())
            .map(|(_, e)| self.target_database(e))
    }

    /// The destination database statements run in when the source ran them
    /// in `db`: its `[[objects]]` entry's name there, else that of the first
    /// rule matching the database, else none (not selected).
    pub fn database(&self, db: &str) -> Option<String> {
        if self.excluded(db) {
            return None;
        }
        if let Some((_, entry)) = self.entry(db) {
            return Some(self.target_database(entry));
        }
        self.rules
            .iter()
            .find(|r| r.database.matches(db))
            .map(|r| self.cased(r.to_database.as_deref().unwrap_or(db)))
    }

    /// The source databases named outright (not by a pattern).
    pub fn named_databases(&self) -> impl Iterator<Item = &str> {
        self.databases.iter().map(|e| e.database.as_str())
    }

    /// The tables `[[objects]]` lists for `db`, by name (empty: whole or none).
    pub fn named_tables(&self, db: &str) -> Vec<&str> {
        self.entry(db)
            .map(|(_, e)| e.tables.iter().map(|t| t.name.as_str()).collect())
            .unwrap_or_default()
    }
}

/// MySQL identifiers: 1-64 characters, no NUL, no trailing space.
pub fn validate_identifier(field: &str, name: &str) -> Result<(), SpecError> {
    if name.is_empty() {
        return Err(SpecError::new(field, "must not be empty"));
    }
    if name.chars().count() > 64 {
        return Err(SpecError::new(field, "must be at most 64 characters"));
    }
    if name.contains('\0') || name.ends_with(' ') {
        return Err(SpecError::new(
            field,
            "is not a valid identifier (NUL or trailing space)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        [source]
        host = "10.0.0.1"
        user = "dts"
        [destination]
        host = "10.0.0.2"
        user = "dts"
    "#;

    /// Top-level keys may lead `objects`, up to its first `[` section.
    fn route(objects: &str) -> Route {
        let split = objects.find('[').unwrap_or(0);
        let (head, sections) = objects.split_at(split);
        let spec = TaskSpec::from_toml(&format!("{head}\n{BASE}\n{sections}"))
            .unwrap_or_else(|e| panic!("{objects}: {e}"));
        Route::compile(&spec).unwrap_or_else(|e| panic!("{objects}: {e}"))
    }

    fn target(route: &Route, db: &str, table: &str) -> Option<(String, String)> {
        route
            .table(db, table)
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|t| (t.db, t.table))
    }

    #[test]
    fn online_ddl_tools_tables_follow_their_original_only_when_copied() {
        let objects = "[[objects]]\ndatabase = \"shop\"\nto = \"eu\"\ntables = [{ name = \"orders\", to = \"orders_eu\" }, \"_items_new\"]\n\
                       [[objects]]\ndatabase = \"whole\"";
        let follow = route(objects);
        let helper = |r: &Route, db: &str, name: &str| r.helper(db, name).ok().flatten();
        assert_eq!(
            helper(&follow, "shop", "_orders_gho").map(|h| (h.kind, h.origin)),
            Some((crate::online_ddl::HelperKind::Shadow, "orders".to_string()))
        );
        assert_eq!(target(&follow, "shop", "_orders_gho"), None);
        assert_eq!(
            target(&follow, "whole", "_t_del"),
            None,
            "whole databases too"
        );
        assert_eq!(
            target(&follow, "whole", "_t_gho"),
            None,
            "whether or not `t` exists yet"
        );
        // A table of a tool's name whose original is not selected, and one
        // named outright, are tables.
        assert_eq!(helper(&follow, "shop", "_customers_gho"), None);
        assert_eq!(helper(&follow, "shop", "_items_new"), None);
        assert_eq!(
            target(&follow, "shop", "_items_new"),
            Some(("eu".into(), "_items_new".into()))
        );
        let copy = route(&format!("online_ddl = \"copy_shadow_tables\"\n{objects}"));
        assert_eq!(
            target(&copy, "shop", "_orders_gho"),
            Some(("eu".into(), "_orders_gho".into()))
        );
        assert_eq!(
            target(&copy, "shop", "__orders_old"),
            Some(("eu".into(), "__orders_old".into()))
        );
        assert_eq!(
            target(&copy, "whole", "_t_ghc"),
            Some(("whole".into(), "_t_ghc".into()))
        );
    }

    fn pair(db: &str, table: &str) -> Option<(String, String)> {
        Some((db.to_string(), table.to_string()))
    }

    #[test]
    fn globs_match_whole_names() {
        let glob = |p: &str, n: &str| {
            glob_matches(
                &p.chars().collect::<Vec<_>>(),
                &n.chars().collect::<Vec<_>>(),
            )
        };
        assert!(glob("shard_*", "shard_01"));
        assert!(glob("shard_*", "shard_"));
        assert!(!glob("shard_*", "shar"));
        assert!(glob("*_log_?", "a_log_1"));
        assert!(!glob("*_log_?", "a_log_12"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        assert!(glob("*", ""));
    }

    #[test]
    fn plain_selections_keep_their_names() {
        let r = route("[[objects]]\ndatabase = \"shop\"\ntables = [\"orders\"]\n[[objects]]\ndatabase = \"crm\"");
        assert_eq!(target(&r, "shop", "orders"), pair("shop", "orders"));
        assert_eq!(target(&r, "shop", "other"), None);
        assert_eq!(target(&r, "crm", "anything"), pair("crm", "anything"));
        assert_eq!(target(&r, "elsewhere", "t"), None);
        assert_eq!(r.whole_database("crm").as_deref(), Some("crm"));
        assert_eq!(r.whole_database("shop"), None);
        assert!(r.selects_database("shop") && !r.selects_database("mysql"));
    }

    #[test]
    fn renames_apply_to_databases_and_tables_with_the_name_case() {
        let r = route(
            "name_case = \"lower\"\n[[objects]]\ndatabase = \"Shop\"\nto = \"Shop_EU\"\n\
             tables = [\"Customers\", { name = \"orders\", to = \"Orders_EU\", dml = [\"insert\", \"update\"] }]",
        );
        assert_eq!(
            target(&r, "Shop", "Customers"),
            pair("shop_eu", "customers")
        );
        let orders = r.table("Shop", "orders").ok().flatten();
        assert_eq!(
            orders.as_ref().map(|t| (t.db.as_str(), t.table.as_str())),
            Some(("shop_eu", "orders_eu"))
        );
        let dml = orders.map(|t| t.dml);
        assert_eq!(
            dml,
            Some(DmlSet {
                insert: true,
                update: true,
                delete: false
            })
        );
        assert_eq!(r.database("Shop").as_deref(), Some("shop_eu"));
    }

    #[test]
    fn rules_select_and_merge_and_named_tables_win_over_them() {
        let r = route(
            "[[objects]]\ndatabase = \"shard_1\"\ntables = [{ name = \"orders_x\", to = \"kept\" }]\n\
             [[routes]]\ndatabase = \"shard_*\"\ntable = \"orders_*\"\nto_database = \"merged\"\nto_table = \"orders\"\n\
             [[routes]]\ndatabase = \"~log_[0-9]+\"\nto_database = \"logs\"",
        );
        assert_eq!(target(&r, "shard_1", "orders_a"), pair("merged", "orders"));
        assert_eq!(target(&r, "shard_2", "orders_b"), pair("merged", "orders"));
        assert_eq!(target(&r, "shard_1", "orders_x"), pair("shard_1", "kept"));
        assert_eq!(target(&r, "shard_2", "customers"), None);
        assert_eq!(target(&r, "log_12", "t"), pair("logs", "t"));
        assert_eq!(target(&r, "log_x", "t"), None);
        assert_eq!(
            target(&r, "xlog_12", "t"),
            None,
            "a regex matches the whole name"
        );
        assert!(r.selects_database("shard_9"));
        assert_eq!(r.database("shard_9").as_deref(), Some("merged"));
    }

    #[test]
    fn column_maps_select_and_rename_by_source_name() {
        let r = route(
            "[[objects]]\ndatabase = \"shop\"\ntables = [\n\
             { name = \"o\", columns = [\"id\", \"Amount\"], rename_columns = { amount = \"total\" } },\n\
             { name = \"e\", exclude_columns = [\"payload\"] }]",
        );
        let columns = |t: &str| r.table("shop", t).ok().flatten().map(|t| t.columns);
        let o = columns("o").unwrap_or_default();
        assert_eq!(o.target("ID").as_deref(), Some("ID"));
        assert_eq!(o.target("amount").as_deref(), Some("total"));
        assert_eq!(o.target("note"), None);
        assert!(!o.takes_new_columns());
        let e = columns("e").unwrap_or_default();
        assert_eq!(e.target("payload"), None);
        assert_eq!(e.target("anything").as_deref(), Some("anything"));
        assert!(e.takes_new_columns() && !e.is_identity());
    }

    #[test]
    fn two_rules_matching_one_table_are_a_conflict_naming_both() {
        let r = route(
            "[[routes]]\ndatabase = \"s*\"\nto_database = \"a\"\n[[routes]]\ndatabase = \"shop\"\ntable = \"o*\"\nto_database = \"b\"",
        );
        let conflict = r.table("shop", "orders").err();
        assert_eq!(
            conflict.map(|c| (c.first, c.second)),
            Some((Claim::Rule(0), Claim::Rule(1)))
        );
        assert_eq!(target(&r, "shop", "items"), pair("a", "items"));
    }

    #[test]
    fn the_meta_schema_and_system_schemas_are_never_selected() {
        let r = route("[[routes]]\ndatabase = \"*\"\nto_database = \"all\"");
        assert_eq!(target(&r, "mysql", "user"), None);
        assert_eq!(target(&r, "dts_meta", "owners"), None);
        assert_eq!(target(&r, "dts_shadow_0123456789abcdef", "t"), None);
        assert_eq!(target(&r, "app", "t"), pair("all", "t"));
    }

    fn error_of(text: &str, same_server: bool) -> SpecError {
        let base = if same_server {
            BASE.replace("10.0.0.2", "10.0.0.1")
        } else {
            BASE.to_string()
        };
        match TaskSpec::from_toml(&format!("{base}\n{text}")) {
            Ok(_) => panic!("expected an error for {text}"),
            Err(e) => e,
        }
    }

    #[test]
    fn bad_routes_are_refused_with_the_field() {
        let cases = [
            ("[[objects]]\ndatabase = \"s\"\ntables = [{ name = \"a\", to = \"x\" }, { name = \"b\", to = \"x\" }]", "objects[0].tables[1]"),
            ("[[objects]]\ndatabase = \"s\"\ntables = [{ name = \"a\", dml = [] }]", "objects[0].tables[0].dml"),
            ("[[objects]]\ndatabase = \"s\"\ntables = [{ name = \"a\", dml = [\"insert\", \"insert\"] }]", "objects[0].tables[0].dml"),
            ("[[objects]]\ndatabase = \"s\"\ntables = [{ name = \"a\", ddl = [\"alter table\", \"alter table\"] }]", "objects[0].tables[0].ddl"),
            ("[[objects]]\ndatabase = \"s\"\ntables = [{ name = \"a\", ddl = [\"alter tables\"] }]", "objects[0].tables[0].ddl[0]"),
            ("[[objects]]\ndatabase = \"s\"\ntables = [{ name = \"a\", to = \"\" }]", "objects[0].tables[0].to"),
            ("[[objects]]\ndatabase = \"s\"\ntables = [{ name = \"\" }]", "objects[0].tables[0].name"),
            ("[[objects]]\ndatabase = \"s\"\nto = \"mysql\"", "objects[0].to"),
            ("[[objects]]\ndatabase = \"s\"\ntables = [{ name = \"a\", columns = [\"id\"], exclude_columns = [\"x\"] }]", "objects[0].tables[0].exclude_columns"),
            ("[[objects]]\ndatabase = \"s\"\ntables = [{ name = \"a\", columns = [] }]", "objects[0].tables[0].columns"),
            ("[[objects]]\ndatabase = \"s\"\ntables = [{ name = \"a\", columns = [\"id\", \"ID\"] }]", "objects[0].tables[0].columns[1]"),
            ("[[objects]]\ndatabase = \"s\"\ntables = [{ name = \"a\", columns = [\"id\"], rename_columns = { v = \"w\" } }]", "objects[0].tables[0].rename_columns.v"),
            ("[[objects]]\ndatabase = \"s\"\ntables = [{ name = \"a\", rename_columns = { v = \"x\", w = \"x\" } }]", "objects[0].tables[0].rename_columns.w"),
            ("[[routes]]\ndatabase = \"~(\"\nto_database = \"m\"", "routes[0].database"),
            ("[[routes]]\ndatabase = \"a\"\ntable = \"\"", "routes[0].table"),
            ("[[routes]]\ndatabase = \"a*\"\nto_database = \"dts_meta\"", "routes[0].to_database"),
            ("[[routes]]\ndatabase = \"a*\"\nto_database = \"m\"\n[[routes]]\ndatabase = \"a*\"\nto_database = \"n\"", "routes[1]"),
        ];
        for (text, field) in cases {
            assert_eq!(error_of(text, false).field, field, "for {text}");
        }
    }

    #[test]
    fn one_server_on_both_sides_needs_another_name() {
        let cases = [
            ("[[objects]]\ndatabase = \"shop\"", "objects[0].to"),
            (
                "[[objects]]\ndatabase = \"shop\"\ntables = [\"orders\"]",
                "objects[0].tables[0]",
            ),
            ("[[routes]]\ndatabase = \"shop\"", "routes[0]"),
            ("[[routes]]\ndatabase = \"shop*\"\nto_database = \"shop_all\"", "routes[0].to_database"),
            ("[[objects]]\ndatabase = \"a\"\nto = \"b\"\n[[objects]]\ndatabase = \"b\"\nto = \"c\"", "objects[0].to"),
        ];
        for (text, field) in cases {
            let err = error_of(text, true);
            assert_eq!(err.field, field, "for {text}");
            assert!(
                ["onto itself", "onto themselves", "read back"]
                    .iter()
                    .any(|w| err.reason.contains(w)),
                "{err}"
            );
        }
        route("[[objects]]\ndatabase = \"shop\"\nto = \"shop_copy\"");
        let same = format!(
            "{}\n[[objects]]\ndatabase = \"shop\"\nto = \"shop_copy\"",
            BASE.replace("10.0.0.2", "10.0.0.1")
        );
        assert!(TaskSpec::from_toml(&same).is_ok());
    }
}
