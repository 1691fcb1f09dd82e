//! MySQL helpers every process may need: identifier quoting.

/// Quotes an identifier with backticks, doubling embedded backticks.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `` `db`.`table` ``
pub fn quote_table(db: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(db), quote_ident(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backticks_are_doubled() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(quote_table("d", "t"), "`d`.`t`");
    }
}
