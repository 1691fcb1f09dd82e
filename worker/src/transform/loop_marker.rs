//! Loop prevention: which transactions read from the source are dts's own
//! writes that must not travel on, told by the loop marker each of them
//! writes first (see `meta::LOOP_MARKERS`).
//!
//! A task reading server S and writing server D drops a marked transaction
//! when it came to S from D (`applied_from` is D: the reverse of a two-way
//! pair, or a hub's task back to the leaf it came from), or when it was
//! first written on D (`origin` is D: a ring closing). Any other marked
//! transaction is relayed, keeping its origin, so cascades and stars go on.

use crate::source::binlog::RowChange;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::Value;

/// What a loop marker row says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub applied_from: u32,
    pub origin: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not to be applied: it would carry changes back where they came from.
    Drop,
    /// To be applied, saying the changes were first written on `origin`.
    Relay { origin: u32 },
}

/// The rule for a task writing the server whose id is `destination`.
#[derive(Debug, Clone, Copy)]
pub struct LoopGuard {
    pub destination: u32,
}

impl LoopGuard {
    pub fn verdict(&self, marker: Marker) -> Verdict {
        if marker.applied_from == self.destination || marker.origin == self.destination {
            Verdict::Drop
        } else {
            Verdict::Relay {
                origin: marker.origin,
            }
        }
    }
}

/// The marker in a rows event of the marker table: its first row's after
/// image, by column position (task_id, connection, applied_from, origin, n).
pub fn read(changes: &[RowChange]) -> Option<Marker> {
    let after = changes.first()?.after.as_ref()?;
    let number = |i: usize| match after.get(i)? {
        BinlogValue::Value(Value::Int(n)) => u32::try_from(*n).ok(),
        BinlogValue::Value(Value::UInt(n)) => u32::try_from(*n).ok(),
        _ => None,
    };
    Some(Marker {
        applied_from: number(2)?,
        origin: number(3)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(applied_from: u32, origin: u32) -> Marker {
        Marker {
            applied_from,
            origin,
        }
    }

    #[test]
    fn changes_go_everywhere_but_back() {
        // Two-way pair A (1) <-> B (2): B -> A drops what A -> B applied.
        let to_a = LoopGuard { destination: 1 };
        assert_eq!(to_a.verdict(marker(1, 1)), Verdict::Drop);
        // Star with hub H (10), leaves 1 and 2: a change of leaf 1 applied
        // on the hub goes on to leaf 2, keeping its origin, and not back.
        let hub_to_leaf_2 = LoopGuard { destination: 2 };
        assert_eq!(
            hub_to_leaf_2.verdict(marker(1, 1)),
            Verdict::Relay { origin: 1 }
        );
        let hub_to_leaf_1 = LoopGuard { destination: 1 };
        assert_eq!(hub_to_leaf_1.verdict(marker(1, 1)), Verdict::Drop);
        // On leaf 2, what the hub's task applied does not go back to the hub.
        let leaf_2_to_hub = LoopGuard { destination: 10 };
        assert_eq!(leaf_2_to_hub.verdict(marker(10, 1)), Verdict::Drop);
        // A ring 1 -> 2 -> 3 -> 1 closes at its origin.
        let three_to_one = LoopGuard { destination: 1 };
        assert_eq!(three_to_one.verdict(marker(2, 1)), Verdict::Drop);
        // A cascade goes on.
        let two_to_three = LoopGuard { destination: 3 };
        assert_eq!(
            two_to_three.verdict(marker(1, 1)),
            Verdict::Relay { origin: 1 }
        );
    }

    #[test]
    fn the_marker_is_read_by_position_from_the_after_image() {
        let row = |values: Vec<Value>| RowChange {
            before: None,
            after: Some(values.into_iter().map(BinlogValue::Value).collect()),
        };
        let written = row(vec![
            Value::Bytes(b"task".to_vec()),
            Value::UInt(7),
            Value::UInt(2),
            Value::Int(1),
            Value::UInt(5),
        ]);
        assert_eq!(read(&[written]), Some(marker(2, 1)));
        assert_eq!(read(&[row(vec![Value::NULL])]), None);
        assert_eq!(read(&[]), None);
    }
}
