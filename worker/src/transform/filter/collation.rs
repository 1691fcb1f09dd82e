//! How a server compares text, read from the server itself.
//!
//! A collation dts evaluates is one weight per character: the server's own
//! `WEIGHT_STRING` of every character of the Basic Multilingual Plane, read
//! once, and one rule for the characters above it (all alike, as in the
//! `general_ci` collations, or by code point, as in the `_bin` ones).
//! Collations with expansions or contractions (`unicode_ci`, `german2`,
//! `uca1400`, ...) are refused by name: one weight per character would
//! answer some comparisons differently from the server.

use mysql_async::prelude::Queryable;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum CollationError {
    #[error(
        "collation {0} is not one dts evaluates filters under (binary, the _bin collations, \
         utf8mb4/utf8mb3 general_ci, latin1 swedish_ci/general_ci/general_cs, ascii general_ci \
         and their nopad forms); compare the column with COLLATE-free conditions dts supports, or \
         filter on another column"
    )]
    Unsupported(String),
    #[error("character set {0} is not one dts reads filters in (utf8mb4, utf8mb3, latin1, ascii, binary)")]
    UnsupportedCharset(String),
    #[error("reading collation {name} from the server: {detail}")]
    Server { name: String, detail: String },
}

/// How the bytes of a value are read as characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charset {
    Utf8,
    /// One byte per character: the code point of each byte value.
    SingleByte(Arc<[u32; 256]>),
    Binary,
}

impl Charset {
    /// Each character's code point (each byte's value for binary); no
    /// allocation, as it runs for every text compared in every row.
    pub fn units<'a>(&'a self, bytes: &'a [u8]) -> Units<'a> {
        match self {
            Self::Utf8 => Units::Utf8(Utf8Units { bytes }),
            Self::SingleByte(table) => Units::Table(table, bytes.iter()),
            Self::Binary => Units::Bytes(bytes.iter()),
        }
    }
}

pub enum Units<'a> {
    Utf8(Utf8Units<'a>),
    Table(&'a [u32; 256], std::slice::Iter<'a, u8>),
    Bytes(std::slice::Iter<'a, u8>),
}

impl Iterator for Units<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        match self {
            Self::Utf8(units) => units.next(),
            Self::Table(table, bytes) => bytes.next().map(|b| table[usize::from(*b)]),
            Self::Bytes(bytes) => bytes.next().map(|b| u32::from(*b)),
        }
    }
}

/// UTF-8 decoding that reads a broken sequence as U+FFFD, byte by byte.
pub struct Utf8Units<'a> {
    bytes: &'a [u8],
}

impl Iterator for Utf8Units<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let first = *self.bytes.first()?;
        if first < 0x80 {
            self.bytes = &self.bytes[1..];
            return Some(u32::from(first));
        }
        let width = match first {
            0x00..=0x7f => 1,
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => 0,
        };
        let decoded = (width > 0 && self.bytes.len() >= width)
            .then(|| std::str::from_utf8(&self.bytes[..width]).ok())
            .flatten()
            .and_then(|s| s.chars().next());
        match decoded {
            Some(c) => {
                self.bytes = &self.bytes[width..];
                Some(c as u32)
            }
            None => {
                self.bytes = &self.bytes[1..];
                Some(0xfffd)
            }
        }
    }
}

#[derive(Debug)]
pub struct Collation {
    pub name: String,
    rule: Rule,
    /// For a one-byte character set, the characters it has.
    repertoire: Option<std::collections::HashSet<u32>>,
}

#[derive(Debug)]
enum Rule {
    /// Bytes as they are, no padding.
    Binary,
    Weighted {
        /// The weight of each code point below 0x10000.
        bmp: Box<[u32]>,
        above_bmp: AboveBmp,
        /// Shorter text compares as if padded with spaces.
        pad_space: bool,
    },
}

