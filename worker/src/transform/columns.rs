//! A table's definitions with only the columns the route lets through,
//! under their destination names: the CREATE TABLE that schema sync runs,
//! and the ALTER TABLE clauses the binlog brings.
//!
//! An index, foreign key or CHECK constraint naming a column left out is
//! left out with it, and so is a generated column computed from one. An
//! ALTER clause on a column left out is dropped (the schema history still
//! takes it); a column added later comes in under `exclude_columns` and
//! stays out under a `columns` list. Renaming a column that the column
//! selection names (CHANGE, RENAME COLUMN) cannot be followed: the mapping
//! is by source name.

use crate::source::ddl::{self, Token};
use dts_common::mysql::quote_ident;
use dts_common::route::ColumnMap;
use std::ops::Range;

/// A SHOW CREATE TABLE text with the columns `map` takes, renamed.
/// `Err` names what cannot be mapped.
pub fn project_create(create: &str, map: &ColumnMap) -> Result<String, String> {
    if map.is_identity() {
        return Ok(create.to_string());
    }
    let lines: Vec<&str> = create.lines().collect();
    let open = lines
        .iter()
        .position(|l| l.trim_end().ends_with('('))
        .ok_or("no column list in the CREATE TABLE")?;
    let close = lines
        .iter()
        .skip(open + 1)
        .position(|l| l.starts_with(')'))
        .map(|p| p + open + 1)
        .ok_or("no end of the column list in the CREATE TABLE")?;
    let mut kept = Vec::new();
    for line in &lines[open + 1..close] {
        let item = line.trim_end();
        let item = item.strip_suffix(',').unwrap_or(item);
        if let Some(item) = project_item(item, map)? {
            kept.push(item);
        }
    }
    let mut out: Vec<String> = lines[..=open].iter().map(|l| l.to_string()).collect();
    out.push(kept.join(",\n"));
    out.extend(lines[close..].iter().map(|l| l.to_string()));
    Ok(out.join("\n"))
}

/// One line of a CREATE TABLE's column list, mapped; `None` when it goes.
fn project_item(item: &str, map: &ColumnMap) -> Result<Option<String>, String> {
    let tokens = ddl::tokenize_spanned(item);
    let is_column = item.trim_start().starts_with('`');
    let mut edits = Vec::new();
    let mut depth = 0usize;
    let mut referencing = true;
    for (i, (token, span)) in tokens.iter().enumerate() {
        match token {
            Token::Symbol('(') => depth += 1,
            Token::Symbol(')') => depth = depth.saturating_sub(1),
            // A foreign key's parent columns belong to another table.
            Token::Word(w) if w.eq_ignore_ascii_case("REFERENCES") => referencing = false,
            Token::Quoted(name) if backticked(item, span) => {
                // A column's own name, or a column named inside parentheses
                // (an index's list, a generated column's or CHECK's expression).
                let names_column = (is_column && i == 0) || (depth > 0 && referencing);
                if !names_column {
                    continue;
                }
                match map.target(name) {
                    None if is_column && i == 0 => return Ok(None),
                    None if item.trim_start().starts_with("PRIMARY KEY") => {
                        return Err(format!("the primary key's column `{name}` is left out"));
                    }
                    None => return Ok(None),
                    Some(target) if target != *name => {
                        edits.push((span.clone(), quote_ident(&target)));
                    }
                    Some(_) => {}
                }
            }
            _ => {}
        }
    }
    Ok(Some(apply(item, edits)))
}

fn backticked(text: &str, span: &Range<usize>) -> bool {
    text[span.clone()].starts_with('`')
}

fn apply(text: &str, mut edits: Vec<(Range<usize>, String)>) -> String {
    edits.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
    let mut out = text.to_string();
    for (span, replacement) in edits {
        out.replace_range(span, &replacement);
    }
    out
}

/// An ALTER TABLE with only the clauses `map` lets through, columns renamed;
/// `Ok(None)` when none is left. `Err` says why it cannot be followed.
pub fn project_alter(sql: &str, map: &ColumnMap) -> Result<Option<String>, String> {
    if map.is_identity() {
        return Ok(Some(sql.to_string()));
    }
    let Some(clauses) = ddl::alter_clauses(sql) else {
        return Ok(Some(sql.to_string()));
    };
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    let mut kept = 0;
    let mut dropped: Vec<Range<usize>> = Vec::new();
    for clause in &clauses {
        let Some(first) = clause.first() else {
            continue;
        };
        let whole = first.1.start..clause.last().map_or(first.1.end, |(_, s)| s.end);
        match project_clause(clause, map)? {
            Some(clause_edits) => {
                kept += 1;
                edits.extend(clause_edits);
            }
            None => dropped.push(whole),
        }
    }
    if kept == 0 {
        return Ok(None);
    }
    // A dropped clause goes with the comma before it (or, the first, after it).
    let mut text_edits = edits;
    for span in dropped {
        let before = sql[..span.start].rfind(',');
        let after = sql[span.end..].find(',').map(|p| span.end + p + 1);
        let range = match (before, after) {
            (Some(comma), _) if sql[comma..span.start].trim() == "," => comma..span.end,
            (_, Some(end)) => {
                let blank = sql[end..].len() - sql[end..].trim_start().len();
                span.start..end + blank
            }
            _ => span,
        };
        text_edits.push((range, String::new()));
    }
    Ok(Some(apply(sql, text_edits)))
}

