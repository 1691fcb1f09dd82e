//! dtsctl against a real cluster: invalid task files are refused with the
//! field and the reason (and nothing is stored), JSON output for scripts, and
//! a follower address is enough to reach the leader.

use dts_proto::pb;
use dts_proto::pb::admin_client::AdminClient;
use dts_tests::TestCluster;
use std::time::Duration;

const VALID: &str = r#"
name = "cli"
du = 1
modes = ["schema", "full", "incremental"]
[source]
host = "127.0.0.1"
port = 1
user = "dts"
password = "very-secret"
[destination]
host = "127.0.0.1"
port = 2
user = "dts"
[[objects]]
database = "shop"
"#;

fn write(cluster: &TestCluster, name: &str, text: &str) -> anyhow::Result<String> {
    let path = cluster.dir().join(name);
    std::fs::write(&path, text)?;
    Ok(path.display().to_string())
}

#[tokio::test]
async fn broken_task_files_name_the_field_and_store_nothing() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().coordinators(1).start().await?;
    let cases = [
        (
            VALID.replace("port = 2", "port = \"x\""),
            "destination.port",
        ),
        (
            VALID.replace("host = \"127.0.0.1\"\nport = 1", "port = 1"),
            "source.host",
        ),
        (VALID.replace("du = 1", "du = 0"), "du"),
        (VALID.replace("\"full\",", "\"fulll\","), "modes[1]"),
        (
            format!("{VALID}\n[retry]\nconnect_minutes = 20\nother_minutes = 30"),
            "retry.other_minutes",
        ),
        (
            VALID.replace("database = \"shop\"", "database = \"mysql\""),
            "objects[0].database",
        ),
        (
            VALID.replace(
                "database = \"shop\"",
                "database = \"shop\"\ntables = [{ name = \"a\", to = \"x\" }, { name = \"b\", to = \"x\" }]",
            ),
            "objects[0].tables[1]",
        ),
        (
            format!("{VALID}\n[[routes]]\ndatabase = \"~(\"\nto_database = \"m\""),
            "routes[0].database",
        ),
        (
            VALID.replace(
                "database = \"shop\"",
                "database = \"shop\"\ntables = [{ name = \"a\", where = \"region = \" }]",
            ),
            "objects[0].tables[0].where",
        ),
        (
            format!("{VALID}\n[[routes]]\ndatabase = \"s*\"\nto_database = \"m\"\nwhere = \"created < NOW()\""),
            "routes[0].where",
        ),
        (format!("accounts = [\"app@%\", \"root@localhost\"]\n{VALID}"), "accounts[1]"),
        (format!("accounts = \"everyone\"\n{VALID}"), "accounts"),
        (format!("triggers = \"later\"\n{VALID}"), "triggers"),
        (format!("online_ddl = \"ignore\"\n{VALID}"), "online_ddl"),
        (
            format!("online_ddl_tables = {{ trash = [\"^_(.+)_del$\", \"^_.+_old$\"] }}\n{VALID}"),
            "online_ddl_tables.trash[1]",
        ),
        (format!("reverse_of = \"x\"\n{VALID}"), "reverse_of"),
        (format!("verify = \"sometimes\"\n{VALID}"), "verify"),
        (
            format!("{VALID}\n[conflicts]\npolicy = \"keep_greater\""),
            "conflicts.column",
        ),
        (
            format!("{VALID}\n[alerts]\nwebhook = \"ftp://hooks\""),
            "alerts.webhook",
        ),
        (
            format!("{VALID}\n[[conflicts.tables]]\ndatabase = \"shop\"\npolicy = \"newest\""),
            "conflicts.tables[0].policy",
        ),
        (
            format!(
                "topology = \"two_way\"\n{}",
                VALID.replace(
                    "database = \"shop\"",
                    "database = \"shop\"\ntables = [{ name = \"a\", where = \"id > 1\" }]",
                )
            ),
            "objects[0].tables[0].where",
        ),
    ];
    for (i, (text, field)) in cases.iter().enumerate() {
        let path = write(&cluster, &format!("bad-{i}.toml"), text)?;
        let out = cluster.dtsctl(&["task", "create", "-f", &path])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} was accepted");
        assert!(
            stderr.contains(&format!("field `{field}`")),
            "case {i}: {stderr}"
        );
    }

    // The coordinator validates on its own too: a client that skips the local
    // check gets INVALID_ARGUMENT with the field.
    let channel = cluster.channel_as(&cluster.coordinator_list(), "admin")?;
    let err = AdminClient::new(channel)
        .create_task(pb::CreateTaskRequest {
            spec_toml: cases[0].0.clone(),
            start: true,
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("server accepted a broken spec"))?;
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        err.metadata()
            .get("x-dts-field")
            .and_then(|v| v.to_str().ok()),
        Some("destination.port")
    );

    let out = cluster.dtsctl(&["task", "list", "-o", "json"])?;
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(
        listed["tasks"].as_array().map(Vec::len).unwrap_or(0),
        0,
        "nothing stored: {listed}"
    );

    let out = cluster.dtsctl(&["task", "create", "-f", "/nonexistent/task.toml"])?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read task file"));
    Ok(())
}

