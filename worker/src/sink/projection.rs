//! Rows decoded by the source's definition, laid onto the destination table
//! by column name, as the route's column map names them on the destination
//! (MySQL column names compare without case). The identity when both have
//! the same columns in the same order, as without mapping.

use crate::error::{Side, SyncError, SyncResult};
use crate::source::catalog::Table;
use dts_common::route::ColumnMap;
use mysql_async::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    Identity,
    /// For each destination column, the source column it takes.
    Columns(Vec<Option<usize>>),
}

impl Projection {
    pub fn between(source: &Table, destination: &Table, map: &ColumnMap) -> SyncResult<Self> {
        let same = map.is_identity()
            && source.columns.len() == destination.columns.len()
            && source
                .columns
                .iter()
                .zip(&destination.columns)
                .all(|(s, d)| s.name.eq_ignore_ascii_case(&d.name));
        if same {
            return Ok(Self::Identity);
        }
        let mut columns = Vec::with_capacity(destination.columns.len());
        for column in &destination.columns {
            let from = source.columns.iter().position(|s| {
                map.target(&s.name)
                    .is_some_and(|target| target.eq_ignore_ascii_case(&column.name))
            });
            if from.is_none() && !column.generated {
                return Err(SyncError::Query {
                    side: Side::Destination,
                    context: format!("applying to `{}`.`{}`", destination.db, destination.name),
                    detail: format!(
                        "column `{}` has no column of that name in source table `{}`.`{}` to take its values from",
                        column.name, source.db, source.name
                    ),
                });
            }
            columns.push(from);
        }
        // Renamed columns in their places: the values need no moving.
        if source.columns.len() == columns.len()
            && columns.iter().enumerate().all(|(i, from)| *from == Some(i))
        {
            return Ok(Self::Identity);
        }
        Ok(Self::Columns(columns))
    }

    /// `row`, in source column order, as the destination's row.
    pub fn apply(&self, row: Vec<Value>) -> Vec<Value> {
        match self {
            Self::Identity => row,
            Self::Columns(columns) => {
                // Each source column feeds one destination column at most:
                // its value is moved, not copied.
                let mut row = row;
                columns
                    .iter()
                    .map(|from| {
                        from.and_then(|i| row.get_mut(i))
                            .map_or(Value::NULL, |value| std::mem::replace(value, Value::NULL))
                    })
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::catalog::Column;

    fn table(names: &[&str]) -> Table {
        let columns = names
            .iter()
            .map(|name| Column {
                name: name.to_string(),
                data_type: "int".into(),
                column_type: "int(11)".into(),
                nullable: true,
                generated: false,
                virtual_generated: false,
                charset: None,
                collation: None,
                auto_increment: false,
            })
            .collect();
        Table::new("d", "t", columns, vec![0], vec![vec![0]])
    }

    #[test]
    fn same_columns_need_no_projection_and_others_go_by_name() -> SyncResult<()> {
        assert_eq!(
            Projection::between(
                &table(&["id", "a"]),
                &table(&["ID", "A"]),
                &ColumnMap::default()
            )?,
            Projection::Identity
        );
        let projection = Projection::between(
            &table(&["id", "a", "b"]),
            &table(&["id", "b"]),
            &ColumnMap::default(),
        )?;
        assert!(matches!(projection, Projection::Columns(_)));
        let row = vec![Value::Int(1), Value::Int(2), Value::Int(3)];
        assert_eq!(projection.apply(row), vec![Value::Int(1), Value::Int(3)]);
        Ok(())
    }

    #[test]
    fn a_destination_column_without_a_source_is_an_error() {
        let missing = Projection::between(
            &table(&["id"]),
            &table(&["id", "extra"]),
            &ColumnMap::default(),
        );
        assert!(
            matches!(&missing, Err(SyncError::Query { detail, .. }) if detail.contains("`extra`")),
            "{missing:?}"
        );
    }
}
