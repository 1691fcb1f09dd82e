//! A local dts cluster of real processes: coordinators (a Raft group on free
//! ports) and workers, each with its own temporary directory and log.

use crate::pki::TestPki;
use crate::ports::free_port;
use crate::process::{binary, Process};
use crate::wait::wait_for;
use anyhow::Context;
use dts_common::client::CallPolicy;
use dts_common::tls::{Role, Transport};
use dts_common::CoordinatorClient;
use dts_proto::pb;
use dts_proto::pb::admin_client::AdminClient;
use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;
use tonic::transport::Channel;

pub struct TestClusterBuilder {
    coordinators: usize,
    workers: Vec<u32>,
    lease_ms: u64,
    heartbeat_ms: u64,
    snapshot_every_logs: u64,
    worker_args: Vec<String>,
    metrics: bool,
    insecure: bool,
}

impl Default for TestClusterBuilder {
    fn default() -> Self {
        Self {
            coordinators: 1,
            workers: Vec::new(),
            lease_ms: 3000,
            heartbeat_ms: 500,
            snapshot_every_logs: 1000,
            worker_args: Vec::new(),
            metrics: false,
            insecure: false,
        }
    }
}

impl TestClusterBuilder {
    pub fn coordinators(mut self, n: usize) -> Self {
        self.coordinators = n;
        self
    }

    /// Adds a worker offering `du` DTS units.
    pub fn worker(mut self, du: u32) -> Self {
        self.workers.push(du);
        self
    }

    pub fn worker_lease_ms(mut self, lease_ms: u64, heartbeat_ms: u64) -> Self {
        self.lease_ms = lease_ms;
        self.heartbeat_ms = heartbeat_ms;
        self
    }

    pub fn snapshot_every_logs(mut self, n: u64) -> Self {
        self.snapshot_every_logs = n;
        self
    }

    /// Every process serves Prometheus metrics on a port of its own
    /// (`metrics_port` of each node).
    pub fn metrics(mut self) -> Self {
        self.metrics = true;
        self
    }

    /// Plaintext gRPC without authentication (`--insecure` everywhere);
    /// mTLS with a CA of the cluster's own otherwise.
    pub fn insecure(mut self) -> Self {
        self.insecure = true;
        self
    }

