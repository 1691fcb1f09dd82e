//! What can go wrong while a task syncs, said precisely, and what the runtime
//! does about it: retry within the task's windows, fail the task, or stop
//! because another worker owns it now.

use std::fmt;

/// Which database an error concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Destination => "destination",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{side} {address} is unreachable: {detail}")]
    Unreachable {
        side: Side,
        address: String,
        detail: String,
    },
    #[error("{side}: access denied for user `{user}`: {detail}")]
    AccessDenied {
        side: Side,
        user: String,
        detail: String,
    },
    #[error("{side}: user `{user}` lacks a privilege: {detail}")]
    MissingPrivilege {
        side: Side,
        user: String,
        detail: String,
    },
    #[error("{side}: TLS failed: {detail}")]
    Tls { side: Side, detail: String },
    #[error("{side}: no password: {detail}")]
    Password { side: Side, detail: String },
    #[error(
        "source: the binary log is disabled (log_bin = OFF); incremental and full sync need it"
    )]
    BinlogDisabled,
    #[error("source: binlog_format is {0}; dts needs ROW (SET GLOBAL binlog_format = 'ROW')")]
    BinlogFormat(String),
    #[error(
        "source: binlog_row_image is {0}; dts needs FULL (SET GLOBAL binlog_row_image = 'FULL')"
    )]
    BinlogRowImage(String),
    #[error(
        "source: the rows event for `{db}`.`{table}` ending at binlog position {position} has a \
         partial row image (binlog_row_image MINIMAL or NOBLOB, set globally or by the session \
         that wrote it); dts needs FULL images, or it would write the columns they leave out as \
         NULL: set binlog_row_image = 'FULL' everywhere, and create the task again (this change \
         cannot be applied exactly)"
    )]
    PartialRowImage {
        db: String,
        table: String,
        position: String,
    },
    #[error(
        "source: a statement-logged {verb} at binlog position {position} (`{statement}`, from \
         a session with binlog_format STATEMENT or MIXED) touches a database this task syncs; \
         its rows are not in the binlog, so dts cannot apply it exactly, and skipping it would \
         lose it: keep binlog_format = 'ROW' for every session, and create the task again"
    )]
    StatementLoggedDml {
        verb: String,
        statement: String,
        position: String,
    },
    #[error(
        "source: a two-phase XA transaction changed `{db}`.`{table}` (its XA END ends at binlog \
         position {position}); whether it commits comes in a later event group, and dts does not \
         apply two-phase XA transactions: commit them in one phase (XA COMMIT ... ONE PHASE) or \
         keep them off the synced tables, and create the task again"
    )]
    TwoPhaseXa {
        db: String,
        table: String,
        position: String,
    },
    #[error("source: binlog position {position} is no longer available (purged from the source?): {detail}")]
    BinlogPurged { position: String, detail: String },
    #[error("source: database `{0}` does not exist")]
    MissingDatabase(String),
    #[error("source: table `{db}`.`{table}` does not exist")]
    MissingTable { db: String, table: String },
    #[error(
        "source: table `{db}`.`{table}` has neither a primary key nor a unique key on NOT NULL columns; \
         dts cannot apply its changes exactly once (add a primary key, or leave the table out of the task)"
    )]
    NoKey { db: String, table: String },
    #[error(
        "source: foreign key `{constraint}` of `{db}`.`{table}` references `{parent}` with {rule}; \
         what a cascade changes is not written to the binlog, and dts does not redo cascades, \
         so incremental sync would leave `{table}`'s rows behind: make the key RESTRICT or \
         NO ACTION (deleting or updating the child rows first), or leave `{db}`.`{table}` out \
         of the task"
    )]
    CascadingForeignKey {
        db: String,
        table: String,
        constraint: String,
        parent: String,
        rule: String,
    },
    #[error("task spec: {0}")]
    InvalidSpec(dts_common::SpecError),
    /// Prechecks that failed (one: its own error's text); `dtsctl task
    /// precheck ID` lists every item.
    #[error("{0}")]
    PrecheckFailed(String),
    #[error("precheck alerts not acknowledged: {0}")]
    PrecheckAlerts(String),
    /// The destination of a two-way pair is the reverse task's source:
    /// its binlog must be what incremental sync reads.
    #[error(
        "destination: the reverse task of this two-way pair reads this server's binlog, and {0}"
    )]
    ReverseSourceBinlog(String),
    /// A change met the destination other than the source had it, and the
    /// table's conflict policy is `fail` (see `sink::conflict`).
    #[error("destination: {0}")]
    Conflict(String),
    #[error("source: {0}")]
    RouteConflict(dts_common::route::RouteConflict),
    #[error(
        "route: {first} and {second} both map onto destination table {target} ({first_claim} \
         and {second_claim}); merging tables into one is asked for with a [[routes]] rule, \
         otherwise give one of them another name with `to`"
    )]
    TargetCollision {
        target: String,
        first: String,
        second: String,
        first_claim: String,
        second_claim: String,
    },
    #[error(
        "route: source and destination are one server, and {source_table} ({claim}) would be \
         synced onto {target}, which is {what}; give it another name with `to`"
    )]
    OntoItself {
        source_table: String,
        claim: String,
        target: String,
        what: &'static str,
    },
    #[error(
        "source: `{statement}` at binlog position {position} cannot be followed through the \
         task's route: {reason}"
    )]
    UnmappableDdl {
        statement: String,
        position: String,
        reason: String,
    },
    #[error(
        "source: `{statement}` at binlog position {position} starts an online schema change of \
         selected table {table} (online_ddl = \"fail\"); the task stops before it. To follow \
         such changes, create the task again with online_ddl = \"follow_original_ddl\" or \
         \"copy_shadow_tables\""
    )]
    OnlineDdlRefused {
        statement: String,
        position: String,
        table: String,
    },
    #[error(
        "source: {shadow} is an online schema change tool's shadow table of selected table \
         {table}: a change is in progress, and the ALTER the tool ran on {shadow} is older \
         than the task's first binlog position, so the task could not follow it. Start the \
         task when the tool has finished (drop {shadow} if no tool runs any more), or set \
         online_ddl = \"copy_shadow_tables\""
    )]
    OnlineDdlInProgress { shadow: String, table: String },
    #[error(
        "source: table {table} is named like an online schema change tool's table of {origin}, \
         which does not exist, and would not be synced; name it in its [[objects]] entry's \
         tables to sync it as a table, or set online_ddl_tables to patterns it does not match"
    )]
    LooksLikeToolTable { table: String, origin: String },
    #[error(
        "destination: `{statement}` (binlog position {position}) failed as already applied, \
         but {table} is not what it leaves: expected {expected}; found {found}. Something \
         other than this task changed the destination table: make it match the source's, \
         or drop it, and start the task again"
    )]
    DdlOutcomeDiffers {
        statement: String,
        position: String,
        table: String,
        expected: String,
        found: String,
    },
    #[error(
        "source: the server is a replica (of {primary}) with log_slave_updates = OFF: what it \
         replicates is not in its binlog, so dts would never see those changes; set \
         log_slave_updates = ON on it (a restart), or read from the primary"
    )]
    ReplicaWithoutLogUpdates { primary: String },
    #[error(
        "two-way: source and destination are different servers with the same server_id \
         {server_id}; the loop marker tells servers apart by server_id, so each server of a \
         two-way pair needs its own"
    )]
    SameServerId { server_id: u32 },
    #[error(
        "two-way: the destination's binlog leaves out the meta schema `{schema}` ({detail}); \
         the loop marker dts writes there must reach the binlog, or the reverse task would \
         send every change back"
    )]
    MarkerNotLogged { schema: String, detail: String },
    #[error(
        "destination: after the online schema change cut-over at binlog position {position}, \
         {table} differs from the source's table: expected {expected}; found {found}. The \
         ALTERs the tool ran on its shadow table do not make the table the shadow became \
         (was the shadow created with another definition, or changed before the task \
         started?): make the destination table match the source's and resume the task"
    )]
    CutOverDiffers {
        position: String,
        table: String,
        expected: String,
        found: String,
    },
    #[error(
        "destination: table `{db}`.`{table}` already exists (conflict_mode = \"precheck_error\"); \
         drop it, or set conflict_mode = \"ignore\" to sync into it"
    )]
    TableConflict { db: String, table: String },
    /// DDL on a table between the start of the copy (P0) and the end of
    /// its own copy: rows read after the change need not match the
    /// definition the destination had, and replaying the DDL would not fix
    /// them.
    #[error(
        "source: table `{db}`.`{table}` changed while dts copied it ({detail}); \
         dts does not support DDL on a table during its full sync: drop the task and \
         the table on the destination, and create the task again when no DDL runs on it"
    )]
    ChangedDuringCopy {
        db: String,
        table: String,
        detail: String,
    },
    #[error(
        "source: {address} is now the server with server_id {found}, not server_id {recorded} \
         whose binlog this task's positions are in; positions do not carry over to another \
         server (a replica promoted by a failover, say): create the task again against the new source"
    )]
    SourceReplaced {
        address: String,
        recorded: u32,
        found: u32,
    },
    #[error("fenced off: the destination says epoch {current} owns this task; this runtime has epoch {mine}")]
    Fenced { mine: u64, current: u64 },
    #[error("{side}: {detail} (while: {context})")]
    Query {
        side: Side,
        context: String,
        detail: String,
    },
    #[error("{side}: connection lost: {detail} (while: {context})")]
    ConnectionLost {
        side: Side,
        context: String,
        detail: String,
    },
    #[error("stopped")]
    Stopped,
    /// A defect in dts itself, said rather than left to stall the task.
    #[error("internal error in dts: {0}")]
    Internal(String),
}

