//! Rows decoded by the source's definition, laid onto the destination table
//! by column name, as the route's column map names them on the destination
//! (MySQL column names compare without case). The identity when both have
//! the same columns in the same order, as without mapping.

use crate::error::{Side, SyncError, SyncResult};
use crate::source::catalog::Table;
use dts_common::route::ColumnMap;
use mysql_async::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    Identity,
    /// For each destination column, the source column it takes; and a
    /// merge's source column with the value it records.
    Columns(Vec<Option<usize>>, Option<(usize, Value)>),
}

impl Projection {
    /// `recorded`: a merge's source column on the destination and the
    /// value it holds for `source`'s rows.
    pub fn between(
        source: &Table,
        destination: &Table,
        map: &ColumnMap,
        recorded: Option<(&str, String)>,
    ) -> SyncResult<Self> {
        let same = recorded.is_none()
            && map.is_identity()
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
        let mut constant = None;
        for (index, column) in destination.columns.iter().enumerate() {
            if let Some((name, value)) = &recorded {
                if column.name.eq_ignore_ascii_case(name) {
                    constant = Some((index, Value::Bytes(value.clone().into_bytes())));
                    columns.push(None);
                    continue;
                }
            }
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
        if recorded.is_some() && constant.is_none() {
            return Err(SyncError::Query {
                side: Side::Destination,
                context: format!("applying to `{}`.`{}`", destination.db, destination.name),
                detail: format!(
                    "the route's source_column `{}` is not in the table",
                    recorded.map(|(name, _)| name).unwrap_or_default()
                ),
            });
        }
        // Renamed columns in their places: the values need no moving.
        if constant.is_none()
            && source.columns.len() == columns.len()
            && columns.iter().enumerate().all(|(i, from)| *from == Some(i))
        {
            return Ok(Self::Identity);
        }
        Ok(Self::Columns(columns, constant))
    }

    /// `row`, in source column order, as the destination's row.
    pub fn apply(&self, row: Vec<Value>) -> Vec<Value> {
        match self {
            Self::Identity => row,
            Self::Columns(columns, constant) => {
                // Each source column feeds one destination column at most:
                // its value is moved, not copied.
                let mut row = row;
                let mut out: Vec<Value> = columns
                    .iter()
                    .map(|from| {
                        from.and_then(|i| row.get_mut(i))
                            .map_or(Value::NULL, |value| std::mem::replace(value, Value::NULL))
                    })
                    .collect();
                if let Some((index, value)) = constant {
                    if let Some(slot) = out.get_mut(*index) {
                        *slot = value.clone();
                    }
                }
                out
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
                &ColumnMap::default(),
                None
            )?,
            Projection::Identity
        );
        let projection = Projection::between(
            &table(&["id", "a", "b"]),
            &table(&["id", "b"]),
            &ColumnMap::default(),
            None,
        )?;
        assert!(matches!(projection, Projection::Columns(..)));
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
            None,
        );
        // A merge's source column takes the recorded value instead.
        let recorded = Projection::between(
            &table(&["id"]),
            &table(&["id", "src"]),
            &ColumnMap::default(),
            Some(("src", "shard_1.t".to_string())),
        )
        .map(|p| p.apply(vec![Value::Int(7)]))
        .ok();
        assert_eq!(
            recorded,
            Some(vec![Value::Int(7), Value::Bytes(b"shard_1.t".to_vec())])
        );
        assert!(
            matches!(&missing, Err(SyncError::Query { detail, .. }) if detail.contains("`extra`")),
            "{missing:?}"
        );
    }
}
