//! A row the destination has other than the source: what verification
//! reports, and what `dtsctl task verify --fix` prints.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// The source has the row; the destination has none with its key.
    Missing,
    /// The destination has a row the source has not (or its filter leaves out).
    Extra,
    /// Both have the key, with other values.
    Differs,
}

impl DifferenceKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Extra => "extra",
            Self::Differs => "differs",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// The destination table, `db.table`.
    pub table: String,
    /// The source table it is compared with, `db.table`.
    pub source_table: String,
    pub kind: DifferenceKind,
    /// The key, by destination column name.
    pub key: BTreeMap<String, serde_json::Value>,
    /// The source row, by destination column name (`None`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<BTreeMap<String, serde_json::Value>>,
    /// The destination row (`None`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<BTreeMap<String, serde_json::Value>>,
    /// The statement that repairs the destination row.
    pub fix: String,
}

impl Difference {
    /// Logs it, as `found_by` (a pass, the incremental check) found it.
    pub fn log(&self, found_by: &str) {
        tracing::warn!(
            table = %self.table,
            kind = self.kind.name(),
            key = %serde_json::to_string(&self.key).unwrap_or_default(),
            found_by,
            "verification found a difference"
        );
    }
}
