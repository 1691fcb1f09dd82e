//! A table's row filter bound to the source's definition of the table, and
//! evaluated on row images as the source server would evaluate it in the
//! full copy's SELECT.
//!
//! The server decides how to compare from the types of the operands, not
//! from their values (two integers as integers, integers and decimals as
//! decimals, text under the column's collation, dates as dates, anything
//! else as doubles); binding does the same once per definition, so
//! evaluating a row is only the arithmetic. What the server would do in a
//! way dts does not reproduce exactly is refused when binding, with the
//! reason, never guessed.

pub mod collation;
mod eval;
mod like;
pub mod value;

use crate::source::catalog::{Column, Table};
use collation::{Charset, Collation, CollationError, Collations};
use dts_common::filter::{ArithOp, CompareOp, Expr, Function, Literal, LogicOp, RowFilter};
use mysql_async::Value;
use std::borrow::Cow;
use std::sync::Arc;
use value::{decimal_of, Temporal, Text, Val};

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Collation(#[from] CollationError),
}

pub use eval::EvalError;

static UTF8: Charset = Charset::Utf8;

/// What the server's type system says an expression is.
#[derive(Debug, Clone)]
enum Ty {
    Null,
    Int {
        unsigned: bool,
    },
    Dec,
    Double,
    Text {
        collation: Arc<Collation>,
        /// A column's collation wins over a literal's.
        column: bool,
        /// An ENUM column: as a number it is its index, not its label.
        enumerated: bool,
        /// The text of a string literal.
        constant: Option<Arc<str>>,
    },
    Time,
}

impl Ty {
    fn name(&self) -> &'static str {
        match self {
            Ty::Null => "NULL",
            Ty::Int { .. } => "an integer",
            Ty::Dec => "a decimal",
            Ty::Double => "a double",
            Ty::Text { .. } => "text",
            Ty::Time => "a date",
        }
    }
}

/// How two operands are compared.
#[derive(Debug, Clone)]
enum Mode {
    Null,
    Int,
    Dec,
    Double,
    Text(Arc<Collation>),
    Time,
}

#[derive(Debug, Clone, Copy)]
enum Numeric {
    Int { unsigned: bool },
    Dec,
    Double,
}

/// How a column's stored value is read.
#[derive(Debug)]
enum Read {
    Int,
    Dec,
    Double,
    /// Raw bytes in the column's character set (see `sink::convert`).
    Text {
        charset: Arc<Charset>,
    },
    Enum(Vec<String>),
    Time,
}

#[derive(Debug)]
enum Node {
    Column {
        index: usize,
        read: Read,
    },
    Const(Val<'static>),
    Not(Box<Node>),
    Logic(LogicOp, Box<Node>, Box<Node>),
    Compare(CompareOp, Mode, Box<Node>, Box<Node>),
    Arith(ArithOp, Numeric, Box<Node>, Box<Node>),
    Negate(Numeric, Box<Node>),
    IsNull(Box<Node>, bool),
    IsBool(Box<Node>, bool, bool),
    Like {
        expr: Box<Node>,
        pattern: Box<Node>,
        escape: u32,
        collation: Arc<Collation>,
        negated: bool,
    },
    /// COALESCE / IFNULL: the first argument that is not NULL, as `Mode`.
    First(Mode, Vec<Node>),
    Abs(Numeric, Box<Node>),
    CharLength(Box<Node>),
    DatePart(Function, Box<Node>),
}

/// A filter bound to one definition of its table.
#[derive(Debug)]
pub struct BoundFilter {
    root: Node,
}

/// Binds `filter` to `table` (the source's definition), reading the
/// collations and character sets it compares text under from `conn`.
pub async fn bind(
    filter: &RowFilter,
    table: &Table,
    collations: &mut Collations,
    conn: &mut mysql_async::Conn,
) -> Result<BoundFilter, FilterError> {
    let literal = collations.literal(conn).await?;
    let mut text_columns = Vec::new();
    for name in filter.columns() {
        let (_, column) = find_column(table, name)?;
        if let Some(charset) = text_charset(column) {
            let collation = column.collation.as_deref().unwrap_or("binary");
            let collation = collations.collation(conn, collation).await?;
            let charset = collations.charset(conn, charset).await?;
            text_columns.push((column.name.to_ascii_lowercase(), charset, collation));
        }
    }
    let binder = Binder {
        table,
        literal,
        text_columns,
    };
    let root = binder.truth(filter.expr())?;
    Ok(BoundFilter { root })
}

/// The position and definition of column `name` (compared without case).
fn find_column<'t>(table: &'t Table, name: &str) -> Result<(usize, &'t Column), FilterError> {
    table
        .columns
        .iter()
        .enumerate()
        .find(|(_, c)| c.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            FilterError::Unsupported(format!(
                "`{}`.`{}` has no column `{name}`",
                table.db, table.name
            ))
        })
}

