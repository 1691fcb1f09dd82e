//! The migration assessment: what may go wrong on the destination though
//! the task can run, raised as alerts a person reviews and acknowledges.
//! A check that cannot read what it needs says so as its alert.

use crate::error::{DriverResultExt, Side, SyncResult};
use crate::source::catalog::Table;
use dts_common::precheck::Report;
use dts_common::route::Route;
use mysql_async::prelude::Queryable;
use std::collections::BTreeSet;

/// How many names an item lists before it says how many more.
const LISTED: usize = 10;

fn listed(names: &[String]) -> String {
    let mut text = names
        .iter()
        .take(LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LISTED {
        text.push_str(&format!(" and {} more", names.len() - LISTED));
    }
    text
}

/// A server's flavour and version (`10.11.6-MariaDB-...`, `8.0.36`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Version {
    mariadb: bool,
    numbers: Vec<u32>,
    text: String,
}

fn parse_version(text: &str) -> Version {
    let numbers = text
        .split(|c: char| !c.is_ascii_digit())
        .take_while(|part| !part.is_empty())
        .take(3)
        .filter_map(|part| part.parse().ok())
        .collect();
    Version {
        mariadb: text.to_ascii_lowercase().contains("mariadb"),
        numbers,
        text: text.to_string(),
    }
}

/// The destination's server should be as new as the source's, of the same
/// kind: an older one may not know what the source's tables use.
pub async fn versions(
    src: &mut mysql_async::Conn,
    dst: &mut mysql_async::Conn,
    report: &mut Report,
) -> SyncResult<()> {
    let ctx = "reading the server version";
    let source: Option<String> = src
        .query_first("SELECT VERSION()")
        .await
        .on(Side::Source, ctx)?;
    let destination: Option<String> = dst
        .query_first("SELECT VERSION()")
        .await
        .on(Side::Destination, ctx)?;
    let (source, destination) = (
        parse_version(&source.unwrap_or_default()),
        parse_version(&destination.unwrap_or_default()),
    );
    let major_minor = |v: &Version| v.numbers.iter().take(2).copied().collect::<Vec<_>>();
    if source.mariadb != destination.mariadb {
        report.alert(
            "destination_version",
            format!(
                "the source runs {} and the destination {}: definitions and SQL modes differ \
                 between MariaDB and MySQL",
                source.text, destination.text
            ),
        );
    } else if major_minor(&destination) < major_minor(&source) {
        report.alert(
            "destination_version",
            format!(
                "the destination runs {}, older than the source's {}: it may not know what the \
                 source's tables and routines use",
                destination.text, source.text
            ),
        );
    } else {
        report.pass(
            "destination_version",
            format!("source {}, destination {}", source.text, destination.text),
        );
    }
    Ok(())
}

