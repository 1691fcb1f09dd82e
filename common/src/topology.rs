//! Two-way sync: one task file makes a pair of tasks, the forward one as
//! written and its reverse, which carries the destination's changes back.
//! Loops are prevented by the loop marker every dts transaction writes (see
//! the worker's `transform::loop_marker`); DDL, which carries no marker,
//! flows along the forward task only.

use crate::spec::{
    Endpoint, ObjectSelector, SpecError, SyncMode, TableOptions, TableSelector, TaskSpec, Topology,
    TriggerMethod,
};

/// The spec of the reverse task of two-way `forward` (validated): source and
/// destination swapped, the objects mapped back, incremental sync only (the
/// forward task copies the schema and the rows), no accounts, no triggers
/// (schema sync is the forward task's).
pub fn reverse(forward: &TaskSpec, forward_id: &str) -> TaskSpec {
    let objects = forward
        .objects
        .iter()
        .map(|object| ObjectSelector {
            database: object.to.clone().unwrap_or_else(|| object.database.clone()),
            to: object.to.as_ref().map(|_| object.database.clone()),
            tables: object
                .tables
                .iter()
                .map(|table| match table {
                    TableSelector::Name(name) => TableSelector::Name(name.clone()),
                    TableSelector::Detailed(options) => match &options.to {
                        Some(to) => TableSelector::Detailed(TableOptions {
                            name: to.clone(),
                            to: Some(options.name.clone()),
                            ..TableOptions::default()
                        }),
                        None => TableSelector::Name(options.name.clone()),
                    },
                })
                .collect(),
        })
        .collect();
    TaskSpec {
        name: Some(format!(
            "{} (reverse)",
            forward.name.as_deref().unwrap_or("two-way")
        )),
        modes: vec![SyncMode::Incremental],
        source: forward.destination.clone(),
        destination: forward.source.clone(),
        objects,
        accounts: None,
        triggers: TriggerMethod::Skip,
        reverse_of: Some(forward_id.to_string()),
        // The forward task compares the pair's tables; both sides are the
        // same rows.
        verify: crate::spec::VerifyMode::Off,
        ..forward.clone()
    }
}

/// Whether one-way task `new` reads what one-way task `existing` writes
/// and writes where it reads, over a database they share: each would apply
/// the other's DDL again (a statement carries no loop marker), so the two
/// must be one two-way pair. Returns that database (as `new` reads it).
pub fn opposite(new: &TaskSpec, existing: &TaskSpec) -> Option<String> {
    let one_way = |spec: &TaskSpec| spec.topology == Topology::OneWay && spec.reverse_of.is_none();
    let same =
        |a: &Endpoint, b: &Endpoint| a.host.eq_ignore_ascii_case(&b.host) && a.port == b.port;
    if !one_way(new) || !one_way(existing) {
        return None;
    }
    if !same(&new.source, &existing.destination) || !same(&new.destination, &existing.source) {
        return None;
    }
    let written: std::collections::BTreeSet<&str> = existing
        .objects
        .iter()
        .map(|o| o.to.as_deref().unwrap_or(&o.database))
        .collect();
    let read_back = |o: &ObjectSelector| {
        written.contains(o.database.as_str())
            && existing
                .objects
                .iter()
                .any(|e| o.to.as_deref().unwrap_or(&o.database) == e.database)
    };
    new.objects
        .iter()
        .find(|o| read_back(o))
        .map(|o| o.database.clone())
}