/// The character set a text column's values are read in; `None` for
/// columns that are not text.
fn text_charset(column: &Column) -> Option<&str> {
    match column.data_type.as_str() {
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" => {
            Some(column.charset.as_deref().unwrap_or("utf8mb4"))
        }
        "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Some("binary"),
        _ => None,
    }
}

struct Binder<'t> {
    table: &'t Table,
    literal: Arc<Collation>,
    text_columns: Vec<(String, Arc<Charset>, Arc<Collation>)>,
}

fn unsupported(reason: impl Into<String>) -> FilterError {
    FilterError::Unsupported(reason.into())
}

impl Binder<'_> {
    fn bind(&self, expr: &Expr) -> Result<(Node, Ty), FilterError> {
        Ok(match expr {
            Expr::Column(name) => self.column(name)?,
            Expr::Literal(literal) => self.literal(literal)?,
            Expr::Not(e) => (
                Node::Not(Box::new(self.truth(e)?)),
                Ty::Int { unsigned: false },
            ),
            Expr::Logic(op, l, r) => {
                let operand = |e| match op {
                    LogicOp::Xor => self.xor_operand(e),
                    LogicOp::And | LogicOp::Or => self.truth(e),
                };
                (
                    Node::Logic(*op, Box::new(operand(l)?), Box::new(operand(r)?)),
                    Ty::Int { unsigned: false },
                )
            }
            Expr::Compare(op, l, r) => {
                let (l, r) = (self.bind(l)?, self.bind(r)?);
                self.compare(*op, l, r)?
            }
            Expr::Arith(op, l, r) => {
                let (l, lt) = self.bind(l)?;
                let (r, rt) = self.bind(r)?;
                let numeric = match (op, arith_mode(&lt, &rt)?) {
                    // The remainder takes the dividend's sign, and its signedness.
                    (ArithOp::Mod, Numeric::Int { .. }) => Numeric::Int {
                        unsigned: matches!(lt, Ty::Int { unsigned: true }),
                    },
                    (ArithOp::Mod, Numeric::Dec) => {
                        return Err(unsupported(
                            "% / MOD of a decimal is not supported: MariaDB's decimal remainder of a \
                             negative number can be a negative zero that compares below 0; use it on integers",
                        ))
                    }
                    (_, numeric) => numeric,
                };
                let ty = match (op, numeric) {
                    (ArithOp::IntDiv, Numeric::Int { unsigned }) => Ty::Int { unsigned },
                    (ArithOp::IntDiv, _) => Ty::Int { unsigned: false },
                    (_, Numeric::Int { unsigned }) => Ty::Int { unsigned },
                    (_, Numeric::Dec) => Ty::Dec,
                    (_, Numeric::Double) => Ty::Double,
                };
                (Node::Arith(*op, numeric, Box::new(l), Box::new(r)), ty)
            }
            Expr::Negate(e) => {
                let (node, ty) = self.bind(e)?;
                let numeric = match arith_mode(&ty, &Ty::Int { unsigned: false })? {
                    Numeric::Int { .. } => Numeric::Int { unsigned: false },
                    other => other,
                };
                (Node::Negate(numeric, Box::new(node)), numeric_ty(numeric))
            }
            Expr::IsNull { expr, negated } => (
                Node::IsNull(Box::new(self.bind(expr)?.0), *negated),
                Ty::Int { unsigned: false },
            ),
            Expr::IsBool {
                expr,
                value,
                negated,
            } => (
                Node::IsBool(Box::new(self.truth(expr)?), *value, *negated),
                Ty::Int { unsigned: false },
            ),
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                // x IN (a, b) is x = a OR x = b, NULLs included.
                let mut any: Option<Node> = None;
                for item in list {
                    let (eq, _) =
                        self.compare(CompareOp::Eq, self.bind(expr)?, self.bind(item)?)?;
                    any = Some(match any {
                        None => eq,
                        Some(before) => Node::Logic(LogicOp::Or, Box::new(before), Box::new(eq)),
                    });
                }
                let any = any.ok_or_else(|| unsupported("IN needs at least one value"))?;
                let node = if *negated {
                    Node::Not(Box::new(any))
                } else {
                    any
                };
                (node, Ty::Int { unsigned: false })
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let (ge, _) = self.compare(CompareOp::GtEq, self.bind(expr)?, self.bind(low)?)?;
                let (le, _) = self.compare(CompareOp::LtEq, self.bind(expr)?, self.bind(high)?)?;
                let both = Node::Logic(LogicOp::And, Box::new(ge), Box::new(le));
                let node = if *negated {
                    Node::Not(Box::new(both))
                } else {
                    both
                };
                (node, Ty::Int { unsigned: false })
            }
            Expr::Like {
                expr,
                pattern,
                escape,
                negated,
            } => {
                let (expr, et) = self.bind(expr)?;
                let (pattern, pt) = self.bind(pattern)?;
                let collation = match (&et, &pt) {
                    (Ty::Text { .. } | Ty::Null, Ty::Text { .. } | Ty::Null) => {
                        self.text_collation(&et, &pt)?
                    }
                    _ => {
                        return Err(unsupported(format!(
                            "LIKE compares text with a text pattern, not {} with {}",
                            et.name(),
                            pt.name()
                        )))
                    }
                };
                (
                    Node::Like {
                        expr: Box::new(expr),
                        pattern: Box::new(pattern),
                        escape: *escape as u32,
                        collation,
                        negated: *negated,
                    },
                    Ty::Int { unsigned: false },
                )
            }
            Expr::Function(function, args) => self.function(*function, args)?,
        })
    }

    /// An operand whose truth is asked (a condition, NOT, AND, IS TRUE).
    fn truth(&self, expr: &Expr) -> Result<Node, FilterError> {
        self.typed_truth(expr).map(|(node, _)| node)
    }

    /// A truth value, with the type it is read from.
    fn typed_truth(&self, expr: &Expr) -> Result<(Node, Ty), FilterError> {
        let (node, ty) = self.bind(expr)?;
        not_enum_number(&ty)?;
        Ok((node, ty))
    }

    /// An operand of XOR. MariaDB 10.11.14 reads XOR's operands as
    /// integers (rounding: `0.3 XOR 0` is 0, `'0.3' XOR 0` is 0) where
    /// AND, OR and NOT test for non-zero, and 10.11.19 tests for non-zero
    /// in XOR too: the same filter would keep different rows on different
    /// sources, so only operands whose truth is the same both ways pass.
    fn xor_operand(&self, expr: &Expr) -> Result<Node, FilterError> {
        let (node, ty) = self.typed_truth(expr)?;
        match ty {
            Ty::Dec | Ty::Double | Ty::Text { .. } => Err(unsupported(format!(
                "XOR over {} is read differently by MariaDB versions (10.11.14 rounds it to an \
                 integer first, so 0.3 XOR 0 is 0; later versions test it for non-zero): \
                 compare it explicitly, e.g. `(x <> 0) XOR ...`",
                ty.name()
            ))),
            Ty::Null | Ty::Int { .. } | Ty::Time => Ok(node),
        }
    }

    fn column(&self, name: &str) -> Result<(Node, Ty), FilterError> {
        let (index, column) = find_column(self.table, name)?;
        if column.virtual_generated {
            return Err(unsupported(format!(
                "column `{name}` is VIRTUAL generated: binlog row images do not hold it"
            )));
        }
        let (read, ty) = match column.data_type.as_str() {
            "tinyint" | "smallint" | "mediumint" | "int" | "bigint" => (
                Read::Int,
                Ty::Int {
                    unsigned: column.is_unsigned(),
                },
            ),
            "year" => (Read::Int, Ty::Int { unsigned: true }),
            "decimal" | "numeric" => (Read::Dec, Ty::Dec),
            "float" | "double" | "real" => (Read::Double, Ty::Double),
            "date" | "datetime" | "timestamp" => (Read::Time, Ty::Time),
            _ => {
                let lower = column.name.to_ascii_lowercase();
                let Some((_, charset, collation)) =
                    self.text_columns.iter().find(|(n, _, _)| *n == lower)
                else {
                    return Err(unsupported(format!(
                        "column `{name}` is of type {}, which filters do not read (numbers, \
                         text, ENUM, DATE, DATETIME and TIMESTAMP columns)",
                        column.column_type
                    )));
                };
                let read = if column.data_type == "enum" {
                    Read::Enum(enum_labels(&column.column_type))
                } else {
                    Read::Text {
                        charset: charset.clone(),
                    }
                };
                (
                    read,
                    Ty::Text {
                        collation: collation.clone(),
                        column: true,
                        enumerated: column.data_type == "enum",
                        constant: None,
                    },
                )
            }
        };
        Ok((Node::Column { index, read }, ty))
    }

    fn literal(&self, literal: &Literal) -> Result<(Node, Ty), FilterError> {
        let bad = |text: &str| unsupported(format!("number {text} is out of range"));
        let (value, ty) = match literal {
            Literal::Null => (Val::Null, Ty::Null),
            Literal::Bool(b) => (Val::Int(i128::from(*b)), Ty::Int { unsigned: false }),
            Literal::Integer(text) => {
                let n: i128 = text.parse().map_err(|_| bad(text))?;
                if n <= i128::from(i64::MAX) {
                    (Val::Int(n), Ty::Int { unsigned: false })
                } else if n <= i128::from(u64::MAX) {
                    (Val::Int(n), Ty::Int { unsigned: true })
                } else {
                    (
                        Val::Dec(decimal_of(text).ok_or_else(|| bad(text))?),
                        Ty::Dec,
                    )
                }
            }
            Literal::Decimal(text) => (
                Val::Dec(decimal_of(text).ok_or_else(|| bad(text))?),
                Ty::Dec,
            ),
            Literal::Double(text) => (
                Val::Double(text.parse().map_err(|_| bad(text))?),
                Ty::Double,
            ),
            Literal::String(s) => (
                Val::Text(Text {
                    bytes: Cow::Owned(s.as_bytes().to_vec()),
                    charset: &UTF8,
                }),
                Ty::Text {
                    collation: self.literal.clone(),
                    column: false,
                    enumerated: false,
                    constant: Some(Arc::from(s.as_str())),
                },
            ),
        };
        Ok((Node::Const(value), ty))
    }

    fn text_collation(&self, a: &Ty, b: &Ty) -> Result<Arc<Collation>, FilterError> {
        Ok(match (a, b) {
            (
                Ty::Text {
                    collation: x,
                    column: xc,
                    ..
                },
                Ty::Text {
                    collation: y,
                    column: yc,
                    ..
                },
            ) => {
                if x.is_binary() {
                    x.clone()
                } else if y.is_binary() {
                    y.clone()
                } else if x.name == y.name {
                    x.clone()
                } else if *xc && *yc {
                    return Err(unsupported(format!(
                        "text under {} is compared with text under {}: MariaDB refuses the mix",
                        x.name, y.name
                    )));
                } else if *xc {
                    holds(x, b)?;
                    x.clone()
                } else {
                    holds(y, a)?;
                    y.clone()
                }
            }
            (Ty::Text { collation, .. }, _) | (_, Ty::Text { collation, .. }) => collation.clone(),
            _ => self.literal.clone(),
        })
    }

    fn compare(
        &self,
        op: CompareOp,
        (l, lt): (Node, Ty),
        (r, rt): (Node, Ty),
    ) -> Result<(Node, Ty), FilterError> {
        let (mode, l, r) = match (&lt, &rt) {
            (Ty::Null, _) | (_, Ty::Null) => (Mode::Null, l, r),
            (Ty::Text { .. }, Ty::Text { .. }) => (Mode::Text(self.text_collation(&lt, &rt)?), l, r),
            (Ty::Time, Ty::Time) => (Mode::Time, l, r),
            (Ty::Time, Ty::Text { .. }) => (Mode::Time, l, date_constant(r)?),
            (Ty::Text { .. }, Ty::Time) => (Mode::Time, date_constant(l)?, r),
            (Ty::Time, _) | (_, Ty::Time) => {
                return Err(unsupported(format!(
                    "a date is compared with {}: compare dates with dates or quoted dates ('YYYY-MM-DD')",
                    if matches!(lt, Ty::Time) { rt.name() } else { lt.name() }
                )))
            }
            (Ty::Int { .. }, Ty::Int { .. }) => (Mode::Int, l, r),
            (Ty::Int { .. } | Ty::Dec, Ty::Int { .. } | Ty::Dec) => (Mode::Dec, l, r),
            _ => {
                not_enum_number(&lt)?;
                not_enum_number(&rt)?;
                (Mode::Double, l, r)
            }
        };
        Ok((
            Node::Compare(op, mode, Box::new(l), Box::new(r)),
            Ty::Int { unsigned: false },
        ))
    }

    fn function(&self, function: Function, args: &[Expr]) -> Result<(Node, Ty), FilterError> {
        let mut bound = args
            .iter()
            .map(|a| self.bind(a))
            .collect::<Result<Vec<_>, _>>()?;
        let single = |bound: &mut Vec<(Node, Ty)>| {
            bound.pop().ok_or_else(|| unsupported("missing argument"))
        };
        Ok(match function {
            Function::Coalesce | Function::IfNull => {
                let mut ty = Ty::Null;
                for (_, t) in &bound {
                    ty = self.common_type(&ty, t)?;
                }
                let mode = match &ty {
                    Ty::Null => Mode::Null,
                    Ty::Int { .. } => Mode::Int,
                    Ty::Dec => Mode::Dec,
                    Ty::Double => Mode::Double,
                    Ty::Text { collation, .. } => Mode::Text(collation.clone()),
                    Ty::Time => Mode::Time,
                };
                (
                    Node::First(mode, bound.into_iter().map(|(n, _)| n).collect()),
                    ty,
                )
            }
            Function::Abs => {
                let (node, ty) = single(&mut bound)?;
                let numeric = arith_mode(&ty, &Ty::Int { unsigned: true })?;
                let numeric = match (numeric, &ty) {
                    (Numeric::Int { .. }, Ty::Int { unsigned }) => Numeric::Int {
                        unsigned: *unsigned,
                    },
                    (other, _) => other,
                };
                (Node::Abs(numeric, Box::new(node)), numeric_ty(numeric))
            }
            Function::CharLength => {
                let (node, ty) = single(&mut bound)?;
                if !matches!(ty, Ty::Text { .. } | Ty::Null) {
                    return Err(unsupported(format!(
                        "CHAR_LENGTH takes text, not {}",
                        ty.name()
                    )));
                }
                (
                    Node::CharLength(Box::new(node)),
                    Ty::Int { unsigned: false },
                )
            }
            Function::Year | Function::Month | Function::Day | Function::Date => {
                let (node, ty) = single(&mut bound)?;
                let node = match ty {
                    Ty::Time | Ty::Null => node,
                    Ty::Text { .. } => date_constant(node)?,
                    other => {
                        return Err(unsupported(format!(
                            "{} takes a date, not {}",
                            function.sql_name(),
                            other.name()
                        )))
                    }
                };
                let ty = if function == Function::Date {
                    Ty::Time
                } else {
                    Ty::Int { unsigned: false }
                };
                (Node::DatePart(function, Box::new(node)), ty)
            }
        })
    }

    /// The type of COALESCE's result over arguments of types `a` and `b`.
    fn common_type(&self, a: &Ty, b: &Ty) -> Result<Ty, FilterError> {
        Ok(match (a, b) {
            (Ty::Null, t) | (t, Ty::Null) => t.clone(),
            (Ty::Int { unsigned: x }, Ty::Int { unsigned: y }) => Ty::Int { unsigned: *x && *y },
            (Ty::Int { .. } | Ty::Dec, Ty::Int { .. } | Ty::Dec) => Ty::Dec,
            (Ty::Int { .. } | Ty::Dec | Ty::Double, Ty::Int { .. } | Ty::Dec | Ty::Double) => {
                Ty::Double
            }
            (
                Ty::Text {
                    column: x,
                    enumerated: xe,
                    ..
                },
                Ty::Text {
                    column: y,
                    enumerated: ye,
                    ..
                },
            ) => Ty::Text {
                collation: self.text_collation(a, b)?,
                column: *x || *y,
                enumerated: *xe || *ye,
                constant: None,
            },
            (Ty::Time, Ty::Time) => Ty::Time,
            _ => {
                return Err(unsupported(format!(
                    "COALESCE/IFNULL mixes {} and {}: give it arguments of one kind",
                    a.name(),
                    b.name()
                )))
            }
        })
    }
}

