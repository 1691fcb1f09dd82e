//! Each subcommand: one call through the leader-aware client, then rendering.

use crate::render::{self, print_json, write_stdout};
use crate::{Cli, ClusterCommand, Command, ConnectionCommand, Output, TaskCommand, WorkerCommand};
use dts_common::client::CallPolicy;
use dts_common::tls::Transport;
use dts_common::{CoordinatorClient, TaskSpec};
use dts_proto::pb;
use dts_proto::pb::admin_client::AdminClient;
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::Channel;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Client(#[from] dts_common::ClientError),
    #[error("cannot read task file {path}: {source}")]
    ReadFile {
        path: String,
        source: std::io::Error,
    },
    #[error("task file {path}: invalid {0}", path = .1)]
    InvalidSpec(dts_common::SpecError, String),
    #[error("{}", describe(.0))]
    Rpc(#[from] tonic::Status),
    #[error("{0}\n({1})")]
    Unreached(String, &'static str),
    #[error("task {0} has no precheck report yet (its worker has not started it)")]
    NoPrecheck(String),
    #[error("give a task id or -f FILE")]
    PrecheckWhat,
    #[error(
        "the task would not start: {failed} failed, {alerts} alerts not acknowledged \
         (ignore_alerts in the task file, or task start --ignore-alert NAME)"
    )]
    PrecheckBlocks { failed: usize, alerts: usize },
    #[error(transparent)]
    Cert(#[from] crate::cert::CertError),
    #[error(transparent)]
    Tls(#[from] dts_common::tls::TlsError),
    #[error(
        "task file {0} names a connection profile, which only the cluster resolves: \
         check the profile with `dtsctl connection test NAME`, or create the task and \
         read `dtsctl task precheck ID` after its start"
    )]
    PrecheckProfile(String),
    #[error("{0} failed: {1}")]
    ConnectionTest(String, String),
}

fn describe(status: &tonic::Status) -> String {
    // A refused handshake or a dropped connection hides in the sources of a
    // bare "transport error".
    let mut detail = status.message().to_string();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !detail.contains(&text) {
            detail = format!("{detail}: {text}");
        }
        source = cause.source();
    }
    if is_transport_failure(status) {
        format!("no coordinator could serve the request: {detail}")
    } else {
        detail
    }
}

/// The call never reached a service: no connection, one the other side
/// closed (a refused handshake looks like that from here), or HTTP/2 spoken
/// in plaintext to a TLS port.
fn is_transport_failure(status: &tonic::Status) -> bool {
    let code = status.code();
    let sourced = matches!(
        code,
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    ) && std::error::Error::source(status).is_some();
    sourced || (code == tonic::Code::Internal && status.message().contains("h2 protocol error"))
}

/// What a user should check when no coordinator answered.
fn transport_hint(tls: bool, detail: &str) -> &'static str {
    if detail.contains("Connection refused") || detail.contains("dns error") {
        "nothing listens at the --coordinators (DTS_COORDINATORS) addresses"
    } else if tls {
        "with TLS, a coordinator closes the connection of a client whose certificate the \
         cluster CA did not sign or that expired (its log says `TLS handshake refused` with \
         this address); check --tls-ca/--tls-cert/--tls-key (DTS_TLS_*)"
    } else {
        "with --insecure, only coordinators started with --insecure answer: a cluster running \
         TLS needs --tls-ca, --tls-cert and --tls-key (DTS_TLS_*)"
    }
}

macro_rules! admin_call {
    ($client:expr, $method:ident, $request:expr) => {{
        let request = $request;
        $client
            .call(|channel: Channel| {
                let request = request.clone();
                async move { AdminClient::new(channel).$method(request).await }
            })
            .await?
    }};
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    if let Command::Cert(cmd) = cli.command {
        return Ok(crate::cert::run(cmd)?);
    }
    let transport = Transport::from_settings(&cli.tls.files(), cli.tls.insecure)?;
    let tls = transport.is_tls();
    let client = CoordinatorClient::from_list(&cli.coordinators, CallPolicy::default(), transport)?;
    match dispatch(&client, cli.output, cli.command).await {
        Err(CliError::Rpc(status)) if is_transport_failure(&status) => {
            let detail = describe(&status);
            let hint = transport_hint(tls, &detail);
            Err(CliError::Unreached(detail, hint))
        }
        other => other,
    }
}

async fn dispatch(
    client: &CoordinatorClient,
    out: Output,
    command: Command,
) -> Result<(), CliError> {
    match command {
        Command::Cluster(cmd) => cluster(client, out, cmd).await,
        Command::Worker(cmd) => worker(client, out, cmd).await,
        Command::Task(cmd) => task(client, out, cmd).await,
        Command::Connection(cmd) => connection(client, out, cmd).await,
        Command::Cert(_) => Ok(()),
    }
}

