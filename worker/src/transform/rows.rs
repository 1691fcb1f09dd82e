//! A rows event of a selected table made the destination's: dropped when
//! the route filters its operation out, else named as the table it goes to.

use crate::sink::lanes::RowsWork;
use crate::source::binlog::{RowChange, RowKind};
use crate::source::catalog::TableName;
use crate::source::position::BinlogPosition;
use crate::transform::filter::{BoundFilter, EvalError};
use dts_common::route::TableRoute;
use dts_common::spec::DmlOperation;
use mysql_async::Value;
use std::sync::Arc;

impl RowKind {
    pub fn operation(self) -> DmlOperation {
        match self {
            RowKind::Insert => DmlOperation::Insert,
            RowKind::Update => DmlOperation::Update,
            RowKind::Delete => DmlOperation::Delete,
        }
    }
}

/// The work for the destination, or `None` when the route drops it.
pub fn to_destination(
    source: &Arc<TableName>,
    route: &Arc<TableRoute>,
    kind: RowKind,
    columns: usize,
    changes: Vec<RowChange>,
    bytes: usize,
    position: BinlogPosition,
) -> Option<RowsWork> {
    if !route.dml.allows(kind.operation()) {
        return None;
    }
    Some(RowsWork {
        kind,
        columns,
        changes,
        bytes,
        position,
        source: source.clone(),
        route: route.clone(),
    })
}

/// A row change seen through the table's row filter: an update whose row
/// moves out of the filter deletes it on the destination, one whose row
/// moves in inserts it; `None` when neither image passes.
#[allow(clippy::type_complexity)]
pub fn through_filter(
    filter: &BoundFilter,
    kind: RowKind,
    before: Option<Vec<Value>>,
    after: Option<Vec<Value>>,
) -> Result<Option<(RowKind, Option<Vec<Value>>, Option<Vec<Value>>)>, EvalError> {
    let passes = |image: &Option<Vec<Value>>| match image {
        Some(row) => filter.matches(row),
        None => Ok(false),
    };
    let (was, is) = (passes(&before)?, passes(&after)?);
    Ok(match (kind, was, is) {
        (RowKind::Insert, _, true) => Some((RowKind::Insert, None, after)),
        (RowKind::Delete, true, _) => Some((RowKind::Delete, before, None)),
        (RowKind::Update, true, true) => Some((RowKind::Update, before, after)),
        (RowKind::Update, true, false) => Some((RowKind::Delete, before, None)),
        (RowKind::Update, false, true) => Some((RowKind::Insert, None, after)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dts_common::route::{Claim, DmlSet};

    fn route(dml: DmlSet) -> Arc<TableRoute> {
        Arc::new(TableRoute {
            db: "shop_eu".into(),
            table: "orders_eu".into(),
            dml,
            columns: Default::default(),
            ddl: None,
            filter: None,
            source_column: None,
            claim: Claim::Database(0),
        })
    }

    fn at() -> BinlogPosition {
        BinlogPosition {
            file: "binlog.000001".into(),
            pos: 4,
            gtid: None,
        }
    }

    fn source() -> Arc<TableName> {
        Arc::new(TableName {
            db: "shop".into(),
            name: "orders".into(),
        })
    }

    #[test]
    fn work_is_named_for_the_destination_and_strict_unless_filtered() {
        let work = to_destination(
            &source(),
            &route(DmlSet::ALL),
            RowKind::Insert,
            3,
            Vec::new(),
            0,
            at(),
        );
        let work = work.map(|w| (w.lenient(), w.db().to_string(), w.table().to_string()));
        assert_eq!(work, Some((false, "shop_eu".into(), "orders_eu".into())));
    }

    #[test]
    fn filtered_operations_are_dropped_and_the_rest_applied_leniently() {
        let no_deletes = DmlSet {
            delete: false,
            ..DmlSet::ALL
        };
        assert!(to_destination(
            &source(),
            &route(no_deletes),
            RowKind::Delete,
            3,
            Vec::new(),
            0,
            at()
        )
        .is_none());
        for kind in [RowKind::Insert, RowKind::Update] {
            let work = to_destination(&source(), &route(no_deletes), kind, 3, Vec::new(), 0, at());
            assert_eq!(work.map(|w| w.lenient()), Some(true), "{kind:?}");
        }
    }
}
