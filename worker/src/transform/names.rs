//! Statement text with the source's names replaced by the destination's, as
//! the route maps them: the objects a DDL statement names at its head, the
//! table a foreign key references, and every qualified `db.table` (a view's
//! body names its tables so). Names are replaced where they stand, so the
//! rest of the statement is sent as the source wrote it.

use crate::error::{SyncError, SyncResult};
use crate::source::catalog::TableName;
use crate::source::ddl::{self, ObjectName};
use dts_common::mysql::{quote_ident, quote_table};
use dts_common::route::Route;
use std::ops::Range;

/// `sql`, run on the source in database `schema`, with names mapped for a
/// run on the destination in `route.database(schema)`. `named` are the
/// objects `ddl::classify` found at its head.
pub fn rewrite(route: &Route, schema: &str, sql: &str, named: &[ObjectName]) -> SyncResult<String> {
    let run_in = route.database(schema);
    rewrite_with(sql, named, schema, run_in.as_deref(), |db, name| {
        Ok(route
            .table(db, name)
            .map_err(SyncError::RouteConflict)?
            .map(|routed| TableName {
                db: routed.db,
                name: routed.table,
            }))
    })
}

/// `sql`, run on the source in `schema`, for a run in `run_in` with each
/// table name `map` gives a target for replaced by it (a name `map` leaves
/// alone keeps naming the source's object).
pub fn rewrite_with(
    sql: &str,
    named: &[ObjectName],
    schema: &str,
    run_in: Option<&str>,
    map: impl Fn(&str, &str) -> SyncResult<Option<TableName>>,
) -> SyncResult<String> {
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    let mut references = ddl::table_references(sql);
    references.extend(ddl::like_source(sql));
    for object in named.iter().chain(&references) {
        if edits.iter().any(|(span, _)| overlaps(span, &object.span)) {
            continue;
        }
        let db = object.db.as_deref().unwrap_or(schema);
        let source = TableName {
            db: db.to_string(),
            name: object.name.clone(),
        };
        let Some(target) = map(db, &object.name)? else {
            continue;
        };
        let resolves_alike = object.db.is_none() && run_in == Some(target.db.as_str());
        let unchanged = if resolves_alike {
            target.name == source.name
        } else {
            object.db.is_some() && target == source
        };
        if unchanged {
            continue;
        }
        let replacement = if resolves_alike {
            quote_ident(&target.name)
        } else {
            quote_table(&target.db, &target.name)
        };
        edits.push((object.span.clone(), replacement));
    }
    edits.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
    let mut out = sql.to_string();
    for (span, replacement) in edits {
        out.replace_range(span, &replacement);
    }
    Ok(out)
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ddl::Statement;
    use crate::transform::test_route as route;

    fn rewritten(route: &Route, schema: &str, sql: &str) -> String {
        let named = match ddl::classify(sql) {
            Statement::Ddl { objects, .. } => objects,
            _ => Vec::new(),
        };
        rewrite(route, schema, sql, &named).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn names_are_mapped_where_they_stand() {
        let r = route(
            "[[objects]]\ndatabase = \"shop\"\nto = \"shop_eu\"\n\
             tables = [\"customers\", { name = \"orders\", to = \"orders_eu\" }]",
        );
        let cases = [
            // Unqualified and run in the mapped database: only a renamed table changes.
            (
                "shop",
                "ALTER TABLE customers ADD c INT",
                "ALTER TABLE customers ADD c INT",
            ),
            (
                "shop",
                "ALTER TABLE orders ADD c INT",
                "ALTER TABLE `orders_eu` ADD c INT",
            ),
            (
                "shop",
                "ALTER TABLE `shop`.`orders` ADD c INT",
                "ALTER TABLE `shop_eu`.`orders_eu` ADD c INT",
            ),
            // Run elsewhere: qualified on the destination.
            (
                "other",
                "ALTER TABLE shop.customers ADD c INT",
                "ALTER TABLE `shop_eu`.`customers` ADD c INT",
            ),
            (
                "shop",
                "RENAME TABLE orders TO customers_old, shop.customers TO orders",
                "RENAME TABLE `orders_eu` TO customers_old, `shop_eu`.`customers` TO `orders_eu`",
            ),
            (
                "shop",
                "CREATE TABLE c2 (p INT, FOREIGN KEY (p) REFERENCES orders (id))",
                "CREATE TABLE c2 (p INT, FOREIGN KEY (p) REFERENCES `orders_eu` (id))",
            ),
            (
                "shop",
                "CREATE INDEX i ON orders (a)",
                "CREATE INDEX i ON `orders_eu` (a)",
            ),
            ("shop", "DROP TABLE unselected", "DROP TABLE unselected"),
        ];
        for (schema, sql, expected) in cases {
            assert_eq!(rewritten(&r, schema, sql), expected, "{sql}");
        }
    }

    #[test]
    fn a_view_body_names_the_destination_tables() {
        let r = route("[[objects]]\ndatabase = \"shop\"\nto = \"shop_copy\"");
        let sql = "CREATE ALGORITHM=UNDEFINED VIEW `v` AS select `shop`.`t`.`id` AS `id` \
                   from `shop`.`t` where `shop`.`t`.`id` > 1";
        assert_eq!(
            rewritten(&r, "shop", sql),
            "CREATE ALGORITHM=UNDEFINED VIEW `v` AS select `shop_copy`.`t`.`id` AS `id` \
             from `shop_copy`.`t` where `shop_copy`.`t`.`id` > 1"
        );
    }
}