async fn connection(
    client: &CoordinatorClient,
    out: Output,
    cmd: ConnectionCommand,
) -> Result<(), CliError> {
    match cmd {
        ConnectionCommand::Create { file, replace } => {
            let path = file.display().to_string();
            let text = std::fs::read_to_string(&file).map_err(|source| CliError::ReadFile {
                path: path.clone(),
                source,
            })?;
            dts_common::connection::profile_from_toml(&text)
                .map_err(|e| CliError::InvalidSpec(e, path))?;
            let request = pb::CreateConnectionRequest {
                profile_toml: text,
                replace,
            };
            let info = admin_call!(client, create_connection, request);
            emit(out, &info, render::connection_detail)
        }
        ConnectionCommand::List => {
            let response = admin_call!(client, list_connections, pb::ListConnectionsRequest {});
            emit(out, &response, |r| render::connections(&r.connections))
        }
        ConnectionCommand::Show { name } => {
            let info = admin_call!(client, get_connection, pb::GetConnectionRequest { name });
            emit(out, &info, render::connection_detail)
        }
        ConnectionCommand::Delete { name } => {
            let response = admin_call!(
                client,
                delete_connection,
                pb::DeleteConnectionRequest { name }
            );
            emit(out, &response, |r| {
                format!("deleted connection {}\n", r.name)
            })
        }
        ConnectionCommand::Test { name } => {
            let response = admin_call!(
                client,
                test_connection,
                pb::TestConnectionRequest { name: name.clone() }
            );
            emit(out, &response, render::connection_test)?;
            if response.ok {
                Ok(())
            } else {
                let failed = response
                    .items
                    .iter()
                    .find(|i| !i.passed)
                    .map(|i| format!("{}: {}", i.name, i.detail))
                    .unwrap_or_else(|| "no check ran".into());
                Err(CliError::ConnectionTest(
                    format!("connection {name}"),
                    failed,
                ))
            }
        }
    }
}

async fn cluster(
    client: &CoordinatorClient,
    out: Output,
    cmd: ClusterCommand,
) -> Result<(), CliError> {
    match cmd {
        ClusterCommand::Status => {
            let status = admin_call!(client, cluster_status, pb::ClusterStatusRequest {});
            emit(out, &status, render::cluster_status)
        }
        ClusterCommand::AddCoordinator {
            id,
            address,
            learner,
        } => {
            let request = pb::AddCoordinatorRequest {
                id,
                address,
                learner_only: learner,
            };
            let response = admin_call!(client, add_coordinator, request);
            emit(out, &response, |r| render::coordinators(&r.coordinators, 0))
        }
        ClusterCommand::RemoveCoordinator { id } => {
            let response = admin_call!(
                client,
                remove_coordinator,
                pb::RemoveCoordinatorRequest { id }
            );
            emit(out, &response, |r| render::coordinators(&r.coordinators, 0))
        }
    }
}

async fn worker(
    client: &CoordinatorClient,
    out: Output,
    cmd: WorkerCommand,
) -> Result<(), CliError> {
    match cmd {
        WorkerCommand::List => {
            let response = admin_call!(client, list_workers, pb::ListWorkersRequest {});
            emit(out, &response, |r| render::workers(&r.workers))
        }
        WorkerCommand::Drain { id } => {
            let worker = admin_call!(
                client,
                drain_worker,
                pb::DrainWorkerRequest { worker_id: id }
            );
            emit(out, &worker, |w| render::workers(std::slice::from_ref(w)))
        }
    }
}

