//! The task spec: what a user writes in a task file (TOML) and what the
//! coordinator stores. Parsing reports the failing field's path; `validate`
//! checks what types alone cannot.

use crate::route::validate_identifier;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// An invalid task file: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct SpecError {
    /// Dotted path of the offending field, e.g. `source.port` or `objects[1].database`.
    pub field: String,
    pub reason: String,
}

impl SpecError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Create tables (and, for whole databases, views and routines) on the destination.
    Schema,
    /// Copy existing rows.
    Full,
    /// Follow the source binlog.
    Incremental,
}

/// What to do when the destination already has a table the task would create.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictMode {
    /// Refuse to start.
    #[default]
    PrecheckError,
    /// Proceed: full sync keeps existing destination rows with the same key,
    /// incremental sync overwrites them.
    Ignore,
}

/// What the destination may show between the apply lanes' commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyConsistency {
    /// Every source transaction commits whole, in one lane.
    #[default]
    Transaction,
    /// Row changes of tables whose only unique index is the primary key are
    /// spread over the lanes by key, even within one source transaction: a
    /// reader of the destination may see part of a source transaction until
    /// the other lanes commit (within a batch). Every batch still ends with
    /// the destination equal to the source at that point, each row's changes
    /// stay in order, and nothing is lost or applied twice. Much faster on
    /// workloads whose transactions touch random keys.
    Row,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub enabled: bool,
    /// PEM file of the CA that signed the server certificate.
    #[serde(default)]
    pub ca: Option<String>,
}

/// A MySQL or MariaDB server.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub user: String,
    /// Inline; sealed by the coordinators before it is stored.
    #[serde(default)]
    pub password: String,
    /// A file on the worker holding the password (its first line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// An environment variable of the worker holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(default)]
    pub tls: TlsConfig,
    /// The connection profile this endpoint was filled from (see
    /// `connection`): the coordinators keep it current with the profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
}

impl Endpoint {
    /// The password to log in with, from wherever the spec says it is.
    /// Runs on the worker: files and variables are the worker's.
    pub fn resolve_password(&self) -> Result<String, String> {
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("password_file {path} on this worker: {e}"))?;
            return Ok(text.lines().next().unwrap_or_default().to_string());
        }
        if let Some(name) = &self.password_env {
            return std::env::var(name)
                .map_err(|_| format!("password_env `{name}` is not set on this worker"));
        }
        if crate::secret::Keyring::is_sealed(&self.password) {
            let key = crate::secret::Keyring::key_of(&self.password).unwrap_or("?");
            return Err(format!(
                "the password is sealed with key `{key}`, which the leader coordinator's \
                 secrets key ring does not hold: give every coordinator a key ring with it"
            ));
        }
        Ok(self.password.clone())
    }
}

impl fmt::Debug for Endpoint {
    // Never print the password, whatever logs a spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("password_file", &self.password_file)
            .field("password_env", &self.password_env)
            .field("tls", &self.tls)
            .field("connection", &self.connection)
            .finish()
    }
}

/// A whole database, or some of its tables, and their names on the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSelector {
    pub database: String,
    /// The database's name on the destination (default: its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Empty means the whole database (tables, views, routines, triggers).
    #[serde(default)]
    pub tables: Vec<TableSelector>,
}