#[derive(Debug, Clone, Copy)]
enum AboveBmp {
    Same(u32),
    CodePoint,
}

impl Collation {
    pub fn binary() -> Self {
        Self {
            name: "binary".into(),
            rule: Rule::Binary,
            repertoire: None,
        }
    }

    /// Whether text under this collation can hold the character.
    pub fn holds(&self, unit: u32) -> bool {
        self.repertoire.as_ref().is_none_or(|r| r.contains(&unit))
    }

    pub fn is_binary(&self) -> bool {
        matches!(self.rule, Rule::Binary)
    }

    fn weight(&self, unit: u32) -> u32 {
        match &self.rule {
            Rule::Binary => unit,
            Rule::Weighted { bmp, above_bmp, .. } => match bmp.get(unit as usize) {
                Some(w) => *w,
                None => match above_bmp {
                    AboveBmp::Same(w) => *w,
                    AboveBmp::CodePoint => unit,
                },
            },
        }
    }

    /// Compares two texts' characters (code points, or bytes under binary).
    pub fn compare(
        &self,
        a: impl Iterator<Item = u32>,
        b: impl Iterator<Item = u32>,
    ) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let pad = match &self.rule {
            Rule::Weighted {
                pad_space: true, ..
            } => Some(self.weight(u32::from(b' '))),
            _ => None,
        };
        let mut a = a.map(|u| self.weight(u));
        let mut b = b.map(|u| self.weight(u));
        loop {
            match (a.next(), b.next(), pad) {
                (None, None, _) => return Ordering::Equal,
                (Some(x), Some(y), _) => match x.cmp(&y) {
                    Ordering::Equal => {}
                    other => return other,
                },
                (Some(x), None, Some(space)) => {
                    return std::iter::once(x)
                        .chain(a)
                        .map(|w| w.cmp(&space))
                        .find(|o| o.is_ne())
                        .unwrap_or(Ordering::Equal)
                }
                (None, Some(y), Some(space)) => {
                    return std::iter::once(y)
                        .chain(b)
                        .map(|w| space.cmp(&w))
                        .find(|o| o.is_ne())
                        .unwrap_or(Ordering::Equal)
                }
                (Some(_), None, None) => return Ordering::Greater,
                (None, Some(_), None) => return Ordering::Less,
            }
        }
    }

    /// Whether two characters are the same one under this collation (LIKE
    /// compares character by character, without padding).
    pub fn same(&self, a: u32, b: u32) -> bool {
        self.weight(a) == self.weight(b)
    }
}

/// [`Collations`] one task's appliers share: they all read one destination.
pub type SharedCollations = Arc<tokio::sync::Mutex<Collations>>;

/// The collations and character sets read so far, by name.
#[derive(Default)]
pub struct Collations {
    collations: HashMap<String, Arc<Collation>>,
    charsets: HashMap<String, Arc<Charset>>,
    literal: Option<Arc<Collation>>,
    /// The server's `@@version`, the key into [`COMPILED`].
    version: Option<String>,
}

/// Collations as servers of one version compile them in, by (`@@version`,
/// name): reading one has the server weigh all 65,536 code points of the
/// Basic Multilingual Plane, and a worker's tasks (a restart, the precheck
/// and the catch-up after it, several tasks on one pair of servers) would
/// each repeat it.
static COMPILED: LazyLock<Mutex<ByVersionAndName>> = LazyLock::new(Default::default);

type ByVersionAndName = HashMap<(String, String), Arc<Collation>>;

fn compiled(version: &str, name: &str) -> Option<Arc<Collation>> {
    let known = COMPILED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    known.get(&(version.to_string(), name.to_string())).cloned()
}

fn remember(version: &str, name: &str, collation: Arc<Collation>) {
    let mut known = COMPILED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    known.insert((version.to_string(), name.to_string()), collation);
}

