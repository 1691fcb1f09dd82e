//! "Destination equals source": row counts and ordered row hashes per table,
//! with the differing columns printed when they do not match.

use crate::MariaDb;

pub async fn assert_same_rows(
    source: &MariaDb,
    destination: &MariaDb,
    tables: &[(&str, &str)],
) -> anyhow::Result<()> {
    for (db, table) in tables {
        let src = source.checksum(db, table).await?;
        let dst = destination.checksum(db, table).await?;
        println!("{db}.{table}: source {src:?} destination {dst:?}");
        if src != dst && src.0 < 1000 {
            let (a, b) = (
                source.rows_as_hex(db, table).await?,
                destination.rows_as_hex(db, table).await?,
            );
            for (x, y) in a.iter().zip(&b) {
                for (cx, cy) in x.iter().zip(y) {
                    if cx != cy {
                        println!(
                            "  differs: source {} destination {}",
                            &cx[..cx.len().min(80)],
                            &cy[..cy.len().min(80)]
                        );
                    }
                }
            }
        }
        anyhow::ensure!(
            src == dst,
            "{db}.{table} differs: source {src:?}, destination {dst:?}"
        );
    }
    Ok(())
}
