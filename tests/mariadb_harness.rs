//! The throwaway MariaDB instances the sync tests rely on.

use dts_tests::MariaDb;

#[tokio::test]
async fn throwaway_mariadb_logs_full_row_images_and_survives_sigkill() -> anyhow::Result<()> {
    let mut db = MariaDb::start(11).await?;
    assert_eq!(
        db.query_value("SELECT @@log_bin").await?.as_deref(),
        Some("1")
    );
    assert_eq!(
        db.query_value("SELECT @@binlog_format").await?.as_deref(),
        Some("ROW")
    );
    assert_eq!(
        db.query_value("SELECT @@binlog_row_image")
            .await?
            .as_deref(),
        Some("FULL")
    );
    assert_eq!(
        db.query_value("SELECT @@server_id").await?.as_deref(),
        Some("11")
    );

    db.exec("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO shop.t VALUES (1, 'a'), (2, 'b')")
        .await?;
    db.kill();
    db.restart().await?;
    assert_eq!(
        db.query_value("SELECT COUNT(*) FROM shop.t")
            .await?
            .as_deref(),
        Some("2")
    );

    let other = MariaDb::start(12).await?;
    assert_ne!(other.port, db.port);
    assert_eq!(
        other
            .query_value(
                "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'shop'"
            )
            .await?
            .as_deref(),
        Some("0")
    );
    Ok(())
}
