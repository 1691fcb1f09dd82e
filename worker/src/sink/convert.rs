//! Binlog values to statement parameters, by the column they belong to.
//!
//! Row images carry values in their storage form: MariaDB sends no
//! signedness (unsigned integers arrive as signed), TIMESTAMP as seconds since
//! the epoch, YEAR 0 as 1900, SET as a bitmask, ENUM as an index, and text as
//! raw bytes in the column's character set. Each is turned back into what the
//! destination stores as the same value.

use crate::source::catalog::Column;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::Value;

#[derive(Debug, thiserror::Error)]
#[error("column `{column}`: {reason}")]
pub struct ConvertError {
    pub column: String,
    pub reason: String,
}

/// What a column's stored values need to become parameters: decided once
/// per column rather than per value, since matching type names for every
/// value was the largest cost of decoding rows in catch-up profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    AsIs,
    /// An unsigned integer of this many bits, sent sign-extended.
    Unsigned(u32),
    /// mysql_common reads a signed 24-bit value without sign extension.
    SignedMedium,
    Timestamp,
    Year,
    Set,
}

impl Conversion {
    pub fn of(column: &Column) -> Self {
        match column.data_type.as_str() {
            "tinyint" | "smallint" | "mediumint" | "int" | "bigint" if column.is_unsigned() => {
                Self::Unsigned(match column.data_type.as_str() {
                    "tinyint" => 8,
                    "smallint" => 16,
                    "mediumint" => 24,
                    "int" => 32,
                    _ => 64,
                })
            }
            "mediumint" => Self::SignedMedium,
            "timestamp" => Self::Timestamp,
            "year" => Self::Year,
            "set" => Self::Set,
            // Text in any character set stays its raw bytes: see
            // [`passes_as_hex`] for where it becomes hex.
            _ => Self::AsIs,
        }
    }
}

/// A binlog value of `column` as the parameter the destination stores as the
/// same value; `conversion` is the column's, decided once
/// ([`Conversion::of`]).
pub fn to_param(
    column: &Column,
    conversion: Conversion,
    value: BinlogValue<'static>,
) -> Result<Value, ConvertError> {
    let fail = |reason: String| ConvertError {
        column: column.name.clone(),
        reason,
    };
    let value = match value {
        BinlogValue::Value(v) => v,
        // MySQL's binary JSON: written back as JSON text, which the column parses.
        BinlogValue::Jsonb(json) => {
            let json = serde_json::Value::try_from(json)
                .map_err(|e| fail(format!("undecodable binary JSON: {e}")))?;
            return Ok(Value::Bytes(json.to_string().into_bytes()));
        }
        // Partial JSON updates need binlog_row_value_options=PARTIAL_JSON on
        // MySQL; dts asks for full row images.
        BinlogValue::JsonDiff(_) => {
            return Err(fail(
                "a partial JSON update is in the binlog; set binlog_row_value_options = '' on the source".into(),
            ))
        }
    };
    if value == Value::NULL {
        return Ok(Value::NULL);
    }
    Ok(match conversion {
        Conversion::AsIs => value,
        Conversion::Unsigned(bits) => match value {
            Value::Int(i) => Value::UInt(unsigned_of(i, bits)),
            other => other,
        },
        Conversion::SignedMedium => match value {
            Value::Int(i) if i > 0x7f_ffff => Value::Int(i - 0x100_0000),
            other => other,
        },
        Conversion::Timestamp => timestamp_of(&value)
            .ok_or_else(|| fail(format!("unexpected TIMESTAMP value {value:?}")))?,
        Conversion::Year => match &value {
            // YEAR is stored as years since 1900, with 0 meaning the zero year.
            Value::Bytes(b) if b.as_slice() == b"1900" => Value::Int(0),
            Value::Bytes(b) => Value::Int(
                std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| fail("unreadable YEAR".into()))?,
            ),
            _ => value,
        },
        Conversion::Set => match &value {
            Value::Bytes(bits) => {
                let mut mask = [0u8; 8];
                for (i, b) in bits.iter().take(8).enumerate() {
                    mask[i] = *b;
                }
                Value::UInt(u64::from_le_bytes(mask))
            }
            _ => value,
        },
    })
}