/// The collations dts evaluates: one weight per character.
fn supported(name: &str) -> bool {
    let charset = name.split('_').next().unwrap_or_default();
    if !matches!(charset, "utf8mb4" | "utf8mb3" | "utf8" | "latin1" | "ascii") {
        return false;
    }
    let rest = &name[charset.len()..];
    matches!(
        (charset, rest),
        (_, "_bin" | "_nopad_bin")
            | (
                "utf8mb4" | "utf8mb3" | "utf8",
                "_general_ci" | "_general_nopad_ci"
            )
            | (
                "latin1",
                "_swedish_ci"
                    | "_swedish_nopad_ci"
                    | "_general_ci"
                    | "_general_nopad_ci"
                    | "_general_cs"
            )
            | ("ascii", "_general_ci" | "_general_nopad_ci")
    )
}

/// `expression` of every number below 65536 (`cp`), without the Sequence
/// engine (MySQL has none): four digits of a 16-row table. One row of
/// `cp:value` pairs, not 65,536 rows: the client's cost is per row.
fn code_points_sql(expression: &str) -> String {
    let digits = hex_digits_sql();
    format!(
        "SELECT GROUP_CONCAT(cp, ':', IFNULL({expression}, '') SEPARATOR ',') \
         FROM (SELECT a.n * 4096 + b.n * 256 + c.n * 16 + d.n AS cp \
         FROM ({digits}) a, ({digits}) b, ({digits}) c, ({digits}) d) points"
    )
}