async fn task(client: &CoordinatorClient, out: Output, cmd: TaskCommand) -> Result<(), CliError> {
    let control = |id: String, action: pb::TaskAction| pb::ControlTaskRequest {
        task_id: id,
        action: action as i32,
        ignore_alerts: Vec::new(),
    };
    match cmd {
        TaskCommand::Create { file, start } => {
            let path = file.display().to_string();
            let text = std::fs::read_to_string(&file).map_err(|source| CliError::ReadFile {
                path: path.clone(),
                source,
            })?;
            // Checked here too, so a broken file is reported even with no
            // cluster up (profiles are the cluster's: stood in for here).
            dts_common::connection::spec_with_connections(
                &text,
                dts_common::connection::placeholder,
            )
            .map_err(|e| CliError::InvalidSpec(e, path))?;
            let request = pb::CreateTaskRequest {
                spec_toml: text,
                start,
            };
            let task = admin_call!(client, create_task, request);
            emit(out, &task, render::task_detail)
        }
        TaskCommand::List => {
            let response = admin_call!(client, list_tasks, pb::ListTasksRequest {});
            emit(out, &response, |r| render::tasks(&r.tasks))
        }
        TaskCommand::Show { task, watch } => loop {
            let info = admin_call!(
                client,
                get_task,
                pb::GetTaskRequest {
                    task_id: task.id.clone()
                }
            );
            if watch && out == Output::Table {
                write_stdout("\x1b[2J\x1b[H");
            }
            emit(out, &info, render::task_detail)?;
            if !watch {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        },
        TaskCommand::Conflicts(t) => {
            let info = admin_call!(client, get_task, pb::GetTaskRequest { task_id: t.id });
            let progress = progress_of(&info);
            let summary = match &progress["conflicts"] {
                serde_json::Value::Null => serde_json::json!({ "total": 0 }),
                summary => summary.clone(),
            };
            emit(out, &summary, render::conflicts)
        }
        TaskCommand::Verify {
            task,
            run,
            wait,
            fix,
        } => {
            let before = verify_summary(client, &task.id).await?;
            let before_pass = before["pass"].as_u64().unwrap_or(0);
            if run {
                admin_call!(
                    client,
                    control_task,
                    control(task.id.clone(), pb::TaskAction::Verify)
                );
            }
            let summary = loop {
                let summary = verify_summary(client, &task.id).await?;
                let pass = summary["pass"].as_u64().unwrap_or(0);
                let done = summary["status"].as_str() == Some("done");
                // Asked for: a pass after the one there was; otherwise
                // the one under way.
                let arrived = if run { pass > before_pass } else { pass > 0 };
                // Without --run and before any pass there is nothing to wait for.
                let nothing = !run && pass == 0;
                if !wait || nothing || (arrived && done) {
                    break summary;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            };
            match (fix, out) {
                (true, Output::Table) => write_stdout(&render::verify_fix(&summary)),
                _ => emit(out, &summary, render::verify)?,
            }
            Ok(())
        }
        TaskCommand::Precheck { id, file } => precheck(client, out, id, file).await,
        TaskCommand::Start(t) => {
            let request = pb::ControlTaskRequest {
                ignore_alerts: t.ignore_alerts,
                ..control(t.task.id, pb::TaskAction::Start)
            };
            let info = admin_call!(client, control_task, request);
            emit(out, &info, render::task_line)
        }
        TaskCommand::Pause(t) => {
            let info = admin_call!(client, control_task, control(t.id, pb::TaskAction::Pause));
            emit(out, &info, render::task_line)
        }
        TaskCommand::Resume(t) => {
            let request = pb::ControlTaskRequest {
                ignore_alerts: t.ignore_alerts,
                ..control(t.task.id, pb::TaskAction::Resume)
            };
            let info = admin_call!(client, control_task, request);
            emit(out, &info, render::task_line)
        }
        TaskCommand::Stop(t) => {
            let info = admin_call!(client, control_task, control(t.id, pb::TaskAction::Stop));
            emit(out, &info, render::task_line)
        }
        TaskCommand::Delete(t) => {
            let response =
                admin_call!(client, delete_task, pb::DeleteTaskRequest { task_id: t.id });
            emit(out, &response, |r| format!("deleted task {}\n", r.task_id))
        }
    }
}

/// The task's last progress report (`null` before any).
fn progress_of(info: &pb::TaskInfo) -> serde_json::Value {
    info.checkpoint
        .as_ref()
        .and_then(|c| serde_json::from_str(&c.position).ok())
        .unwrap_or_default()
}

/// A task file's prechecks, run from here, or a task's last ones. Fails
/// (after printing the report) when the task would not start.
async fn precheck(
    client: &CoordinatorClient,
    out: Output,
    id: Option<String>,
    file: Option<PathBuf>,
) -> Result<(), CliError> {
    let report: dts_common::precheck::Report = match (id, file) {
        (_, Some(file)) => {
            let path = file.display().to_string();
            let text = std::fs::read_to_string(&file).map_err(|source| CliError::ReadFile {
                path: path.clone(),
                source,
            })?;
            if dts_common::connection::uses_connections(&text) {
                return Err(CliError::PrecheckProfile(path));
            }
            let spec = TaskSpec::from_toml(&text).map_err(|e| CliError::InvalidSpec(e, path))?;
            dts_worker::phases::precheck::report_for(&spec).await
        }
        (Some(id), None) => {
            let info = admin_call!(client, get_task, pb::GetTaskRequest { task_id: id });
            let progress = progress_of(&info);
            match serde_json::from_value(progress["precheck"].clone()) {
                Ok(report) => report,
                Err(_) => return Err(CliError::NoPrecheck(info.id)),
            }
        }
        (None, None) => return Err(CliError::PrecheckWhat),
    };
    emit(out, &report, render::precheck)?;
    if report.passes() {
        Ok(())
    } else {
        Err(CliError::PrecheckBlocks {
            failed: report.failures().count(),
            alerts: report.open_alerts().count(),
        })
    }
}

/// The `verify` part of the task's last progress report (`{}` before any pass).
async fn verify_summary(
    client: &CoordinatorClient,
    id: &str,
) -> Result<serde_json::Value, CliError> {
    let info = admin_call!(
        client,
        get_task,
        pb::GetTaskRequest {
            task_id: id.to_string()
        }
    );
    let progress = progress_of(&info);
    Ok(match &progress["verify"] {
        serde_json::Value::Null => serde_json::json!({}),
        summary => summary.clone(),
    })
}

fn emit<T: serde::Serialize>(
    out: Output,
    value: &T,
    table: impl FnOnce(&T) -> String,
) -> Result<(), CliError> {
    match out {
        Output::Json => print_json(value),
        Output::Table => write_stdout(&table(value)),
    }
    Ok(())
}
