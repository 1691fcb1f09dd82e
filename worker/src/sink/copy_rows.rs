//! How a chunk's rows are written to the destination. Rows are read on a
//! source session whose results are not converted (`character_set_results =
//! binary`), so text arrives as the column's own bytes. They go to the
//! destination as the data of one `LOAD DATA LOCAL INFILE`, which the server
//! reads for a fraction of what it spends parsing literals or binding
//! parameters; a destination that refuses LOCAL INFILE gets multi-row INSERT
//! text instead. Either way the bytes reach a column of the same character set
//! unconverted, and a column whose character set differs on the destination (a
//! table that existed before the task) is converted from the source's.

use crate::sink::convert::{push_hex, push_literal, write_unquoted};
use crate::source::catalog::{Column, Table};
use dts_common::mysql::quote_ident;
use mysql_async::Value;
use std::collections::HashMap;

/// How one table's rows are written: its columns and the statements for them.
#[derive(Debug, Clone)]
pub struct RowWriter {
    columns: Vec<Column>,
    /// The AUTO_INCREMENT column's position among `columns`, if any.
    auto_increment: Option<usize>,
    /// The columns as the source names them, quoted and comma-separated:
    /// what the copy reads.
    select_list: String,
    /// The source column's character set, where the destination column has
    /// another one and the bytes must be converted.
    recode: Vec<Option<String>>,
    load_statement: String,
    insert_head: String,
}

impl RowWriter {
    /// `destination_charsets`: the destination table's column character sets
    /// by column name (`None` for columns without one).
    pub fn new(
        table: &Table,
        destination_charsets: &HashMap<String, Option<String>>,
        keep_existing: bool,
    ) -> Self {
        let writable: Vec<(usize, &Column)> = table.writable().collect();
        let mut columns: Vec<Column> = writable.iter().map(|(_, c)| (*c).clone()).collect();
        let mut targets: Vec<&str> = writable
            .iter()
            .map(|(i, _)| table.column_target(*i))
            .collect();
        let mut select_list = columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ");
        // A merge's source column: the source reads it as a constant.
        if let Some(source_column) = &table.source_column {
            select_list.push_str(", _utf8mb4 X'");
            push_hex(&mut select_list, table.source_label().as_bytes());
            select_list.push('\'');
            columns.push(Column {
                name: source_column.clone(),
                data_type: "varchar".into(),
                column_type: "varchar(129)".into(),
                nullable: false,
                generated: false,
                virtual_generated: false,
                charset: Some("utf8mb4".into()),
                collation: None,
                auto_increment: false,
            });
            targets.push(source_column);
        }
        let recode: Vec<Option<String>> = columns
            .iter()
            .zip(&targets)
            .map(
                |(c, target)| match (&c.charset, destination_charsets.get(*target)) {
                    (Some(source), Some(destination)) if destination.as_ref() != Some(source) => {
                        Some(source.clone())
                    }
                    _ => None,
                },
            )
            .collect();
        let column_list = targets
            .iter()
            .map(|t| quote_ident(t))
            .collect::<Vec<_>>()
            .join(", ");
        // Recoded columns are read into variables and converted by a SET.
        let mut conversions = Vec::new();
        let mut fields = Vec::new();
        for (i, (target, recode)) in targets.iter().zip(&recode).enumerate() {
            match recode {
                Some(charset) => {
                    fields.push(format!("@v{i}"));
                    conversions.push(format!(
                        "{} = CONVERT(@v{i} USING {charset})",
                        quote_ident(target)
                    ));
                }
                None => fields.push(quote_ident(target)),
            }
        }
        let set = if conversions.is_empty() {
            String::new()
        } else {
            format!(" SET {}", conversions.join(", "))
        };
        let ignore = if keep_existing { " IGNORE" } else { "" };
        let load_statement = format!(
            "LOAD DATA LOCAL INFILE 'dts-chunk'{ignore} INTO TABLE {} CHARACTER SET binary \
             FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({}){set}",
            table.target_qualified(),
            fields.join(", ")
        );
        let verb = if keep_existing {
            "INSERT IGNORE"
        } else {
            "INSERT"
        };
        let insert_head = format!(
            "{verb} INTO {} ({column_list}) VALUES ",
            table.target_qualified()
        );
        Self {
            auto_increment: columns.iter().position(|c| c.auto_increment),
            columns,
            select_list,
            recode,
            load_statement,
            insert_head,
        }
    }