/// Text in a character set other than utf8 arrives as that set's raw bytes,
/// which are not valid in the utf8mb4 session: a string parameter would be
/// mangled before any CAST could see it. Such values travel as hex, written
/// only where a value leaves the worker ([`bound`], [`push_rendered`]) and
/// decoded by the server in the column's own character set. Inside the
/// worker they stay raw bytes: hexing every such value at decode was 5% of
/// the catch-up worker's samples, doubled the memory of folded rows, and
/// made row filters decode it back.
pub(crate) fn passes_as_hex(column: &Column) -> bool {
    let text = matches!(
        column.data_type.as_str(),
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext"
    );
    text && column
        .charset
        .as_deref()
        .is_some_and(|cs| !matches!(cs, "utf8mb4" | "utf8mb3" | "utf8" | "ascii" | "binary"))
}

#[cfg(test)]
fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// Writes the upper-case hex digits of `bytes` (two per byte) into `out`,
/// which holds exactly that many. Filled in place, not pushed char by char:
/// every non-utf8 text value of a catch-up passes through here (8% of the
/// worker's samples with latin1 sysbench tables).
fn write_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
}

/// The upper-case hex digits of `bytes`.
fn hex_digits(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; bytes.len() * 2];
    write_hex(&mut out, bytes);
    out
}

pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    // Through a small buffer on the stack: no allocation per value.
    let mut buffer = [0u8; 512];
    out.reserve(bytes.len() * 2);
    for piece in bytes.chunks(buffer.len() / 2) {
        let digits = &mut buffer[..piece.len() * 2];
        write_hex(digits, piece);
        push_ascii(out, digits);
    }
}

/// Appends ASCII text given as bytes (hex digits): checked as UTF-8 in one
/// pass rather than pushed char by char.
fn push_ascii(out: &mut String, text: &[u8]) {
    match std::str::from_utf8(text) {
        Ok(text) => out.push_str(text),
        Err(_) => out.extend(text.iter().map(|&b| char::from(b))),
    }
}

/// Reinterprets a sign-extended storage integer of `bits` as the unsigned
/// value it stores.
fn unsigned_of(value: i64, bits: u32) -> u64 {
    if bits >= 64 {
        value as u64
    } else {
        (value as u64) & ((1u64 << bits) - 1)
    }
}

/// `"seconds[.micros]"` since the epoch to a UTC datetime (sessions run in UTC);
/// 0 is the zero timestamp, not the epoch.
fn timestamp_of(value: &Value) -> Option<Value> {
    let text = match value {
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.to_string(),
        Value::Int(i) => i.to_string(),
        other => return Some(other.clone()),
    };
    let (secs, micros) = match text.split_once('.') {
        Some((s, f)) => (
            s.parse::<i64>().ok()?,
            format!("{f:0<6}")[..6].parse::<u32>().ok()?,
        ),
        None => (text.parse::<i64>().ok()?, 0),
    };
    if secs == 0 && micros == 0 {
        return Some(Value::Date(0, 0, 0, 0, 0, 0, 0));
    }
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    Some(Value::Date(
        u16::try_from(y).ok()?,
        m,
        d,
        (rem / 3600) as u8,
        ((rem % 3600) / 60) as u8,
        (rem % 60) as u8,
        micros,
    ))
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The placeholder for a column's value (see [`passes_as_hex`]).
pub fn placeholder(column: &Column) -> String {
    match column.charset.as_deref() {
        Some(cs) if passes_as_hex(column) => format!("CONVERT(UNHEX(?) USING {cs})"),
        _ => "?".to_string(),
    }
}

/// A value as the parameter of the column's [`placeholder`] takes it: hex
/// digits for text that passes as hex, the value itself otherwise.
fn bound(column: &Column, value: Value) -> Value {
    match value {
        Value::Bytes(bytes) if passes_as_hex(column) => Value::Bytes(hex_digits(&bytes)),
        other => other,
    }
}

/// Values laid out row after row, each row's in `columns` order, as the
/// parameters of their placeholders (see [`bound`]).
pub fn bound_rows(columns: &[&Column], values: Vec<Value>) -> Vec<Value> {
    if !columns.iter().any(|c| passes_as_hex(c)) {
        return values;
    }
    values
        .into_iter()
        .zip(columns.iter().cycle())
        .map(|(value, column)| bound(column, value))
        .collect()
}

/// A value written into statement text, as its column's [`placeholder`]
/// would take it: for statements sent once with many rows, where preparing
/// each shape would cost more round trips than the statement itself.
/// Appended to the statement being built: one allocation per value was the
/// worker's largest cost after decoding in catch-up profiles.
pub fn push_rendered(out: &mut String, column: &Column, value: &Value) {
    match (column.charset.as_deref(), value) {
        // A hex literal with the column's character set as introducer: the
        // server reads the bytes in that set.
        (Some(cs), Value::Bytes(_)) if passes_as_hex(column) => {
            out.push('_');
            out.push_str(cs);
            out.push(' ');
            push_literal(out, value);
        }
        _ => push_literal(out, value),
    }
}

/// [`push_rendered`] into a new string.
pub fn render(column: &Column, value: &Value) -> String {
    let mut out = String::new();
    push_rendered(&mut out, column, value);
    out
}

/// Roughly the text [`push_rendered`] writes for a value: enough to size a
/// statement's buffer once instead of growing it by copies.
pub fn rendered_len(value: &Value) -> usize {
    match value {
        Value::Bytes(bytes) => bytes.len() * 2 + 16,
        _ => 24,
    }
}

/// An SQL literal with the value a bound parameter would carry. Strings go
/// as hex literals: their bytes reach the column unconverted whatever the
/// session's character set, and nothing in them needs escaping.
pub fn literal(value: &Value) -> String {
    let mut out = String::new();
    push_literal(&mut out, value);
    out
}

/// [`literal`], appended to a statement being built.
pub fn push_literal(out: &mut String, value: &Value) {
    use std::fmt::Write;
    match value {
        Value::NULL => out.push_str("NULL"),
        Value::Bytes(bytes) => {
            out.push_str("X'");
            push_hex(out, bytes);
            out.push('\'');
        }
        // The common integer keys and counters, without the formatting machinery.
        Value::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
        Value::UInt(u) => out.push_str(itoa::Buffer::new().format(*u)),
        // Writing into a String cannot fail.
        Value::Date(..) | Value::Time(..) => {
            let _ = write!(out, "'{}'", Unquoted(value));
        }
        _ => {
            let _ = write!(out, "{}", Unquoted(value));
        }
    }
}

/// A value as the server reads it from text, unquoted: see [`Unquoted`].
pub fn write_unquoted(out: &mut Vec<u8>, value: &Value) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = match value {
        Value::Bytes(bytes) => out.write_all(bytes),
        // The common case of a full copy, without the formatting machinery.
        Value::Int(i) => out.write_all(itoa::Buffer::new().format(*i).as_bytes()),
        Value::UInt(u) => out.write_all(itoa::Buffer::new().format(*u).as_bytes()),
        _ => write!(out, "{}", Unquoted(value)),
    };
}

