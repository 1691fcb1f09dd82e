//! The values a filter computes with, and how each kind of column's stored
//! value becomes one.

use super::collation::Charset;
use bigdecimal::BigDecimal;
use std::borrow::Cow;
use std::str::FromStr;

#[derive(Debug, Clone)]
pub enum Val<'a> {
    Null,
    Int(i128),
    Dec(BigDecimal),
    Double(f64),
    Text(Text<'a>),
    Time(Temporal),
}

#[derive(Debug, Clone)]
pub struct Text<'a> {
    pub bytes: Cow<'a, [u8]>,
    pub charset: &'a Charset,
}

impl Text<'_> {
    pub fn units(&self) -> super::collation::Units<'_> {
        self.charset.units(&self.bytes)
    }

    /// MariaDB's reading of text as a number: the longest leading number
    /// after white space, 0 when there is none.
    pub fn to_double(&self) -> f64 {
        leading_double(&self.bytes)
    }
}

/// A DATE or DATETIME as its fields, ordered as the server orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Temporal {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micros: u32,
}

impl Temporal {
    pub fn date(self) -> Self {
        Self {
            hour: 0,
            minute: 0,
            second: 0,
            micros: 0,
            ..self
        }
    }

    /// The zero date, '0000-00-00 00:00:00'.
    pub const ZERO: Self = Self {
        year: 0,
        month: 0,
        day: 0,
        hour: 0,
        minute: 0,
        second: 0,
        micros: 0,
    };

    pub fn is_zero(&self) -> bool {
        *self == Self::ZERO
    }

    /// `YYYY-MM-DD` or `YYYY-MM-DD hh:mm:ss[.ffffff]`, a real calendar date;
    /// what MariaDB would read with its many relaxed forms is refused, so the
    /// two never read a literal differently.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (date, time) = match text.split_once(' ') {
            Some((d, t)) => (d, Some(t.trim_start())),
            None => (text, None),
        };
        let mut parts = date.split('-');
        let year = number(parts.next()?, 4, 4)?;
        let month = number(parts.next()?, 1, 2)?;
        let day = number(parts.next()?, 1, 2)?;
        if parts.next().is_some() || !(1..=12).contains(&month) || day < 1 {
            return None;
        }
        if day > days_in_month(year, month) {
            return None;
        }
        let mut value = Self {
            year: year as u16,
            month: month as u8,
            day: day as u8,
            ..Self::ZERO
        };
        if let Some(time) = time {
            let (hms, fraction) = match time.split_once('.') {
                Some((hms, f)) => (hms, Some(f)),
                None => (time, None),
            };
            let mut parts = hms.split(':');
            let hour = number(parts.next()?, 1, 2)?;
            let minute = number(parts.next()?, 1, 2)?;
            let second = number(parts.next()?, 1, 2)?;
            if parts.next().is_some() || hour > 23 || minute > 59 || second > 59 {
                return None;
            }
            let micros = match fraction {
                Some(f)
                    if !f.is_empty() && f.len() <= 6 && f.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    format!("{f:0<6}").parse().ok()?
                }
                Some(_) => return None,
                None => 0,
            };
            value.hour = hour as u8;
            value.minute = minute as u8;
            value.second = second as u8;
            value.micros = micros;
        }
        Some(value)
    }
}

fn number(text: &str, min: usize, max: usize) -> Option<u32> {
    if text.len() < min || text.len() > max || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The longest number at the start of `bytes` after white space, as
/// MariaDB's string-to-double conversion reads it.
pub fn leading_double(bytes: &[u8]) -> f64 {
    let mut i = 0;
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let start = i;
    if i < bytes.len() && matches!(bytes[i], b'+' | b'-') {
        i += 1;
    }
    let digits_from = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - digits_from;
    if i < bytes.len() && bytes[i] == b'.' {
        let fraction_from = i + 1;
        let mut j = fraction_from;
        while j < bytes.len() && bytes[j].is_ascii_digit() {
            j += 1;
        }
        digits += j - fraction_from;
        if digits > 0 {
            i = j;
        }
    }
    if digits == 0 {
        return 0.0;
    }
    if i < bytes.len() && matches!(bytes[i], b'e' | b'E') {
        let mut j = i + 1;
        if j < bytes.len() && matches!(bytes[j], b'+' | b'-') {
            j += 1;
        }
        let exponent_from = j;
        while j < bytes.len() && bytes[j].is_ascii_digit() {
            j += 1;
        }
        if j > exponent_from {
            i = j;
        }
    }
    let text = std::str::from_utf8(&bytes[start..i]).unwrap_or("0");
    let text = text.strip_suffix('.').unwrap_or(text);
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => v,
        Ok(v) => v.signum() * f64::MAX,
        Err(_) => 0.0,
    }
}

pub fn decimal_of(text: &str) -> Option<BigDecimal> {
    BigDecimal::from_str(text.trim()).ok()
}

/// A DECIMAL as a DOUBLE, correctly rounded (as the server reads its text).
pub fn decimal_to_double(value: &BigDecimal) -> f64 {
    value.to_string().parse().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reads_as_its_leading_number() {
        for (text, expected) in [
            ("12", 12.0),
            (" 12abc", 12.0),
            ("1e2x", 100.0),
            ("-.5", -0.5),
            ("5.", 5.0),
            ("abc", 0.0),
            ("", 0.0),
            ("+", 0.0),
            ("1e", 1.0),
            ("\t-3.25e-1", -0.325),
        ] {
            assert_eq!(leading_double(text.as_bytes()), expected, "{text:?}");
        }
    }

    #[test]
    fn dates_are_read_only_in_their_plain_forms() {
        let d = Temporal::parse("2024-02-29").unwrap();
        assert_eq!((d.year, d.month, d.day, d.hour), (2024, 2, 29, 0));
        let t = Temporal::parse("2024-1-5 7:08:09.5").unwrap();
        assert_eq!(
            (t.month, t.day, t.hour, t.minute, t.micros),
            (1, 5, 7, 8, 500_000)
        );
        for bad in [
            "2023-02-29",
            "20240105",
            "2024-13-01",
            "2024-01-01 24:00:00",
            "2024/01/01",
            "x",
        ] {
            assert!(Temporal::parse(bad).is_none(), "{bad}");
        }
    }
}
