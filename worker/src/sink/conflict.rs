//! Telling and settling conflicts (see `dts_common::conflict`): what each
//! kind is, how a policy decides one, how destination rows compare with the
//! rows a change expected, and the record a settled conflict leaves.
//!
//! Values are compared as the values they are, not as the forms they
//! travel in: the change's rows come from the binlog (converted by
//! `convert::to_param`), the destination's from a binary-protocol read, so
//! integers may be signed on one side and unsigned on the other, CHAR and
//! BINARY may lose their padding in the binlog, and MySQL's JSON arrives
//! reformatted. Text in other character sets is read as its bytes
//! (`CAST(.. AS BINARY)`, which the session does not convert) and ENUM and
//! SET as their numbers, the forms the binlog side has (see
//! [`read_expression`]).

use crate::sink::compact::encode_value;
use crate::sink::convert::passes_as_hex;
use crate::source::catalog::{Column, Table};
use dts_common::conflict::{ConflictPolicy, Policy};
use dts_common::mysql::quote_ident;
use mysql_async::Value;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An insert met a row with its key.
    InsertExists,
    /// An update found no row.
    UpdateMissing,
    /// An update found a row other than its before-image.
    UpdateDiffers,
    /// A delete found no row.
    DeleteMissing,
    /// A delete found a row other than its before-image.
    DeleteDiffers,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::InsertExists => "insert_exists",
            Self::UpdateMissing => "update_missing",
            Self::UpdateDiffers => "update_differs",
            Self::DeleteMissing => "delete_missing",
            Self::DeleteDiffers => "delete_differs",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::InsertExists => "an insert met a row with its key",
            Self::UpdateMissing => "an update found no row",
            Self::UpdateDiffers => "an update found a row that differs from its before-image",
            Self::DeleteMissing => "a delete found no row",
            Self::DeleteDiffers => "a delete found a row that differs from its before-image",
        }
    }
}

/// How a conflict ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The incoming change was applied.
    Applied,
    /// The destination row was kept.
    Kept,
}

impl Resolution {
    pub fn name(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Kept => "kept",
        }
    }
}

/// A policy's answer to one conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Fail,
    Settle(Resolution),
}

/// What `policy` does with a conflict, the change leaving
/// `incoming` (`None`: deleted) where the destination has `found`. Rows are
/// the destination table's writable columns; `column` is the compared
/// column's position among them.
///
/// `keep_greater` / `keep_smaller` can only order two rows. Where one side
/// has none (an update meeting a deleted row, a delete meeting a changed
/// one) the row is kept, on either side of a pair alike: a delete carries no
/// value to order it by, and keeping the row is the choice both sides can
/// make without knowing what the other did.
pub fn decide(
    policy: &Policy,
    column: Option<(usize, &Column)>,
    incoming: Option<&[Value]>,
    found: Option<&[Value]>,
    columns: &[&Column],
) -> Decision {
    use Resolution::{Applied, Kept};
    let greater_wins = match policy.policy {
        ConflictPolicy::Fail => return Decision::Fail,
        ConflictPolicy::Ignore => return Decision::Settle(Kept),
        ConflictPolicy::Overwrite => return Decision::Settle(Applied),
        ConflictPolicy::KeepGreater => true,
        ConflictPolicy::KeepSmaller => false,
    };
    match (incoming, found) {
        (Some(incoming), Some(found)) => {
            let by_column =
                column.map_or(Ordering::Equal, |(i, c)| order(c, &incoming[i], &found[i]));
            // Ties go to the greater whole row (by value), whatever the
            // policy: both sides of a pair meet the same two rows and must
            // pick the same one.
            let order = by_column.then_with(|| order_rows(columns, incoming, found));
            let incoming_wins = match order {
                Ordering::Greater => greater_wins,
                Ordering::Less => !greater_wins,
                Ordering::Equal => false,
            };
            Decision::Settle(if incoming_wins { Applied } else { Kept })
        }
        (Some(_), None) => Decision::Settle(Applied),
        (None, _) => Decision::Settle(Kept),
    }
}

