//! Conflicts: a change that finds the destination other than the source
//! had it (an insert meeting a row with its key, an update or delete
//! finding no row, or a row that differs from the change's before-image).
//! They happen by design in a two-way pair written on both sides, and by
//! accident when something writes the destination behind a task's back.
//! A task file says how each is settled, for the task and per table.

use crate::route::{validate_identifier, Pattern};
use crate::spec::{SpecError, TaskSpec, Topology};
use serde::{Deserialize, Serialize};

/// Conflict records kept in the meta schema when the task file says nothing.
pub const DEFAULT_KEEP: u32 = 1000;
const MAX_KEEP: u32 = 100_000;

/// `[conflicts]` in a task file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConflictSettings {
    /// How a conflict is settled where no `tables` rule says otherwise.
    #[serde(default)]
    pub policy: ConflictPolicy,
    /// The column `keep_greater` / `keep_smaller` compare, as named on the
    /// destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Whether an update or delete is also a conflict when the destination
    /// row differs from the change's before-image (dts then reads the rows
    /// a batch touches before writing them). Default: on in a two-way pair,
    /// off otherwise (a missing or present key is still told by the
    /// statements' counts, at no cost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare_rows: Option<bool>,
    /// How many conflicts are recorded in the meta schema (the first ones);
    /// every one is counted. Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<u32>,
    /// Per-table policies; the first rule matching a table applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableConflictRule>,
}

impl ConflictSettings {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// The task fails, naming the table, the key and both rows.
    #[default]
    Fail,
    /// The destination row stays as it is.
    Ignore,
    /// The incoming change is applied over whatever is there.
    Overwrite,
    /// The row with the greater `column` value wins; ties go to the greater
    /// row, so both sides of a pair pick the same one.
    KeepGreater,
    /// As `keep_greater`, the smaller value winning.
    KeepSmaller,
}

impl ConflictPolicy {
    pub fn name(self) -> &'static str {
        match self {
            Self::Fail => "fail",
            Self::Ignore => "ignore",
            Self::Overwrite => "overwrite",
            Self::KeepGreater => "keep_greater",
            Self::KeepSmaller => "keep_smaller",
        }
    }

    fn compares_column(self) -> bool {
        matches!(self, Self::KeepGreater | Self::KeepSmaller)
    }
}

/// `[[conflicts.tables]]`: a policy for the tables a rule matches. Tables
/// are named as on the task file's source (the forward task's source in a
/// two-way pair, for both directions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConflictRule {
    /// A name, a wildcard pattern (`*`, `?`) or `~regex`.
    pub database: String,
    /// As `database`; default `*`.
    #[serde(default = "every_table")]
    pub table: String,
    pub policy: ConflictPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
}

fn every_table() -> String {
    "*".to_string()
}

/// A policy with what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub policy: ConflictPolicy,
    /// Set exactly for `keep_greater` / `keep_smaller`.
    pub column: Option<String>,
    /// Where the task file says it (`conflicts`, `conflicts.tables[2]`).
    pub field: String,
}

