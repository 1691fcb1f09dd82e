//! A table's row filter (`where = "..."` in the task file): parsed once by a
//! real SQL parser into the small expression language dts can both push into
//! the full copy's SELECT and evaluate itself on binlog row images.
//!
//! What is refused here is refused at `task create`: text that does not
//! parse, and anything outside the language (subqueries, variables,
//! functions whose value depends on the session or the clock). Column names
//! and types are checked by the worker against the source's catalog.

use crate::spec::SpecError;
use sqlparser::ast::{self, BinaryOperator, UnaryOperator};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use std::fmt;

/// A parsed row filter. Two filters are equal when their text is.
#[derive(Debug, Clone)]
pub struct RowFilter {
    text: String,
    expr: Expr,
}

impl PartialEq for RowFilter {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for RowFilter {}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A source column, by its source name.
    Column(String),
    Literal(Literal),
    Not(Box<Expr>),
    Logic(LogicOp, Box<Expr>, Box<Expr>),
    Compare(CompareOp, Box<Expr>, Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Negate(Box<Expr>),
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    /// `IS [NOT] TRUE` / `IS [NOT] FALSE`
    IsBool {
        expr: Box<Expr>,
        value: bool,
        negated: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        escape: char,
        negated: bool,
    },
    Function(Function, Vec<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    /// Digits only: an integer (`BIGINT`, or `DECIMAL` beyond 64 bits).
    Integer(String),
    /// Digits with a point: `DECIMAL`.
    Decimal(String),
    /// With an exponent: `DOUBLE`.
    Double(String),
    String(String),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicOp {
    And,
    Or,
    Xor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    /// `<=>`: NULL-safe equality.
    NullSafeEq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    /// `DIV`
    IntDiv,
    /// `%` / `MOD`
    Mod,
}

/// The functions a filter may call: deterministic, session-independent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Coalesce,
    IfNull,
    Abs,
    CharLength,
    Year,
    Month,
    Day,
    Date,
}

impl Function {
    fn of(name: &str) -> Option<(Self, std::ops::RangeInclusive<usize>)> {
        Some(match name.to_ascii_uppercase().as_str() {
            "COALESCE" => (Self::Coalesce, 1..=usize::MAX),
            "IFNULL" => (Self::IfNull, 2..=2),
            "ABS" => (Self::Abs, 1..=1),
            "CHAR_LENGTH" | "CHARACTER_LENGTH" => (Self::CharLength, 1..=1),
            "YEAR" => (Self::Year, 1..=1),
            "MONTH" => (Self::Month, 1..=1),
            "DAY" | "DAYOFMONTH" => (Self::Day, 1..=1),
            "DATE" => (Self::Date, 1..=1),
            _ => return None,
        })
    }

    pub fn sql_name(self) -> &'static str {
        match self {
            Self::Coalesce => "COALESCE",
            Self::IfNull => "IFNULL",
            Self::Abs => "ABS",
            Self::CharLength => "CHAR_LENGTH",
            Self::Year => "YEAR",
            Self::Month => "MONTH",
            Self::Day => "DAYOFMONTH",
            Self::Date => "DATE",
        }
    }
}

const SUPPORTED: &str =
    "columns, literals, comparisons (= <> != < <= > >= <=>), IN, BETWEEN, LIKE, \
IS [NOT] NULL/TRUE/FALSE, AND/OR/XOR/NOT, + - * DIV % MOD(), and the functions \
COALESCE, IFNULL, ABS, CHAR_LENGTH, YEAR, MONTH, DAY, DATE";

impl RowFilter {
    /// Parses `text`; an error names `field` and what is wrong.
    pub fn parse(field: &str, text: &str) -> Result<Self, SpecError> {
        if text.trim().is_empty() {
            return Err(SpecError::new(field, "must not be empty"));
        }
        let dialect = MySqlDialect {};
        let mut parser = Parser::new(&dialect)
            .try_with_sql(text)
            .map_err(|e| SpecError::new(field, format!("does not parse: {e}")))?;
        let parsed = parser
            .parse_expr()
            .map_err(|e| SpecError::new(field, format!("does not parse: {e}")))?;
        let rest = parser.peek_token();
        if rest.token != sqlparser::tokenizer::Token::EOF {
            return Err(SpecError::new(
                field,
                format!(
                    "does not parse: unexpected `{}` after the condition",
                    rest.token
                ),
            ));
        }
        let expr = convert(&parsed).map_err(|reason| {
            SpecError::new(field, format!("{reason}; a condition may use {SUPPORTED}"))
        })?;
        Ok(Self {
            text: text.to_string(),
            expr,
        })
    }

    /// As the task file wrote it.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// The source columns the condition reads.
    pub fn columns(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.expr.visit_columns(&mut |c| {
            if !out.iter().any(|o: &&str| o.eq_ignore_ascii_case(c)) {
                out.push(c);
            }
        });
        out
    }