    /// The columns the copy reads from the source.
    pub fn select_list(&self) -> &str {
        &self.select_list
    }

    pub fn has_auto_increment(&self) -> bool {
        self.auto_increment.is_some()
    }

    /// Whether LOAD DATA stores these rows as they are. MariaDB ignores
    /// NO_AUTO_VALUE_ON_ZERO in LOAD DATA into a table with a BEFORE INSERT
    /// trigger and numbers a 0 anew; rows with a 0 in an AUTO_INCREMENT
    /// column go as INSERT.
    pub fn loads_exactly(&self, rows: &[Vec<Value>]) -> bool {
        let Some(column) = self.auto_increment else {
            return true;
        };
        !rows
            .iter()
            .any(|row| matches!(row.get(column), Some(Value::Int(0) | Value::UInt(0))))
    }

    /// The statement that loads the data of [`Self::load_data`].
    pub fn load_statement(&self) -> &str {
        &self.load_statement
    }

    /// Rows as LOAD DATA text: tab-separated fields, one line per row,
    /// `\N` for NULL, and backslash escapes for the bytes that would end a
    /// field or a line.
    pub fn load_data(&self, rows: &[Vec<Value>]) -> Vec<u8> {
        use std::io::Write;
        // Sized once (escapes aside): growing a chunk's megabytes by
        // doubling costs copies and fresh pages.
        let estimate: usize = rows
            .iter()
            .flatten()
            .map(|v| match v {
                Value::Bytes(bytes) => bytes.len() + 1,
                _ => 24,
            })
            .sum();
        let mut out = Vec::with_capacity(estimate + rows.len());
        for row in rows {
            for i in 0..self.columns.len() {
                if i > 0 {
                    out.push(b'\t');
                }
                match row.get(i).unwrap_or(&Value::NULL) {
                    Value::NULL => out.extend_from_slice(b"\\N"),
                    Value::Bytes(bytes) => escape_field(&mut out, bytes),
                    // Read as text, YEAR takes "0" for 2000: 0 must be "0000".
                    Value::Int(year) if self.columns[i].data_type == "year" => {
                        // Writing into a Vec cannot fail.
                        let _ = write!(out, "{year:04}");
                    }
                    value => write_unquoted(&mut out, value),
                }
            }
            out.push(b'\n');
        }
        out
    }

    /// Rows as multi-row INSERT statements of at most about `max_bytes` each.
    pub fn insert_statements(&self, rows: &[Vec<Value>], max_bytes: usize) -> Vec<String> {
        let mut statements = Vec::new();
        let mut sql = String::new();
        for row in rows {
            sql.push_str(if sql.is_empty() {
                &self.insert_head
            } else {
                ","
            });
            sql.push('(');
            for i in 0..self.columns.len() {
                if i > 0 {
                    sql.push(',');
                }
                let value = row.get(i).unwrap_or(&Value::NULL);
                match (&self.recode[i], value) {
                    (Some(charset), Value::Bytes(_)) => {
                        // The introducer says which character set the bytes are in.
                        sql.push('_');
                        sql.push_str(charset);
                        sql.push(' ');
                        push_literal(&mut sql, value);
                    }
                    _ => push_literal(&mut sql, value),
                }
            }
            sql.push(')');
            if sql.len() >= max_bytes {
                statements.push(std::mem::take(&mut sql));
            }
        }
        if !sql.is_empty() {
            statements.push(sql);
        }
        statements
    }
}

/// A field's bytes with LOAD DATA's escapes (`ESCAPED BY '\\'`): the escape
/// character itself, tab and newline (which end fields and lines), and NUL,
/// carriage return and Ctrl-Z, which some readers treat specially.
fn escape_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len());
    let mut rest = bytes;
    // Copies the runs between special bytes whole: most fields have none.
    while let Some(at) = rest.iter().position(|&b| ESCAPED[usize::from(b)] != 0) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(&[b'\\', ESCAPED[usize::from(rest[at])]]);
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
}