#[tokio::test]
async fn dtsctl_drives_a_task_through_a_follower_with_json_output() -> anyhow::Result<()> {
    let cluster = TestCluster::builder()
        .coordinators(3)
        .worker(2)
        .start()
        .await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let follower = cluster
        .coordinators
        .iter()
        .find(|c| c.id != leader)
        .map(|c| c.address())
        .ok_or_else(|| anyhow::anyhow!("no follower"))?;
    let run = |args: &[&str]| -> anyhow::Result<serde_json::Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json", "--coordinators", &follower]);
        let out = cluster.dtsctl(&all)?;
        anyhow::ensure!(
            out.status.success(),
            "dtsctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    };

    let path = write(&cluster, "task.toml", VALID)?;
    let created = run(&["task", "create", "-f", &path])?;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(created["status"], "created");
    assert!(!created["spec_json"]
        .as_str()
        .unwrap_or_default()
        .contains("very-secret"));

    // A unique prefix is enough.
    let started = run(&["task", "start", &id[..8]])?;
    assert_eq!(started["id"], id.as_str());
    cluster
        .wait_for_task_running(&id, Duration::from_secs(15))
        .await?;
    let shown = run(&["task", "show", &id])?;
    assert_eq!(shown["status"], "running");
    assert_eq!(shown["epoch"], 1);

    let status = run(&["cluster", "status"])?;
    assert_eq!(status["leader_id"], leader);
    assert_eq!(status["coordinators"].as_array().map(Vec::len), Some(3));
    assert_eq!(status["workers"][0]["du_used"], 1);

    assert_eq!(run(&["task", "stop", &id])?["status"], "stopped");
    run(&["task", "delete", &id])?;
    assert_eq!(
        run(&["task", "list"])?["tasks"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0),
        0
    );
    let out = cluster.dtsctl(&["task", "show", &id])?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));

    // Human-readable tables by default.
    let out = cluster.dtsctl(&["cluster", "status"])?;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("ROLE") && table.contains("DU USED/TOTAL"),
        "{table}"
    );
    Ok(())
}

/// Two one-way tasks in opposite directions over one database would apply
/// each other's DDL again: the second is refused, pointing at two-way.
#[tokio::test]
async fn a_task_back_the_other_way_over_a_synced_database_is_refused() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().coordinators(1).start().await?;
    let first = cluster.create_task(VALID, false).await?;
    let back = VALID
        .replacen("port = 1", "port = 3", 1)
        .replacen("port = 2", "port = 1", 1)
        .replacen("port = 3", "port = 2", 1);
    let refused = cluster.create_task(&back, false).await;
    let message = format!(
        "{:#}",
        refused.err().ok_or_else(|| anyhow::anyhow!("accepted"))?
    );
    assert!(
        message.contains(&format!(
            "task {} (cli) already syncs the other way over database `shop`",
            first.id
        )) && message.contains("two_way"),
        "{message}"
    );
    // Another database back is no cycle.
    let other = back.replace("database = \"shop\"", "database = \"crm\"");
    cluster.create_task(&other, false).await?;
    Ok(())
}