/// A value other than a string as the server reads it from text: numbers
/// plainly, temporal values as `YYYY-MM-DD hh:mm:ss.ffffff` or
/// `[-]hh:mm:ss.ffffff`. Strings are shown lossily; callers write their bytes.
struct Unquoted<'a>(&'a Value);

impl std::fmt::Display for Unquoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Value::NULL => f.write_str("NULL"),
            Value::Bytes(bytes) => f.write_str(&String::from_utf8_lossy(bytes)),
            Value::Int(i) => write!(f, "{i}"),
            Value::UInt(u) => write!(f, "{u}"),
            // Scientific notation makes the server read a double; Rust prints
            // the shortest text that reads back as the same number.
            Value::Float(v) => write!(f, "{:e}", f64::from(*v)),
            Value::Double(d) => write!(f, "{d:e}"),
            Value::Date(y, mo, d, h, mi, s, us) => {
                write!(f, "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
            }
            Value::Time(negative, days, h, mi, s, us) => {
                let hours = u64::from(*days) * 24 + u64::from(*h);
                let sign = if *negative { "-" } else { "" };
                write!(f, "{sign}{hours:02}:{mi:02}:{s:02}.{us:06}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_read_back_as_the_same_values() {
        assert_eq!(literal(&Value::NULL), "NULL");
        assert_eq!(literal(&Value::Bytes(b"it's".to_vec())), "X'69742773'");
        assert_eq!(literal(&Value::Int(-5)), "-5");
        assert_eq!(literal(&Value::UInt(u64::MAX)), "18446744073709551615");
        assert_eq!(literal(&Value::Double(0.1)), "1e-1");
        assert_eq!(literal(&Value::Float(1.5)), "1.5e0");
        assert_eq!(
            literal(&Value::Date(2026, 1, 2, 3, 4, 5, 60)),
            "'2026-01-02 03:04:05.000060'"
        );
        assert_eq!(
            literal(&Value::Time(true, 1, 2, 3, 4, 5)),
            "'-26:03:04.000005'"
        );
    }

    #[test]
    fn hex_is_upper_case_and_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f, 0x10]), "00AB7F10");
        assert_eq!(hex(&[]), "");
        // Longer than the stack buffer, and the same as the digits a
        // converted value carries.
        let long: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let text = hex(&long);
        assert_eq!(text.len(), 2000);
        assert_eq!(text.as_bytes(), hex_digits(&long).as_slice());
        assert!(text.starts_with("000102") && text.ends_with("E5E6E7"));
    }

    fn column(data_type: &str, column_type: &str) -> Column {
        Column {
            name: "c".into(),
            data_type: data_type.into(),
            column_type: column_type.into(),
            nullable: true,
            generated: false,
            virtual_generated: false,
            auto_increment: false,
            charset: None,
            collation: None,
        }
    }

    fn convert(c: &Column, v: Value) -> Value {
        match to_param(c, Conversion::of(c), BinlogValue::Value(v)) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn unsigned_integers_are_restored() {
        assert_eq!(
            convert(&column("tinyint", "tinyint(3) unsigned"), Value::Int(-1)),
            Value::UInt(255)
        );
        assert_eq!(
            convert(
                &column("mediumint", "mediumint(8) unsigned"),
                Value::Int(-1)
            ),
            Value::UInt(16_777_215)
        );
        assert_eq!(
            convert(&column("bigint", "bigint(20) unsigned"), Value::Int(-1)),
            Value::UInt(u64::MAX)
        );
        assert_eq!(
            convert(&column("int", "int(11)"), Value::Int(-1)),
            Value::Int(-1)
        );
    }

    #[test]
    fn timestamps_become_utc_datetimes() {
        let ts = column("timestamp", "timestamp(6)");
        assert_eq!(
            convert(&ts, Value::Bytes(b"2147483647.999999".to_vec())),
            Value::Date(2038, 1, 19, 3, 14, 7, 999_999)
        );
        assert_eq!(
            convert(&ts, Value::Bytes(b"1".to_vec())),
            Value::Date(1970, 1, 1, 0, 0, 1, 0)
        );
        assert_eq!(
            convert(&ts, Value::Bytes(b"0".to_vec())),
            Value::Date(0, 0, 0, 0, 0, 0, 0)
        );
        assert_eq!(
            convert(&ts, Value::Bytes(b"1709210096.5".to_vec())),
            Value::Date(2024, 2, 29, 12, 34, 56, 500_000)
        );
    }

    #[test]
    fn year_set_and_text_placeholders() {
        assert_eq!(
            convert(&column("year", "year(4)"), Value::Bytes(b"1900".to_vec())),
            Value::Int(0)
        );
        assert_eq!(
            convert(&column("year", "year(4)"), Value::Bytes(b"2155".to_vec())),
            Value::Int(2155)
        );
        assert_eq!(
            convert(&column("set", "set('a','b','c')"), Value::Bytes(vec![5])),
            Value::UInt(5)
        );
        let mut latin = column("varchar", "varchar(10)");
        latin.charset = Some("latin1".into());
        assert_eq!(placeholder(&latin), "CONVERT(UNHEX(?) USING latin1)");
        latin.charset = Some("utf8mb4".into());
        assert_eq!(placeholder(&latin), "?");
    }

    #[test]
    fn text_in_other_character_sets_stays_raw_until_it_leaves() {
        let mut latin = column("char", "char(10)");
        latin.charset = Some("latin1".into());
        let raw = vec![b'a', 0xe9];
        // Decoded: the raw bytes, as filters and comparisons read them.
        assert_eq!(
            convert(&latin, Value::Bytes(raw.clone())),
            Value::Bytes(raw.clone())
        );
        // Leaving: hex, in the column's character set.
        assert_eq!(
            bound(&latin, Value::Bytes(raw.clone())),
            Value::Bytes(b"61E9".to_vec())
        );
        assert_eq!(
            render(&latin, &Value::Bytes(raw.clone())),
            "_latin1 X'61E9'"
        );
        let id = column("int", "int(11)");
        assert_eq!(
            bound_rows(
                &[&id, &latin],
                vec![
                    Value::Int(1),
                    Value::Bytes(raw.clone()),
                    Value::Int(2),
                    Value::NULL
                ]
            ),
            vec![
                Value::Int(1),
                Value::Bytes(b"61E9".to_vec()),
                Value::Int(2),
                Value::NULL
            ]
        );
        let mut utf8 = latin.clone();
        utf8.charset = Some("utf8mb4".into());
        assert_eq!(bound(&utf8, Value::Bytes(raw.clone())), Value::Bytes(raw));
    }
}