/// Whether `found` differs from `expected`, column by column.
pub fn differs(columns: &[&Column], expected: &[Value], found: &[Value]) -> bool {
    columns
        .iter()
        .zip(expected.iter().zip(found))
        .any(|(column, (a, b))| !same(column, a, b))
}

/// Whether two values of `column` are the same value.
pub fn same(column: &Column, a: &Value, b: &Value) -> bool {
    match (normal(column, a), normal(column, b)) {
        (Normal::Json(a), Normal::Json(b)) => a == b,
        (a, b) => a.cmp_same_kind(&b) == Some(Ordering::Equal),
    }
}

/// Orders two values of `column`; NULL first, then by value.
pub fn order(column: &Column, a: &Value, b: &Value) -> Ordering {
    let (a, b) = (normal(column, a), normal(column, b));
    a.cmp_same_kind(&b)
        .unwrap_or_else(|| a.rank().cmp(&b.rank()))
}

/// Orders whole rows: by value column by column, then by their encoding
/// (so that two distinct rows never tie).
fn order_rows(columns: &[&Column], a: &[Value], b: &[Value]) -> Ordering {
    for (column, (x, y)) in columns.iter().zip(a.iter().zip(b)) {
        match order(column, x, y) {
            Ordering::Equal => continue,
            other => return other,
        }
    }
    let encode = |row: &[Value]| {
        let mut out = Vec::new();
        for value in row {
            encode_value(value, &mut out);
        }
        out
    };
    encode(a).cmp(&encode(b))
}

/// A value in the form it compares in.
#[derive(Debug)]
enum Normal<'a> {
    Null,
    Integer(i128),
    Real(f64),
    /// DECIMAL text: compared as a number, equal when the text is.
    Decimal(&'a [u8]),
    Bytes(&'a [u8]),
    Json(serde_json::Value),
    Temporal(Vec<u64>),
}

impl Normal<'_> {
    fn rank(&self) -> u8 {
        match self {
            Self::Null => 0,
            Self::Integer(_) | Self::Real(_) | Self::Decimal(_) => 1,
            Self::Temporal(_) => 2,
            Self::Bytes(_) | Self::Json(_) => 3,
        }
    }

    fn as_real(&self) -> Option<f64> {
        match self {
            Self::Integer(i) => Some(*i as f64),
            Self::Real(r) => Some(*r),
            Self::Decimal(text) => std::str::from_utf8(text).ok()?.trim().parse().ok(),
            _ => None,
        }
    }

    /// `None` when the two are of kinds that do not compare.
    fn cmp_same_kind(&self, other: &Self) -> Option<Ordering> {
        Some(match (self, other) {
            (Self::Null, Self::Null) => Ordering::Equal,
            (Self::Integer(a), Self::Integer(b)) => a.cmp(b),
            (Self::Decimal(a), Self::Decimal(b)) if a == b => Ordering::Equal,
            (Self::Bytes(a), Self::Bytes(b)) => a.cmp(b),
            (Self::Temporal(a), Self::Temporal(b)) => a.cmp(b),
            (Self::Json(a), Self::Json(b)) => a.to_string().cmp(&b.to_string()),
            (a, b) => {
                let (a, b) = (a.as_real()?, b.as_real()?);
                a.partial_cmp(&b)?
            }
        })
    }
}