    /// Extra flags for every worker, e.g. `--retry-minute-ms 1000`.
    pub fn worker_args(mut self, args: &[&str]) -> Self {
        self.worker_args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Starts everything and waits for a leader and for every worker to be online.
    pub async fn start(self) -> anyhow::Result<TestCluster> {
        let dir = tempfile::Builder::new().prefix("dts-test-").tempdir()?;
        let ports: Vec<u16> = (0..self.coordinators)
            .map(|_| free_port())
            .collect::<Result<_, _>>()?;
        let members: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
            .collect();
        let pki = if self.insecure {
            None
        } else {
            Some(TestPki::create(&dir.path().join("tls"))?)
        };
        let mut cluster = TestCluster {
            pki,
            dir,
            coordinators: Vec::new(),
            workers: Vec::new(),
            lease_ms: self.lease_ms,
            heartbeat_ms: self.heartbeat_ms,
            snapshot_every_logs: self.snapshot_every_logs,
            worker_args: self.worker_args,
            metrics: self.metrics,
        };
        for (i, port) in ports.iter().enumerate() {
            let id = i as u64 + 1;
            let extra = vec!["--initial-members".to_string(), members.join(",")];
            cluster.spawn_coordinator(id, *port, extra)?;
        }
        cluster.wait_for_leader(Duration::from_secs(20)).await?;
        for du in self.workers {
            cluster.add_worker(du)?;
        }
        cluster
            .wait_for_workers_online(Duration::from_secs(20))
            .await?;
        Ok(cluster)
    }
}

pub struct CoordinatorNode {
    pub id: u64,
    pub port: u16,
    pub process: Process,
    /// Where it serves `/metrics` (see `TestClusterBuilder::metrics`).
    pub metrics_port: Option<u16>,
}

impl CoordinatorNode {
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

pub struct WorkerNode {
    pub id: String,
    pub du: u32,
    pub process: Process,
    pub metrics_port: Option<u16>,
}

pub struct TestCluster {
    /// `None` when the cluster runs `--insecure`.
    pki: Option<TestPki>,
    dir: TempDir,
    pub coordinators: Vec<CoordinatorNode>,
    pub workers: Vec<WorkerNode>,
    lease_ms: u64,
    heartbeat_ms: u64,
    snapshot_every_logs: u64,
    worker_args: Vec<String>,
    metrics: bool,
}

impl TestCluster {
    pub fn builder() -> TestClusterBuilder {
        TestClusterBuilder::default()
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Starts a coordinator process. `extra` holds `--initial-members ...` or `--join`.
    pub fn spawn_coordinator(
        &mut self,
        id: u64,
        port: u16,
        extra: Vec<String>,
    ) -> anyhow::Result<()> {
        let data_dir = self.dir.path().join(format!("coordinator-{id}"));
        let mut args = vec![
            "--id".to_string(),
            id.to_string(),
            "--listen".to_string(),
            format!("127.0.0.1:{port}"),
            "--data-dir".to_string(),
            data_dir.display().to_string(),
            "--worker-lease-ms".to_string(),
            self.lease_ms.to_string(),
            "--worker-heartbeat-ms".to_string(),
            self.heartbeat_ms.to_string(),
            "--snapshot-every-logs".to_string(),
            self.snapshot_every_logs.to_string(),
        ];
        args.extend(extra);
        match &self.pki {
            Some(pki) => {
                args.extend(pki.flags(&format!("coordinator-{id}"), Role::Peer)?);
                args.extend([
                    "--secrets-key".to_string(),
                    pki.secrets_key().display().to_string(),
                ]);
            }
            None => args.push("--insecure".to_string()),
        }
        let metrics_port = self.metrics_flag(&mut args)?;
        let log = self.dir.path().join(format!("coordinator-{id}.log"));
        let process = Process::start(
            &format!("coordinator-{id}"),
            binary("dts-coordinator")?,
            args,
            log,
        )?;
        self.coordinators.push(CoordinatorNode {
            id,
            port,
            process,
            metrics_port,
        });
        Ok(())
    }

    /// `--metrics-listen` on a free port when the cluster serves metrics.
    fn metrics_flag(&self, args: &mut Vec<String>) -> anyhow::Result<Option<u16>> {
        if !self.metrics {
            return Ok(None);
        }
        let port = free_port()?;
        args.extend(["--metrics-listen".to_string(), format!("127.0.0.1:{port}")]);
        Ok(Some(port))
    }

    /// Starts a new worker with `du` DTS units; returns its id.
    pub fn add_worker(&mut self, du: u32) -> anyhow::Result<String> {
        let coordinators = self.coordinator_list();
        self.add_worker_through(du, &coordinators)
    }

    /// Starts a worker that reaches the coordinators only at `coordinators`
    /// (e.g. fault proxies in front of them). Unless that is the cluster's own
    /// list, it never follows the addresses they advertise, which would
    /// bypass the proxies.
    pub fn add_worker_through(&mut self, du: u32, coordinators: &str) -> anyhow::Result<String> {
        let id = format!("worker-{}", self.workers.len() + 1);
        let mut args = vec![
            "--id".to_string(),
            id.clone(),
            "--address".to_string(),
            format!("test-{id}"),
            "--du".to_string(),
            du.to_string(),
            "--coordinators".to_string(),
            coordinators.to_string(),
            "--data-dir".to_string(),
            self.dir.path().join(&id).display().to_string(),
            "--report-interval-ms".to_string(),
            "300".to_string(),
        ];
        if coordinators != self.coordinator_list() {
            args.extend(["--discover-coordinators".to_string(), "false".to_string()]);
        }
        args.extend(self.worker_args.iter().cloned());
        match &self.pki {
            Some(pki) => args.extend(pki.flags(&id, Role::Worker)?),
            None => args.push("--insecure".to_string()),
        }
        let metrics_port = self.metrics_flag(&mut args)?;
        let log = self.dir.path().join(format!("{id}.log"));
        let process = Process::start(&id, binary("dts-worker")?, args, log)?;
        self.workers.push(WorkerNode {
            id: id.clone(),
            du,
            process,
            metrics_port,
        });
        Ok(id)
    }

    pub fn coordinator_list(&self) -> String {
        self.coordinators
            .iter()
            .map(CoordinatorNode::address)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn coordinator(&mut self, id: u64) -> anyhow::Result<&mut CoordinatorNode> {
        self.coordinators
            .iter_mut()
            .find(|c| c.id == id)
            .with_context(|| format!("no coordinator {id}"))
    }

    pub fn worker(&mut self, id: &str) -> anyhow::Result<&mut WorkerNode> {
        self.workers
            .iter_mut()
            .find(|w| w.id == id)
            .with_context(|| format!("no worker {id}"))
    }

    /// What a worker has logged so far (empty for an unknown id).
    pub fn worker_log(&self, id: &str) -> String {
        self.workers
            .iter()
            .find(|w| w.id == id)
            .map(|w| w.process.log_text())
            .unwrap_or_default()
    }

    /// A client over every coordinator, following leader hints.
    pub fn client(&self) -> anyhow::Result<CoordinatorClient> {
        self.client_as("admin")
    }

    /// A client as `name`: "admin", "viewer", a worker's id (its own
    /// certificate) or a name issued through `pki()`.
    pub fn client_as(&self, name: &str) -> anyhow::Result<CoordinatorClient> {
        let policy = CallPolicy {
            deadline: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(2),
            backoff: Duration::from_millis(100),
        };
        Ok(CoordinatorClient::from_list(
            &self.coordinator_list(),
            policy,
            self.transport_as(name)?,
        )?)
    }

    /// The cluster's certificates (`None` when it runs `--insecure`).
    pub fn pki(&self) -> Option<&TestPki> {
        self.pki.as_ref()
    }

    /// A client transport with the certificate issued to `name` ("admin",
    /// "viewer", or one issued through `pki()`); plaintext when insecure.
    pub fn transport_as(&self, name: &str) -> anyhow::Result<Transport> {
        match &self.pki {
            Some(pki) => pki.transport(name),
            None => Ok(Transport::Insecure),
        }
    }

    /// A channel to the coordinator at `address`, as `name`.
    pub fn channel_as(&self, address: &str, name: &str) -> anyhow::Result<Channel> {
        Ok(dts_common::client::lazy_channel(
            address,
            Duration::from_secs(5),
            &self.transport_as(name)?,
        )?)
    }

    pub async fn cluster_status(&self) -> anyhow::Result<pb::ClusterStatusResponse> {
        let client = self.client()?;
        Ok(client
            .call(|ch: Channel| async move {
                AdminClient::new(ch)
                    .cluster_status(pb::ClusterStatusRequest {})
                    .await
            })
            .await?)
    }

    /// A node's own view, asked directly (not forwarded).
    pub async fn node_status(&self, id: u64) -> anyhow::Result<pb::CoordinatorInfo> {
        let node = self
            .coordinators
            .iter()
            .find(|c| c.id == id)
            .with_context(|| format!("no coordinator {id}"))?;
        let channel = dts_common::client::lazy_channel(
            &node.address(),
            Duration::from_secs(1),
            &self.transport_as("admin")?,
        )?;
        Ok(AdminClient::new(channel)
            .node_status(pb::NodeStatusRequest {})
            .await?
            .into_inner())
    }

    /// Waits until a majority agrees on a live leader; returns its id.
    pub async fn wait_for_leader(&self, timeout: Duration) -> anyhow::Result<u64> {
        wait_for("a coordinator leader", timeout, || async {
            let status = self.cluster_status().await?;
            let leader = status
                .coordinators
                .iter()
                .find(|c| c.role == "leader" && c.id == status.leader_id);
            Ok(leader.map(|c| c.id))
        })
        .await
    }

    pub async fn wait_for_workers_online(&self, timeout: Duration) -> anyhow::Result<()> {
        let expected: Vec<String> = self.workers.iter().map(|w| w.id.clone()).collect();
        wait_for("every worker online", timeout, || async {
            let status = self.cluster_status().await?;
            let online = expected.iter().all(|id| {
                status
                    .workers
                    .iter()
                    .any(|w| &w.id == id && w.state == "online")
            });
            Ok(online.then_some(()))
        })
        .await
    }

    pub async fn create_task(&self, spec_toml: &str, start: bool) -> anyhow::Result<pb::TaskInfo> {
        let client = self.client()?;
        let request = pb::CreateTaskRequest {
            spec_toml: spec_toml.to_string(),
            start,
        };
        Ok(client
            .call(|ch: Channel| {
                let request = request.clone();
                async move { AdminClient::new(ch).create_task(request).await }
            })
            .await?)
    }

    pub async fn task(&self, id: &str) -> anyhow::Result<pb::TaskInfo> {
        let client = self.client()?;
        let request = pb::GetTaskRequest {
            task_id: id.to_string(),
        };
        Ok(client
            .call(|ch: Channel| {
                let request = request.clone();
                async move { AdminClient::new(ch).get_task(request).await }
            })
            .await?)
    }

    /// The task's last progress report, as its worker sent it (`null`
    /// before any).
    pub async fn progress(&self, id: &str) -> anyhow::Result<serde_json::Value> {
        let info = self.task(id).await?;
        Ok(info
            .checkpoint
            .and_then(|c| serde_json::from_str(&c.position).ok())
            .unwrap_or_default())
    }

    pub async fn tasks(&self) -> anyhow::Result<Vec<pb::TaskInfo>> {
        let client = self.client()?;
        Ok(client
            .call(|ch: Channel| async move {
                AdminClient::new(ch)
                    .list_tasks(pb::ListTasksRequest {})
                    .await
            })
            .await?
            .tasks)
    }

    pub async fn control_task(
        &self,
        id: &str,
        action: pb::TaskAction,
    ) -> anyhow::Result<pb::TaskInfo> {
        let client = self.client()?;
        let request = pb::ControlTaskRequest {
            task_id: id.to_string(),
            action: action as i32,
            ignore_alerts: Vec::new(),
        };
        Ok(client
            .call(|ch: Channel| {
                let request = request.clone();
                async move { AdminClient::new(ch).control_task(request).await }
            })
            .await?)
    }

    /// Pauses the task and waits until no worker runs it any more; returns
    /// the task as the pause left it.
    pub async fn pause_task(&self, id: &str, timeout: Duration) -> anyhow::Result<pb::TaskInfo> {
        let paused = self.control_task(id, pb::TaskAction::Pause).await?;
        wait_for("the worker to stop the paused task", timeout, || async {
            let status = self.cluster_status().await?;
            let stopped = status
                .workers
                .iter()
                .all(|w| !w.running_tasks.iter().any(|t| t == id));
            Ok(stopped.then_some(()))
        })
        .await?;
        Ok(paused)
    }

    /// Waits until the task is running (its worker reported under the current epoch).
    pub async fn wait_for_task_running(
        &self,
        id: &str,
        timeout: Duration,
    ) -> anyhow::Result<pb::TaskInfo> {
        wait_for(&format!("task {id} running"), timeout, || async {
            let task = self.task(id).await?;
            Ok((task.status == "running").then_some(task))
        })
        .await
    }

    /// Waits until the task reports `phase`; a task that fails meanwhile ends
    /// the wait at once with its error. Either failure carries the cluster's logs.
    pub async fn wait_for_task_phase(
        &self,
        id: &str,
        phase: &str,
        timeout: Duration,
    ) -> anyhow::Result<pb::TaskInfo> {
        wait_for(
            &format!("task {id} to reach phase {phase}"),
            timeout,
            || async {
                let task = self.task(id).await?;
                anyhow::ensure!(task.status != "failed", "task failed: {}", task.last_error);
                Ok((task.phase == phase).then_some(task))
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", self.logs()))
    }

    /// Creates and starts a task from `spec_toml` and waits until it reports
    /// `phase`; returns the task's id.
    pub async fn run_task_until(
        &self,
        spec_toml: &str,
        phase: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let id = self.create_task(spec_toml, true).await?.id;
        self.wait_for_task_phase(&id, phase, timeout).await?;
        Ok(id)
    }

    /// Waits until the task has `status` (e.g. "failed").
    pub async fn wait_for_task_status(
        &self,
        id: &str,
        status: &str,
        timeout: Duration,
    ) -> anyhow::Result<pb::TaskInfo> {
        let waited = wait_for(&format!("task {id} to be {status}"), timeout, || async {
            let task = self.task(id).await?;
            Ok((task.status == status).then_some(task))
        })
        .await;
        match waited {
            Ok(task) => Ok(task),
            Err(e) => {
                let task = self.task(id).await?;
                anyhow::bail!(
                    "{e:#}; the task is {} in phase {:?} with error {:?}\n{}",
                    task.status,
                    task.phase,
                    task.last_error,
                    self.logs()
                )
            }
        }
    }

    /// Waits until the task runs (reported) on a worker other than `from`.
    pub async fn wait_for_task_moved(
        &self,
        id: &str,
        from: &str,
        timeout: Duration,
    ) -> anyhow::Result<pb::TaskInfo> {
        wait_for(
            &format!("task {id} to run on a worker other than {from}"),
            timeout,
            || async {
                let task = self.task(id).await?;
                Ok((task.status == "running" && task.worker_id != from).then_some(task))
            },
        )
        .await
    }

    /// Runs the real `dtsctl` binary against this cluster, as admin.
    pub fn dtsctl(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        self.dtsctl_as("admin", args)
    }

    /// Runs `dtsctl` with the certificate issued to `name`.
    pub fn dtsctl_as(&self, name: &str, args: &[&str]) -> anyhow::Result<std::process::Output> {
        let mut command = std::process::Command::new(binary("dtsctl")?);
        command
            .args(args)
            .env("DTS_COORDINATORS", self.coordinator_list())
            .env_remove("DTS_TLS_CA")
            .env_remove("DTS_TLS_CERT")
            .env_remove("DTS_TLS_KEY")
            .env_remove("DTS_INSECURE");
        match &self.pki {
            Some(pki) => {
                let files = pki.files(name);
                let path = |p: Option<PathBuf>| p.unwrap_or_default();
                command
                    .env("DTS_TLS_CA", path(files.ca))
                    .env("DTS_TLS_CERT", path(files.cert))
                    .env("DTS_TLS_KEY", path(files.key));
            }
            None => {
                command.env("DTS_INSECURE", "true");
            }
        }
        Ok(command.output()?)
    }

    /// Log of every process, for a failing test's message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for c in &self.coordinators {
            out += &format!(
                "---- coordinator {} ----\n{}\n",
                c.id,
                tail(&c.process.log_text(), 40)
            );
        }
        for w in &self.workers {
            out += &format!("---- {} ----\n{}\n", w.id, tail(&w.process.log_text(), 40));
        }
        out
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The text `/metrics` on `127.0.0.1:port` serves (plain HTTP/1.0, so no
/// client library is needed).
pub async fn scrape_metrics(port: u16) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP response from port {port}: {response}"))?;
    anyhow::ensure!(head.contains(" 200 "), "port {port} answered {head}");
    Ok(body.to_string())
}
