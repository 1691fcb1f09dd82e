//! Human-readable tables; `-o json` bypasses all of this.

use dts_proto::pb;
use std::fmt::Write;

/// Writes to stdout; a reader that went away (`dtsctl ... | head`) is not an error.
pub fn write_stdout(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

pub fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => write_stdout(&format!("{text}\n")),
        Err(e) => eprintln!("error: cannot encode JSON: {e}"),
    }
}

/// Left-aligned columns, two spaces apart.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<String>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
    out
}

pub fn coordinators(nodes: &[pb::CoordinatorInfo], leader_id: u64) -> String {
    let rows = nodes
        .iter()
        .map(|c| {
            let role = if c.id == leader_id && c.role != "leader" {
                format!("{} (leader per cluster)", c.role)
            } else {
                c.role.clone()
            };
            vec![
                c.id.to_string(),
                c.address.clone(),
                role,
                if c.voter { "voter" } else { "learner" }.to_string(),
                c.term.to_string(),
                c.last_log_index.to_string(),
                c.last_applied_index.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "ID", "ADDRESS", "ROLE", "MEMBER", "TERM", "LAST LOG", "APPLIED",
        ],
        rows,
    )
}

pub fn workers(workers: &[pb::WorkerInfo]) -> String {
    let rows = workers
        .iter()
        .map(|w| {
            vec![
                w.id.clone(),
                w.address.clone(),
                format!("{}/{}", w.du_used, w.du_total),
                w.state.clone(),
                w.assigned_tasks.len().to_string(),
                w.last_heartbeat_ms_ago.map_or_else(
                    || "-".to_string(),
                    |ms| format!("{:.1}s ago", ms as f64 / 1000.0),
                ),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "ADDRESS",
            "DU USED/TOTAL",
            "STATE",
            "TASKS",
            "HEARTBEAT",
        ],
        rows,
    )
}

pub fn cluster_status(status: &pb::ClusterStatusResponse) -> String {
    let leader = if status.leader_id == 0 {
        "none (no quorum?)".to_string()
    } else {
        status.leader_id.to_string()
    };
    format!(
        "Coordinators (leader: {leader})\n{}\nWorkers\n{}",
        coordinators(&status.coordinators, status.leader_id),
        workers(&status.workers)
    )
}

fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

pub fn tasks(tasks: &[pb::TaskInfo]) -> String {
    let rows = tasks
        .iter()
        .map(|t| {
            let detail = if !t.pending_reason.is_empty() {
                t.pending_reason.clone()
            } else {
                t.last_error.clone()
            };
            vec![
                short(&t.id),
                t.name.clone(),
                t.status.clone(),
                t.phase.clone(),
                t.du.to_string(),
                if t.worker_id.is_empty() {
                    "-".into()
                } else {
                    t.worker_id.clone()
                },
                t.epoch.to_string(),
                detail,
            ]
        })
        .collect();
    table(
        &[
            "ID", "NAME", "STATUS", "PHASE", "DU", "WORKER", "EPOCH", "DETAIL",
        ],
        rows,
    )
}

pub fn task_line(t: &pb::TaskInfo) -> String {
    format!("task {} ({}) is {}\n", t.id, t.name, t.status)
}

pub fn task_detail(t: &pb::TaskInfo) -> String {
    let mut out = String::new();
    let mut field = |k: &str, v: &str| {
        if !v.is_empty() {
            let _ = writeln!(out, "{k:<16}{v}");
        }
    };
    field("id", &t.id);
    field("name", &t.name);
    field("status", &t.status);
    field("phase", &t.phase);
    field("desired", &t.desired);
    field("worker", &t.worker_id);
    field("epoch", &t.epoch.to_string());
    field("du", &t.du.to_string());
    if !t.linked_task_id.is_empty() {
        let other = if t.link_role == "reverse" {
            "forward"
        } else {
            "reverse"
        };
        field(
            "two-way",
            &format!(
                "the {} task; its {other} task is {}",
                t.link_role, t.linked_task_id
            ),
        );
    }
    field("pending reason", &t.pending_reason);
    field("alerts", &t.active_alerts.join("; "));
    field("last error", &t.last_error);
    if let Some(c) = &t.checkpoint {
        out.push_str(&progress_detail(c));
    }
    let _ = writeln!(out, "spec");
    let spec: serde_json::Value = serde_json::from_str(&t.spec_json).unwrap_or_default();
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&spec).unwrap_or_default()
    );
    out
}

