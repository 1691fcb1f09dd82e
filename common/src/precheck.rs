//! A task's precheck report: every item the worker checks before a task
//! starts, each passed, failed or raised as an alert, with the reason. A
//! failed item blocks the start; an alert blocks it until acknowledged (the
//! task file's `ignore_alerts`, or `dtsctl task start --ignore-alert`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    /// The task cannot work as it stands.
    Fail,
    /// The task can work, but something deserves a person's look first.
    Alert,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub name: String,
    pub status: Status,
    pub detail: String,
    /// An alert the task acknowledged (it does not block).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub acknowledged: bool,
}

/// The items that can be raised as alerts, which `ignore_alerts` may name.
pub const ALERTS: &[&str] = &[
    "binlog_retention",
    "destination_version",
    "index_prefixes",
    "outside_dependencies",
    "missing_definers",
];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub items: Vec<Item>,
}

impl Report {
    pub fn pass(&mut self, name: &str, detail: impl Into<String>) {
        self.push(name, Status::Pass, detail.into());
    }

    pub fn fail(&mut self, name: &str, detail: impl Into<String>) {
        self.push(name, Status::Fail, detail.into());
    }

    pub fn alert(&mut self, name: &str, detail: impl Into<String>) {
        self.push(name, Status::Alert, detail.into());
    }

    fn push(&mut self, name: &str, status: Status, detail: String) {
        self.items.push(Item {
            name: name.to_string(),
            status,
            detail,
            acknowledged: false,
        });
    }

    /// Marks the alerts `ignored` names (or all, for `"all"`) acknowledged.
    pub fn acknowledge(&mut self, ignored: &[String]) {
        for item in &mut self.items {
            if item.status == Status::Alert && ignored.iter().any(|i| i == &item.name || i == "all")
            {
                item.acknowledged = true;
            }
        }
    }

    pub fn failures(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|i| i.status == Status::Fail)
    }

    /// Alerts nobody acknowledged.
    pub fn open_alerts(&self) -> impl Iterator<Item = &Item> {
        self.items
            .iter()
            .filter(|i| i.status == Status::Alert && !i.acknowledged)
    }

    /// Whether the task may start.
    pub fn passes(&self) -> bool {
        self.failures().next().is_none() && self.open_alerts().next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_block_until_acknowledged_and_failures_always() {
        let mut report = Report::default();
        report.pass("binlog", "ROW, FULL");
        report.alert("binlog_retention", "1 day");
        assert!(!report.passes());
        report.acknowledge(&["binlog_retention".into()]);
        assert!(report.passes());
        report.fail("cascading_foreign_keys", "fk");
        report.acknowledge(&["all".into()]);
        assert!(!report.passes());
        assert_eq!(report.failures().count(), 1);
    }
}