/// A table entry: its name alone (`"orders"`), or a table with options
/// (`{ name = "orders", to = "orders_eu", dml = ["insert"] }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum TableSelector {
    Name(String),
    Detailed(TableOptions),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableOptions {
    pub name: String,
    /// The table's name on the destination (default: its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Which row changes the binlog phases apply (default: all three). The
    /// full copy copies every row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dml: Option<Vec<DmlOperation>>,
    /// Only these source columns reach the destination (the key among them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// Every source column but these reaches the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_columns: Option<Vec<String>>,
    /// Source column name -> its name on the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename_columns: Option<std::collections::BTreeMap<String, String>>,
    /// Which DDL on the table the binlog phases apply to the destination
    /// (default: all that dts follows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ddl: Option<Vec<DdlOperation>>,
    /// Only rows for which this condition (over source columns) is true
    /// reach the destination, in every phase.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// The DDL dts follows from the binlog, as a task file names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DdlOperation {
    #[serde(rename = "alter table")]
    AlterTable,
    #[serde(rename = "alter view")]
    AlterView,
    #[serde(rename = "create function")]
    CreateFunction,
    #[serde(rename = "create index")]
    CreateIndex,
    #[serde(rename = "create procedure")]
    CreateProcedure,
    #[serde(rename = "create table")]
    CreateTable,
    #[serde(rename = "create trigger")]
    CreateTrigger,
    #[serde(rename = "create view")]
    CreateView,
    #[serde(rename = "drop function")]
    DropFunction,
    #[serde(rename = "drop index")]
    DropIndex,
    #[serde(rename = "drop procedure")]
    DropProcedure,
    #[serde(rename = "drop table")]
    DropTable,
    #[serde(rename = "drop trigger")]
    DropTrigger,
    #[serde(rename = "drop view")]
    DropView,
    #[serde(rename = "rename table")]
    RenameTable,
    #[serde(rename = "truncate table")]
    TruncateTable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DmlOperation {
    Insert,
    Update,
    Delete,
}

impl TableSelector {
    pub fn name(&self) -> &str {
        match self {
            Self::Name(name) => name,
            Self::Detailed(options) => &options.name,
        }
    }

    pub fn to(&self) -> Option<&str> {
        match self {
            Self::Name(_) => None,
            Self::Detailed(options) => options.to.as_deref(),
        }
    }

    pub fn dml(&self) -> Option<&[DmlOperation]> {
        match self {
            Self::Name(_) => None,
            Self::Detailed(options) => options.dml.as_deref(),
        }
    }

    pub fn options(&self) -> Option<&TableOptions> {
        match self {
            Self::Name(_) => None,
            Self::Detailed(options) => Some(options),
        }
    }
}

impl From<&str> for TableSelector {
    fn from(name: &str) -> Self {
        Self::Name(name.to_string())
    }
}

/// A string or a table: serde's untagged enums say only "did not match any
/// variant", where the table's own error names the field and the reason.
impl<'de> Deserialize<'de> for TableSelector {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entry;
        impl<'de> serde::de::Visitor<'de> for Entry {
            type Value = TableSelector;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table name, or a table like { name = \"t\", to = \"u\" }")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Self::Value, E> {
                Ok(TableSelector::Name(name.to_string()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                TableOptions::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(TableSelector::Detailed)
            }
        }
        deserializer.deserialize_any(Entry)
    }
}

/// A batch mapping: every table whose database and name match is selected
/// and mapped to `to_database`.`to_table`. Several tables mapped to one is a
/// merge (shards into one table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// A name, a wildcard pattern (`*` any run, `?` one character), or
    /// `~regex` (matched against the whole name).
    pub database: String,
    /// As `database`; default `*`, every table.
    #[serde(default = "default_route_table")]
    pub table: String,
    /// Default: the source database's own name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_database: Option<String>,
    /// Default: the source table's own name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_table: Option<String>,
    /// Merges: a column added to the destination table holding each row's
    /// source `database.table`, made part of its primary key, so rows of
    /// different shards with one key do not collide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_column: Option<String>,
    /// A row filter for every table the rule matches (see `TableOptions`).
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// When a whole database's triggers are created on the destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerMethod {
    /// With the schema, guarded so that dts's own writes do not fire them.
    #[default]
    WithSchema,
    /// When the full copy ends (with the schema when there is no full copy).
    AfterFull,
    /// Never; CREATE/DROP TRIGGER in the binlog are listed as skipped.
    Skip,
}

/// What a task does with online schema change tools (gh-ost,
/// pt-online-schema-change, DMS-style) run on a selected table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnlineDdlMethod {
    /// The destination never holds the tool's tables: the ALTER run on the
    /// shadow table is kept and applied to the real table at the cut-over.
    #[default]
    FollowOriginalDdl,
    /// The tool's tables are synced like selected tables, and so is the
    /// cut-over's RENAME.
    CopyShadowTables,
    /// The task fails when a tool starts on a selected table.
    Fail,
}

/// Name patterns of the tools' tables (regular expressions matched against
/// the whole name, capturing the original table's name); each list left out
/// keeps the defaults (see `online_ddl`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnlineDdlTables {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trash: Option<Vec<String>>,
}

/// Capitalization of names on the destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameCase {
    #[default]
    Keep,
    Lower,
    Upper,
}