    /// The condition as SQL for the source server, rebuilt from the parsed
    /// form: identifiers quoted, strings as hex with their character set, so
    /// neither names nor the source's sql_mode change what it means.
    pub fn to_sql(&self) -> String {
        self.expr.to_string()
    }
}

impl Expr {
    fn visit_columns<'a>(&'a self, visit: &mut impl FnMut(&'a str)) {
        match self {
            Self::Column(name) => visit(name),
            Self::Literal(_) => {}
            Self::Not(e) | Self::Negate(e) => e.visit_columns(visit),
            Self::IsNull { expr, .. } | Self::IsBool { expr, .. } => expr.visit_columns(visit),
            Self::Logic(_, l, r) | Self::Compare(_, l, r) | Self::Arith(_, l, r) => {
                l.visit_columns(visit);
                r.visit_columns(visit);
            }
            Self::InList { expr, list, .. } => {
                expr.visit_columns(visit);
                list.iter().for_each(|e| e.visit_columns(visit));
            }
            Self::Between {
                expr, low, high, ..
            } => {
                expr.visit_columns(visit);
                low.visit_columns(visit);
                high.visit_columns(visit);
            }
            Self::Like { expr, pattern, .. } => {
                expr.visit_columns(visit);
                pattern.visit_columns(visit);
            }
            Self::Function(_, args) => args.iter().for_each(|e| e.visit_columns(visit)),
        }
    }
}

fn convert(expr: &ast::Expr) -> Result<Expr, String> {
    use ast::Expr as E;
    let boxed = |e: &ast::Expr| convert(e).map(Box::new);
    Ok(match expr {
        E::Identifier(ident) => Expr::Column(column_name(ident)?),
        E::CompoundIdentifier(parts) => {
            return Err(format!(
                "`{}`: name columns without their table or database",
                parts
                    .iter()
                    .map(|p| p.value.as_str())
                    .collect::<Vec<_>>()
                    .join(".")
            ))
        }
        E::Nested(inner) => convert(inner)?,
        E::Value(value) => Expr::Literal(literal(&value.value)?),
        E::UnaryOp { op, expr } => match op {
            UnaryOperator::Not | UnaryOperator::BangNot => Expr::Not(boxed(expr)?),
            UnaryOperator::Minus => Expr::Negate(boxed(expr)?),
            UnaryOperator::Plus => convert(expr)?,
            other => return Err(format!("operator `{other}` is not supported")),
        },
        E::BinaryOp { left, op, right } => {
            let (l, r) = (boxed(left)?, boxed(right)?);
            match op {
                BinaryOperator::And => Expr::Logic(LogicOp::And, l, r),
                BinaryOperator::Or => Expr::Logic(LogicOp::Or, l, r),
                BinaryOperator::Xor => Expr::Logic(LogicOp::Xor, l, r),
                BinaryOperator::Eq => Expr::Compare(CompareOp::Eq, l, r),
                BinaryOperator::NotEq => Expr::Compare(CompareOp::NotEq, l, r),
                BinaryOperator::Lt => Expr::Compare(CompareOp::Lt, l, r),
                BinaryOperator::LtEq => Expr::Compare(CompareOp::LtEq, l, r),
                BinaryOperator::Gt => Expr::Compare(CompareOp::Gt, l, r),
                BinaryOperator::GtEq => Expr::Compare(CompareOp::GtEq, l, r),
                BinaryOperator::Spaceship => Expr::Compare(CompareOp::NullSafeEq, l, r),
                BinaryOperator::Plus => Expr::Arith(ArithOp::Add, l, r),
                BinaryOperator::Minus => Expr::Arith(ArithOp::Sub, l, r),
                BinaryOperator::Multiply => Expr::Arith(ArithOp::Mul, l, r),
                BinaryOperator::Divide => {
                    return Err("`/` is not supported: MariaDB's decimal division keeps digits it \
                                does not show, so dts could not match its answers exactly; use DIV, \
                                or multiply the other side"
                        .into())
                }
                BinaryOperator::MyIntegerDivide => Expr::Arith(ArithOp::IntDiv, l, r),
                BinaryOperator::Modulo => Expr::Arith(ArithOp::Mod, l, r),
                other => return Err(format!("operator `{other}` is not supported")),
            }
        }
        E::IsNull(e) => Expr::IsNull {
            expr: boxed(e)?,
            negated: false,
        },
        E::IsNotNull(e) => Expr::IsNull {
            expr: boxed(e)?,
            negated: true,
        },
        E::IsTrue(e) => is_bool(boxed(e)?, true, false),
        E::IsNotTrue(e) => is_bool(boxed(e)?, true, true),
        E::IsFalse(e) => is_bool(boxed(e)?, false, false),
        E::IsNotFalse(e) => is_bool(boxed(e)?, false, true),
        E::InList {
            expr,
            list,
            negated,
        } => Expr::InList {
            expr: boxed(expr)?,
            list: list.iter().map(convert).collect::<Result<_, _>>()?,
            negated: *negated,
        },
        E::Between {
            expr,
            negated,
            low,
            high,
        } => Expr::Between {
            expr: boxed(expr)?,
            low: boxed(low)?,
            high: boxed(high)?,
            negated: *negated,
        },
        E::Like {
            negated,
            any: false,
            expr,
            pattern,
            escape_char,
        } => Expr::Like {
            expr: boxed(expr)?,
            pattern: boxed(pattern)?,
            escape: match escape_char {
                None => '\\',
                Some(ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s)) => {
                    let mut chars = s.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) => c,
                        _ => return Err("ESCAPE takes one character".into()),
                    }
                }
                Some(other) => return Err(format!("ESCAPE {other} is not one character")),
            },
            negated: *negated,
        },
        E::Function(function) => {
            let name = function.name.to_string();
            if name.eq_ignore_ascii_case("MOD") {
                // MOD(a, b) is a % b.
                if let ast::FunctionArguments::List(list) = &function.args {
                    if let [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(a)), ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(b))] =
                        list.args.as_slice()
                    {
                        return Ok(Expr::Arith(ArithOp::Mod, boxed(a)?, boxed(b)?));
                    }
                }
                return Err(format!("`{function}`: MOD takes two arguments"));
            }
            let (known, arity) =
                Function::of(&name).ok_or_else(|| format!("function `{name}` is not supported"))?;
            let args = match &function.args {
                ast::FunctionArguments::List(list)
                    if list.duplicate_treatment.is_none() && list.clauses.is_empty() =>
                {
                    list.args
                        .iter()
                        .map(|arg| match arg {
                            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => convert(e),
                            other => Err(format!("argument `{other}` of {name} is not supported")),
                        })
                        .collect::<Result<Vec<_>, _>>()?
                }
                _ => return Err(format!("`{function}`: only plain arguments are supported")),
            };
            if function.filter.is_some() || function.over.is_some() || !arity.contains(&args.len())
            {
                return Err(format!("`{function}` is not a call dts supports"));
            }
            Expr::Function(known, args)
        }
        other => return Err(format!("`{other}` is not supported")),
    })
}