fn word(token: Option<&(Token, Range<usize>)>) -> String {
    match token {
        Some((Token::Word(w), _)) => w.to_ascii_uppercase(),
        _ => String::new(),
    }
}

/// The edits of one ALTER clause, or `None` when it goes.
fn project_clause(
    clause: &[(Token, Range<usize>)],
    map: &ColumnMap,
) -> Result<Option<Vec<(Range<usize>, String)>>, String> {
    let mut at = 0;
    let verb = word(clause.first());
    at += 1;
    let index_like = |w: &str| {
        matches!(
            w,
            "INDEX"
                | "KEY"
                | "UNIQUE"
                | "PRIMARY"
                | "FULLTEXT"
                | "SPATIAL"
                | "CONSTRAINT"
                | "FOREIGN"
                | "CHECK"
        )
    };
    match verb.as_str() {
        "ADD" if index_like(&word(clause.get(at))) => {
            if word(clause.get(at)) == "CHECK"
                || clause
                    .iter()
                    .any(|(t, _)| matches!(t, Token::Word(w) if w.eq_ignore_ascii_case("CHECK")))
            {
                // Arbitrary expressions: not followed on a projected table.
                return Ok(None);
            }
            index_columns(clause, map)
        }
        "ADD" | "DROP" | "MODIFY" | "ALTER" | "CHANGE" => {
            if word(clause.get(at)) == "COLUMN" {
                at += 1;
            }
            if verb == "DROP" && index_like(&word(clause.get(at))) {
                return Ok(Some(Vec::new()));
            }
            if verb == "ADD" && matches!(clause.get(at), Some((Token::Symbol('('), _))) {
                return Err("it adds several columns in parentheses to a table whose columns are mapped".into());
            }
            for skipped in ["IF", "NOT", "EXISTS"] {
                if word(clause.get(at)) == skipped {
                    at += 1;
                }
            }
            let Some((Token::Word(name) | Token::Quoted(name), span)) = clause.get(at) else {
                return Ok(Some(Vec::new()));
            };
            if verb == "ALTER" && index_like(&name.to_ascii_uppercase()) {
                return Ok(Some(Vec::new()));
            }
            let Some(target) = map.target(name) else {
                return Ok(None);
            };
            if verb == "CHANGE" {
                let new = match clause.get(at + 1) {
                    Some((Token::Word(n) | Token::Quoted(n), _)) => n.clone(),
                    _ => return Err("a CHANGE without a new column name".into()),
                };
                if !new.eq_ignore_ascii_case(name) && (map.renames(name) || !map.takes_new_columns()) {
                    return Err(format!(
                        "it renames column `{name}` to `{new}`, and the column selection names columns by their source names"
                    ));
                }
            }
            let mut edits = Vec::new();
            if target != *name {
                edits.push((span.clone(), quote_ident(&target)));
            }
            Ok(Some(edits))
        }
        "RENAME" if word(clause.get(at)) == "COLUMN" => Err(
            "it renames a column of a table whose columns are mapped; the column selection names columns by their source names"
                .into(),
        ),
        _ => Ok(Some(Vec::new())),
    }
}

/// A CREATE INDEX under `map`: `Ok(None)` when it names a column left out.
pub fn project_index(sql: &str, map: &ColumnMap) -> Result<Option<String>, String> {
    if map.is_identity() {
        return Ok(Some(sql.to_string()));
    }
    let tokens = ddl::tokenize_spanned(sql);
    Ok(index_columns(&tokens, map)?.map(|edits| apply(sql, edits)))
}

