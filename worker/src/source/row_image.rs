//! The row images of a binlog rows event, decoded straight into values.
//!
//! mysql_common's `RowsEventRows` also builds a `Column` for every value of
//! every row (schema, table and column names copied behind an `Arc`) and
//! reads the table map's optional metadata again for every image; the
//! applier needs only the values, and in catch-up the columns cost the
//! worker about a tenth of its CPU. Partial JSON updates (MySQL 8) still go
//! through mysql_common.

use crate::source::binlog::RowChange;
use foldhash::HashMap as FastMap;
use mysql_async::binlog::events::{OptionalMetaExtractor, RowsEventData, TableMapEvent};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;
use mysql_common::io::ParseBuf;
use std::borrow::Cow;
use std::io;

/// How one column of the table is read from an image.
struct ColumnDecoding {
    column_type: ColumnType,
    meta: Box<[u8]>,
    unsigned: bool,
}

/// A table map and how its columns decode.
struct TableDecoding {
    /// The map event's payload, as the source wrote it.
    payload: Box<[u8]>,
    map: TableMapEvent<'static>,
    columns: Vec<ColumnDecoding>,
    /// Every column's index: what a full image holds.
    all: Vec<usize>,
}

/// The table maps of the stream and how their columns decode, by table id.
/// The source writes a table's map again before every transaction's rows
/// events, nearly always the same: reading types, metadata and signedness
/// out of it for every event (the metadata walk is quadratic in the
/// columns) cost the catch-up reader about a tenth of its CPU on one-row
/// events, and comparing the decoded map field by field with the one held
/// (a string comparison for each of its parts) another 3%. So each map is
/// told from the one held by its payload's bytes, one comparison, and
/// decoded again only when it differs (the table was altered, or the id was
/// reused). Every table map of the stream must pass through
/// [`Decoder::note_map`]: rows are decoded with the maps held here only.
#[derive(Default)]
pub struct Decoder {
    tables: FastMap<u64, TableDecoding>,
}

impl Decoder {
    /// Takes a table map event with payload `payload`; `parse` decodes it,
    /// called only when the payload differs from the map held for its id.
    pub fn note_map<'a>(
        &mut self,
        payload: &'a [u8],
        parse: impl FnOnce() -> io::Result<TableMapEvent<'a>>,
    ) -> io::Result<()> {
        // The id leads the payload (6 bytes since MySQL 5.1); the bytes
        // compared include it, so a guess that misses only costs a parse.
        let held = payload
            .get(..6)
            .map(|id| {
                let mut bytes = [0u8; 8];
                bytes[..6].copy_from_slice(id);
                u64::from_le_bytes(bytes)
            })
            .and_then(|id| self.tables.get(&id));
        if held.is_some_and(|held| *held.payload == *payload) {
            return Ok(());
        }
        let map = parse()?;
        let decoding = TableDecoding::new(payload, &map)?;
        self.tables.insert(map.table_id(), decoding);
        Ok(())
    }

    /// The table map held for `table_id`.
    pub fn table_map(&self, table_id: u64) -> Option<&TableMapEvent<'static>> {
        self.tables.get(&table_id).map(|decoding| &decoding.map)
    }

    /// The row changes of `rows`, whose table map was noted before.
    pub fn decode(&self, rows: &RowsEventData<'_>) -> io::Result<Vec<RowChange>> {
        let decoding = self.tables.get(&rows.table_id()).ok_or_else(|| {
            invalid(format!(
                "a rows event of table id {} before its table map",
                rows.table_id()
            ))
        })?;
        if matches!(rows, RowsEventData::PartialUpdateRowsEvent(_)) {
            return decode_with_mysql_common(rows, &decoding.map);
        }
        let columns = rows.num_columns() as usize;
        if columns > decoding.columns.len() {
            return Err(invalid(format!(
                "a rows event holds {columns} columns, its table map {}",
                decoding.columns.len()
            )));
        }
        // The columns each image holds, the same for every row of the event.
        let all = &decoding.all[..columns];
        let before_present = rows
            .columns_before_image()
            .map(|bits| present(bits.count_ones(), all, || bits.iter_ones().collect()));
        let after_present = rows
            .columns_after_image()
            .map(|bits| present(bits.count_ones(), all, || bits.iter_ones().collect()));
        let mut buf = ParseBuf(rows.rows_data());
        let mut changes = Vec::with_capacity(1);
        while !buf.is_empty() {
            let before = before_present
                .as_deref()
                .map(|present| image(&mut buf, present, &decoding.columns))
                .transpose()?;
            let after = after_present
                .as_deref()
                .map(|present| image(&mut buf, present, &decoding.columns))
                .transpose()?;
            changes.push(RowChange { before, after });
        }
        Ok(changes)
    }
}