/// The worker's progress report (JSON in the checkpoint): per-table copy
/// progress, position, throughput and latency.
fn progress_detail(c: &pb::Checkpoint) -> String {
    let mut out = String::new();
    let mut field = |k: &str, v: String| {
        if !v.is_empty() {
            let _ = writeln!(out, "{k:<16}{v}");
        }
    };
    field("checkpoint", c.display.clone());
    let progress: serde_json::Value = serde_json::from_str(&c.position).unwrap_or_default();
    if let Some(rate) = progress["rows_per_second"].as_f64() {
        field("rows/s", format!("{rate:.0}"));
    }
    if let Some(latency) = progress["latency_ms"].as_i64() {
        field("latency", format!("{:.1} s", latency as f64 / 1000.0));
    }
    if let Some(applied) = progress["applied"].as_object() {
        let gtid = applied.get("gtid").and_then(|g| g.as_str()).unwrap_or("-");
        field(
            "binlog",
            format!(
                "{}:{} (gtid {gtid})",
                applied.get("file").and_then(|f| f.as_str()).unwrap_or("?"),
                applied.get("pos").and_then(|p| p.as_u64()).unwrap_or(0)
            ),
        );
        field(
            "rows applied",
            progress["rows_applied"].as_u64().unwrap_or(0).to_string(),
        );
        field(
            "ddl applied",
            progress["ddl_applied"].as_u64().unwrap_or(0).to_string(),
        );
    }
    if let Some(skipped) = progress["ddl_skipped"].as_array().filter(|s| !s.is_empty()) {
        let names: Vec<&str> = skipped.iter().filter_map(|v| v.as_str()).collect();
        field("ddl skipped", names.join("; "));
    }
    if let Some(total) = progress["conflicts"]["total"].as_u64().filter(|&n| n > 0) {
        field(
            "conflicts",
            format!(
                "{total} ({}); dtsctl task conflicts ID lists the latest",
                conflict_counts(&progress["conflicts"])
            ),
        );
    }
    if progress["verify"].is_object() {
        field("verify", verify_line(&progress["verify"]));
    }
    if let Some(tables) = progress["tables"].as_object().filter(|t| !t.is_empty()) {
        let _ = writeln!(out, "full sync");
        for (name, t) in tables {
            let copied = t["rows_copied"].as_u64().unwrap_or(0);
            let estimated = t["rows_estimated"].as_u64().unwrap_or(0).max(copied);
            let done = t["chunks_done"].as_u64().unwrap_or(0);
            let total = t["chunks_total"].as_u64().unwrap_or(0);
            let fraction = if total == 0 {
                0.0
            } else {
                done as f64 / total as f64
            };
            let _ = writeln!(
                out,
                "  {name:<30} {} {copied}/~{estimated} rows, {done}/{total} chunks",
                bar(fraction, 20)
            );
        }
    }
    out
}

fn bar(fraction: f64, width: usize) -> String {
    let filled = ((fraction.clamp(0.0, 1.0)) * width as f64).round() as usize;
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// The task's conflicts (`conflicts` of its progress report): counts by
/// kind and resolution, then the latest ones.
pub fn conflicts(summary: &serde_json::Value) -> String {
    let mut out = String::new();
    let total = summary["total"].as_u64().unwrap_or(0);
    if total == 0 {
        return "no conflicts\n".to_string();
    }
    let _ = writeln!(out, "{total} conflicts: {}", conflict_counts(summary));
    let recorded = summary["recorded"].as_u64().unwrap_or(0);
    let _ = writeln!(
        out,
        "{recorded} recorded in the meta schema's `conflicts` table; the latest:"
    );
    let _ = writeln!(
        out,
        "{:<16} {:<24} {:<9} {:<20} {:<28} INCOMING",
        "KIND", "TABLE", "OUTCOME", "KEY", "DESTINATION"
    );
    let row = |value: &serde_json::Value| {
        if value.is_null() {
            "(none)".to_string()
        } else {
            value.to_string()
        }
    };
    for record in summary["recent"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<16} {:<24} {:<9} {:<20} {:<28} {}",
            record["kind"].as_str().unwrap_or("?"),
            record["table"].as_str().unwrap_or("?"),
            record["resolution"].as_str().unwrap_or("?"),
            record["key"].to_string(),
            row(&record["found"]),
            row(&record["incoming"]),
        );
    }
    out
}

