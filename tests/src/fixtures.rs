//! Task files and schemas the tests share.

/// A valid task file for control-plane tests: only its DU demand matters. Its
/// databases are on ports where nothing listens, so the task keeps running
/// (retrying the connection) without touching any real server.
pub fn control_plane_task(name: &str, du: u32) -> String {
    format!(
        r#"
name = "{name}"
du = {du}
[source]
host = "127.0.0.1"
port = 1
user = "dts"
[destination]
host = "127.0.0.1"
port = 2
user = "dts"
[[objects]]
database = "shop"
"#
    )
}

/// A task file between two harness servers (root, no password).
pub fn sync_task(
    name: &str,
    source_port: u16,
    destination_port: u16,
    modes: &[&str],
    objects: &str,
    du: u32,
) -> String {
    let modes = modes
        .iter()
        .map(|m| format!("\"{m}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
name = "{name}"
du = {du}
modes = [{modes}]
[source]
host = "127.0.0.1"
port = {source_port}
user = "root"
[destination]
host = "127.0.0.1"
port = {destination_port}
user = "root"
{objects}
"#
    )
}

macro_rules! every_type_tables {
    () => {
        r#"
CREATE TABLE typed.all_types (
  id INT NOT NULL PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  dec65 DECIMAL(65,30), f FLOAT, d DOUBLE,
  b1 BIT(1), b64 BIT(64),
  e ENUM('small','medium','large'), st SET('a','b','c'),
  dt DATE, tm TIME(6), dtm DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, yr YEAR,
  c CHAR(10), vc VARCHAR(200), tx TEXT, lat VARCHAR(50) CHARACTER SET latin1,
  bn BINARY(4), vb VARBINARY(64), bl LONGBLOB,
  js JSON, geo GEOMETRY NULL,
  KEY by_int (i), KEY by_text (vc(10), id) COMMENT 'built after the copy'
) ENGINE=InnoDB;
CREATE TABLE typed.parent (a INT NOT NULL, b VARCHAR(20) NOT NULL, PRIMARY KEY (a, b)) ENGINE=InnoDB;
CREATE TABLE typed.child (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  a INT NOT NULL, b VARCHAR(20) NOT NULL,
  doubled INT AS (a * 2) VIRTUAL, stored_len INT AS (CHAR_LENGTH(b)) STORED,
  secret VARCHAR(10) INVISIBLE DEFAULT 'hidden',
  KEY (b), FOREIGN KEY (a, b) REFERENCES typed.parent (a, b)
) ENGINE=InnoDB;
CREATE VIEW typed.child_view AS SELECT id, a, doubled FROM typed.child WHERE a < 10;
CREATE FUNCTION typed.twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
CREATE PROCEDURE typed.count_children(OUT n INT) SELECT COUNT(*) INTO n FROM typed.child;
"#
    };
}

macro_rules! every_type_rows {
    () => {
        r#"
INSERT INTO typed.all_types VALUES
 (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
  -9223372036854775808, 18446744073709551615,
  -12345678901234567890123456789012345.123456789012345678901234567891, -3.40282e38, -1.7976931348623157e308,
  b'1', b'1111111111111111111111111111111111111111111111111111111111111111',
  'large', 'a,c', '1000-01-01', '-838:59:59.000000', '1000-01-01 00:00:00.000000',
  '1970-01-01 00:00:01.000000', 1901,
  'x', '😀 emoji 𝄞 and ünïcödé', REPEAT('long text ', 1000), 'café latin1',
  0x00FF7F80, 0x0001020304FFFE, 0x00, '{"a": [1, 2.5, "x"], "b": null}', ST_GeomFromText('POINT(1.5 -2.25)')),
 (2, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0,
  99999999999999999999999999999999999.999999999999999999999999999999, 1.17549e-38, 2.2250738585072014e-308,
  b'0', b'0', 'small', '', '9999-12-31', '838:59:59.999999', '9999-12-31 23:59:59.999999',
  '2038-01-19 03:14:07.999999', 2155,
  '', '', '', '', 0x00000000, '', '', '[]', ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0))')),
 (3, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, '-00:00:00.000001', NULL, NULL, 0,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  '100:00:00.5', '2024-02-29 12:34:56.789012', '2024-02-29 12:34:56.789012', NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO typed.all_types (id, bl) VALUES (5, REPEAT(UNHEX('00FF10E2'), 4 * 1024 * 1024 + 3));
INSERT INTO typed.parent SELECT seq, CONCAT('k', seq % 7) FROM seq_1_to_12000;
INSERT INTO typed.child (id, a, b, secret) SELECT seq, seq, CONCAT('k', seq % 7), CONCAT('s', seq) FROM seq_1_to_12000;
INSERT INTO typed.child (id, a, b) VALUES (0, 1, 'k1');
CREATE TRIGGER typed.shout BEFORE INSERT ON typed.child FOR EACH ROW SET NEW.secret = UPPER(NEW.secret);
"#
    };
}

/// One table holding every column type dts must move exactly, plus rows
/// covering extremes, NULLs and awkward bytes; a second table with a
/// composite key, a generated and an invisible column and a foreign key; a
/// view, a function and a procedure.
pub const EVERY_TYPE_SCHEMA: &str = concat!(
    "SET SESSION time_zone = '+00:00', sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO';\n",
    "CREATE DATABASE typed CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n",
    "USE typed;\n",
    every_type_tables!(),
    every_type_rows!(),
);

/// The tables of [`EVERY_TYPE_SCHEMA`] without rows (for incremental tests,
/// which insert [`EVERY_TYPE_ROWS`] once the task follows the binlog).
pub const EVERY_TYPE_TABLES: &str = concat!(
    "SET SESSION time_zone = '+00:00', sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO';\n",
    "CREATE DATABASE typed CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n",
    "USE typed;\n",
    every_type_tables!(),
);

pub const EVERY_TYPE_ROWS: &str = concat!(
    "SET SESSION time_zone = '+00:00', sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO';\n",
    "USE typed;\n",
    every_type_rows!(),
);