fn numeric_ty(numeric: Numeric) -> Ty {
    match numeric {
        Numeric::Int { unsigned } => Ty::Int { unsigned },
        Numeric::Dec => Ty::Dec,
        Numeric::Double => Ty::Double,
    }
}

/// A literal compared under a column's collation is converted to the
/// column's character set, and the server refuses the comparison when it
/// holds characters that set has not.
fn holds(collation: &Collation, literal: &Ty) -> Result<(), FilterError> {
    if let Ty::Text {
        constant: Some(text),
        ..
    } = literal
    {
        if let Some(missing) = text.chars().find(|c| !collation.holds(*c as u32)) {
            return Err(unsupported(format!(
                "'{text}' is compared with text under {}, which cannot hold {missing:?}: MariaDB refuses the mix",
                collation.name
            )));
        }
    }
    Ok(())
}

/// An ENUM read as a number is its index, which dts does not keep.
fn not_enum_number(ty: &Ty) -> Result<(), FilterError> {
    match ty {
        Ty::Text {
            enumerated: true, ..
        } => Err(unsupported(
            "an ENUM column used as a number or a truth value means its index: compare it with a quoted label",
        )),
        _ => Ok(()),
    }
}

fn arith_mode(a: &Ty, b: &Ty) -> Result<Numeric, FilterError> {
    not_enum_number(a)?;
    not_enum_number(b)?;
    Ok(match (a, b) {
        (Ty::Time, _) | (_, Ty::Time) => {
            return Err(unsupported(
                "arithmetic on dates is not supported: compare the date itself",
            ))
        }
        (Ty::Int { unsigned: x }, Ty::Int { unsigned: y }) => Numeric::Int { unsigned: *x || *y },
        (Ty::Null, Ty::Int { unsigned }) | (Ty::Int { unsigned }, Ty::Null) => Numeric::Int {
            unsigned: *unsigned,
        },
        (Ty::Int { .. } | Ty::Dec | Ty::Null, Ty::Int { .. } | Ty::Dec | Ty::Null) => Numeric::Dec,
        _ => Numeric::Double,
    })
}

