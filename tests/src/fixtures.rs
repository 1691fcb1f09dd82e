//! Task files the tests share.

/// A valid task file for control-plane tests: the databases it names are never
/// contacted by those tests, only its DU demand matters.
pub fn control_plane_task(name: &str, du: u32) -> String {
    format!(
        r#"
name = "{name}"
du = {du}
[source]
host = "127.0.0.1"
port = 3306
user = "dts"
[destination]
host = "127.0.0.1"
port = 3307
user = "dts"
[[objects]]
database = "shop"
"#
    )
}