/// What a two-way task file may say: a mapping that reads back exactly
/// (databases and tables renamed, nothing filtered, narrowed or merged), and
/// incremental sync. Called for `topology = "two_way"`.
pub fn validate_two_way(spec: &TaskSpec) -> Result<(), SpecError> {
    if !spec.has_mode(SyncMode::Incremental) {
        return Err(SpecError::new(
            "modes",
            "a two-way pair syncs changes both ways: include \"incremental\"",
        ));
    }
    if !spec.routes.is_empty() {
        return Err(SpecError::new(
            "routes",
            "a two-way pair needs a mapping that reads back one to one; [[routes]] rules may \
             merge tables: select with [[objects]]",
        ));
    }
    if spec.name_case != crate::spec::NameCase::Keep {
        return Err(SpecError::new(
            "name_case",
            "a two-way pair needs names that map back: leave name_case at \"keep\"",
        ));
    }
    for (i, object) in spec.objects.iter().enumerate() {
        for (j, table) in object.tables.iter().enumerate() {
            let TableSelector::Detailed(options) = table else {
                continue;
            };
            let narrowing = [
                ("dml", options.dml.is_some()),
                ("columns", options.columns.is_some()),
                ("exclude_columns", options.exclude_columns.is_some()),
                ("rename_columns", options.rename_columns.is_some()),
                ("ddl", options.ddl.is_some()),
                ("where", options.filter.is_some()),
            ];
            if let Some((key, _)) = narrowing.iter().find(|(_, set)| *set) {
                return Err(SpecError::new(
                    format!("objects[{i}].tables[{j}].{key}"),
                    "a two-way pair syncs whole rows of whole tables both ways; only `to` \
                     may rename a table",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        name = "eu-us"
        topology = "two_way"
        modes = ["schema", "full", "incremental"]
        accounts = ["app@%"]
        [source]
        host = "10.0.0.1"
        user = "dts"
        password = "a"
        [destination]
        host = "10.0.0.2"
        port = 3307
        user = "dts"
        password = "b"
    "#;

    #[test]
    fn the_reverse_reads_the_destination_back_into_the_source() -> Result<(), SpecError> {
        let forward = TaskSpec::from_toml(&format!(
            "{BASE}\n[[objects]]\ndatabase = \"shop\"\nto = \"shop_eu\"\ntables = [\"a\", {{ name = \"b\", to = \"b2\" }}]\n\
             [[objects]]\ndatabase = \"crm\""
        ))?;
        let reverse = reverse(&forward, "f-1");
        assert_eq!(reverse.source, forward.destination);
        assert_eq!(reverse.destination, forward.source);
        assert_eq!(reverse.modes, vec![SyncMode::Incremental]);
        assert_eq!(reverse.reverse_of.as_deref(), Some("f-1"));
        assert_eq!(reverse.accounts, None);
        assert_eq!(reverse.name.as_deref(), Some("eu-us (reverse)"));
        assert_eq!(reverse.objects[0].database, "shop_eu");
        assert_eq!(reverse.objects[0].to.as_deref(), Some("shop"));
        assert_eq!(
            reverse.objects[0].tables,
            vec![
                TableSelector::Name("a".into()),
                TableSelector::Detailed(TableOptions {
                    name: "b2".into(),
                    to: Some("b".into()),
                    ..TableOptions::default()
                })
            ]
        );
        assert_eq!(reverse.objects[1].database, "crm");
        assert_eq!(reverse.objects[1].to, None);
        reverse.validate()
    }

    #[test]
    fn two_one_way_tasks_in_opposite_directions_over_one_database_are_told() -> Result<(), SpecError>
    {
        let one_way = |source: &str, destination: &str, objects: &str| {
            TaskSpec::from_toml(&format!(
                "[source]\nhost = \"{source}\"\nuser = \"u\"\n[destination]\nhost = \"{destination}\"\nuser = \"u\"\n{objects}"
            ))
        };
        let a_to_b = one_way(
            "a",
            "b",
            "[[objects]]\ndatabase = \"shop\"\nto = \"shop_b\"",
        )?;
        let b_to_a = one_way(
            "B",
            "a",
            "[[objects]]\ndatabase = \"shop_b\"\nto = \"shop\"",
        )?;
        assert_eq!(opposite(&b_to_a, &a_to_b), Some("shop_b".to_string()));
        // Another database back, or another server: no cycle.
        let other = one_way("b", "a", "[[objects]]\ndatabase = \"crm\"")?;
        assert_eq!(opposite(&other, &a_to_b), None);
        let elsewhere = one_way(
            "b",
            "c",
            "[[objects]]\ndatabase = \"shop_b\"\nto = \"shop\"",
        )?;
        assert_eq!(opposite(&elsewhere, &a_to_b), None);
        Ok(())
    }

    #[test]
    fn what_cannot_read_back_is_refused_with_its_field() {
        for (objects, field) in [
            (
                "[[objects]]\ndatabase = \"shop\"\ntables = [{ name = \"a\", where = \"id > 1\" }]",
                "objects[0].tables[0].where",
            ),
            (
                "[[objects]]\ndatabase = \"shop\"\ntables = [\"x\", { name = \"a\", columns = [\"id\"] }]",
                "objects[0].tables[1].columns",
            ),
            (
                "[[routes]]\ndatabase = \"s*\"\nto_database = \"m\"",
                "routes",
            ),
        ] {
            let error = TaskSpec::from_toml(&format!("{BASE}\n{objects}")).err();
            assert_eq!(error.map(|e| e.field), Some(field.to_string()), "{objects}");
        }
        let one_way_modes = BASE.replace(
            "modes = [\"schema\", \"full\", \"incremental\"]",
            "modes = [\"schema\", \"full\"]",
        );
        let error = TaskSpec::from_toml(&format!(
            "{one_way_modes}\n[[objects]]\ndatabase = \"shop\""
        ))
        .err();
        assert_eq!(error.map(|e| e.field), Some("modes".to_string()));
    }
}
