//! Evaluating a bound filter on one row: three-valued logic, comparisons
//! in the mode binding chose, integer overflow as the server reports it.

use super::value::{decimal_of, decimal_to_double, Temporal, Text, Val};
use super::{like, Mode, Node, Numeric, Read, UTF8};
use bigdecimal::{BigDecimal, Signed, ToPrimitive, Zero};
use dts_common::filter::{ArithOp, CompareOp, Function, LogicOp};
use mysql_async::Value;
use std::borrow::Cow;
use std::cmp::Ordering;

/// A value the server would refuse to compute (it fails the statement).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(String);

pub(super) fn truth(value: &Val<'_>) -> Option<bool> {
    Some(match value {
        Val::Null => return None,
        Val::Int(i) => *i != 0,
        Val::Dec(d) => !d.is_zero(),
        Val::Double(f) => *f != 0.0,
        Val::Text(t) => t.to_double() != 0.0,
        Val::Time(t) => !t.is_zero(),
    })
}

fn boolean(value: Option<bool>) -> Val<'static> {
    match value {
        None => Val::Null,
        Some(b) => Val::Int(i128::from(b)),
    }
}

fn out_of_range(what: &str) -> EvalError {
    EvalError(format!("{what} value is out of range"))
}

fn int_in_range(value: i128, unsigned: bool) -> Result<i128, EvalError> {
    let ok = if unsigned {
        (0..=i128::from(u64::MAX)).contains(&value)
    } else {
        (i128::from(i64::MIN)..=i128::from(i64::MAX)).contains(&value)
    };
    if ok {
        Ok(value)
    } else if unsigned {
        Err(out_of_range("BIGINT UNSIGNED"))
    } else {
        Err(out_of_range("BIGINT"))
    }
}

fn as_int(value: &Val<'_>) -> i128 {
    match value {
        Val::Int(i) => *i,
        _ => 0,
    }
}

fn as_dec(value: &Val<'_>) -> BigDecimal {
    match value {
        Val::Int(i) => BigDecimal::from(*i),
        Val::Dec(d) => d.clone(),
        Val::Double(f) => BigDecimal::try_from(*f).unwrap_or_default(),
        Val::Text(t) => decimal_of(&String::from_utf8_lossy(&t.bytes)).unwrap_or_default(),
        _ => BigDecimal::zero(),
    }
}

fn as_double(value: &Val<'_>) -> f64 {
    match value {
        Val::Int(i) => *i as f64,
        Val::Dec(d) => decimal_to_double(d),
        Val::Double(f) => *f,
        Val::Text(t) => t.to_double(),
        _ => 0.0,
    }
}