/// Per byte, the letter that follows a backslash for it in LOAD DATA text,
/// or 0 for a byte written as it is.
const ESCAPED: [u8; 256] = {
    let mut table = [0u8; 256];
    table[b'\\' as usize] = b'\\';
    table[b'\t' as usize] = b't';
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[0] = b'0';
    table[0x1a] = b'Z';
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, charset: Option<&str>) -> Column {
        Column {
            name: name.into(),
            data_type: if charset.is_some() { "varchar" } else { "int" }.into(),
            column_type: String::new(),
            nullable: true,
            generated: false,
            virtual_generated: false,
            auto_increment: false,
            charset: charset.map(str::to_string),
            collation: None,
        }
    }

    fn table(columns: Vec<Column>) -> Table {
        Table::new("d", "t", columns, vec![0], vec![vec![0]])
    }

    fn charsets(columns: &[(&str, Option<&str>)]) -> HashMap<String, Option<String>> {
        columns
            .iter()
            .map(|(name, cs)| (name.to_string(), cs.map(str::to_string)))
            .collect()
    }

    #[test]
    fn fields_escape_what_would_end_them_and_null_is_marked() {
        let t = table(vec![column("id", None), column("s", Some("utf8mb4"))]);
        let writer = RowWriter::new(&t, &HashMap::new(), false);
        let data = writer.load_data(&[
            vec![Value::Int(1), Value::Bytes(b"a\tb\nc\\N\0\r\x1a".to_vec())],
            vec![Value::Int(-2), Value::NULL],
            vec![Value::Int(3), Value::Bytes(b"\\N".to_vec())],
        ]);
        assert_eq!(
            data,
            b"1\ta\\tb\\nc\\\\N\\0\\r\\Z\n-2\t\\N\n3\t\\\\N\n".to_vec()
        );
    }

    #[test]
    fn numbers_and_times_are_written_as_the_server_reads_them() {
        let t = table(vec![
            column("a", None),
            column("b", None),
            column("c", None),
            column("d", None),
            Column {
                data_type: "year".into(),
                ..column("e", None)
            },
        ]);
        let writer = RowWriter::new(&t, &HashMap::new(), false);
        let data = writer.load_data(&[vec![
            Value::UInt(u64::MAX),
            Value::Double(0.1),
            Value::Date(2026, 1, 2, 3, 4, 5, 60),
            Value::Time(true, 1, 2, 3, 4, 5),
            Value::Int(0),
        ]]);
        assert_eq!(
            String::from_utf8_lossy(&data),
            "18446744073709551615\t1e-1\t2026-01-02 03:04:05.000060\t-26:03:04.000005\t0000\n"
        );
    }

    #[test]
    fn a_column_with_another_charset_on_the_destination_is_converted() {
        let t = table(vec![column("id", None), column("s", Some("latin1"))]);
        let destination = charsets(&[("id", None), ("s", Some("utf8mb4"))]);
        let writer = RowWriter::new(&t, &destination, true);
        assert_eq!(
            writer.load_statement(),
            "LOAD DATA LOCAL INFILE 'dts-chunk' IGNORE INTO TABLE `d`.`t` CHARACTER SET binary \
             FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' \
             (`id`, @v1) SET `s` = CONVERT(@v1 USING latin1)"
        );
        let statements =
            writer.insert_statements(&[vec![Value::Int(1), Value::Bytes(vec![0xe9])]], 1 << 20);
        assert_eq!(
            statements,
            vec!["INSERT IGNORE INTO `d`.`t` (`id`, `s`) VALUES (1,_latin1 X'E9')".to_string()]
        );
    }

    #[test]
    fn rows_with_zero_in_an_auto_increment_column_do_not_load() {
        let t = table(vec![
            Column {
                auto_increment: true,
                ..column("id", None)
            },
            column("n", None),
        ]);
        let writer = RowWriter::new(&t, &HashMap::new(), false);
        assert!(writer.loads_exactly(&[vec![Value::UInt(1), Value::Int(0)]]));
        assert!(!writer.loads_exactly(&[
            vec![Value::UInt(1), Value::Int(0)],
            vec![Value::UInt(0), Value::Int(1)]
        ]));
    }

    #[test]
    fn same_charsets_load_unconverted_and_inserts_split_by_size() {
        let t = table(vec![column("id", None), column("s", Some("utf8mb4"))]);
        let destination = charsets(&[("id", None), ("s", Some("utf8mb4"))]);
        let writer = RowWriter::new(&t, &destination, false);
        assert!(writer.load_statement().ends_with("(`id`, `s`)"));
        let rows: Vec<Vec<Value>> = (0..3)
            .map(|i| vec![Value::Int(i), Value::Bytes(b"x".to_vec())])
            .collect();
        let statements = writer.insert_statements(&rows, 1);
        assert_eq!(statements.len(), 3);
        assert_eq!(
            statements[2],
            "INSERT INTO `d`.`t` (`id`, `s`) VALUES (2,X'78')"
        );
    }
}