/// What the runtime does with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// A database is unreachable: retry within `retry.connect_minutes`.
    RetryConnect,
    /// A statement failed: retry within `retry.other_minutes`.
    RetryOther,
    /// The task cannot go on until a person acts: mark it failed.
    Fail,
    /// Another runtime owns the task (or we were told to stop): just stop.
    Stop,
}

impl SyncError {
    pub fn disposition(&self) -> Disposition {
        match self {
            SyncError::Unreachable { .. } | SyncError::ConnectionLost { .. } => {
                Disposition::RetryConnect
            }
            SyncError::Query { .. } => Disposition::RetryOther,
            SyncError::Fenced { .. } | SyncError::Stopped => Disposition::Stop,
            _ => Disposition::Fail,
        }
    }

    /// Classifies a driver error from `side` while doing `context`.
    pub fn from_driver(side: Side, context: &str, err: mysql_async::Error) -> Self {
        match err {
            mysql_async::Error::Server(server) => match server.code {
                // ER_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR
                1045 | 1044 => SyncError::AccessDenied {
                    side,
                    user: String::new(),
                    detail: server.message,
                },
                // ER_TABLEACCESS_DENIED, ER_COLUMNACCESS_DENIED, ER_SPECIFIC_ACCESS_DENIED, ER_PROCACCESS_DENIED
                1142 | 1143 | 1227 | 1370 => SyncError::MissingPrivilege {
                    side,
                    user: String::new(),
                    detail: server.message,
                },
                // ER_SERVER_SHUTDOWN, ER_CON_COUNT_ERROR, ER_QUERY_INTERRUPTED during shutdown
                1053 | 1040 | 1927 => SyncError::ConnectionLost {
                    side,
                    context: context.to_string(),
                    detail: server.message,
                },
                _ => SyncError::Query {
                    side,
                    context: context.to_string(),
                    detail: format!(
                        "error {} ({}): {}",
                        server.code, server.state, server.message
                    ),
                },
            },
            mysql_async::Error::Io(io) => SyncError::ConnectionLost {
                side,
                context: context.to_string(),
                detail: io.to_string(),
            },
            other => SyncError::Query {
                side,
                context: context.to_string(),
                detail: other.to_string(),
            },
        }
    }
}

pub type SyncResult<T> = Result<T, SyncError>;

/// Attaches side and context to driver results.
pub trait DriverResultExt<T> {
    fn on(self, side: Side, context: &str) -> SyncResult<T>;
}

impl<T> DriverResultExt<T> for Result<T, mysql_async::Error> {
    fn on(self, side: Side, context: &str) -> SyncResult<T> {
        self.map_err(|e| SyncError::from_driver(side, context, e))
    }
}