/// The numbers 0 to 15 as `n`, a table to count with.
fn hex_digits_sql() -> String {
    (0..16)
        .map(|n| format!("SELECT {n} AS n"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// Room for [`code_points_sql`]'s row: 65,536 pairs of at most 14 bytes.
const CODE_POINTS_ROW: u32 = 1 << 20;

/// The pairs of [`code_points_sql`]'s row, as read from `conn`.
async fn code_point_values(
    conn: &mut mysql_async::Conn,
    name: &str,
    expression: &str,
) -> Result<Vec<(u32, String)>, CollationError> {
    // Raising the limit only ever lets GROUP_CONCAT say more.
    conn.query_drop(format!(
        "SET SESSION group_concat_max_len = GREATEST(@@group_concat_max_len, {CODE_POINTS_ROW})"
    ))
    .await
    .map_err(|e| server(name, e))?;
    let row: Option<Option<String>> = conn
        .query_first(code_points_sql(expression))
        .await
        .map_err(|e| server(name, e))?;
    let row = row.flatten().unwrap_or_default();
    let malformed = |pair: &str| CollationError::Server {
        name: name.to_string(),
        detail: format!("unreadable code point value {pair:?}"),
    };
    let pairs = row
        .split(',')
        .map(|pair| {
            let (cp, value) = pair.split_once(':').ok_or_else(|| malformed(pair))?;
            let cp = cp.parse().map_err(|_| malformed(pair))?;
            Ok((cp, value.to_string()))
        })
        .collect::<Result<Vec<_>, CollationError>>()?;
    if pairs.len() != 0x10000 {
        return Err(CollationError::Server {
            name: name.to_string(),
            detail: format!("{} code points read, not 65536", pairs.len()),
        });
    }
    Ok(pairs)
}

impl Collations {
    /// The collation of a string literal in a filter (the server's default
    /// for utf8mb4, as the full copy's SELECT reads it).
    pub async fn literal(
        &mut self,
        conn: &mut mysql_async::Conn,
    ) -> Result<Arc<Collation>, CollationError> {
        if let Some(known) = &self.literal {
            return Ok(known.clone());
        }
        let name: Option<String> = conn
            .query_first("SELECT COLLATION(_utf8mb4'a')")
            .await
            .map_err(|e| server("utf8mb4's default", e))?;
        let name = name.unwrap_or_else(|| "utf8mb4_general_ci".into());
        let collation = self.collation(conn, &name).await?;
        self.literal = Some(collation.clone());
        Ok(collation)
    }

    /// The server's `@@version`, read once.
    async fn version(&mut self, conn: &mut mysql_async::Conn) -> Result<String, CollationError> {
        if let Some(known) = &self.version {
            return Ok(known.clone());
        }
        let version: Option<String> = conn
            .query_first("SELECT @@version")
            .await
            .map_err(|e| server("the server's version", e))?;
        let version = version.unwrap_or_default();
        self.version = Some(version.clone());
        Ok(version)
    }

    pub async fn collation(
        &mut self,
        conn: &mut mysql_async::Conn,
        name: &str,
    ) -> Result<Arc<Collation>, CollationError> {
        if let Some(known) = self.collations.get(name) {
            return Ok(known.clone());
        }
        let collation = if name == "binary" {
            Arc::new(Collation::binary())
        } else {
            let version = self.version(conn).await?;
            match compiled(&version, name) {
                Some(known) => known,
                None => {
                    let read = Arc::new(read_collation(conn, name).await?);
                    remember(&version, name, read.clone());
                    read
                }
            }
        };
        self.collations.insert(name.to_string(), collation.clone());
        Ok(collation)
    }

    pub async fn charset(
        &mut self,
        conn: &mut mysql_async::Conn,
        name: &str,
    ) -> Result<Arc<Charset>, CollationError> {
        if let Some(known) = self.charsets.get(name) {
            return Ok(known.clone());
        }
        let charset = Arc::new(match name {
            "utf8mb4" | "utf8mb3" | "utf8" => Charset::Utf8,
            "binary" => Charset::Binary,
            "latin1" | "ascii" => {
                Charset::SingleByte(Arc::new(single_byte_table(conn, name).await?))
            }
            other => return Err(CollationError::UnsupportedCharset(other.to_string())),
        });
        self.charsets.insert(name.to_string(), charset.clone());
        Ok(charset)
    }
}

/// The code point of each byte of a one-byte character set.
async fn single_byte_table(
    conn: &mut mysql_async::Conn,
    name: &str,
) -> Result<[u32; 256], CollationError> {
    let digits = hex_digits_sql();
    let sql = format!(
        "SELECT b, HEX(CONVERT(CHAR(b USING {name}) USING utf32)) FROM \
         (SELECT a.n * 16 + c.n AS b FROM ({digits}) a, ({digits}) c) bytes"
    );
    let rows: Vec<(u32, Option<String>)> = conn.query(sql).await.map_err(|e| server(name, e))?;
    let mut table = [0xfffd_u32; 256];
    for (b, cp) in rows {
        if let (Some(slot), Some(cp)) = (
            table.get_mut(b as usize),
            cp.and_then(|h| u32::from_str_radix(&h, 16).ok()),
        ) {
            *slot = cp;
        }
    }
    Ok(table)
}

async fn read_collation(
    conn: &mut mysql_async::Conn,
    name: &str,
) -> Result<Collation, CollationError> {
    if !supported(name) || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(CollationError::Unsupported(name.to_string()));
    }
    let charset = name.split('_').next().unwrap_or_default();
    let weight_of = |cp: &str| {
        format!(
            "HEX(WEIGHT_STRING(CONVERT(CHAR({cp} USING utf32) USING {charset}) COLLATE {name}))"
        )
    };
    let rows = code_point_values(conn, name, &weight_of("cp")).await?;
    let mut bmp = vec![0u32; 0x10000].into_boxed_slice();
    let mut widths = std::collections::BTreeSet::new();
    for (cp, weight) in rows {
        // Surrogates are no characters: no text holds them.
        if (0xd800..0xe000).contains(&cp) {
            continue;
        }
        widths.insert(weight.len());
        let value = u32::from_str_radix(&weight, 16).map_err(|_| CollationError::Server {
            name: name.to_string(),
            detail: format!("the weight of U+{cp:04X} is {weight:?}"),
        })?;
        if let Some(slot) = bmp.get_mut(cp as usize) {
            *slot = value;
        }
    }
    if widths.len() != 1 || widths.contains(&0) {
        return Err(CollationError::Unsupported(name.to_string()));
    }
    let above: (Option<String>, Option<String>) = conn
        .query_first(format!(
            "SELECT {}, {}",
            weight_of("128512"),
            weight_of("1114111")
        ))
        .await
        .map_err(|e| server(name, e))?
        .unwrap_or_default();
    let parse = |w: Option<String>| w.and_then(|w| u32::from_str_radix(&w, 16).ok());
    let above_bmp = match (parse(above.0), parse(above.1)) {
        (Some(a), Some(b)) if a == b => AboveBmp::Same(a),
        (Some(0x1f600), Some(0x10ffff)) => AboveBmp::CodePoint,
        _ => return Err(CollationError::Unsupported(name.to_string())),
    };
    let repertoire = match charset {
        "latin1" | "ascii" => Some(
            single_byte_table(conn, charset)
                .await?
                .into_iter()
                .collect(),
        ),
        _ => None,
    };
    Ok(Collation {
        name: name.to_string(),
        rule: Rule::Weighted {
            bmp,
            above_bmp,
            pad_space: !name.contains("nopad"),
        },
        repertoire,
    })
}

fn server(name: &str, e: mysql_async::Error) -> CollationError {
    CollationError::Server {
        name: name.to_string(),
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    fn ascii_ci(pad_space: bool) -> Collation {
        let bmp: Vec<u32> = (0..0x10000u32)
            .map(|c| match char::from_u32(c) {
                Some(ch) if ch.is_ascii_lowercase() => c - 32,
                _ => c,
            })
            .collect();
        Collation {
            name: "test_ci".into(),
            rule: Rule::Weighted {
                bmp: bmp.into_boxed_slice(),
                above_bmp: AboveBmp::Same(0xfffd),
                pad_space,
            },
            repertoire: None,
        }
    }

    fn cmp(c: &Collation, a: &str, b: &str) -> Ordering {
        c.compare(
            Charset::Utf8.units(a.as_bytes()),
            Charset::Utf8.units(b.as_bytes()),
        )
    }

    #[test]
    fn pad_space_compares_the_shorter_as_if_padded() {
        let pad = ascii_ci(true);
        assert_eq!(cmp(&pad, "a", "A  "), Ordering::Equal);
        // A tab sorts below the space the shorter one is padded with.
        assert_eq!(cmp(&pad, "a", "a\t"), Ordering::Greater);
        let nopad = ascii_ci(false);
        assert_eq!(cmp(&nopad, "a", "a "), Ordering::Less);
        assert_eq!(cmp(&pad, "\u{1F600}", "\u{1F601}"), Ordering::Equal);
        let binary = Collation::binary();
        assert_eq!(cmp(&binary, "a", "a "), Ordering::Less);
        assert_eq!(cmp(&binary, "a", "A"), Ordering::Greater);
    }

    #[test]
    fn broken_utf8_reads_as_replacement_characters() {
        let units: Vec<u32> = Charset::Utf8.units(b"a\xffb\xe2\x82").collect();
        assert_eq!(units, vec![0x61, 0xfffd, 0x62, 0xfffd, 0xfffd]);
    }

    #[test]
    fn only_one_weight_per_character_collations_are_taken() {
        for name in [
            "utf8mb4_general_ci",
            "utf8mb4_bin",
            "latin1_swedish_ci",
            "utf8mb3_general_nopad_ci",
        ] {
            assert!(supported(name), "{name}");
        }
        for name in [
            "utf8mb4_unicode_ci",
            "latin1_german2_ci",
            "utf8mb4_uca1400_ai_ci",
            "cp1251_bin",
            "binary",
        ] {
            assert!(!supported(name), "{name}");
        }
    }
}
