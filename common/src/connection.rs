//! Connection profiles: a named endpoint stored in the cluster, which task
//! files name instead of repeating host, user and password
//! (`source = { connection = "prod-eu" }`). The coordinators fill the
//! endpoint in when the task is created and keep it current with the
//! profile when they hand the task to its worker.

use crate::spec::{toml_error_to_spec_error, validate_endpoint, Endpoint, SpecError};
use crate::TaskSpec;

/// A profile as stored: its name and its endpoint (password sealed).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConnectionProfile {
    pub name: String,
    pub endpoint: Endpoint,
    pub updated_at_ms: i64,
}

/// Reads a profile file: `name` and the fields of an endpoint.
pub fn profile_from_toml(text: &str) -> Result<(String, Endpoint), SpecError> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| SpecError::new("(file)", e.message().to_string()))?;
    let name = match table.remove("name") {
        Some(toml::Value::String(name)) => name,
        Some(_) => return Err(SpecError::new("name", "must be a string")),
        None => return Err(SpecError::new("name", "is required")),
    };
    validate_name(&name)?;
    if table.contains_key("connection") {
        return Err(SpecError::new(
            "connection",
            "a profile cannot refer to another profile",
        ));
    }
    let rest = toml::to_string(&table).map_err(|e| SpecError::new("(file)", e.to_string()))?;
    let deserializer = toml::Deserializer::new(&rest);
    let endpoint: Endpoint = serde_path_to_error::deserialize(deserializer)
        .map_err(|e| toml_error_to_spec_error(&rest, e))?;
    validate_endpoint("", &endpoint).map_err(|e| {
        SpecError::new(
            e.field.trim_start_matches('.').to_string(),
            e.reason.clone(),
        )
    })?;
    Ok((name, endpoint))
}

pub fn validate_name(name: &str) -> Result<(), SpecError> {
    let fine = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if fine {
        Ok(())
    } else {
        Err(SpecError::new(
            "name",
            "must be 1 to 64 letters, digits, `-`, `_` or `.`",
        ))
    }
}

/// Whether the task file names a connection profile for either side.
pub fn uses_connections(text: &str) -> bool {
    let Ok(table) = text.parse::<toml::Table>() else {
        return false;
    };
    ["source", "destination"].iter().any(|side| {
        table
            .get(*side)
            .and_then(|e| e.as_table())
            .is_some_and(|e| e.contains_key("connection"))
    })
}

/// Parses a task file, filling each side that names a profile from
/// `lookup` (the profile's endpoint, or `None` when there is none).
pub fn spec_with_connections(
    text: &str,
    lookup: impl Fn(&str) -> Option<Endpoint>,
) -> Result<TaskSpec, SpecError> {
    if !uses_connections(text) {
        return TaskSpec::from_toml(text);
    }
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| SpecError::new("(file)", e.message().to_string()))?;
    for side in ["source", "destination"] {
        let Some(toml::Value::Table(endpoint)) = table.get_mut(side) else {
            continue;
        };
        let Some(name) = endpoint.get("connection") else {
            continue;
        };
        let field = format!("{side}.connection");
        let name = name
            .as_str()
            .ok_or_else(|| SpecError::new(field.clone(), "must be a string"))?
            .to_string();
        if let Some(other) = endpoint.keys().find(|k| *k != "connection") {
            return Err(SpecError::new(
                format!("{side}.{other}"),
                format!("comes from connection `{name}`: give the connection or the endpoint's fields, not both"),
            ));
        }
        let mut profile = lookup(&name).ok_or_else(|| {
            SpecError::new(
                field.clone(),
                format!("no connection profile `{name}` (dtsctl connection list)"),
            )
        })?;
        profile.connection = Some(name);
        *endpoint = toml::Table::try_from(&profile)
            .map_err(|e| SpecError::new(field.clone(), e.to_string()))?;
    }
    let text = toml::to_string(&table).map_err(|e| SpecError::new("(file)", e.to_string()))?;
    TaskSpec::from_toml(&text)
}

/// A stand-in endpoint, for checking a task file away from the cluster
/// (dtsctl before it sends the file): everything but the profile is checked.
pub fn placeholder(_name: &str) -> Option<Endpoint> {
    Some(Endpoint {
        host: "profile.invalid".to_string(),
        port: 3306,
        user: "profile".to_string(),
        password: String::new(),
        password_file: None,
        password_env: None,
        tls: Default::default(),
        connection: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK: &str = r#"
        source = { connection = "prod-eu" }
        [destination]
        host = "10.0.0.2"
        user = "dts"
        password_env = "DEST_PASSWORD"
        [[objects]]
        database = "app"
    "#;

    #[test]
    fn a_task_side_is_filled_from_its_profile() {
        let (name, endpoint) = profile_from_toml(
            "name = \"prod-eu\"\nhost = \"10.0.0.1\"\nport = 3307\nuser = \"dts\"\npassword = \"p\"\n",
        )
        .expect("profile");
        assert_eq!(name, "prod-eu");
        let spec = spec_with_connections(TASK, |n| (n == "prod-eu").then(|| endpoint.clone()))
            .expect("spec");
        assert_eq!(spec.source.host, "10.0.0.1");
        assert_eq!(spec.source.port, 3307);
        assert_eq!(spec.source.connection.as_deref(), Some("prod-eu"));
        assert_eq!(
            spec.destination.password_env.as_deref(),
            Some("DEST_PASSWORD")
        );
    }

    #[test]
    fn a_missing_profile_or_a_mixed_side_names_the_field() {
        let err = spec_with_connections(TASK, |_| None).expect_err("no profile");
        assert_eq!(err.field, "source.connection");
        let mixed = TASK.replace(
            "{ connection = \"prod-eu\" }",
            "{ connection = \"prod-eu\", host = \"x\" }",
        );
        let err = spec_with_connections(&mixed, placeholder).expect_err("mixed");
        assert_eq!(err.field, "source.host");
        let err = profile_from_toml("host = \"h\"\nuser = \"u\"").expect_err("no name");
        assert_eq!(err.field, "name");
        let err = profile_from_toml("name = \"a b\"\nhost = \"h\"\nuser = \"u\"").expect_err("bad");
        assert_eq!(err.field, "name");
        let err = profile_from_toml(
            "name = \"x\"\nhost = \"h\"\nuser = \"u\"\npassword = \"a\"\npassword_env = \"B\"",
        )
        .expect_err("two passwords");
        assert_eq!(err.field, "password");
    }
}