impl Policy {
    fn compile(
        field: &str,
        policy: ConflictPolicy,
        column: Option<&String>,
    ) -> Result<Self, SpecError> {
        match (policy.compares_column(), column) {
            (true, None) => Err(SpecError::new(
                format!("{field}column"),
                format!(
                    "policy \"{}\" needs the column it compares (e.g. an updated_at or version column)",
                    policy.name()
                ),
            )),
            (false, Some(_)) => Err(SpecError::new(
                format!("{field}column"),
                format!(
                    "only keep_greater and keep_smaller compare a column; policy \"{}\" takes none",
                    policy.name()
                ),
            )),
            (_, column) => {
                if let Some(column) = column {
                    validate_identifier(&format!("{field}column"), column)?;
                }
                Ok(Self {
                    policy,
                    column: column.cloned(),
                    field: field.trim_end_matches('.').to_string(),
                })
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Rule {
    database: Pattern,
    table: Pattern,
    policy: Policy,
}

/// The task's conflict settings, checked and ready to answer per table.
#[derive(Debug, Clone)]
pub struct ConflictRules {
    default: Policy,
    rules: Vec<Rule>,
    pub compare_rows: bool,
    pub keep: u32,
}

impl ConflictRules {
    pub fn compile(spec: &TaskSpec) -> Result<Self, SpecError> {
        let settings = &spec.conflicts;
        let default = Policy::compile("conflicts.", settings.policy, settings.column.as_ref())?;
        let mut rules = Vec::new();
        for (i, rule) in settings.tables.iter().enumerate() {
            let field = format!("conflicts.tables[{i}].");
            rules.push(Rule {
                database: Pattern::parse(&format!("{field}database"), &rule.database)?,
                table: Pattern::parse(&format!("{field}table"), &rule.table)?,
                policy: Policy::compile(&field, rule.policy, rule.column.as_ref())?,
            });
        }
        let keep = settings.keep.unwrap_or(DEFAULT_KEEP);
        if keep > MAX_KEEP {
            return Err(SpecError::new(
                "conflicts.keep",
                format!("must be at most {MAX_KEEP} (every conflict is counted regardless)"),
            ));
        }
        let two_way = spec.topology == Topology::TwoWay || spec.reverse_of.is_some();
        Ok(Self {
            default,
            rules,
            compare_rows: settings.compare_rows.unwrap_or(two_way),
            keep,
        })
    }

    /// The policy for a table, named as on the task file's source.
    pub fn policy(&self, db: &str, table: &str) -> &Policy {
        self.rules
            .iter()
            .find(|r| r.database.matches(db) && r.table.matches(table))
            .map_or(&self.default, |r| &r.policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> Result<TaskSpec, SpecError> {
        TaskSpec::from_toml(&format!(
            "[source]\nhost = \"a\"\nuser = \"u\"\n[destination]\nhost = \"b\"\nuser = \"u\"\n\
             [[objects]]\ndatabase = \"shop\"\n{extra}"
        ))
    }

    #[test]
    fn the_first_matching_rule_decides_and_the_task_policy_is_the_rest() -> Result<(), SpecError> {
        let spec = spec(
            "[conflicts]\npolicy = \"ignore\"\n\
             [[conflicts.tables]]\ndatabase = \"shop\"\ntable = \"orders\"\npolicy = \"keep_greater\"\ncolumn = \"updated_at\"\n\
             [[conflicts.tables]]\ndatabase = \"sh*\"\npolicy = \"overwrite\"",
        )?;
        let rules = ConflictRules::compile(&spec)?;
        let orders = rules.policy("shop", "orders");
        assert_eq!(orders.policy, ConflictPolicy::KeepGreater);
        assert_eq!(orders.column.as_deref(), Some("updated_at"));
        assert_eq!(
            rules.policy("shop", "items").policy,
            ConflictPolicy::Overwrite
        );
        assert_eq!(rules.policy("crm", "items").policy, ConflictPolicy::Ignore);
        assert!(!rules.compare_rows);
        assert_eq!(rules.keep, DEFAULT_KEEP);
        Ok(())
    }

    #[test]
    fn a_task_without_conflicts_fails_on_them() -> Result<(), SpecError> {
        let rules = ConflictRules::compile(&spec("")?)?;
        assert_eq!(rules.policy("shop", "t").policy, ConflictPolicy::Fail);
        Ok(())
    }

    #[test]
    fn policies_that_compare_need_a_column_and_others_refuse_one() {
        let field = |extra: &str| spec(extra).err().map(|e| e.field);
        assert_eq!(
            field("[conflicts]\npolicy = \"keep_smaller\""),
            Some("conflicts.column".into())
        );
        assert_eq!(
            field("[conflicts]\npolicy = \"ignore\"\ncolumn = \"v\""),
            Some("conflicts.column".into())
        );
        assert_eq!(
            field("[[conflicts.tables]]\ndatabase = \"~(\"\npolicy = \"ignore\""),
            Some("conflicts.tables[0].database".into())
        );
        assert_eq!(
            field("[[conflicts.tables]]\ndatabase = \"shop\"\npolicy = \"keep_greater\""),
            Some("conflicts.tables[0].column".into())
        );
        assert_eq!(
            field("[conflicts]\nkeep = 1000000"),
            Some("conflicts.keep".into())
        );
        assert!(field("[conflicts]\npolicy = \"last_one\"")
            .is_some_and(|f| f.starts_with("conflicts.policy")));
    }

    #[test]
    fn a_two_way_pair_compares_rows_unless_told_not_to() -> Result<(), SpecError> {
        let two_way = "topology = \"two_way\"\n";
        let pair = TaskSpec::from_toml(&format!(
            "{two_way}[source]\nhost = \"a\"\nuser = \"u\"\n[destination]\nhost = \"b\"\nuser = \"u\"\n\
             [[objects]]\ndatabase = \"shop\""
        ))?;
        assert!(ConflictRules::compile(&pair)?.compare_rows);
        let mut told = pair.clone();
        told.conflicts.compare_rows = Some(false);
        assert!(!ConflictRules::compile(&told)?.compare_rows);
        Ok(())
    }
}