impl TableDecoding {
    fn new(payload: &[u8], table: &TableMapEvent<'_>) -> io::Result<Self> {
        let columns = column_decodings(table, table.columns_count() as usize)?;
        Ok(Self {
            payload: payload.into(),
            map: table.clone().into_owned(),
            all: (0..columns.len()).collect(),
            columns,
        })
    }
}

/// Whether every image of the event holds every column, as with
/// binlog_row_image = FULL. MINIMAL and NOBLOB leave columns out, and a
/// session may set either for itself whatever the server's global setting:
/// so it is checked per event, not only when the task starts.
pub fn is_full(rows: &RowsEventData<'_>) -> bool {
    if matches!(rows, RowsEventData::PartialUpdateRowsEvent(_)) {
        // JSON diffs stand for their columns (MySQL 8's PARTIAL_JSON).
        return true;
    }
    let columns = rows.num_columns() as usize;
    let before = rows.columns_before_image();
    let after = rows.columns_after_image();
    before.is_none_or(|bits| bits.count_ones() == columns)
        && after.is_none_or(|bits| bits.count_ones() == columns)
}

/// The columns an image holds, given how many its bitmap sets: all of them
/// (nothing to collect), or those `collect` lists.
fn present(count: usize, all: &[usize], collect: impl FnOnce() -> Vec<usize>) -> Cow<'_, [usize]> {
    if count == all.len() {
        Cow::Borrowed(all)
    } else {
        Cow::Owned(collect())
    }
}

/// Partial JSON updates (MySQL 8), through mysql_common's rows.
fn decode_with_mysql_common(
    rows: &RowsEventData<'_>,
    table: &TableMapEvent<'_>,
) -> io::Result<Vec<RowChange>> {
    rows.rows(table)
        .map(|row| {
            let (before, after) = row?;
            Ok(RowChange {
                before: before.map(|r| r.unwrap()),
                after: after.map(|r| r.unwrap()),
            })
        })
        .collect()
}

/// Type, metadata and sign of each of the first `columns` columns, read
/// from the table map once per event (as mysql_common reads them per image).
fn column_decodings(table: &TableMapEvent<'_>, columns: usize) -> io::Result<Vec<ColumnDecoding>> {
    let extractor = OptionalMetaExtractor::new(table.iter_optional_meta())?;
    // The signedness list covers numeric columns only, in column order.
    let signedness: Vec<bool> = extractor.iter_signedness().collect();
    let mut signedness = signedness.into_iter();
    (0..columns)
        .map(|index| {
            let column_type = match table.get_column_type(index) {
                Ok(Some(column_type)) => column_type,
                Ok(None) => return Err(invalid(format!("no type for column {index}"))),
                Err(e) => return Err(invalid(format!("column {index}: {e}"))),
            };
            let unsigned = column_type.is_numeric_type() && signedness.next().unwrap_or_default();
            Ok(ColumnDecoding {
                column_type,
                meta: table.get_column_metadata(index).unwrap_or(&[]).into(),
                unsigned,
            })
        })
        .collect()
}

/// One image: a null bitmap over the columns present (their indexes,
/// ascending), then the value of each present column that is not null.
fn image<'a>(
    buf: &mut ParseBuf<'a>,
    present: &[usize],
    decodings: &'a [ColumnDecoding],
) -> io::Result<Vec<BinlogValue<'static>>> {
    let nulls: &[u8] = buf.parse(present.len().div_ceil(8))?;
    let mut values = Vec::with_capacity(present.len());
    for (image_index, &column) in present.iter().enumerate() {
        let decoding = decodings
            .get(column)
            .ok_or_else(|| invalid(format!("an image holds column {column}, beyond the table")))?;
        let null = nulls[image_index / 8] & (1 << (image_index % 8)) != 0;
        if null {
            values.push(BinlogValue::Value(mysql_async::Value::NULL));
            continue;
        }
        let context = (
            decoding.column_type,
            &decoding.meta[..],
            decoding.unsigned,
            false,
        );
        values.push(buf.parse::<BinlogValue<'_>>(context)?.into_owned());
    }
    Ok(values)
}

fn invalid(detail: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, detail)
}

#[cfg(test)]
mod tests {
    use super::Decoder;
    use mysql_async::binlog::value::BinlogValue;
    use mysql_async::Value;
    use mysql_common::binlog::consts::BinlogVersion;
    use mysql_common::binlog::events::{FormatDescriptionEvent, RowsEventData, WriteRowsEvent};
    use mysql_common::binlog::BinlogCtx;
    use mysql_common::io::ParseBuf;

    const LONG: u8 = 3;
    const LONGLONG: u8 = 8;