/// The selected tables' databases, quoted for an `IN (...)` list: the
/// catalog is read once for all of them (per table, a few thousand tables
/// took minutes).
fn databases_of(tables: &[Table]) -> Option<String> {
    let names: BTreeSet<&str> = tables.iter().map(|t| t.db.as_str()).collect();
    (!names.is_empty()).then(|| {
        names
            .iter()
            .map(|db| dts_common::mysql::quote_string(db))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

fn selected(tables: &[Table]) -> BTreeSet<(&str, &str)> {
    tables
        .iter()
        .map(|t| (t.db.as_str(), t.name.as_str()))
        .collect()
}

/// How much the copy brings: the destination needs at least this much free
/// space (which no SQL statement tells).
pub async fn data_size(
    src: &mut mysql_async::Conn,
    tables: &[Table],
    report: &mut Report,
) -> SyncResult<()> {
    let mut bytes = 0u64;
    if let Some(databases) = databases_of(tables) {
        let sizes: Vec<(String, String, Option<u64>)> = src
            .query(format!(
                "SELECT TABLE_SCHEMA, TABLE_NAME, DATA_LENGTH + INDEX_LENGTH \
                 FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({databases})"
            ))
            .await
            .on(Side::Source, "reading the selected tables' size")?;
        let selected = selected(tables);
        bytes = sizes
            .iter()
            .filter(|(db, name, _)| selected.contains(&(db.as_str(), name.as_str())))
            .map(|(_, _, size)| size.unwrap_or(0))
            .sum();
    }
    report.pass(
        "data_size",
        format!(
            "the selected tables take {:.1} MiB on the source: the destination needs that much \
             free space and more (its free space cannot be read over SQL)",
            bytes as f64 / (1024.0 * 1024.0)
        ),
    );
    Ok(())
}

/// Index key parts longer than this many bytes need the DYNAMIC or
/// COMPRESSED row format (and, on older servers, `innodb_large_prefix`): a
/// destination with COMPACT or REDUNDANT tables refuses them.
const SHORT_PREFIX_BYTES: u64 = 767;

/// Index prefixes whose length in bytes (characters times the character
/// set's widest character) only some row formats take.
pub async fn index_prefixes(
    src: &mut mysql_async::Conn,
    tables: &[Table],
    report: &mut Report,
) -> SyncResult<()> {
    let mut found = Vec::new();
    if let Some(databases) = databases_of(tables) {
        let prefixed: Vec<(String, String, String, String, u64, u64)> = src
            .query(format!(
                "SELECT s.TABLE_SCHEMA, s.TABLE_NAME, s.INDEX_NAME, s.COLUMN_NAME, s.SUB_PART, \
                 s.SUB_PART * COALESCE(cs.MAXLEN, 1) \
                 FROM information_schema.STATISTICS s \
                 JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = s.TABLE_SCHEMA \
                   AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME \
                 LEFT JOIN information_schema.CHARACTER_SETS cs \
                   ON cs.CHARACTER_SET_NAME = c.CHARACTER_SET_NAME \
                 WHERE s.TABLE_SCHEMA IN ({databases}) AND s.SUB_PART IS NOT NULL \
                 ORDER BY s.TABLE_SCHEMA, s.TABLE_NAME, s.INDEX_NAME, s.SEQ_IN_INDEX"
            ))
            .await
            .on(Side::Source, "reading index prefixes")?;
        let selected = selected(tables);
        found.extend(
            prefixed
                .into_iter()
                .filter(|(db, name, _, _, _, bytes)| {
                    *bytes > SHORT_PREFIX_BYTES && selected.contains(&(db.as_str(), name.as_str()))
                })
                .map(|(db, name, index, column, length, bytes)| {
                    format!("`{db}`.`{name}` {index}({column}({length})) = {bytes} bytes")
                }),
        );
    }
    if found.is_empty() {
        report.pass(
            "index_prefixes",
            format!("no index prefix longer than {SHORT_PREFIX_BYTES} bytes"),
        );
    } else {
        report.alert(
            "index_prefixes",
            format!(
                "{} index prefix(es) longer than {SHORT_PREFIX_BYTES} bytes, which a destination \
                 with COMPACT or REDUNDANT row format (or innodb_large_prefix off) refuses: {}",
                found.len(),
                listed(&found)
            ),
        );
    }
    Ok(())
}

/// Views and routines the schema sync creates that name a database the
/// task does not select: created on the destination, they fail there or
/// read something else.
pub async fn outside_dependencies(
    src: &mut mysql_async::Conn,
    route: &Route,
    report: &mut Report,
) -> SyncResult<()> {
    let ctx = "reading view and routine definitions";
    let mut definitions: Vec<(String, String, String)> = src
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS \
             ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        .await
        .on(Side::Source, ctx)?;
    let routines: Vec<(String, String, Option<String>)> = src
        .query(
            "SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_DEFINITION FROM information_schema.ROUTINES \
             ORDER BY ROUTINE_SCHEMA, ROUTINE_NAME",
        )
        .await
        .on(Side::Source, ctx)?;
    definitions.extend(
        routines
            .into_iter()
            .map(|(db, name, body)| (db, name, body.unwrap_or_default())),
    );
    let databases: BTreeSet<String> = {
        let names: Vec<String> = src
            .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
            .await
            .on(Side::Source, ctx)?;
        names.into_iter().collect()
    };
    let system = ["mysql", "information_schema", "performance_schema", "sys"];
    let mut found = Vec::new();
    for (db, name, body) in definitions {
        if !route.selects_database(&db) {
            continue;
        }
        let outside: BTreeSet<&str> = databases
            .iter()
            .filter(|other| {
                **other != db
                    && !route.selects_database(other)
                    && !system.contains(&other.as_str())
                    && body.contains(&format!("`{other}`."))
            })
            .map(String::as_str)
            .collect();
        if !outside.is_empty() {
            let names: Vec<&str> = outside.into_iter().collect();
            found.push(format!("`{db}`.`{name}` uses {}", names.join(", ")));
        }
    }
    if found.is_empty() {
        report.pass(
            "outside_dependencies",
            "no view or routine uses a database the task leaves out",
        );
    } else {
        report.alert(
            "outside_dependencies",
            format!(
                "views or routines use databases the task leaves out, which the destination may \
                 lack: {}",
                listed(&found)
            ),
        );
    }
    Ok(())
}

/// Definers of the views, routines, triggers and events schema sync
/// creates: one the destination has no account for makes the object fail
/// when it runs there.
pub async fn missing_definers(
    src: &mut mysql_async::Conn,
    dst: &mut mysql_async::Conn,
    route: &Route,
    report: &mut Report,
) -> SyncResult<()> {
    let ctx = "reading the definers of views, routines, triggers and events";
    let definers: Vec<(String, String)> = src
        .query(
            "SELECT TABLE_SCHEMA, DEFINER FROM information_schema.VIEWS \
             UNION SELECT ROUTINE_SCHEMA, DEFINER FROM information_schema.ROUTINES \
             UNION SELECT TRIGGER_SCHEMA, DEFINER FROM information_schema.TRIGGERS \
             UNION SELECT EVENT_SCHEMA, DEFINER FROM information_schema.EVENTS",
        )
        .await
        .on(Side::Source, ctx)?;
    let wanted: BTreeSet<String> = definers
        .into_iter()
        .filter(|(db, _)| route.selects_database(db))
        .map(|(_, definer)| definer)
        .collect();
    if wanted.is_empty() {
        report.pass(
            "missing_definers",
            "no view, routine, trigger or event to create",
        );
        return Ok(());
    }
    let accounts: Result<Vec<(String, String)>, _> =
        dst.query("SELECT User, Host FROM mysql.user").await;
    let accounts: BTreeSet<String> = match accounts {
        Ok(accounts) => accounts
            .into_iter()
            .map(|(user, host)| format!("{user}@{host}"))
            .collect(),
        Err(e) => {
            report.alert(
                "missing_definers",
                format!(
                    "the destination's accounts cannot be read to check the definers {} \
                     ({e})",
                    listed(&wanted.into_iter().collect::<Vec<_>>())
                ),
            );
            return Ok(());
        }
    };
    let missing: Vec<String> = wanted
        .into_iter()
        .filter(|definer| !accounts.contains(definer))
        .collect();
    if missing.is_empty() {
        report.pass(
            "missing_definers",
            "every definer has an account on the destination",
        );
    } else {
        report.alert(
            "missing_definers",
            format!(
                "definers with no account on the destination (objects they define fail when \
                 used there; the task's `accounts` can bring them): {}",
                listed(&missing)
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_major_and_minor() {
        let a = parse_version("10.11.6-MariaDB-0+deb12u1");
        let b = parse_version("10.6.16-MariaDB");
        assert!(a.mariadb && b.mariadb);
        assert_eq!(a.numbers, vec![10, 11, 6]);
        assert!(b.numbers[..2] < a.numbers[..2]);
        assert!(!parse_version("8.0.36").mariadb);
    }
}
