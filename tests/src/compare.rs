//! "Destination equals source": row counts and ordered row hashes per table,
//! with the differing columns printed when they do not match.

use crate::MariaDb;

/// Fails unless SHOW CREATE TABLE says the same on both servers (columns,
/// indexes in their order, options).
pub async fn assert_same_definition(
    source: &MariaDb,
    destination: &MariaDb,
    db: &str,
    table: &str,
) -> anyhow::Result<()> {
    use mysql_async::prelude::Queryable;
    let show = format!("SHOW CREATE TABLE `{db}`.`{table}`");
    let mut s = source.conn().await?;
    let mut d = destination.conn().await?;
    let a: Option<(String, String)> = s.query_first(&show).await?;
    let b: Option<(String, String)> = d.query_first(&show).await?;
    anyhow::ensure!(
        a == b,
        "definitions of `{db}`.`{table}` differ: {a:?} vs {b:?}"
    );
    Ok(())
}

pub async fn assert_same_rows(
    source: &MariaDb,
    destination: &MariaDb,
    tables: &[(&str, &str)],
) -> anyhow::Result<()> {
    for (db, table) in tables {
        let src = source.checksum(db, table).await?;
        let dst = destination.checksum(db, table).await?;
        println!("{db}.{table}: source {src:?} destination {dst:?}");
        if src != dst && src.0 < 100_000 {
            let (a, b) = (
                source.rows_as_hex(db, table).await?,
                destination.rows_as_hex(db, table).await?,
            );
            let differences = a.iter().zip(&b).flat_map(|(x, y)| x.iter().zip(y));
            for (cx, cy) in differences.filter(|(cx, cy)| cx != cy).take(10) {
                println!(
                    "  differs: source {} destination {}",
                    &cx[..cx.len().min(80)],
                    &cy[..cy.len().min(80)]
                );
            }
        }
        anyhow::ensure!(
            src == dst,
            "{db}.{table} differs: source {src:?}, destination {dst:?}"
        );
    }
    Ok(())
}

/// "The source as the route says": every selected source table's rows that
/// pass its row filter, with
/// the columns the route takes under their destination names, gathered
/// under the destination table the task's route sends them to (a merge is
/// the union of its sources), compared row by row with the destination. Returns the first difference, or `None` when equal.
pub async fn routed_difference(
    source: &MariaDb,
    destination: &MariaDb,
    spec_toml: &str,
) -> anyhow::Result<Option<String>> {
    use dts_common::route::Route;
    use dts_common::TaskSpec;
    use mysql_async::prelude::Queryable;
    use std::collections::BTreeMap;
    let spec = TaskSpec::from_toml(spec_toml)?;
    let route = Route::compile(&spec)?;
    let mut conn = source.conn().await?;
    let tables: Vec<(String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        .await?;
    conn.disconnect().await?;
    let mut expected: BTreeMap<(String, String), Vec<Vec<String>>> = BTreeMap::new();
    for (db, table) in tables {
        if let Some(target) = route.table(&db, &table)? {
            // Only the columns the route takes, under their destination names.
            // Its row filter as the user wrote it, asked of the source server.
            let condition = target.filter.as_ref().map_or("TRUE", |f| f.text());
            let rows = source
                .rows_as_hex_where(&db, &table, &format!("({condition})"))
                .await?;
            // A merge's source column, added last, records `db.table`.
            let recorded = target.source_column.as_ref().map(|column| {
                let hex: String = format!("{db}.{table}")
                    .bytes()
                    .map(|b| format!("{b:02X}"))
                    .collect();
                format!("{column}={hex}")
            });
            let rows = rows.into_iter().map(|row| {
                row.into_iter()
                    .filter_map(|cell| {
                        let (column, value) = cell.split_once('=')?;
                        let name = target.columns.target(column)?;
                        Some(format!("{name}={value}"))
                    })
                    .chain(recorded.clone())
                    .collect::<Vec<String>>()
            });
            expected
                .entry((target.db, target.table))
                .or_default()
                .extend(rows);
        }
    }
    for ((db, table), mut want) in expected {
        let mut got = match destination.rows_as_hex(&db, &table).await {
            Ok(rows) => rows,
            Err(e) => return Ok(Some(format!("`{db}`.`{table}`: {e}"))),
        };
        want.sort();
        got.sort();
        if want != got {
            let first = want
                .iter()
                .zip(&got)
                .find(|(w, g)| w != g)
                .map(|(w, g)| format!("first difference: source {w:?}, destination {g:?}"))
                .unwrap_or_default();
            return Ok(Some(format!(
                "`{db}`.`{table}`: the route says {} rows, the destination has {}; {first}",
                want.len(),
                got.len()
            )));
        }
    }
    Ok(None)
}

/// Fails unless the destination is the source as the route says (see
/// [`routed_difference`]).
pub async fn assert_routed(
    source: &MariaDb,
    destination: &MariaDb,
    spec_toml: &str,
) -> anyhow::Result<()> {
    match routed_difference(source, destination, spec_toml).await? {
        None => Ok(()),
        Some(difference) => anyhow::bail!("{difference}"),
    }
}