/// How long a task keeps retrying before it fails with the last error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Source or destination unreachable: minutes, 10-1440.
    #[serde(default = "default_connect_minutes")]
    pub connect_minutes: u32,
    /// Other DDL/DML failures: minutes, 1-1440, less than `connect_minutes`.
    #[serde(default = "default_other_minutes")]
    pub other_minutes: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            connect_minutes: default_connect_minutes(),
            other_minutes: default_other_minutes(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Free text; generated when absent; need not be unique.
    #[serde(default)]
    pub name: Option<String>,
    /// DTS units the task needs; also its parallelism budget.
    #[serde(default = "default_du")]
    pub du: u32,
    #[serde(default = "default_modes")]
    pub modes: Vec<SyncMode>,
    #[serde(default)]
    pub conflict_mode: ConflictMode,
    #[serde(default)]
    pub apply_consistency: ApplyConsistency,
    /// Schema on the destination holding checkpoints and the owner epoch.
    #[serde(default = "default_meta_schema")]
    pub meta_schema: String,
    pub source: Endpoint,
    pub destination: Endpoint,
    #[serde(default)]
    pub objects: Vec<ObjectSelector>,
    /// Batch mappings, each also selecting what it matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteRule>,
    /// Capitalization of every database and table name on the destination.
    #[serde(default, skip_serializing_if = "is_keep")]
    pub name_case: NameCase,
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Write a heartbeat row on the source every second (in `meta_schema` there),
    /// so replication latency stays truthful while the source is idle. Needs
    /// write privileges on the source.
    #[serde(default)]
    pub source_heartbeat: bool,
    /// Whether the full copy's rows go to the destination's binlog. `false`
    /// copies with `sql_log_bin = 0` (needs SUPER or BINLOG ADMIN there), as
    /// myloader does by default: faster, but replicas of the destination and
    /// tasks reading its binlog never see the copied rows. Schema, catch-up
    /// and incremental writes are always logged.
    #[serde(default = "default_full_sync_binlog")]
    pub full_sync_binlog: bool,
    /// When the triggers of databases selected whole are created.
    #[serde(default, skip_serializing_if = "is_with_schema")]
    pub triggers: TriggerMethod,
    /// Accounts created on the destination with their grants (schema sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<crate::accounts::AccountSelection>,
    /// What online schema change tools' tables and cut-overs become.
    #[serde(default, skip_serializing_if = "is_follow")]
    pub online_ddl: OnlineDdlMethod,
    /// Which tables are the tools'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_ddl_tables: Option<OnlineDdlTables>,
    /// `two_way`: this file makes a pair of tasks (see `topology`).
    #[serde(default, skip_serializing_if = "is_one_way")]
    pub topology: Topology,
    /// Set by dts on the reverse task of a two-way pair: the forward task's
    /// id. Its DDL comes from the forward task only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse_of: Option<String>,
    /// How changes that find the destination other than the source had it
    /// are settled (see `conflict`).
    #[serde(
        default,
        skip_serializing_if = "crate::conflict::ConflictSettings::is_default"
    )]
    pub conflicts: crate::conflict::ConflictSettings,
    /// Notifications the coordinator sends about the task (see `alerts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<crate::alerts::AlertSettings>,
    /// Whether the worker compares the destination with the source while the
    /// task runs (see the worker's `verify`).
    #[serde(default, skip_serializing_if = "is_verify_off")]
    pub verify: VerifyMode,
    /// Precheck alerts the user acknowledged (see `precheck::ALERTS`;
    /// "all" for every one): they do not block the start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_alerts: Vec<String>,
}

/// What data verification a task runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyMode {
    /// Only when asked (`dtsctl task verify ID --run`).
    #[default]
    Off,
    /// One pass over every table, chunk by chunk, once the copy is in (and
    /// whenever asked).
    Full,
    /// The rows each applied transaction changed, re-read on both sides
    /// after a delay.
    Incremental,
    /// Both of the above.
    Both,
}

impl VerifyMode {
    pub fn full(self) -> bool {
        matches!(self, Self::Full | Self::Both)
    }

    pub fn incremental(self) -> bool {
        matches!(self, Self::Incremental | Self::Both)
    }
}

fn is_verify_off(mode: &VerifyMode) -> bool {
    *mode == VerifyMode::Off
}

/// The shape a task file asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topology {
    /// One task: source to destination (and chains and fans of such).
    #[default]
    OneWay,
    /// A forward task as written and its reverse, carrying changes back.
    TwoWay,
}

fn is_one_way(topology: &Topology) -> bool {
    *topology == Topology::OneWay
}