/// An index's column list: dropped with a column left out, columns renamed.
fn index_columns(
    clause: &[(Token, Range<usize>)],
    map: &ColumnMap,
) -> Result<Option<Vec<(Range<usize>, String)>>, String> {
    let mut edits = Vec::new();
    let mut depth = 0usize;
    // In an index's list, `name(10)` is a column's prefix, not a call.
    for (token, span) in clause {
        match token {
            Token::Symbol('(') => depth += 1,
            Token::Symbol(')') => depth = depth.saturating_sub(1),
            Token::Word(w) if w.eq_ignore_ascii_case("REFERENCES") => break,
            Token::Word(name) | Token::Quoted(name) if depth == 1 => {
                let keyword = ["ASC", "DESC"].iter().any(|k| name.eq_ignore_ascii_case(k));
                if keyword || name.chars().all(|c| c.is_ascii_digit()) {
                    continue;
                }
                match map.target(name) {
                    None => return Ok(None),
                    Some(target) if target != *name => {
                        edits.push((span.clone(), quote_ident(&target)))
                    }
                    Some(_) => {}
                }
            }
            _ => {}
        }
    }
    Ok(Some(edits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::test_route;

    fn map(options: &str) -> ColumnMap {
        let r = test_route(&format!(
            "[[objects]]\ndatabase = \"d\"\ntables = [{{ name = \"t\", {options} }}]"
        ));
        r.table("d", "t")
            .ok()
            .flatten()
            .map(|t| t.columns)
            .unwrap_or_default()
    }

    const CREATE: &str = "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `amount` decimal(10,2) DEFAULT NULL,\n  \
`payload` blob DEFAULT NULL,\n  `twice` decimal(11,2) GENERATED ALWAYS AS (`amount` * 2) VIRTUAL,\n  \
`size` int(11) GENERATED ALWAYS AS (length(`payload`)) VIRTUAL,\n  PRIMARY KEY (`id`),\n  KEY `amount` (`amount`),\n  \
KEY `by_payload` (`payload`(10),`id`),\n  CONSTRAINT `p` FOREIGN KEY (`id`) REFERENCES `parent` (`amount`)\n) ENGINE=InnoDB";

    #[test]
    fn a_create_keeps_the_selected_columns_under_their_new_names() -> Result<(), String> {
        let out = project_create(
            CREATE,
            &map("exclude_columns = [\"payload\"], rename_columns = { amount = \"total\" }"),
        )?;
        assert_eq!(
            out,
            "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `total` decimal(10,2) DEFAULT NULL,\n  \
`twice` decimal(11,2) GENERATED ALWAYS AS (`total` * 2) VIRTUAL,\n  PRIMARY KEY (`id`),\n  KEY `amount` (`total`),\n  \
CONSTRAINT `p` FOREIGN KEY (`id`) REFERENCES `parent` (`amount`)\n) ENGINE=InnoDB"
        );
        assert_eq!(project_create(CREATE, &ColumnMap::default())?, CREATE);
        assert!(project_create(CREATE, &map("columns = [\"amount\"]")).is_err());
        Ok(())
    }

    #[test]
    fn alter_clauses_follow_the_column_selection() -> Result<(), String> {
        let only = map("columns = [\"id\", \"amount\"], rename_columns = { amount = \"total\" }");
        let cases = [
            (
                "ALTER TABLE t MODIFY amount DECIMAL(12,2)",
                Some("ALTER TABLE t MODIFY `total` DECIMAL(12,2)"),
            ),
            ("ALTER TABLE t ADD COLUMN note TEXT", None),
            (
                "ALTER TABLE t ADD COLUMN note TEXT, ADD INDEX i (amount)",
                Some("ALTER TABLE t ADD INDEX i (`total`)"),
            ),
            (
                "ALTER TABLE t ADD INDEX i (amount), ADD INDEX j (note(10))",
                Some("ALTER TABLE t ADD INDEX i (`total`)"),
            ),
            (
                "ALTER TABLE t DROP COLUMN payload, ENGINE=InnoDB",
                Some("ALTER TABLE t ENGINE=InnoDB"),
            ),
            (
                "ALTER TABLE t ALTER amount SET DEFAULT 1",
                Some("ALTER TABLE t ALTER `total` SET DEFAULT 1"),
            ),
            (
                "ALTER TABLE t DROP INDEX i",
                Some("ALTER TABLE t DROP INDEX i"),
            ),
        ];
        for (sql, expected) in cases {
            assert_eq!(project_alter(sql, &only)?.as_deref(), expected, "{sql}");
        }
        let except = map("exclude_columns = [\"payload\"]");
        assert_eq!(
            project_alter("ALTER TABLE t ADD COLUMN note TEXT", &except)?.as_deref(),
            Some("ALTER TABLE t ADD COLUMN note TEXT")
        );
        assert!(project_alter("ALTER TABLE t CHANGE amount amt INT", &only).is_err());
        assert_eq!(
            project_index("CREATE INDEX i ON t (amount DESC, id)", &only)?.as_deref(),
            Some("CREATE INDEX i ON t (`total` DESC, id)")
        );
        assert_eq!(project_index("CREATE INDEX i ON t (note)", &only)?, None);
        assert!(project_alter("ALTER TABLE t RENAME COLUMN amount TO amt", &only).is_err());
        Ok(())
    }
}