fn is_bool(expr: Box<Expr>, value: bool, negated: bool) -> Expr {
    Expr::IsBool {
        expr,
        value,
        negated,
    }
}

fn column_name(ident: &ast::Ident) -> Result<String, String> {
    let name = &ident.value;
    if ident.quote_style.is_none() {
        if name.starts_with('@') {
            return Err(format!("variable `{name}` is not supported"));
        }
        // Bare words MySQL reads as values.
        match name.to_ascii_uppercase().as_str() {
            "TRUE" | "FALSE" | "NULL" => {}
            "CURRENT_DATE" | "CURRENT_TIME" | "CURRENT_TIMESTAMP" | "CURRENT_USER" | "LOCALTIME"
            | "LOCALTIMESTAMP" => {
                return Err(format!(
                    "`{name}` changes with the clock or session; a filter must give the same answer for a row whenever it is asked"
                ))
            }
            _ => {}
        }
    }
    if name.is_empty() || name.len() > 64 || name.contains('\0') || name.ends_with(' ') {
        return Err(format!("`{name}` is not a valid column name"));
    }
    Ok(name.clone())
}

fn literal(value: &ast::Value) -> Result<Literal, String> {
    use ast::Value as V;
    Ok(match value {
        V::Null => Literal::Null,
        V::Boolean(b) => Literal::Bool(*b),
        V::Number(text, _) => {
            if text.contains(['e', 'E']) {
                text.parse::<f64>()
                    .map_err(|_| format!("number {text} does not read as a DOUBLE"))?;
                Literal::Double(text.clone())
            } else if text.contains('.') {
                Literal::Decimal(text.clone())
            } else {
                Literal::Integer(text.clone())
            }
        }
        V::SingleQuotedString(s) | V::DoubleQuotedString(s) => Literal::String(s.clone()),
        V::Placeholder(p) => return Err(format!("placeholder `{p}` is not a value")),
        other => return Err(format!("literal `{other}` is not supported")),
    })
}