fn is_follow(method: &OnlineDdlMethod) -> bool {
    *method == OnlineDdlMethod::FollowOriginalDdl
}

fn is_with_schema(method: &TriggerMethod) -> bool {
    *method == TriggerMethod::WithSchema
}

pub const MAX_DU: u32 = 1024;

fn default_route_table() -> String {
    "*".to_string()
}
fn is_keep(case: &NameCase) -> bool {
    *case == NameCase::Keep
}
fn default_port() -> u16 {
    3306
}
fn default_full_sync_binlog() -> bool {
    true
}
fn default_du() -> u32 {
    2
}
fn default_modes() -> Vec<SyncMode> {
    vec![SyncMode::Incremental]
}
fn default_meta_schema() -> String {
    "dts_meta".to_string()
}
fn default_connect_minutes() -> u32 {
    720
}
fn default_other_minutes() -> u32 {
    10
}

/// Each name is a precheck alert (or "all").
pub fn validate_ignore_alerts(field: &str, names: &[String]) -> Result<(), SpecError> {
    for (i, name) in names.iter().enumerate() {
        if name != "all" && !crate::precheck::ALERTS.contains(&name.as_str()) {
            return Err(SpecError::new(
                format!("{field}[{i}]"),
                format!(
                    "`{name}` is not a precheck alert; alerts are {} (or \"all\")",
                    crate::precheck::ALERTS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

impl TaskSpec {
    /// Parses and validates a task file.
    pub fn from_toml(text: &str) -> Result<Self, SpecError> {
        let deserializer = toml::Deserializer::new(text);
        let spec: TaskSpec = serde_path_to_error::deserialize(deserializer)
            .map_err(|e| toml_error_to_spec_error(text, e))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the rules types cannot express. Returns the first violation.
    pub fn validate(&self) -> Result<(), SpecError> {
        if let Some(name) = &self.name {
            if name.trim().is_empty() {
                return Err(SpecError::new("name", "must not be empty when given"));
            }
            if name.chars().count() > 128 {
                return Err(SpecError::new("name", "must be at most 128 characters"));
            }
        }
        if self.du == 0 || self.du > MAX_DU {
            return Err(SpecError::new(
                "du",
                format!("must be between 1 and {MAX_DU}"),
            ));
        }
        validate_ignore_alerts("ignore_alerts", &self.ignore_alerts)?;
        if self.modes.is_empty() {
            return Err(SpecError::new(
                "modes",
                "must name at least one of \"schema\", \"full\", \"incremental\"",
            ));
        }
        let distinct: BTreeSet<_> = self.modes.iter().collect();
        if distinct.len() != self.modes.len() {
            return Err(SpecError::new("modes", "lists a mode twice"));
        }
        validate_identifier("meta_schema", &self.meta_schema)?;
        validate_endpoint("source", &self.source)?;
        validate_endpoint("destination", &self.destination)?;
        if let Some(accounts) = &self.accounts {
            accounts.named()?;
        }
        if self.topology == Topology::TwoWay {
            crate::topology::validate_two_way(self)?;
        } else if self.reverse_of.is_some() {
            return Err(SpecError::new(
                "reverse_of",
                "is set by dts on the reverse task of topology = \"two_way\"",
            ));
        }
        // One server on both sides is fine: the route refuses what would
        // be synced onto itself.
        crate::route::Route::compile(self)?;
        crate::conflict::ConflictRules::compile(self)?;
        if let Some(alerts) = &self.alerts {
            alerts.validate()?;
        }
        self.validate_retry()
    }

    fn validate_retry(&self) -> Result<(), SpecError> {
        let retry = &self.retry;
        if !(10..=1440).contains(&retry.connect_minutes) {
            return Err(SpecError::new(
                "retry.connect_minutes",
                "must be between 10 and 1440",
            ));
        }
        if !(1..=1440).contains(&retry.other_minutes) {
            return Err(SpecError::new(
                "retry.other_minutes",
                "must be between 1 and 1440",
            ));
        }
        if retry.other_minutes >= retry.connect_minutes {
            return Err(SpecError::new(
                "retry.other_minutes",
                format!(
                    "must be smaller than retry.connect_minutes ({})",
                    retry.connect_minutes
                ),
            ));
        }
        Ok(())
    }

    pub fn has_mode(&self, mode: SyncMode) -> bool {
        self.modes.contains(&mode)
    }

    /// The spec with passwords replaced, for display.
    pub fn redacted(&self) -> Self {
        let mut copy = self.clone();
        for endpoint in [&mut copy.source, &mut copy.destination] {
            if !endpoint.password.is_empty() {
                endpoint.password = "<redacted>".to_string();
            }
        }
        copy.alerts = copy.alerts.map(|a| a.redacted());
        copy
    }
}

pub(crate) fn validate_endpoint(prefix: &str, endpoint: &Endpoint) -> Result<(), SpecError> {
    if endpoint.host.trim().is_empty() {
        return Err(SpecError::new(
            format!("{prefix}.host"),
            "must not be empty",
        ));
    }
    if endpoint.port == 0 {
        return Err(SpecError::new(
            format!("{prefix}.port"),
            "must be between 1 and 65535",
        ));
    }
    if endpoint.user.is_empty() {
        return Err(SpecError::new(
            format!("{prefix}.user"),
            "must not be empty",
        ));
    }
    let sources = [
        !endpoint.password.is_empty(),
        endpoint.password_file.is_some(),
        endpoint.password_env.is_some(),
    ];
    if sources.iter().filter(|given| **given).count() > 1 {
        return Err(SpecError::new(
            format!("{prefix}.password"),
            "give one of password, password_file and password_env",
        ));
    }
    for (field, value) in [
        ("password_file", &endpoint.password_file),
        ("password_env", &endpoint.password_env),
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err(SpecError::new(
                format!("{prefix}.{field}"),
                "must not be empty when given",
            ));
        }
    }
    if endpoint.tls.ca.is_some() && !endpoint.tls.enabled {
        return Err(SpecError::new(
            format!("{prefix}.tls.ca"),
            "is set but tls.enabled is false",
        ));
    }
    Ok(())
}

pub(crate) fn toml_error_to_spec_error(
    text: &str,
    err: serde_path_to_error::Error<toml::de::Error>,
) -> SpecError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let message = inner.message().to_string();
    let line = inner
        .span()
        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    // serde reports a missing field at its parent; name the field itself.
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'));
    let field = match (missing, path.as_str()) {
        (Some(name), "." | "") => name.to_string(),
        (Some(name), parent) => format!("{parent}.{name}"),
        (None, "." | "") => "(file)".to_string(),
        (None, p) => p.to_string(),
    };
    let reason = match (missing, line) {
        (Some(_), _) => "is required".to_string(),
        (None, Some(line)) => format!("{message} (line {line})"),
        (None, None) => message,
    };
    SpecError::new(field, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
        name = "orders"
        du = 4
        modes = ["schema", "full", "incremental"]
        [source]
        host = "10.0.0.1"
        user = "dts"
        password = "secret"
        [destination]
        host = "10.0.0.2"
        port = 3307
        user = "dts"
        [[objects]]
        database = "shop"
        tables = ["orders", "customers"]
    "#;

    fn error_of(text: &str) -> SpecError {
        match TaskSpec::from_toml(text) {
            Ok(spec) => panic!("expected an error, parsed {spec:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn valid_file_parses_with_defaults() {
        let spec = TaskSpec::from_toml(VALID).expect("valid spec");
        assert_eq!(spec.du, 4);
        assert_eq!(spec.source.port, 3306);
        assert_eq!(spec.destination.port, 3307);
        assert_eq!(spec.meta_schema, "dts_meta");
        assert_eq!(spec.conflict_mode, ConflictMode::PrecheckError);
        assert_eq!(spec.apply_consistency, ApplyConsistency::Transaction);
        assert!(spec.full_sync_binlog);
        assert_eq!(spec.retry, RetryPolicy::default());
        assert!(spec.has_mode(SyncMode::Full));
    }

    #[test]
    fn apply_consistency_is_read_and_a_wrong_one_names_the_field() {
        let row = VALID.replace("du = 4", "du = 4\napply_consistency = \"row\"");
        let spec = TaskSpec::from_toml(&row).expect("valid spec");
        assert_eq!(spec.apply_consistency, ApplyConsistency::Row);
        let err = error_of(&VALID.replace("du = 4", "du = 4\napply_consistency = \"rows\""));
        assert_eq!(err.field, "apply_consistency");
        assert!(err.reason.contains("transaction"), "{err}");
    }

    #[test]
    fn full_sync_binlog_is_read_and_a_wrong_one_names_the_field() {
        let off = VALID.replace("du = 4", "du = 4\nfull_sync_binlog = false");
        let spec = TaskSpec::from_toml(&off).expect("valid spec");
        assert!(!spec.full_sync_binlog);
        let err = error_of(&VALID.replace("du = 4", "du = 4\nfull_sync_binlog = \"no\""));
        assert_eq!(err.field, "full_sync_binlog");
    }

    #[test]
    fn wrong_type_names_nested_field() {
        let err = error_of(&VALID.replace("port = 3307", "port = \"x\""));
        assert_eq!(err.field, "destination.port");
        assert!(err.reason.contains("line"), "{err}");
    }

    #[test]
    fn out_of_range_port_names_field() {
        assert_eq!(
            error_of(&VALID.replace("port = 3307", "port = 70000")).field,
            "destination.port"
        );
        assert_eq!(
            error_of(&VALID.replace("port = 3307", "port = 0")).field,
            "destination.port"
        );
    }

    #[test]
    fn missing_field_names_the_field_itself() {
        let err = error_of(&VALID.replace("host = \"10.0.0.1\"", ""));
        assert_eq!(err.field, "source.host");
        assert_eq!(err.reason, "is required");
        let err = error_of(
            &VALID
                .replace("[[objects]]", "[[nothing]]")
                .replace("database = \"shop\"", ""),
        );
        assert_eq!(err.field, "nothing", "unknown table is reported: {err}");
    }

    #[test]
    fn unknown_field_is_rejected() {
        let err = error_of(&VALID.replace("du = 4", "du = 4\nparalel = 3"));
        assert!(err.reason.contains("unknown field `paralel`"), "{err}");
    }

    #[test]
    fn unknown_mode_names_the_list_element() {
        let err = error_of(&VALID.replace("\"schema\", \"full\"", "\"schema\", \"fulll\""));
        assert_eq!(err.field, "modes[1]");
    }

    #[test]
    fn semantic_rules_name_their_field() {
        let cases = [
            (VALID.replace("du = 4", "du = 0"), "du"),
            (
                VALID.replace(
                    "modes = [\"schema\", \"full\", \"incremental\"]",
                    "modes = []",
                ),
                "modes",
            ),
            (
                VALID.replace("\"schema\", \"full\"", "\"full\", \"full\""),
                "modes",
            ),
            (
                VALID
                    .replace("10.0.0.2", "10.0.0.1")
                    .replace("port = 3307", "port = 3306"),
                "objects[0].tables[0]",
            ),
            (
                VALID.replace("database = \"shop\"", "database = \"mysql\""),
                "objects[0].database",
            ),
            (
                VALID.replace("\"orders\", \"customers\"", "\"orders\", \"orders\""),
                "objects[0].tables[1]",
            ),
            (
                VALID.replace(
                    "user = \"dts\"\n        password",
                    "user = \"\"\n        password",
                ),
                "source.user",
            ),
            (
                format!("{VALID}\n[retry]\nconnect_minutes = 5"),
                "retry.connect_minutes",
            ),
            (
                format!("{VALID}\n[retry]\nother_minutes = 0"),
                "retry.other_minutes",
            ),
            (
                format!("{VALID}\n[retry]\nconnect_minutes = 30\nother_minutes = 30"),
                "retry.other_minutes",
            ),
            (
                format!("{VALID}\n[[objects]]\ndatabase = \"shop\""),
                "objects[1].database",
            ),
            (
                format!("{VALID}\n[[objects]]\ndatabase = \"dts_meta\""),
                "objects[1].database",
            ),
        ];
        for (text, field) in cases {
            assert_eq!(error_of(&text).field, field, "for {text}");
        }
    }

    #[test]
    fn no_objects_is_rejected() {
        let text = VALID.split("[[objects]]").next().unwrap_or_default();
        assert_eq!(error_of(text).field, "objects");
    }

    #[test]
    fn syntax_error_reports_line() {
        let err = error_of("name = \"x\"\ndu = = 3\n");
        assert_eq!(err.field, "(file)");
        assert!(err.reason.contains("line 2"), "{err}");
    }

    #[test]
    fn redaction_hides_passwords_only() {
        let spec = TaskSpec::from_toml(VALID).expect("valid");
        let shown = spec.redacted();
        assert_eq!(shown.source.password, "<redacted>");
        assert_eq!(shown.destination.password, "");
        assert!(!format!("{spec:?}").contains("secret"));
    }
}
