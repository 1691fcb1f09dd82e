//! Security on real processes: the handshake refuses certificates the cluster
//! CA did not sign or that expired, roles decide which calls get through, a
//! rogue worker neither registers nor sees a spec, and a database password
//! planted in a task is found nowhere (data directories, logs, dtsctl output,
//! gRPC replies) but in the reply to the worker that owns the task.

use anyhow::Context;
use dts_common::tls::pki::{Authority, Validity};
use dts_common::tls::Role;
use dts_proto::pb;
use dts_proto::pb::admin_client::AdminClient;
use dts_proto::pb::raft_client::RaftClient;
use dts_proto::pb::worker_control_client::WorkerControlClient;
use dts_tests::compare::assert_same_rows;
use dts_tests::fixtures::control_plane_task;
use dts_tests::process::{binary, Process};
use dts_tests::{wait_for, MariaDb, TestCluster};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every coordinator's log, joined.
fn coordinator_logs(cluster: &TestCluster) -> String {
    cluster
        .coordinators
        .iter()
        .map(|c| c.process.log_text())
        .collect::<Vec<_>>()
        .join("\n")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `dtsctl` with exactly the given flags and no TLS environment.
fn dtsctl_bare(cluster: &TestCluster, args: &[&str]) -> anyhow::Result<Output> {
    Ok(std::process::Command::new(binary("dtsctl")?)
        .args(args)
        .env("DTS_COORDINATORS", cluster.coordinator_list())
        .env_remove("DTS_TLS_CA")
        .env_remove("DTS_TLS_CERT")
        .env_remove("DTS_TLS_KEY")
        .env_remove("DTS_INSECURE")
        .output()?)
}

/// A TLS handshake with the coordinator at `address` presenting `cert`,
/// trusting `ca`, then the HTTP/2 preface: Ok once the server answers with
/// its first frame. With TLS 1.3 the server judges the client's certificate
/// after the client has finished its side, so a refusal shows as an alert
/// on the first read.
async fn handshake(address: &str, ca: &Path, cert: &Path, key: &Path) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let fail = |e: &dyn std::fmt::Display| e.to_string();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| fail(&e))? {
        roots.add(c.map_err(|e| fail(&e))?).map_err(|e| fail(&e))?;
    }
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| fail(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(&e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| fail(&e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(&e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| fail(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| fail(&e))?;
    let name = ServerName::try_from("coordinator.dts").map_err(|e| fail(&e))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = connector.connect(name, tcp).await.map_err(|e| fail(&e))?;
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .map_err(|e| fail(&e))?;
    let mut first = [0u8; 9];
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut first)).await;
    match read {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(fail(&e)),
        Err(_) => Err("no answer within 5 s".to_string()),
    }
}

/// A certificate of the cluster CA that expired yesterday.
fn issue_expired(cluster: &TestCluster, name: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let pki = cluster.pki().context("the cluster runs TLS")?;
    let day = Duration::from_secs(86_400);
    let now = SystemTime::now();
    let validity = Validity {
        not_before: now - 2 * day,
        not_after: now - day,
    };
    pki.authority()
        .issue(name, Role::Admin, &[], validity)?
        .write(pki.dir(), name)?;
    Ok((
        pki.dir().join(format!("{name}.pem")),
        pki.dir().join(format!("{name}.key")),
    ))
}

/// A CA of nobody's cluster, in `dir`, with a certificate `name` of `role`.
fn rogue_authority(dir: &Path, name: &str, role: Role) -> anyhow::Result<()> {
    let rogue = Authority::generate("rogue CA", Validity::days(1))?;
    rogue.write(dir)?;
    rogue
        .issue(name, role, &[], Validity::days(1))?
        .write(dir, name)?;
    Ok(())
}

#[tokio::test]
async fn only_certificates_of_the_cluster_ca_get_through_the_handshake() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().coordinators(1).start().await?;
    let pki = cluster.pki().context("the cluster runs TLS")?;
    let address = cluster.coordinators[0].address();
    let ca = pki.dir().join("ca.pem");
    let rogue_dir = cluster.dir().join("rogue");
    rogue_authority(&rogue_dir, "intruder", Role::Admin)?;
    let (expired_cert, expired_key) = issue_expired(&cluster, "expired")?;

    // The server's side, with a client that checks nothing itself.
    let admin = pki.files("admin");
    let (admin_cert, admin_key) = (
        admin.cert.context("admin cert")?,
        admin.key.context("admin key")?,
    );
    handshake(&address, &ca, &admin_cert, &admin_key)
        .await
        .map_err(|e| anyhow::anyhow!("the admin's handshake failed: {e}"))?;
    let intruder = handshake(
        &address,
        &ca,
        &rogue_dir.join("intruder.pem"),
        &rogue_dir.join("intruder.key"),
    )
    .await;
    let intruder = intruder
        .err()
        .context("a rogue CA's certificate got through")?;
    assert!(intruder.contains("UnknownCA"), "{intruder}");
    let expired = handshake(&address, &ca, &expired_cert, &expired_key).await;
    let expired = expired
        .err()
        .context("an expired certificate got through")?;
    assert!(expired.contains("CertificateExpired"), "{expired}");
    // Each refusal is logged with the client's address and the reason.
    let refusals = wait_for("two refusals logged", Duration::from_secs(5), || async {
        let log = coordinator_logs(&cluster);
        let lines: Vec<String> = log
            .lines()
            .filter(|l| l.contains("TLS handshake refused") && l.contains("peer=127.0.0.1:"))
            .map(str::to_string)
            .collect();
        Ok((lines.len() >= 2).then_some(lines))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", coordinator_logs(&cluster)))?;
    assert!(
        refusals.iter().any(|l| l.contains("UnknownIssuer")),
        "{refusals:#?}"
    );
    assert!(
        refusals
            .iter()
            .any(|l| l.to_lowercase().contains("expired")),
        "{refusals:#?}"
    );

    // dtsctl's side: each way of calling without a valid certificate fails
    // with a message that says why.
    let no_files = dtsctl_bare(&cluster, &["task", "list"])?;
    assert!(!no_files.status.success());
    assert!(text(&no_files).contains("--tls-ca"), "{}", text(&no_files));
    let plaintext = dtsctl_bare(&cluster, &["--insecure", "task", "list"])?;
    assert!(!plaintext.status.success(), "{}", text(&plaintext));
    assert!(
        text(&plaintext).contains("only coordinators started with --insecure"),
        "{}",
        text(&plaintext)
    );
    let ca_arg = ca.display().to_string();
    let (cert_arg, key_arg) = (
        expired_cert.display().to_string(),
        expired_key.display().to_string(),
    );
    let with_expired = dtsctl_bare(
        &cluster,
        &[
            "--tls-ca",
            &ca_arg,
            "--tls-cert",
            &cert_arg,
            "--tls-key",
            &key_arg,
            "task",
            "list",
        ],
    )?;
    assert!(!with_expired.status.success());
    assert!(
        text(&with_expired).contains("expired.pem") && text(&with_expired).contains("not valid"),
        "{}",
        text(&with_expired)
    );
    // A client that trusts both CAs passes its own check; the server still
    // refuses its certificate.
    let both = rogue_dir.join("both.pem");
    std::fs::write(
        &both,
        std::fs::read_to_string(&ca)? + &std::fs::read_to_string(rogue_dir.join("ca.pem"))?,
    )?;
    let (both_arg, rogue_cert, rogue_key) = (
        both.display().to_string(),
        rogue_dir.join("intruder.pem").display().to_string(),
        rogue_dir.join("intruder.key").display().to_string(),
    );
    let rogue = dtsctl_bare(
        &cluster,
        &[
            "--tls-ca",
            &both_arg,
            "--tls-cert",
            &rogue_cert,
            "--tls-key",
            &rogue_key,
            "task",
            "list",
        ],
    )?;
    assert!(!rogue.status.success(), "{}", text(&rogue));
    assert!(
        text(&rogue).contains("TLS handshake refused"),
        "{}",
        text(&rogue)
    );
    // And the cluster's own admin gets through.
    let fine = cluster.dtsctl(&["task", "list"])?;
    assert!(fine.status.success(), "{}", text(&fine));
    Ok(())
}

#[tokio::test]
async fn roles_decide_which_calls_get_through_and_refusals_name_the_caller() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().coordinators(1).start().await?;
    let task = cluster
        .create_task(&control_plane_task("kept", 1), false)
        .await?
        .id;
    let pki = cluster.pki().context("the cluster runs TLS")?;
    pki.issue("some-worker", Role::Worker)?;
    pki.issue("some-peer", Role::Peer)?;

    // A viewer reads everything and changes nothing.
    for read in [
        vec!["task", "list"],
        vec!["task", "show", &task],
        vec!["cluster", "status"],
        vec!["connection", "list"],
    ] {
        let out = cluster.dtsctl_as("viewer", &read)?;
        assert!(out.status.success(), "viewer {read:?}: {}", text(&out));
    }
    let profile = cluster.dir().join("profile.toml");
    std::fs::write(
        &profile,
        "name = \"p\"\nhost = \"127.0.0.1\"\nport = 1\nuser = \"u\"\n",
    )?;
    let profile = profile.display().to_string();
    for (write, call) in [
        (vec!["task", "delete", &task], "DeleteTask"),
        (vec!["task", "start", &task], "start a task"),
        (vec!["task", "stop", &task], "stop a task"),
        (
            vec!["connection", "create", "-f", &profile],
            "CreateConnection",
        ),
    ] {
        let out = cluster.dtsctl_as("viewer", &write)?;
        assert!(!out.status.success(), "viewer {write:?} was allowed");
        let said = text(&out);
        assert!(
            said.contains("has role `viewer`") && said.contains(call),
            "viewer {write:?}: {said}"
        );
    }
    assert_eq!(cluster.task(&task).await?.name, "kept");

    // The raw services, by role: only the matching role gets in.
    let address = cluster.coordinators[0].address();
    let denied = |result: Result<(), tonic::Status>, who: &str, what: &str| {
        let status = result.err();
        let status = status.with_context(|| format!("{who} may call {what}"))?;
        anyhow::ensure!(
            status.code() == tonic::Code::PermissionDenied,
            "{who} {what}: {status:?}"
        );
        anyhow::ensure!(
            status.message().contains(&format!("`{who}` has role")),
            "{who} {what}: {}",
            status.message()
        );
        Ok(())
    };
    for who in ["admin", "viewer", "some-peer"] {
        let mut client = WorkerControlClient::new(cluster.channel_as(&address, who)?);
        let register = client
            .register(pb::RegisterRequest {
                worker_id: format!("posing-{who}"),
                address: "nowhere".into(),
                du: 8,
            })
            .await
            .map(|_| ());
        denied(register, who, "Register")?;
    }
    for who in ["some-worker", "some-peer"] {
        let mut client = AdminClient::new(cluster.channel_as(&address, who)?);
        let list = client
            .list_tasks(pb::ListTasksRequest::default())
            .await
            .map(|_| ());
        denied(list, who, "ListTasks")?;
    }
    for who in ["admin", "viewer", "some-worker"] {
        let mut client = RaftClient::new(cluster.channel_as(&address, who)?);
        let vote = client.vote(pb::RaftPayload::default()).await.map(|_| ());
        denied(vote, who, "Vote")?;
    }
    let workers = cluster.cluster_status().await?.workers;
    assert!(
        workers.is_empty(),
        "a posing worker registered: {workers:?}"
    );

    // Every refusal is in the log with the caller's name and role.
    let log = coordinator_logs(&cluster);
    for who in ["viewer", "admin", "some-worker", "some-peer"] {
        assert!(
            log.lines()
                .any(|l| l.contains("call refused") && l.contains(&format!("caller={who}"))),
            "no refusal of {who} logged:\n{log}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_rogue_worker_neither_registers_nor_receives_a_spec() -> anyhow::Result<()> {
    const PASSWORD: &str = "R0gue-Must-N0t-See-91f3";
    let mut cluster = TestCluster::builder().coordinators(1).start().await?;
    let spec = control_plane_task("guarded", 1).replace(
        "user = \"dts\"\n[destination]",
        &format!("user = \"dts\"\npassword = \"{PASSWORD}\"\n[destination]"),
    );
    assert!(spec.contains(PASSWORD));
    let task = cluster.create_task(&spec, true).await?.id;
    let rogue_dir = cluster.dir().join("rogue");
    rogue_authority(&rogue_dir, "rogue-worker", Role::Worker)?;
    let pki = cluster.pki().context("the cluster runs TLS")?;
    let admin = pki.files("admin");
    let path = |p: Option<PathBuf>| p.map(|p| p.display().to_string()).unwrap_or_default();

    // One with a worker certificate of another CA, one with the cluster's
    // admin certificate.
    let start = |name: &str, ca: String, cert: String, key: String| {
        let args = vec![
            "--id".to_string(),
            name.to_string(),
            "--du".to_string(),
            "8".to_string(),
            "--coordinators".to_string(),
            cluster.coordinator_list(),
            "--data-dir".to_string(),
            cluster.dir().join(name).display().to_string(),
            "--tls-ca".to_string(),
            ca,
            "--tls-cert".to_string(),
            cert,
            "--tls-key".to_string(),
            key,
        ];
        Process::start(
            name,
            binary("dts-worker")?,
            args,
            cluster.dir().join(format!("{name}.log")),
        )
    };
    let foreign = start(
        "foreign",
        rogue_dir.join("ca.pem").display().to_string(),
        rogue_dir.join("rogue-worker.pem").display().to_string(),
        rogue_dir.join("rogue-worker.key").display().to_string(),
    )?;
    let mut posing = start(
        "posing",
        path(admin.ca.clone()),
        path(admin.cert.clone()),
        path(admin.key.clone()),
    )?;

    // The one with the admin's certificate will not start at all.
    wait_for("the posing worker to exit", Duration::from_secs(10), || {
        let running = posing.is_running();
        async move { Ok((!running).then_some(())) }
    })
    .await?;
    let posing_log = posing.log_text();
    assert!(
        posing_log.contains("needs one of role `worker`"),
        "{posing_log}"
    );
    // The foreign one cannot finish a handshake: both sides say so.
    wait_for(
        "the foreign worker's refusals",
        Duration::from_secs(15),
        || async {
            let client_side = foreign.log_text().contains("invalid peer certificate");
            let server_side = coordinator_logs(&cluster).contains("TLS handshake refused");
            Ok((client_side && server_side).then_some(()))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", foreign.log_text()))?;
    let workers = cluster.cluster_status().await?.workers;
    assert!(workers.is_empty(), "a rogue worker registered: {workers:?}");
    assert!(cluster.task(&task).await?.worker_id.is_empty());
    for log in [foreign.log_text(), posing_log] {
        assert!(!log.contains(PASSWORD), "a rogue saw the password:\n{log}");
    }

    // A worker with its own certificate takes the task at once.
    let real = cluster.add_worker(8)?;
    let running = cluster
        .wait_for_task_running(&task, Duration::from_secs(15))
        .await?;
    assert_eq!(running.worker_id, real);
    Ok(())
}

/// Every file under `dir` (recursively) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> anyhow::Result<(Vec<PathBuf>, usize)> {
    let mut found = Vec::new();
    let mut searched = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            // A file may vanish (sled compaction, log rotation) while we walk.
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            searched += 1;
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(path);
            }
        }
    }
    Ok((found, searched))
}

#[tokio::test]
async fn a_planted_password_is_nowhere_but_in_the_reply_to_its_worker() -> anyhow::Result<()> {
    // Distinctive, so that any occurrence is a leak and not a coincidence.
    const SOURCE_PASSWORD: &str = "Pl4nted-S0urce-Secret-5e8a";
    const PROFILE_PASSWORD: &str = "Pl4nted-Pr0file-Secret-b27c";
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    for (server, password) in [(&source, SOURCE_PASSWORD), (&destination, PROFILE_PASSWORD)] {
        server
            .exec(&format!(
                "CREATE USER 'dts'@'%' IDENTIFIED BY '{password}'; GRANT ALL ON *.* TO 'dts'@'%'"
            ))
            .await?;
    }
    source
        .exec(
            "CREATE DATABASE shop; \
             CREATE TABLE shop.items (id INT PRIMARY KEY, v VARCHAR(40)); \
             INSERT INTO shop.items SELECT seq, CONCAT('v', seq) FROM shop.seq_1_to_2000",
        )
        .await?;
    let mut cluster = TestCluster::builder()
        .coordinators(3)
        .worker(4)
        .worker(4)
        .snapshot_every_logs(20)
        .start()
        .await?;
    // The files the user writes hold the passwords: keep them out of the
    // cluster's directory, which is searched.
    let user_files = tempfile::tempdir()?;
    let profile = user_files.path().join("dst.toml");
    std::fs::write(
        &profile,
        format!(
            "name = \"dst\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"dts\"\npassword = \"{PROFILE_PASSWORD}\"\n",
            destination.port
        ),
    )?;
    let task_file = user_files.path().join("task.toml");
    std::fs::write(
        &task_file,
        format!(
            "name = \"planted\"\ndu = 2\nmodes = [\"schema\", \"full\", \"incremental\"]\n\
             [source]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"dts\"\npassword = \"{SOURCE_PASSWORD}\"\n\
             [destination]\nconnection = \"dst\"\n[[objects]]\ndatabase = \"shop\"\n",
            source.port
        ),
    )?;
    let mut outputs = Vec::new();
    let mut dtsctl = |args: &[&str]| -> anyhow::Result<String> {
        let out = cluster.dtsctl(args)?;
        let said = text(&out);
        anyhow::ensure!(out.status.success(), "dtsctl {args:?}: {said}");
        outputs.push(format!("$ dtsctl {}\n{said}", args.join(" ")));
        Ok(said)
    };
    dtsctl(&["connection", "create", "-f", &profile.display().to_string()])?;
    let created = dtsctl(&[
        "task",
        "create",
        "-f",
        &task_file.display().to_string(),
        "--start",
        "-o",
        "json",
    ])?;
    let task = serde_json::from_str::<serde_json::Value>(&created)?["id"]
        .as_str()
        .context("task id")?
        .to_string();
    cluster
        .wait_for_task_phase(&task, "incremental", Duration::from_secs(60))
        .await?;
    source
        .exec("INSERT INTO shop.items SELECT seq, 'during' FROM shop.seq_2001_to_2500")
        .await?;

    // A failover: the new leader opens the sealed passwords it replicated.
    let old_leader = cluster.cluster_status().await?.leader_id;
    cluster.coordinator(old_leader)?.process.kill();
    wait_for("a new leader", Duration::from_secs(30), || async {
        let status = cluster.cluster_status().await?;
        Ok((status.leader_id != 0 && status.leader_id != old_leader).then_some(()))
    })
    .await?;
    source
        .exec("UPDATE shop.items SET v = 'after failover' WHERE id % 7 = 0")
        .await?;
    cluster.coordinator(old_leader)?.process.restart()?;
    wait_for(
        "the destination to match the source",
        Duration::from_secs(60),
        || async {
            let same = source.checksum("shop", "items").await?
                == destination.checksum("shop", "items").await?;
            Ok(same.then_some(()))
        },
    )
    .await?;
    assert_same_rows(&source, &destination, &[("shop", "items")]).await?;

    // What a user can read.
    let mut dtsctl = |args: &[&str]| -> anyhow::Result<String> {
        let out = cluster.dtsctl(args)?;
        let said = text(&out);
        outputs.push(format!("$ dtsctl {}\n{said}", args.join(" ")));
        Ok(said)
    };
    for args in [
        vec!["task", "show", &task],
        vec!["task", "show", &task, "-o", "json"],
        vec!["task", "list", "-o", "json"],
        vec!["task", "precheck", &task],
        vec!["connection", "show", "dst"],
        vec!["connection", "list", "-o", "json"],
        vec!["connection", "test", "dst"],
        vec!["cluster", "status", "-o", "json"],
    ] {
        dtsctl(&args)?;
    }
    let shown = outputs.join("\n");
    assert!(
        shown.contains("sealed"),
        "the profile's password source: {shown}"
    );

    // What the services answer: Admin to an admin; the heartbeat reply to a
    // worker that does not own the task, and to the one that does.
    let mut replies = Vec::new();
    replies.push(format!("{:?}", cluster.task(&task).await?));
    replies.push(format!("{:?}", cluster.tasks().await?));
    let admin = cluster.client()?;
    let profile_info = admin
        .call(|ch| async move {
            AdminClient::new(ch)
                .get_connection(pb::GetConnectionRequest { name: "dst".into() })
                .await
        })
        .await?;
    replies.push(format!("{profile_info:?}"));
    let running = cluster.task(&task).await?;
    let other = cluster
        .workers
        .iter()
        .map(|w| w.id.clone())
        .find(|id| *id != running.worker_id)
        .context("a second worker")?;
    let heartbeat = |certificate: &str, worker: String, running: Vec<pb::RunningTask>| {
        let client = cluster.client_as(certificate);
        async move {
            client?
                .call(|ch| {
                    let request = pb::HeartbeatRequest {
                        worker_id: worker.clone(),
                        running: running.clone(),
                    };
                    async move { WorkerControlClient::new(ch).heartbeat(request).await }
                })
                .await
                .map_err(anyhow::Error::from)
        }
    };
    let to_other = heartbeat(&other, other.clone(), Vec::new()).await?;
    replies.push(format!("{to_other:?}"));
    let owner_running = vec![pb::RunningTask {
        task_id: task.clone(),
        epoch: running.epoch,
        phase: running.phase.clone(),
    }];
    // The other worker's certificate may not speak for the owner.
    let posing = heartbeat(&other, running.worker_id.clone(), owner_running.clone()).await;
    let posing = posing.err().context("a worker spoke for another")?;
    let refusal = posing
        .downcast_ref::<tonic::Status>()
        .context("a gRPC status")?;
    assert_eq!(refusal.code(), tonic::Code::PermissionDenied, "{refusal:?}");
    assert!(
        refusal.message().contains(&format!(
            "registered with the certificate `{}`",
            running.worker_id
        )),
        "{refusal:?}"
    );
    replies.push(format!("{refusal:?}"));
    let to_owner = heartbeat(&running.worker_id, running.worker_id.clone(), owner_running).await?;
    // The control: the owner's reply does carry it, so the searches below
    // would see a leak.
    assert!(
        format!("{to_owner:?}").contains(SOURCE_PASSWORD)
            && format!("{to_owner:?}").contains(PROFILE_PASSWORD),
        "the owner's assignment lacks the passwords"
    );

    for password in [SOURCE_PASSWORD, PROFILE_PASSWORD] {
        let (files, searched) = files_containing(&cluster.dir(), password.as_bytes())?;
        assert!(searched > 20, "only {searched} files searched");
        assert!(files.is_empty(), "`{password}` found in {files:#?}");
        for out in &outputs {
            assert!(!out.contains(password), "`{password}` shown:\n{out}");
        }
        for reply in &replies {
            assert!(
                !reply.contains(password),
                "`{password}` in a reply:\n{reply}"
            );
        }
    }
    println!(
        "searched {} files, {} dtsctl outputs, {} replies",
        files_containing(&cluster.dir(), b"-")?.1,
        outputs.len(),
        replies.len()
    );
    Ok(())
}

#[tokio::test]
async fn passwords_from_files_env_and_profiles_are_resolved_on_the_worker() -> anyhow::Result<()> {
    const SOURCE_PASSWORD: &str = "from-the-environment-31";
    const DESTINATION_PASSWORD: &str = "from-a-file-77";
    // Set before any process starts; the workers inherit it. (The test is a
    // process of its own under nextest.)
    std::env::set_var("DTS_TEST_SOURCE_PASSWORD", SOURCE_PASSWORD);
    let source = MariaDb::start(1).await?;
    let destination = MariaDb::start(2).await?;
    source
        .exec(&format!(
            "CREATE USER 'dts'@'%' IDENTIFIED BY '{SOURCE_PASSWORD}'; GRANT ALL ON *.* TO 'dts'@'%'; \
             CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, v INT); \
             INSERT INTO shop.items SELECT seq, seq FROM shop.seq_1_to_300"
        ))
        .await?;
    destination
        .exec(&format!(
            "CREATE USER 'dts'@'%' IDENTIFIED BY '{DESTINATION_PASSWORD}'; GRANT ALL ON *.* TO 'dts'@'%'"
        ))
        .await?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .worker(4)
        .start()
        .await?;
    let user_files = tempfile::tempdir()?;
    let password_file = user_files.path().join("destination.password");
    std::fs::write(&password_file, format!("{DESTINATION_PASSWORD}\n"))?;
    let write = |name: &str, body: String| -> anyhow::Result<String> {
        let path = user_files.path().join(name);
        std::fs::write(&path, body)?;
        Ok(path.display().to_string())
    };
    let source_profile = write(
        "src.toml",
        format!(
            "name = \"src\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"dts\"\npassword_env = \"DTS_TEST_SOURCE_PASSWORD\"\n",
            source.port
        ),
    )?;
    let wrong_profile = write(
        "wrong.toml",
        format!(
            "name = \"wrong\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"dts\"\npassword = \"not-it\"\n",
            source.port
        ),
    )?;
    let nowhere_profile = write(
        "nowhere.toml",
        "name = \"nowhere\"\nhost = \"127.0.0.1\"\nport = 1\nuser = \"dts\"\n".to_string(),
    )?;
    for file in [&source_profile, &wrong_profile, &nowhere_profile] {
        let out = cluster.dtsctl(&["connection", "create", "-f", file])?;
        assert!(out.status.success(), "{}", text(&out));
    }
    let list = text(&cluster.dtsctl(&["connection", "list"])?);
    assert!(list.contains("env DTS_TEST_SOURCE_PASSWORD"), "{list}");
    assert!(list.contains("sealed"), "{list}");

    // The checks run from the worker, item by item.
    let good = cluster.dtsctl(&["connection", "test", "src"])?;
    let said = text(&good);
    assert!(good.status.success(), "{said}");
    assert!(said.contains("from worker worker-1"), "{said}");
    for item in ["reachable", "password", "login"] {
        assert!(
            said.lines()
                .any(|l| l.contains("passed") && l.contains(item)),
            "{item}: {said}"
        );
    }
    let wrong = cluster.dtsctl(&["connection", "test", "wrong"])?;
    let said = text(&wrong);
    assert!(!wrong.status.success(), "{said}");
    assert!(
        said.lines()
            .any(|l| l.contains("FAILED") && l.contains("login") && l.contains("Access denied")),
        "{said}"
    );
    let nowhere = cluster.dtsctl(&["connection", "test", "nowhere"])?;
    let said = text(&nowhere);
    assert!(!nowhere.status.success(), "{said}");
    assert!(
        said.lines()
            .any(|l| l.contains("FAILED") && l.contains("reachable")),
        "{said}"
    );

    // A task through the env-backed profile and a password file.
    let task_file = write(
        "task.toml",
        format!(
            "name = \"resolved\"\ndu = 2\nmodes = [\"schema\", \"full\", \"incremental\"]\n\
             [source]\nconnection = \"src\"\n\
             [destination]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"dts\"\npassword_file = \"{}\"\n\
             [[objects]]\ndatabase = \"shop\"\n",
            destination.port,
            password_file.display()
        ),
    )?;
    let created = cluster.dtsctl(&["task", "create", "-f", &task_file, "--start", "-o", "json"])?;
    assert!(created.status.success(), "{}", text(&created));
    let task = serde_json::from_slice::<serde_json::Value>(&created.stdout)?["id"]
        .as_str()
        .context("task id")?
        .to_string();
    cluster
        .wait_for_task_phase(&task, "incremental", Duration::from_secs(60))
        .await?;
    source
        .exec("UPDATE shop.items SET v = v + 1000 WHERE id <= 100")
        .await?;
    wait_for("the update to arrive", Duration::from_secs(30), || async {
        let same = source.checksum("shop", "items").await?
            == destination.checksum("shop", "items").await?;
        Ok(same.then_some(()))
    })
    .await?;

    // A profile in use stays; the refusal names the task.
    let refused = cluster.dtsctl(&["connection", "delete", "src"])?;
    let said = text(&refused);
    assert!(!refused.status.success(), "{said}");
    assert!(said.contains("resolved") && said.contains(&task), "{said}");
    let shown = text(&cluster.dtsctl(&["connection", "show", "src"])?);
    assert!(shown.contains("used by task"), "{shown}");
    let deleted = cluster.dtsctl(&["task", "delete", &task])?;
    assert!(deleted.status.success(), "{}", text(&deleted));
    let freed = cluster.dtsctl(&["connection", "delete", "src"])?;
    assert!(freed.status.success(), "{}", text(&freed));
    let list = text(&cluster.dtsctl(&["connection", "list"])?);
    assert!(!list.contains("DTS_TEST_SOURCE_PASSWORD"), "{list}");
    Ok(())
}