fn normal<'a>(column: &Column, value: &'a Value) -> Normal<'a> {
    let data_type = column.data_type.as_str();
    match value {
        Value::NULL => Normal::Null,
        Value::Int(i) => Normal::Integer(i128::from(*i)),
        Value::UInt(u) => Normal::Integer(i128::from(*u)),
        Value::Float(f) => Normal::Real(f64::from(*f)),
        Value::Double(d) => Normal::Real(*d),
        Value::Date(y, mo, d, h, mi, s, us) => Normal::Temporal(vec![
            u64::from(*y),
            u64::from(*mo),
            u64::from(*d),
            u64::from(*h),
            u64::from(*mi),
            u64::from(*s),
            u64::from(*us),
        ]),
        Value::Time(negative, d, h, mi, s, us) => {
            let micros =
                ((u64::from(*d) * 24 + u64::from(*h)) * 3600 + u64::from(*mi) * 60 + u64::from(*s))
                    * 1_000_000
                    + u64::from(*us);
            // Negative times before positive ones, nearer zero greater.
            let key = if *negative {
                (1u64 << 62) - micros
            } else {
                (1u64 << 62) + micros
            };
            Normal::Temporal(vec![key])
        }
        Value::Bytes(bytes) => match data_type {
            "decimal" | "numeric" => Normal::Decimal(bytes),
            // The binlog does not keep the pad of CHAR and BINARY.
            "char" => Normal::Bytes(trim_end(bytes, b' ')),
            "binary" => Normal::Bytes(trim_end(bytes, 0)),
            "json" => match serde_json::from_slice(bytes) {
                Ok(json) => Normal::Json(json),
                Err(_) => Normal::Bytes(bytes),
            },
            _ => Normal::Bytes(bytes),
        },
    }
}

/// Bytes equal exactly when two keys are the same values (see [`same`]):
/// how rows read from the destination are matched with changes' keys.
pub fn key_bytes(columns: &[&Column], key: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for (column, value) in columns.iter().zip(key) {
        match normal(column, value) {
            Normal::Null => out.push(0),
            Normal::Integer(i) => {
                out.push(1);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Normal::Real(r) => {
                out.push(2);
                out.extend_from_slice(&r.to_bits().to_le_bytes());
            }
            Normal::Decimal(bytes) | Normal::Bytes(bytes) => {
                out.push(3);
                out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                out.extend_from_slice(bytes);
            }
            Normal::Json(json) => {
                let text = json.to_string();
                out.push(4);
                out.extend_from_slice(&(text.len() as u64).to_le_bytes());
                out.extend_from_slice(text.as_bytes());
            }
            Normal::Temporal(parts) => {
                out.push(5);
                for part in parts {
                    out.extend_from_slice(&part.to_le_bytes());
                }
            }
        }
    }
    out
}

fn trim_end(bytes: &[u8], pad: u8) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != pad).map_or(0, |i| i + 1);
    &bytes[..end]
}

/// The expression reading `column` in the form a binlog row has it (see the
/// module docs).
pub fn read_expression(column: &Column) -> String {
    let name = quote_ident(&column.name);
    if passes_as_hex(column) {
        return format!("CAST({name} AS BINARY)");
    }
    match column.data_type.as_str() {
        "enum" | "set" => format!("{name} + 0"),
        _ => name,
    }
}

/// A settled conflict, as recorded and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The destination table, `db.table`.
    pub table: String,
    pub kind: Kind,
    /// The key, column by column.
    pub key: BTreeMap<String, serde_json::Value>,
    /// The row the change leaves (`None`: deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incoming: Option<BTreeMap<String, serde_json::Value>>,
    /// The destination row found (`None`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<BTreeMap<String, serde_json::Value>>,
    pub policy: String,
    pub resolution: Resolution,
}

/// A conflict as it was met: rows are the destination table's writable
/// columns.
#[derive(Debug, Clone, Copy)]
pub struct Meeting<'a> {
    pub kind: Kind,
    pub key: &'a [Value],
    /// The row the change leaves (`None`: deleted).
    pub incoming: Option<&'a [Value]>,
    /// The destination row (`None`: none).
    pub found: Option<&'a [Value]>,
}

