//! Small, careful rewrites of SQL text taken from the source.

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

#[cfg(test)]
mod tests {
    use super::strip_definer;

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
}