    /// A table map of `d`.`t` under table id 7 with columns of `types`
    /// (none with metadata), as the server writes it.
    fn table_map_bytes(types: &[u8]) -> Vec<u8> {
        let mut bytes = vec![7, 0, 0, 0, 0, 0, 0, 0, 1, b'd', 0, 1, b't', 0];
        bytes.push(types.len() as u8);
        bytes.extend(types);
        bytes.push(0); // no column metadata
        bytes.push(0); // null bitmask: nothing nullable
        bytes
    }

    /// A write rows event of table id 7: `present` bits over `columns`,
    /// then the rows' images (null bitmap and values), already encoded.
    fn write_rows_bytes(columns: u8, present: u8, images: &[u8]) -> Vec<u8> {
        let mut bytes = vec![7, 0, 0, 0, 0, 0, 0, 0, 2, 0, columns, present];
        bytes.extend(images);
        bytes
    }

    fn decoded(
        decoder: &mut Decoder,
        map: &[u8],
        rows: &[u8],
    ) -> std::io::Result<Vec<Option<Vec<BinlogValue<'static>>>>> {
        let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
        let ctx = |size| BinlogCtx::new(size, &fde, 0);
        decoder.note_map(map, || ParseBuf(map).parse(ctx(map.len())))?;
        let event: WriteRowsEvent<'_> = ParseBuf(rows).parse(ctx(rows.len()))?;
        let event = RowsEventData::WriteRowsEvent(event);
        let changes = decoder.decode(&event)?;
        Ok(changes.into_iter().map(|change| change.after).collect())
    }

    fn ints(values: &[i64]) -> Option<Vec<BinlogValue<'static>>> {
        Some(
            values
                .iter()
                .map(|v| BinlogValue::Value(Value::Int(*v)))
                .collect(),
        )
    }

    #[test]
    fn a_table_map_changed_under_the_same_id_is_decoded_again() -> std::io::Result<()> {
        let mut decoder = Decoder::default();
        let mut images = vec![0];
        images.extend(1i32.to_le_bytes());
        images.extend(2i32.to_le_bytes());
        let rows = write_rows_bytes(2, 0b11, &images);
        let two_ints = table_map_bytes(&[LONG, LONG]);
        assert_eq!(
            decoded(&mut decoder, &two_ints, &rows)?,
            vec![ints(&[1, 2])]
        );
        // Again from the cache.
        assert_eq!(
            decoded(&mut decoder, &two_ints, &rows)?,
            vec![ints(&[1, 2])]
        );
        // The table was altered: its second column is now a BIGINT.
        let mut images = vec![0];
        images.extend(3i32.to_le_bytes());
        images.extend((1i64 << 40).to_le_bytes());
        let rows = write_rows_bytes(2, 0b11, &images);
        let altered = table_map_bytes(&[LONG, LONGLONG]);
        assert_eq!(
            decoded(&mut decoder, &altered, &rows)?,
            vec![ints(&[3, 1 << 40])]
        );
        Ok(())
    }

    #[test]
    fn rows_are_decoded_only_with_a_table_map_noted_before() -> std::io::Result<()> {
        let decoder = Decoder::default();
        let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
        let rows = write_rows_bytes(2, 0b11, &[0, 1, 0, 0, 0, 2, 0, 0, 0]);
        let event: WriteRowsEvent<'_> =
            ParseBuf(&rows).parse(BinlogCtx::new(rows.len(), &fde, 0))?;
        let err = decoder
            .decode(&RowsEventData::WriteRowsEvent(event))
            .expect_err("no map of table id 7 was noted");
        assert!(
            err.to_string().contains("table id 7 before its table map"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn a_table_map_noted_again_unchanged_is_not_decoded_again() -> std::io::Result<()> {
        let mut decoder = Decoder::default();
        let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
        let map = table_map_bytes(&[LONG, LONG]);
        let ctx = || BinlogCtx::new(map.len(), &fde, 0);
        decoder.note_map(&map, || ParseBuf(&map).parse(ctx()))?;
        let mut parsed = false;
        decoder.note_map(&map, || {
            parsed = true;
            ParseBuf(&map).parse(ctx())
        })?;
        assert!(!parsed, "the same payload was parsed again");
        Ok(())
    }

    #[test]
    fn an_image_without_every_column_reads_only_those_it_holds() -> std::io::Result<()> {
        let mut decoder = Decoder::default();
        let map = table_map_bytes(&[LONG, LONG]);
        // Two rows of the second column only (a MINIMAL image).
        let mut images = vec![0];
        images.extend(5i32.to_le_bytes());
        images.push(0);
        images.extend(6i32.to_le_bytes());
        let rows = write_rows_bytes(2, 0b10, &images);
        assert_eq!(
            decoded(&mut decoder, &map, &rows)?,
            vec![ints(&[5]), ints(&[6])]
        );
        Ok(())
    }
}