pub(super) fn eval<'a>(node: &'a Node, row: &'a [Value]) -> Result<Val<'a>, EvalError> {
    Ok(match node {
        Node::Column { index, read } => read_value(read, row.get(*index).unwrap_or(&Value::NULL))?,
        // Constant text is lent, not copied, for every row.
        Node::Const(Val::Text(text)) => Val::Text(Text {
            bytes: Cow::Borrowed(&text.bytes),
            charset: text.charset,
        }),
        Node::Const(value) => value.clone(),
        Node::Not(e) => boolean(truth(&eval(e, row)?).map(|b| !b)),
        Node::Logic(op, l, r) => {
            let l = truth(&eval(l, row)?);
            // AND/OR stop early as the server may: the answer is the same.
            match (op, l) {
                (LogicOp::And, Some(false)) => return Ok(Val::Int(0)),
                (LogicOp::Or, Some(true)) => return Ok(Val::Int(1)),
                _ => {}
            }
            let r = truth(&eval(r, row)?);
            boolean(match op {
                LogicOp::And => match (l, r) {
                    (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                },
                LogicOp::Or => match (l, r) {
                    (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                },
                LogicOp::Xor => l.zip(r).map(|(a, b)| a != b),
            })
        }
        Node::Compare(op, mode, l, r) => {
            let (l, r) = (eval(l, row)?, eval(r, row)?);
            let null = (matches!(l, Val::Null), matches!(r, Val::Null));
            if *op == CompareOp::NullSafeEq && (null.0 || null.1) {
                return Ok(Val::Int(i128::from(null.0 && null.1)));
            }
            if null.0 || null.1 {
                return Ok(Val::Null);
            }
            let order = compare(mode, &l, &r);
            boolean(order.map(|o| match op {
                CompareOp::Eq | CompareOp::NullSafeEq => o == Ordering::Equal,
                CompareOp::NotEq => o != Ordering::Equal,
                CompareOp::Lt => o == Ordering::Less,
                CompareOp::LtEq => o != Ordering::Greater,
                CompareOp::Gt => o == Ordering::Greater,
                CompareOp::GtEq => o != Ordering::Less,
            }))
        }
        Node::Arith(op, numeric, l, r) => {
            let (l, r) = (eval(l, row)?, eval(r, row)?);
            if matches!(l, Val::Null) || matches!(r, Val::Null) {
                return Ok(Val::Null);
            }
            arith(*op, *numeric, &l, &r)?
        }
        Node::Negate(numeric, e) => match eval(e, row)? {
            Val::Null => Val::Null,
            v => match numeric {
                Numeric::Int { .. } => Val::Int(int_in_range(-as_int(&v), false)?),
                Numeric::Dec => Val::Dec(-as_dec(&v)),
                Numeric::Double => Val::Double(-as_double(&v)),
            },
        },
        Node::IsNull(e, negated) => {
            Val::Int(i128::from(matches!(eval(e, row)?, Val::Null) != *negated))
        }
        Node::IsBool(e, value, negated) => {
            let is = truth(&eval(e, row)?) == Some(*value);
            Val::Int(i128::from(is != *negated))
        }
        Node::Like {
            expr,
            pattern,
            escape,
            collation,
            negated,
        } => {
            let (text, pattern) = (eval(expr, row)?, eval(pattern, row)?);
            match (text, pattern) {
                (Val::Text(text), Val::Text(pattern)) => {
                    // Under binary, both are bytes, whatever their character sets.
                    let units = |t: &Text<'_>| -> Vec<u32> {
                        if collation.is_binary() {
                            t.bytes.iter().map(|b| u32::from(*b)).collect()
                        } else {
                            t.units().collect()
                        }
                    };
                    let (units, pattern) = (units(&text), units(&pattern));
                    let matched = like::matches(&units, &pattern, *escape, collation);
                    Val::Int(i128::from(matched != *negated))
                }
                _ => Val::Null,
            }
        }
        Node::First(mode, args) => {
            for arg in args {
                let value = eval(arg, row)?;
                if !matches!(value, Val::Null) {
                    return Ok(match mode {
                        Mode::Dec => Val::Dec(as_dec(&value)),
                        Mode::Double => Val::Double(as_double(&value)),
                        _ => value,
                    });
                }
            }
            Val::Null
        }
        Node::Abs(numeric, e) => match eval(e, row)? {
            Val::Null => Val::Null,
            v => match numeric {
                Numeric::Int { unsigned } => Val::Int(int_in_range(as_int(&v).abs(), *unsigned)?),
                Numeric::Dec => Val::Dec(as_dec(&v).abs()),
                Numeric::Double => Val::Double(as_double(&v).abs()),
            },
        },
        Node::CharLength(e) => match eval(e, row)? {
            Val::Text(t) => Val::Int(t.units().count() as i128),
            _ => Val::Null,
        },
        Node::DatePart(function, e) => match eval(e, row)? {
            Val::Time(t) => match function {
                Function::Year => Val::Int(i128::from(t.year)),
                Function::Month => Val::Int(i128::from(t.month)),
                Function::Day => Val::Int(i128::from(t.day)),
                _ => Val::Time(t.date()),
            },
            _ => Val::Null,
        },
    })
}

fn compare(mode: &Mode, l: &Val<'_>, r: &Val<'_>) -> Option<Ordering> {
    Some(match mode {
        Mode::Null => return None,
        Mode::Int => as_int(l).cmp(&as_int(r)),
        Mode::Dec => as_dec(l).cmp(&as_dec(r)),
        Mode::Double => as_double(l).partial_cmp(&as_double(r))?,
        Mode::Text(collation) => match (l, r) {
            (Val::Text(a), Val::Text(b)) => {
                if collation.is_binary() {
                    a.bytes.as_ref().cmp(b.bytes.as_ref())
                } else {
                    collation.compare(a.units(), b.units())
                }
            }
            _ => return None,
        },
        Mode::Time => match (l, r) {
            (Val::Time(a), Val::Time(b)) => a.cmp(b),
            _ => return None,
        },
    })
}

fn arith(
    op: ArithOp,
    numeric: Numeric,
    l: &Val<'_>,
    r: &Val<'_>,
) -> Result<Val<'static>, EvalError> {
    Ok(match numeric {
        Numeric::Int { unsigned } => {
            let (a, b) = (as_int(l), as_int(r));
            let value = match op {
                ArithOp::Add => a + b,
                ArithOp::Sub => a - b,
                ArithOp::Mul => a.checked_mul(b).ok_or_else(|| out_of_range("BIGINT"))?,
                ArithOp::IntDiv | ArithOp::Mod if b == 0 => return Ok(Val::Null),
                ArithOp::IntDiv => a / b,
                ArithOp::Mod => a % b,
            };
            Val::Int(int_in_range(value, unsigned)?)
        }
        Numeric::Dec => {
            let (a, b) = (as_dec(l), as_dec(r));
            match op {
                ArithOp::Add => Val::Dec(a + b),
                ArithOp::Sub => Val::Dec(a - b),
                ArithOp::Mul => Val::Dec(a * b),
                ArithOp::IntDiv | ArithOp::Mod if b.is_zero() => Val::Null,
                ArithOp::IntDiv => {
                    let quotient = truncated_quotient(&a, &b);
                    Val::Int(int_in_range(
                        quotient.to_i128().ok_or_else(|| out_of_range("BIGINT"))?,
                        false,
                    )?)
                }
                ArithOp::Mod => {
                    let quotient = truncated_quotient(&a, &b);
                    Val::Dec(a - quotient * b)
                }
            }
        }
        Numeric::Double => {
            let (a, b) = (as_double(l), as_double(r));
            let value = match op {
                ArithOp::Add => a + b,
                ArithOp::Sub => a - b,
                ArithOp::Mul => a * b,
                ArithOp::IntDiv | ArithOp::Mod if b == 0.0 => return Ok(Val::Null),
                ArithOp::IntDiv => {
                    let q = (a / b).trunc();
                    if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&q) {
                        return Err(out_of_range("BIGINT"));
                    }
                    return Ok(Val::Int(q as i128));
                }
                ArithOp::Mod => a % b,
            };
            if !value.is_finite() {
                return Err(out_of_range("DOUBLE"));
            }
            Val::Double(value)
        }
    })
}