impl Record {
    pub fn new(
        table: &Table,
        columns: &[&Column],
        met: &Meeting<'_>,
        policy: ConflictPolicy,
        resolution: Resolution,
    ) -> Self {
        let key = table
            .key_columns()
            .zip(met.key)
            .map(|(c, v)| (c.name.clone(), json_of(c, v)))
            .collect();
        let row = |row: &[Value]| {
            columns
                .iter()
                .zip(row)
                .map(|(c, v)| (c.name.clone(), json_of(c, v)))
                .collect()
        };
        Self {
            table: format!("{}.{}", table.db, table.name),
            kind: met.kind,
            key,
            incoming: met.incoming.map(row),
            found: met.found.map(row),
            policy: policy.name().to_string(),
            resolution,
        }
    }
}

/// A conflict the `fail` policy stops at: what the task's error says.
pub fn failure(table: &Table, columns: &[&Column], met: &Meeting<'_>) -> String {
    let record = Record::new(table, columns, met, ConflictPolicy::Fail, Resolution::Kept);
    let show = |row: &Option<BTreeMap<String, serde_json::Value>>| match row {
        Some(row) => serde_json::to_string(row).unwrap_or_default(),
        None => "no row".to_string(),
    };
    format!(
        "conflict on `{}`.`{}` at key {}: {}; incoming: {}; destination: {} \
         (conflicts.policy is \"fail\"; see [conflicts] in the README to settle them instead)",
        table.db,
        table.name,
        serde_json::to_string(&record.key).unwrap_or_default(),
        met.kind.describe(),
        show(&record.incoming),
        show(&record.found),
    )
}

/// A value as JSON for people: numbers as numbers, text as text (bytes
/// that are not UTF-8 as hex), temporal values as MySQL writes them.
pub fn json_of(column: &Column, value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::NULL => J::Null,
        Value::Int(i) => J::from(*i),
        Value::UInt(u) => J::from(*u),
        Value::Float(f) => J::from(f64::from(*f)),
        Value::Double(d) => J::from(*d),
        // Latin-1 bytes are the code points they stand for.
        Value::Bytes(bytes)
            if passes_as_hex(column)
                && column.charset.as_deref() == Some("latin1")
                && std::str::from_utf8(bytes).is_err() =>
        {
            J::String(bytes.iter().map(|&b| char::from(b)).collect())
        }
        Value::Bytes(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => J::String(text.to_string()),
            Err(_) => {
                let mut hex = String::from("0x");
                crate::sink::convert::push_hex(&mut hex, bytes);
                J::String(hex)
            }
        },
        other => J::String(
            crate::sink::convert::literal(other)
                .trim_matches('\'')
                .to_string(),
        ),
    }
}

/// What the apply lanes of a task share about conflicts.
#[derive(Debug)]
pub struct ConflictHandling {
    pub rules: dts_common::conflict::ConflictRules,
    /// The rules name tables as on the task file's source, which is a
    /// reverse task's destination.
    pub by_destination: bool,
    pub log: std::sync::Arc<ConflictLog>,
}

/// How many conflicts the recent list of `task show` holds.
const RECENT: usize = 20;

/// Every conflict the task settled, counted by kind and resolution, and
/// the latest ones: what `task show` and `task conflicts` report. Filled
/// from the meta schema when the apply phase starts, then by the lanes
/// after each commit, so it counts what the destination holds.
#[derive(Debug, Default)]
pub struct ConflictLog {
    inner: Mutex<Summary>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub total: u64,
    /// `kind` -> `resolution` -> count.
    pub counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// Records kept in the meta schema so far.
    pub recorded: u64,
    /// The latest conflicts, oldest first.
    pub recent: VecDeque<Record>,
}

