//! Small, careful rewrites of SQL text taken from the source.

use crate::source::ddl::{self, DdlKind, Token};

/// Removes `DEFINER=...` so objects do not need SUPER on the destination;
/// they are then defined by the task's destination user.
pub fn strip_definer(sql: &str) -> String {
    let Some(start) = sql.find("DEFINER=") else {
        return sql.to_string();
    };
    let rest = &sql[start + "DEFINER=".len()..];
    // user@host, each part quoted with backticks or quotes.
    let mut end = 0;
    let mut in_quote: Option<char> = None;
    for (i, c) in rest.char_indices() {
        match (in_quote, c) {
            (Some(q), c) if c == q => in_quote = None,
            (Some(_), _) => {}
            (None, '`' | '\'' | '"') => in_quote = Some(c),
            (None, ' ') => {
                end = i;
                break;
            }
            _ => {}
        }
        end = i + c.len_utf8();
    }
    format!("{}{}", &sql[..start], rest[end..].trim_start())
}

/// The session variable dts sets on its destination connections; triggers it
/// copies do nothing when it is set (see [`guard_trigger`]).
pub const APPLY_MARKER: &str = "@dts_apply";

/// Rewrites `CREATE TRIGGER ... FOR EACH ROW [FOLLOWS|PRECEDES t] body` so that
/// the body runs only outside dts sessions: the source's trigger effects
/// already arrive as rows, and firing again would apply them twice.
pub fn guard_trigger(create: &str) -> Option<String> {
    let upper = create.to_ascii_uppercase();
    let mut body_at = upper.find("FOR EACH ROW")? + "FOR EACH ROW".len();
    let rest = upper[body_at..].trim_start();
    for order in ["FOLLOWS ", "PRECEDES "] {
        if let Some(after) = rest.strip_prefix(order) {
            // Skip the keyword and the (possibly quoted) trigger name after it.
            let skipped = upper[body_at..].len() - rest.len() + order.len();
            let name_len = after.split_whitespace().next()?.len();
            body_at += skipped + (after.len() - after.trim_start().len()) + name_len;
        }
    }
    let (head, body) = create.split_at(body_at);
    let body = body.trim().trim_end_matches(';');
    Some(format!(
        "{head} IF {APPLY_MARKER} IS NULL THEN {body}; END IF"
    ))
}

#[cfg(test)]
mod tests {
    use super::strip_definer;

    #[test]
    fn views_and_routines_are_redefined_and_dropped_whatever_is_there() {
        use super::idempotent;
        use crate::source::ddl::DdlKind;
        let cases = [
            (
                DdlKind::CreateView,
                "CREATE ALGORITHM=UNDEFINED VIEW v AS SELECT 1",
                "CREATE OR REPLACE ALGORITHM=UNDEFINED VIEW v AS SELECT 1",
            ),
            (
                DdlKind::CreateView,
                "CREATE OR REPLACE VIEW v AS SELECT 1",
                "CREATE OR REPLACE VIEW v AS SELECT 1",
            ),
            (
                DdlKind::CreateProcedure,
                "create procedure p() select 1",
                "create OR REPLACE procedure p() select 1",
            ),
            (
                DdlKind::DropProcedure,
                "DROP PROCEDURE r1.p",
                "DROP PROCEDURE IF EXISTS r1.p",
            ),
            (
                DdlKind::DropView,
                "DROP VIEW IF EXISTS v",
                "DROP VIEW IF EXISTS v",
            ),
            (
                DdlKind::AlterTable,
                "ALTER TABLE t ADD c INT",
                "ALTER TABLE t ADD c INT",
            ),
        ];
        for (kind, sql, expected) in cases {
            assert_eq!(idempotent(kind, sql), expected, "{sql}");
        }
    }

    #[test]
    fn definer_is_removed_with_quoted_parts() {
        assert_eq!(
            strip_definer("CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`local host` SQL SECURITY DEFINER VIEW `v` AS select 1"),
            "CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW `v` AS select 1"
        );
        assert_eq!(
            strip_definer("CREATE DEFINER='a'@'%' FUNCTION f() RETURNS int RETURN 1"),
            "CREATE FUNCTION f() RETURNS int RETURN 1"
        );
        assert_eq!(
            strip_definer("CREATE VIEW v AS select 1"),
            "CREATE VIEW v AS select 1"
        );
    }

    #[test]
    fn trigger_bodies_are_guarded() {
        use super::guard_trigger;
        assert_eq!(
            guard_trigger("CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET NEW.a = 1").as_deref(),
            Some("CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW IF @dts_apply IS NULL THEN SET NEW.a = 1; END IF")
        );
        assert_eq!(
            guard_trigger("CREATE TRIGGER t2 AFTER UPDATE ON x FOR EACH ROW FOLLOWS `t1` BEGIN INSERT INTO log VALUES (1); END")
                .as_deref(),
            Some(
                "CREATE TRIGGER t2 AFTER UPDATE ON x FOR EACH ROW FOLLOWS `t1` IF @dts_apply IS NULL THEN \
                 BEGIN INSERT INTO log VALUES (1); END; END IF"
            )
        );
        assert_eq!(guard_trigger("CREATE VIEW v AS SELECT 1"), None);
    }
}

/// A view's or routine's DDL in a form that leaves the destination as the
/// statement defines, whether or not it ran before: CREATE as CREATE OR
/// REPLACE, DROP as DROP ... IF EXISTS. After a restart the first statement
/// may already have run; an "already exists" error swallowed then left the
/// old definition in place, and a DROP of a routine already dropped failed.
pub fn idempotent(kind: DdlKind, sql: &str) -> String {
    let tokens = ddl::tokenize_spanned(sql);
    let word = |i: usize| match tokens.get(i) {
        Some((Token::Word(w), _)) => w.to_ascii_uppercase(),
        _ => String::new(),
    };
    let insert_after = |i: usize, text: &str| {
        let at = tokens.get(i).map_or(sql.len(), |(_, span)| span.end);
        format!("{}{text}{}", &sql[..at], &sql[at..])
    };
    match kind {
        DdlKind::CreateView
        | DdlKind::CreateFunction
        | DdlKind::CreateProcedure
        | DdlKind::CreateTrigger
            if word(0) == "CREATE" && word(1) != "OR" =>
        {
            insert_after(0, " OR REPLACE")
        }
        DdlKind::DropView
        | DdlKind::DropFunction
        | DdlKind::DropProcedure
        | DdlKind::DropTrigger
            if word(0) == "DROP" && word(2) != "IF" =>
        {
            insert_after(1, " IF EXISTS")
        }
        _ => sql.to_string(),
    }
}
