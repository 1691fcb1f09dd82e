//! Key-ordered predicates for chunking a table by its (possibly composite) key:
//! `key > bound` and `key <= bound`, spelled out so the range optimizer uses
//! the index (MariaDB does not range-scan row-constructor comparisons).

use crate::source::catalog::Table;
use dts_common::mysql::quote_ident;
use mysql_async::Value;
use serde::{Deserialize, Serialize};

/// `(k0 > ?) OR (k0 = ? AND k1 > ?) OR ...`, with its parameters.
pub fn after(table: &Table, bound: &[Value]) -> (String, Vec<Value>) {
    expand(table, bound, ">", false)
}

/// `(k0 < ?) OR (k0 = ? AND k1 < ?) OR ... OR (k0 = ? AND ... AND kn = ?)`.
pub fn at_or_before(table: &Table, bound: &[Value]) -> (String, Vec<Value>) {
    expand(table, bound, "<", true)
}

fn expand(table: &Table, bound: &[Value], op: &str, or_equal: bool) -> (String, Vec<Value>) {
    let names: Vec<String> = table.key_columns().map(|c| quote_ident(&c.name)).collect();
    let mut terms = Vec::new();
    let mut params = Vec::new();
    for i in 0..names.len() {
        let mut parts = Vec::new();
        for j in 0..i {
            parts.push(format!("{} = ?", names[j]));
            params.push(bound[j].clone());
        }
        parts.push(format!("{} {op} ?", names[i]));
        params.push(bound[i].clone());
        terms.push(format!("({})", parts.join(" AND ")));
    }
    if or_equal {
        let parts: Vec<String> = names.iter().map(|n| format!("{n} = ?")).collect();
        params.extend(bound.iter().cloned());
        terms.push(format!("({})", parts.join(" AND ")));
    }
    (format!("({})", terms.join(" OR ")), params)
}

/// The conditions of the key range after `lower` (exclusive) up to
/// `upper` (inclusive), an open end where `None`, with their parameters.
pub fn between(
    table: &Table,
    lower: Option<&[Value]>,
    upper: Option<&[Value]>,
) -> (Vec<String>, Vec<Value>) {
    let mut terms = Vec::new();
    let mut params = Vec::new();
    if let Some(lower) = lower {
        let (sql, p) = after(table, lower);
        terms.push(sql);
        params.extend(p);
    }
    if let Some(upper) = upper {
        let (sql, p) = at_or_before(table, upper);
        terms.push(sql);
        params.extend(p);
    }
    (terms, params)
}

/// Positional parameters, or none (a statement without placeholders).
pub fn params_of(values: Vec<Value>) -> mysql_async::Params {
    if values.is_empty() {
        mysql_async::Params::Empty
    } else {
        mysql_async::Params::Positional(values)
    }
}

pub fn order_by(table: &Table) -> String {
    table
        .key_columns()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A key value as stored in the chunk ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StoredValue {
    Null,
    Bytes(Vec<u8>),
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    Date(u16, u8, u8, u8, u8, u8, u32),
    Time(bool, u32, u8, u8, u8, u32),
}

impl From<&Value> for StoredValue {
    fn from(v: &Value) -> Self {
        match v.clone() {
            Value::NULL => Self::Null,
            Value::Bytes(b) => Self::Bytes(b),
            Value::Int(i) => Self::Int(i),
            Value::UInt(u) => Self::UInt(u),
            Value::Float(f) => Self::Float(f),
            Value::Double(d) => Self::Double(d),
            Value::Date(y, mo, d, h, mi, s, us) => Self::Date(y, mo, d, h, mi, s, us),
            Value::Time(neg, d, h, mi, s, us) => Self::Time(neg, d, h, mi, s, us),
        }
    }
}

impl From<StoredValue> for Value {
    fn from(v: StoredValue) -> Self {
        match v {
            StoredValue::Null => Value::NULL,
            StoredValue::Bytes(b) => Value::Bytes(b),
            StoredValue::Int(i) => Value::Int(i),
            StoredValue::UInt(u) => Value::UInt(u),
            StoredValue::Float(f) => Value::Float(f),
            StoredValue::Double(d) => Value::Double(d),
            StoredValue::Date(y, mo, d, h, mi, s, us) => Value::Date(y, mo, d, h, mi, s, us),
            StoredValue::Time(neg, d, h, mi, s, us) => Value::Time(neg, d, h, mi, s, us),
        }
    }
}

pub fn encode_bound(bound: Option<&[Value]>) -> Option<Vec<u8>> {
    bound.map(|values| {
        let stored: Vec<StoredValue> = values.iter().map(StoredValue::from).collect();
        serde_json::to_vec(&stored).unwrap_or_default()
    })
}

pub fn decode_bound(bytes: Option<Vec<u8>>) -> Option<Vec<Value>> {
    let stored: Vec<StoredValue> = serde_json::from_slice(&bytes?).ok()?;
    Some(stored.into_iter().map(Value::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::catalog::Column;

    fn table(key: &[&str]) -> Table {
        let columns = key
            .iter()
            .map(|n| Column {
                name: n.to_string(),
                data_type: "int".into(),
                column_type: "int(11)".into(),
                nullable: false,
                generated: false,
                virtual_generated: false,
                auto_increment: false,
                charset: None,
                collation: None,
            })
            .collect();
        Table::new(
            "d",
            "t",
            columns,
            (0..key.len()).collect(),
            vec![(0..key.len()).collect()],
        )
    }

    #[test]
    fn composite_after_and_at_or_before() {
        let t = table(&["a", "b"]);
        let bound = [Value::Int(1), Value::Int(2)];
        let (sql, params) = after(&t, &bound);
        assert_eq!(sql, "((`a` > ?) OR (`a` = ? AND `b` > ?))");
        assert_eq!(params, vec![Value::Int(1), Value::Int(1), Value::Int(2)]);
        let (sql, params) = at_or_before(&t, &bound);
        assert_eq!(
            sql,
            "((`a` < ?) OR (`a` = ? AND `b` < ?) OR (`a` = ? AND `b` = ?))"
        );
        assert_eq!(params.len(), 5);
    }

    #[test]
    fn bounds_round_trip_through_the_ledger_encoding() {
        let bound = vec![
            Value::Bytes(vec![0, 255]),
            Value::Time(true, 1, 2, 3, 4, 5),
            Value::UInt(u64::MAX),
        ];
        assert_eq!(decode_bound(encode_bound(Some(&bound))), Some(bound));
        assert_eq!(decode_bound(encode_bound(None)), None);
    }
}