impl ConflictLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Summary> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn load(summary: Summary) -> Self {
        Self {
            inner: Mutex::new(summary),
        }
    }

    /// How many of `wanted` new records the meta schema may still take.
    pub fn reserve(&self, wanted: usize, keep: u32) -> usize {
        let mut s = self.lock();
        let room = u64::from(keep).saturating_sub(s.recorded);
        let granted = room.min(wanted as u64);
        s.recorded += granted;
        granted as usize
    }

    /// Counts conflicts a lane just committed.
    pub fn committed(&self, records: Vec<Record>) {
        let mut s = self.lock();
        for record in records {
            s.total += 1;
            *s.counts
                .entry(record.kind.name().to_string())
                .or_default()
                .entry(record.resolution.name().to_string())
                .or_default() += 1;
            s.recent.push_back(record);
            if s.recent.len() > RECENT {
                s.recent.pop_front();
            }
        }
    }

    pub fn summary(&self) -> Summary {
        self.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, data_type: &str) -> Column {
        Column {
            name: name.into(),
            data_type: data_type.into(),
            column_type: data_type.into(),
            nullable: true,
            generated: false,
            virtual_generated: false,
            auto_increment: false,
            charset: None,
            collation: None,
        }
    }

    fn policy(policy: ConflictPolicy) -> Policy {
        Policy {
            policy,
            column: None,
            field: "conflicts".into(),
        }
    }

    #[test]
    fn values_compare_as_values_not_as_their_forms() {
        let int = column("i", "int");
        assert!(same(&int, &Value::Int(5), &Value::UInt(5)));
        assert!(!same(&int, &Value::Int(5), &Value::Int(6)));
        assert!(same(
            &column("c", "char"),
            &Value::Bytes(b"ab".to_vec()),
            &Value::Bytes(b"ab  ".to_vec())
        ));
        assert!(same(
            &column("b", "binary"),
            &Value::Bytes(b"ab".to_vec()),
            &Value::Bytes(b"ab\0\0".to_vec())
        ));
        assert!(!same(
            &column("v", "varchar"),
            &Value::Bytes(b"ab".to_vec()),
            &Value::Bytes(b"ab ".to_vec())
        ));
        assert!(same(
            &column("j", "json"),
            &Value::Bytes(br#"{"a":1,"b":[2]}"#.to_vec()),
            &Value::Bytes(br#"{"b": [2], "a": 1}"#.to_vec())
        ));
        assert!(same(
            &column("f", "float"),
            &Value::Float(1.1),
            &Value::Float(1.1)
        ));
        assert!(!same(&int, &Value::NULL, &Value::Int(0)));
        assert!(same(&int, &Value::NULL, &Value::NULL));
        assert!(same(
            &column("d", "decimal"),
            &Value::Bytes(b"12.50".to_vec()),
            &Value::Bytes(b"12.50".to_vec())
        ));
    }

    #[test]
    fn keys_match_across_forms() {
        let int = column("i", "int");
        let bin = column("b", "binary");
        let columns = [&int, &bin];
        assert_eq!(
            key_bytes(&columns, &[Value::Int(7), Value::Bytes(b"ab".to_vec())]),
            key_bytes(&columns, &[Value::UInt(7), Value::Bytes(b"ab\0".to_vec())])
        );
        assert_ne!(
            key_bytes(&columns, &[Value::Int(7), Value::Bytes(b"ab".to_vec())]),
            key_bytes(&columns, &[Value::Int(7), Value::Bytes(b"abc".to_vec())])
        );
    }

    #[test]
    fn order_is_by_value_with_null_first() {
        let dec = column("d", "decimal");
        assert_eq!(
            order(
                &dec,
                &Value::Bytes(b"9.5".to_vec()),
                &Value::Bytes(b"10.25".to_vec())
            ),
            Ordering::Less
        );
        let time = column("t", "time");
        assert_eq!(
            order(
                &time,
                &Value::Time(true, 0, 1, 0, 0, 0),
                &Value::Time(false, 0, 0, 0, 0, 0)
            ),
            Ordering::Less
        );
        assert_eq!(
            order(
                &time,
                &Value::Time(true, 0, 2, 0, 0, 0),
                &Value::Time(true, 0, 1, 0, 0, 0)
            ),
            Ordering::Less
        );
        let dt = column("d", "datetime");
        assert_eq!(
            order(&dt, &Value::NULL, &Value::Date(2000, 1, 1, 0, 0, 0, 0)),
            Ordering::Less
        );
        assert_eq!(
            order(
                &dt,
                &Value::Date(2026, 1, 2, 0, 0, 0, 0),
                &Value::Date(2026, 1, 1, 23, 0, 0, 0)
            ),
            Ordering::Greater
        );
    }

    #[test]
    fn plain_policies_decide_without_looking() {
        let c = column("v", "int");
        let columns = [&c];
        let row = [Value::Int(1)];
        let decide = |p| decide(&policy(p), None, Some(&row), Some(&row), &columns);
        assert_eq!(decide(ConflictPolicy::Fail), Decision::Fail);
        assert_eq!(
            decide(ConflictPolicy::Ignore),
            Decision::Settle(Resolution::Kept)
        );
        assert_eq!(
            decide(ConflictPolicy::Overwrite),
            Decision::Settle(Resolution::Applied)
        );
    }

    #[test]
    fn keep_greater_converges_from_either_side() {
        let id = column("id", "int");
        let version = column("version", "int");
        let columns = [&id, &version];
        let keep = Policy {
            policy: ConflictPolicy::KeepGreater,
            column: Some("version".into()),
            field: "conflicts".into(),
        };
        let on = Some((1, &version));
        let a = [Value::Int(1), Value::Int(5)];
        let b = [Value::Int(1), Value::Int(7)];
        // On A, B's row arrives; on B, A's row arrives: both end with B's.
        assert_eq!(
            decide(&keep, on, Some(&b), Some(&a), &columns),
            Decision::Settle(Resolution::Applied)
        );
        assert_eq!(
            decide(&keep, on, Some(&a), Some(&b), &columns),
            Decision::Settle(Resolution::Kept)
        );
        // A tie on the column: the greater whole row, from both sides.
        let c = [Value::Int(2), Value::Int(5)];
        let d = [Value::Int(3), Value::Int(5)];
        let on_c = decide(&keep, on, Some(&d), Some(&c), &columns);
        let on_d = decide(&keep, on, Some(&c), Some(&d), &columns);
        assert_eq!(on_c, Decision::Settle(Resolution::Applied));
        assert_eq!(on_d, Decision::Settle(Resolution::Kept));
        // A delete against a changed row, an update against a deleted one:
        // the row stays on both sides.
        assert_eq!(
            decide(&keep, on, None, Some(&a), &columns),
            Decision::Settle(Resolution::Kept)
        );
        assert_eq!(
            decide(&keep, on, Some(&a), None, &columns),
            Decision::Settle(Resolution::Applied)
        );
        let smaller = Policy {
            policy: ConflictPolicy::KeepSmaller,
            column: Some("version".into()),
            field: "conflicts".into(),
        };
        assert_eq!(
            decide(&smaller, on, Some(&a), Some(&b), &columns),
            Decision::Settle(Resolution::Applied)
        );
    }

    #[test]
    fn the_log_counts_and_keeps_the_latest() {
        let log = ConflictLog::default();
        assert_eq!(log.reserve(3, 4), 3);
        assert_eq!(log.reserve(3, 4), 1);
        let record = |n: i64| Record {
            table: "shop.t".into(),
            kind: Kind::DeleteMissing,
            key: BTreeMap::from([("id".to_string(), serde_json::Value::from(n))]),
            incoming: None,
            found: None,
            policy: "ignore".into(),
            resolution: Resolution::Kept,
        };
        log.committed((0..25).map(record).collect());
        let summary = log.summary();
        assert_eq!(summary.total, 25);
        assert_eq!(summary.counts["delete_missing"]["kept"], 25);
        assert_eq!(summary.recent.len(), RECENT);
        assert_eq!(summary.recent[0], record(5));
    }
}