/// `update_differs: 3 applied, 1 kept; ...`
fn conflict_counts(summary: &serde_json::Value) -> String {
    let Some(kinds) = summary["counts"].as_object() else {
        return String::new();
    };
    kinds
        .iter()
        .map(|(kind, outcomes)| {
            let outcomes: Vec<String> = outcomes
                .as_object()
                .into_iter()
                .flatten()
                .map(|(resolution, n)| format!("{} {resolution}", n.as_u64().unwrap_or(0)))
                .collect();
            format!("{kind}: {}", outcomes.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `pass 2 done: 120000 rows compared, 3 differences` and the incremental
/// check's counts.
fn verify_line(summary: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    if summary["pass"].as_u64().unwrap_or(0) > 0 {
        parts.push(pass_line(summary));
    }
    if summary["incremental"].is_object() {
        parts.push(incremental_line(&summary["incremental"]));
    }
    if let Some(error) = summary["error"].as_str() {
        parts.push(format!("last error: {error}"));
    }
    parts.join("; ")
}

/// `incremental: 5200 changed rows compared, 1 difference`.
fn incremental_line(part: &serde_json::Value) -> String {
    let n = |key: &str| part[key].as_u64().unwrap_or(0);
    let mut line = format!(
        "incremental: {} changed rows compared, {} differences",
        n("checked"),
        n("differences")
    );
    if n("unsettled") > 0 {
        let _ = write!(line, ", {} unsettled", n("unsettled"));
    }
    if n("skipped") > 0 {
        let _ = write!(
            line,
            ", {} not compared (more than it kept up with)",
            n("skipped")
        );
    }
    line
}

fn pass_line(summary: &serde_json::Value) -> String {
    let n = |key: &str| summary[key].as_u64().unwrap_or(0);
    let mut line = format!(
        "pass {} {}: {}/{} tables, {} rows compared, {} differences",
        n("pass"),
        summary["status"].as_str().unwrap_or("?"),
        n("tables_done"),
        n("tables_total"),
        n("rows_compared"),
        n("differences"),
    );
    if n("unsettled") > 0 {
        let _ = write!(line, ", {} unsettled", n("unsettled"));
    }
    line
}

/// The task's verification (`verify` of its progress report).
pub fn verify(summary: &serde_json::Value) -> String {
    let ran_pass = summary["pass"].as_u64().unwrap_or(0) > 0;
    if !ran_pass && !summary["incremental"].is_object() {
        return "no verification has run; `dtsctl task verify ID --run` runs a pass\n".to_string();
    }
    let mut out = String::new();
    if ran_pass {
        let _ = writeln!(out, "verification {}", pass_line(summary));
        if let (Some(started), Some(finished)) = (
            summary["started_ms"].as_i64(),
            summary["finished_ms"].as_i64(),
        ) {
            let _ = writeln!(
                out,
                "took {:.1} s over {} chunks",
                (finished - started) as f64 / 1000.0,
                summary["chunks"].as_u64().unwrap_or(0)
            );
        }
        differences(&mut out, summary);
    }
    if summary["incremental"].is_object() {
        let _ = writeln!(out, "{}", incremental_line(&summary["incremental"]));
        differences(&mut out, &summary["incremental"]);
    }
    if let Some(error) = summary["error"].as_str() {
        let _ = writeln!(out, "last error: {error}");
    }
    out
}

/// The differences `summary` carries, as a table.
fn differences(out: &mut String, summary: &serde_json::Value) {
    let found = summary["found"].as_array().cloned().unwrap_or_default();
    if found.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "{:<8} {:<24} {:<20} {:<32} DESTINATION",
        "KIND", "TABLE", "KEY", "SOURCE"
    );
    let row = |value: &serde_json::Value| {
        if value.is_null() {
            "(none)".to_string()
        } else {
            value.to_string()
        }
    };
    for difference in &found {
        let _ = writeln!(
            out,
            "{:<8} {:<24} {:<20} {:<32} {}",
            difference["kind"].as_str().unwrap_or("?"),
            difference["table"].as_str().unwrap_or("?"),
            difference["key"].to_string(),
            row(&difference["source"]),
            row(&difference["destination"]),
        );
    }
    let total = summary["differences"].as_u64().unwrap_or(0);
    if total > found.len() as u64 {
        let _ = writeln!(
            out,
            "... {} more (the meta schema's `verify_differences` keeps the first 1000)",
            total - found.len() as u64
        );
    }
}

/// The statements that repair the destination, one per difference.
pub fn verify_fix(summary: &serde_json::Value) -> String {
    let mut out = String::new();
    for (part, what) in [
        (
            summary,
            format!(
                "verification pass {}",
                summary["pass"].as_u64().unwrap_or(0)
            ),
        ),
        (
            &summary["incremental"],
            "incremental verification".to_string(),
        ),
    ] {
        let found = part["found"].as_array().cloned().unwrap_or_default();
        if found.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "-- {} statements repairing the differences {what} found",
            found.len()
        );
        for difference in &found {
            if let Some(fix) = difference["fix"].as_str() {
                let _ = writeln!(out, "{fix}");
            }
        }
        let total = part["differences"].as_u64().unwrap_or(0);
        if total > found.len() as u64 {
            let _ = writeln!(
                out,
                "-- {} more differences: see the meta schema's `verify_differences`",
                total - found.len() as u64
            );
        }
    }
    if out.is_empty() {
        out.push_str("-- no differences to repair\n");
    }
    out
}

/// A precheck report: one line per item.
pub fn precheck(report: &dts_common::precheck::Report) -> String {
    use dts_common::precheck::Status;
    let mut out = String::new();
    let _ = writeln!(out, "{:<24} {:<8} DETAIL", "ITEM", "STATUS");
    for item in &report.items {
        let status = match (item.status, item.acknowledged) {
            (Status::Pass, _) => "pass",
            (Status::Fail, _) => "FAIL",
            (Status::Alert, false) => "ALERT",
            (Status::Alert, true) => "alert ok",
        };
        let _ = writeln!(out, "{:<24} {:<8} {}", item.name, status, item.detail);
    }
    let failed = report.failures().count();
    let alerts = report.open_alerts().count();
    let _ = writeln!(
        out,
        "{} items: {failed} failed, {alerts} alerts to acknowledge",
        report.items.len()
    );
    out
}

pub fn connections(profiles: &[pb::ConnectionInfo]) -> String {
    let rows = profiles
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                format!("{}:{}", p.host, p.port),
                p.user.clone(),
                p.password_source.clone(),
                if p.tls { "on" } else { "off" }.to_string(),
                p.used_by.len().to_string(),
            ]
        })
        .collect();
    table(
        &["NAME", "ADDRESS", "USER", "PASSWORD", "TLS", "TASKS"],
        rows,
    )
}

pub fn connection_detail(p: &pb::ConnectionInfo) -> String {
    let mut out = connections(std::slice::from_ref(p));
    for task in &p.used_by {
        let _ = writeln!(out, "used by task {task}");
    }
    out
}

pub fn connection_test(r: &pb::TestConnectionResponse) -> String {
    let mut out = format!("from worker {}:\n", r.worker_id);
    for item in &r.items {
        let mark = if item.passed { "passed" } else { "FAILED" };
        let _ = writeln!(out, "  {mark:<7} {:<10} {}", item.name, item.detail);
    }
    out
}
