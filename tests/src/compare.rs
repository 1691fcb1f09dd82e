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