/// A quoted date compared with a date becomes the date it names.
fn date_constant(node: Node) -> Result<Node, FilterError> {
    match node {
        Node::Const(Val::Text(text)) => {
            let s = String::from_utf8_lossy(&text.bytes).into_owned();
            Temporal::parse(&s)
                .map(|t| Node::Const(Val::Time(t)))
                .ok_or_else(|| {
                    unsupported(format!(
                        "'{s}' is compared with a date but is not one: write 'YYYY-MM-DD' or \
                         'YYYY-MM-DD hh:mm:ss' with a real calendar date"
                    ))
                })
        }
        Node::Const(Val::Null) => Ok(Node::Const(Val::Null)),
        _ => Err(unsupported(
            "a date is compared with text that is not a quoted constant",
        )),
    }
}

/// The labels of `enum('a','b''c')`, in order.
fn enum_labels(column_type: &str) -> Vec<String> {
    let inner = column_type
        .find('(')
        .and_then(|start| {
            column_type
                .rfind(')')
                .map(|end| &column_type[start + 1..end])
        })
        .unwrap_or_default();
    let mut labels = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut label = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(next) = chars.next() {
                        label.push(next);
                    }
                }
                other => label.push(other),
            }
        }
        labels.push(label);
    }
    labels
}

impl BoundFilter {
    /// Whether the row (full width, source column order, values as the
    /// applier holds them) passes the filter.
    pub fn matches(&self, row: &[Value]) -> Result<bool, EvalError> {
        Ok(eval::truth(&eval::eval(&self.root, row)?) == Some(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_labels_read_quotes_and_case() {
        assert_eq!(
            enum_labels("enum('EU','us','it''s')"),
            vec!["EU".to_string(), "us".into(), "it's".into()]
        );
    }
}
