//! The tables of online schema change tools. gh-ost, pt-online-schema-change
//! and DMS-style tools alter a table without locking it by building an
//! altered copy under another name (the shadow: `_t_gho`, `_t_new`), keeping
//! it current, and swapping names with one RENAME at the cut-over; the
//! original is left under a third name (trash: `_t_del`, `_t_old`) beside the
//! tool's own bookkeeping tables (`_t_ghc`). Which names are whose is told by
//! patterns, each capturing the original table's name.

use crate::spec::{OnlineDdlTables, SpecError};
use regex::Regex;

/// The shadow tables of gh-ost, pt-online-schema-change (which adds
/// underscores while the name is taken) and DMS-style tools.
pub const DEFAULT_SHADOW: [&str; 3] = ["^_(.+)_gho$", "^_(.+)_new$", "^tp_[0-9]+_ogt_(.+)$"];

/// Their trash and bookkeeping tables: gh-ost's changelog, its cut-over
/// sentry and the old table (timestamped or not), pt-osc's old table, DMS's.
pub const DEFAULT_TRASH: [&str; 5] = [
    "^_(.+)_[0-9]{14}_del$",
    "^_(.+)_(?:ghc|del)$",
    "^_(.+)_old$",
    "^tp_[0-9]+_ogl_(.+)$",
    "^tp_[0-9]+_del_(.+)$",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelperKind {
    /// The altered copy that becomes the table at the cut-over.
    Shadow,
    /// The old table after the cut-over, or the tool's bookkeeping.
    Trash,
}

/// A table an online schema change tool made for table `origin` (same
/// database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    pub kind: HelperKind,
    pub origin: String,
}

/// The compiled patterns.
#[derive(Debug, Clone)]
pub struct ToolTables {
    shadow: Vec<Regex>,
    trash: Vec<Regex>,
}

impl ToolTables {
    /// The spec's patterns, or the defaults for what it leaves out.
    pub fn compile(tables: Option<&OnlineDdlTables>) -> Result<Self, SpecError> {
        let compile_list = |field: &str, given: Option<&Vec<String>>, default: &[&str]| {
            let texts: Vec<String> = match given {
                Some(given) => given.clone(),
                None => default.iter().map(|s| s.to_string()).collect(),
            };
            texts
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    let field = format!("online_ddl_tables.{field}[{i}]");
                    let regex = Regex::new(text).map_err(|e| {
                        SpecError::new(&field, format!("is not a regular expression: {e}"))
                    })?;
                    if regex.captures_len() < 2 {
                        return Err(SpecError::new(
                            field,
                            "needs a capture group for the original table's name, e.g. \
                             \"^_(.+)_gho$\"",
                        ));
                    }
                    Ok(regex)
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            shadow: compile_list(
                "shadow",
                tables.and_then(|t| t.shadow.as_ref()),
                &DEFAULT_SHADOW,
            )?,
            trash: compile_list(
                "trash",
                tables.and_then(|t| t.trash.as_ref()),
                &DEFAULT_TRASH,
            )?,
        })
    }

    /// Every reading of `name` as a tool's table, most specific pattern
    /// first; for each, the original's name and then the same with leading
    /// underscores taken off one by one (pt-osc's `__t_new` when `_t_new` was
    /// taken). Which one is meant, the caller knows: the one it selects.
    pub fn readings(&self, name: &str) -> Vec<Helper> {
        let mut readings = Vec::new();
        for (kind, patterns) in [
            (HelperKind::Shadow, &self.shadow),
            (HelperKind::Trash, &self.trash),
        ] {
            for pattern in patterns {
                let Some(origin) = pattern
                    .captures(name)
                    .and_then(|c| c.get(1))
                    .map(|m| m.as_str())
                else {
                    continue;
                };
                let mut origin = origin;
                loop {
                    if !origin.is_empty() && origin != name {
                        readings.push(Helper {
                            kind,
                            origin: origin.to_string(),
                        });
                    }
                    match origin.strip_prefix('_') {
                        Some(rest) => origin = rest,
                        None => break,
                    }
                }
            }
        }
        readings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(tables: &ToolTables, name: &str) -> Option<(HelperKind, String)> {
        tables
            .readings(name)
            .into_iter()
            .next()
            .map(|h| (h.kind, h.origin))
    }

    #[test]
    fn the_default_patterns_know_each_tools_tables() -> Result<(), SpecError> {
        let tables = ToolTables::compile(None)?;
        let shadow = |origin: &str| Some((HelperKind::Shadow, origin.to_string()));
        let trash = |origin: &str| Some((HelperKind::Trash, origin.to_string()));
        assert_eq!(first(&tables, "_orders_gho"), shadow("orders"));
        assert_eq!(first(&tables, "_orders_ghc"), trash("orders"));
        assert_eq!(first(&tables, "_orders_del"), trash("orders"));
        assert_eq!(
            first(&tables, "_orders_20261203140000_del"),
            trash("orders")
        );
        assert_eq!(first(&tables, "_orders_new"), shadow("orders"));
        assert_eq!(first(&tables, "_orders_old"), trash("orders"));
        assert_eq!(first(&tables, "tp_1234_ogt_orders"), shadow("orders"));
        assert_eq!(first(&tables, "tp_1234_ogl_orders"), trash("orders"));
        assert_eq!(first(&tables, "tp_1234_del_orders"), trash("orders"));
        assert_eq!(first(&tables, "orders"), None);
        assert_eq!(first(&tables, "orders_new"), None);
        // pt-osc's name when `_t_new` is taken: `_t` first, then `t`.
        let readings: Vec<String> = tables
            .readings("__t_new")
            .into_iter()
            .map(|h| h.origin)
            .collect();
        assert_eq!(readings, ["_t", "t"]);
        Ok(())
    }

    #[test]
    fn given_patterns_replace_the_defaults_and_need_a_capture() {
        let given = OnlineDdlTables {
            shadow: Some(vec!["^(.+)_shadow$".into()]),
            trash: None,
        };
        let tables = ToolTables::compile(Some(&given)).expect("valid patterns");
        assert_eq!(
            first(&tables, "t_shadow"),
            Some((HelperKind::Shadow, "t".into()))
        );
        assert_eq!(
            first(&tables, "_t_gho"),
            None,
            "the shadow defaults are replaced"
        );
        assert_eq!(
            first(&tables, "_t_del"),
            Some((HelperKind::Trash, "t".into())),
            "the trash defaults are kept"
        );
        let no_capture = OnlineDdlTables {
            shadow: None,
            trash: Some(vec!["^_.+_del$".into()]),
        };
        let error = ToolTables::compile(Some(&no_capture)).err();
        assert_eq!(
            error.map(|e| e.field),
            Some("online_ddl_tables.trash[0]".to_string())
        );
        let invalid = OnlineDdlTables {
            shadow: Some(vec!["^_(.+_gho$".into()]),
            trash: None,
        };
        let error = ToolTables::compile(Some(&invalid)).err();
        assert_eq!(
            error.map(|e| e.field),
            Some("online_ddl_tables.shadow[0]".to_string())
        );
    }
}