fn quote_identifier(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    write!(f, "`{}`", name.replace('`', "``"))
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("NULL"),
            Self::Integer(t) | Self::Decimal(t) | Self::Double(t) => f.write_str(t),
            Self::Bool(true) => f.write_str("TRUE"),
            Self::Bool(false) => f.write_str("FALSE"),
            // A hex string under an introducer: the same value and collation
            // as the quoted string, whatever NO_BACKSLASH_ESCAPES says.
            Self::String(s) if s.is_empty() => f.write_str("_utf8mb4''"),
            Self::String(s) => {
                f.write_str("_utf8mb4 X'")?;
                for b in s.as_bytes() {
                    write!(f, "{b:02X}")?;
                }
                f.write_str("'")
            }
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not = |negated: bool| if negated { "NOT " } else { "" };
        match self {
            Self::Column(name) => quote_identifier(f, name),
            Self::Literal(l) => l.fmt(f),
            Self::Not(e) => write!(f, "(NOT {e})"),
            Self::Negate(e) => write!(f, "(-{e})"),
            Self::Logic(op, l, r) => {
                let op = match op {
                    LogicOp::And => "AND",
                    LogicOp::Or => "OR",
                    LogicOp::Xor => "XOR",
                };
                write!(f, "({l} {op} {r})")
            }
            Self::Compare(op, l, r) => {
                let op = match op {
                    CompareOp::Eq => "=",
                    CompareOp::NotEq => "<>",
                    CompareOp::Lt => "<",
                    CompareOp::LtEq => "<=",
                    CompareOp::Gt => ">",
                    CompareOp::GtEq => ">=",
                    CompareOp::NullSafeEq => "<=>",
                };
                write!(f, "({l} {op} {r})")
            }
            Self::Arith(op, l, r) => {
                let op = match op {
                    ArithOp::Add => "+",
                    ArithOp::Sub => "-",
                    ArithOp::Mul => "*",
                    ArithOp::IntDiv => "DIV",
                    ArithOp::Mod => "%",
                };
                write!(f, "({l} {op} {r})")
            }
            Self::IsNull { expr, negated } => write!(f, "({expr} IS {}NULL)", not(*negated)),
            Self::IsBool {
                expr,
                value,
                negated,
            } => write!(
                f,
                "({expr} IS {}{})",
                not(*negated),
                if *value { "TRUE" } else { "FALSE" }
            ),
            Self::InList {
                expr,
                list,
                negated,
            } => {
                write!(f, "({expr} {}IN (", not(*negated))?;
                for (i, e) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    e.fmt(f)?;
                }
                f.write_str("))")
            }
            Self::Between {
                expr,
                low,
                high,
                negated,
            } => write!(f, "({expr} {}BETWEEN {low} AND {high})", not(*negated)),
            Self::Like {
                expr,
                pattern,
                escape,
                negated,
            } => {
                let escape = Literal::String(escape.to_string());
                write!(
                    f,
                    "({expr} {}LIKE {pattern} ESCAPE {escape})",
                    not(*negated)
                )
            }
            Self::Function(function, args) => {
                write!(f, "{}(", function.sql_name())?;
                for (i, e) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    e.fmt(f)?;
                }
                f.write_str(")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RowFilter, String> {
        RowFilter::parse("objects[0].tables[0].where", text).map_err(|e| e.to_string())
    }

    #[test]
    fn conditions_are_rebuilt_with_quoted_names_and_hex_strings() {
        let filter = parse("region = 'eu' AND amount >= 10.5 OR `id` IN (1, 2)").unwrap();
        assert_eq!(
            filter.to_sql(),
            "(((`region` = _utf8mb4 X'6575') AND (`amount` >= 10.5)) OR (`id` IN (1, 2)))"
        );
        assert_eq!(filter.columns(), vec!["region", "amount", "id"]);
        let like =
            parse("name NOT LIKE 'a\\_%' AND d BETWEEN '2024-01-01' AND '2024-12-31'").unwrap();
        assert!(
            like.to_sql()
                .contains("NOT LIKE _utf8mb4 X'615C5F25' ESCAPE _utf8mb4 X'5C'"),
            "{}",
            like.to_sql()
        );
        parse("1e3 < f AND x DIV 2 = 1 AND MOD(y, 3) = 0 AND z IS NOT NULL").unwrap();
    }

    #[test]
    fn what_is_outside_the_language_is_refused_with_the_field() {
        for (text, reason) in [
            ("", "must not be empty"),
            ("a = ", "does not parse"),
            ("a = 1 b", "unexpected"),
            ("a IN (SELECT id FROM t)", "is not supported"),
            ("NOW() > d", "function `NOW` is not supported"),
            ("RAND() < 0.5", "function `RAND` is not supported"),
            ("@v = 1", "not supported"),
            ("t.a = 1", "without their table"),
            ("d < CURRENT_DATE", "`CURRENT_DATE` is not supported"),
            ("a & 1 = 1", "is not supported"),
            ("a / 2 > 1", "use DIV"),
            ("a LIKE 'x' ESCAPE 'ab'", "one character"),
            ("ABS(a, b) = 1", "is not a call"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(
                error.contains("objects[0].tables[0].where") && error.contains(reason),
                "{text}: {error}"
            );
        }
    }
}