/// a / b rounded toward zero to a whole number, exactly.
fn truncated_quotient(a: &BigDecimal, b: &BigDecimal) -> BigDecimal {
    let negative = a.is_negative() != b.is_negative();
    let (a, b) = (a.abs(), b.abs());
    // Exact: the quotient's whole part needs no more digits than a has.
    let mut q = (&a / &b).with_scale_round(0, bigdecimal::RoundingMode::Down);
    // Division rounds its last digit: step to the whole part exactly.
    while &q * &b > a {
        q -= 1;
    }
    while (&q + BigDecimal::from(1)) * &b <= a {
        q += 1;
    }
    if negative {
        -q
    } else {
        q
    }
}

fn read_value<'a>(read: &'a Read, value: &'a Value) -> Result<Val<'a>, EvalError> {
    if *value == Value::NULL {
        return Ok(Val::Null);
    }
    let unreadable = || {
        EvalError(format!(
            "a column value {value:?} does not read as its type"
        ))
    };
    Ok(match read {
        Read::Int => match value {
            Value::Int(i) => Val::Int(i128::from(*i)),
            Value::UInt(u) => Val::Int(i128::from(*u)),
            Value::Bytes(b) => Val::Int(
                std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or_else(unreadable)?,
            ),
            _ => return Err(unreadable()),
        },
        Read::Dec => match value {
            Value::Bytes(b) => Val::Dec(
                std::str::from_utf8(b)
                    .ok()
                    .and_then(decimal_of)
                    .ok_or_else(unreadable)?,
            ),
            Value::Int(i) => Val::Dec(BigDecimal::from(*i)),
            Value::UInt(u) => Val::Dec(BigDecimal::from(*u)),
            _ => return Err(unreadable()),
        },
        Read::Double => match value {
            Value::Float(f) => Val::Double(f64::from(*f)),
            Value::Double(d) => Val::Double(*d),
            Value::Int(i) => Val::Double(*i as f64),
            Value::Bytes(b) => Val::Double(
                std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or_else(unreadable)?,
            ),
            _ => return Err(unreadable()),
        },
        Read::Text { charset } => match value {
            Value::Bytes(b) => Val::Text(Text {
                bytes: Cow::Borrowed(b),
                charset,
            }),
            _ => return Err(unreadable()),
        },
        Read::Enum(labels) => match value {
            // The binlog holds an ENUM's index (0: the error value '').
            Value::Int(_) | Value::UInt(_) => {
                let index = match value {
                    Value::Int(i) => usize::try_from(*i).ok(),
                    Value::UInt(u) => usize::try_from(*u).ok(),
                    _ => None,
                };
                let label = match index {
                    Some(0) => "",
                    Some(i) => labels
                        .get(i - 1)
                        .map(String::as_str)
                        .ok_or_else(unreadable)?,
                    None => return Err(unreadable()),
                };
                Val::Text(Text {
                    bytes: Cow::Borrowed(label.as_bytes()),
                    charset: &UTF8,
                })
            }
            Value::Bytes(b) => Val::Text(Text {
                bytes: Cow::Borrowed(b),
                charset: &UTF8,
            }),
            _ => return Err(unreadable()),
        },
        Read::Time => match value {
            Value::Date(year, month, day, hour, minute, second, micros) => Val::Time(Temporal {
                year: *year,
                month: *month,
                day: *day,
                hour: *hour,
                minute: *minute,
                second: *second,
                micros: *micros,
            }),
            Value::Bytes(b) => {
                let text = std::str::from_utf8(b).map_err(|_| unreadable())?;
                if text.starts_with("0000-00-00") {
                    Val::Time(Temporal::ZERO)
                } else {
                    Val::Time(Temporal::parse(text).ok_or_else(unreadable)?)
                }
            }
            _ => return Err(unreadable()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_quotients_are_exact_and_truncate_toward_zero() {
        let d = |s: &str| decimal_of(s).unwrap();
        assert_eq!(truncated_quotient(&d("7.5"), &d("2")), d("3"));
        assert_eq!(truncated_quotient(&d("-7.5"), &d("2")), d("-3"));
        assert_eq!(truncated_quotient(&d("1"), &d("3")), d("0"));
        assert_eq!(truncated_quotient(&d("9"), &d("-3")), d("-3"));
    }
}
