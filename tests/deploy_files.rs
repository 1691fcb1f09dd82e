//! The files under deploy/ stay consistent with the binaries: example configs
//! parse into the daemons' typed configs (unknown keys are errors there), and
//! every flag a unit file passes is one the binary accepts.

use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Flags (`--name`) a binary documents in its --help.
fn known_flags(binary: &str) -> anyhow::Result<Vec<String>> {
    let out = std::process::Command::new(dts_tests::process::binary(binary)?)
        .arg("--help")
        .output()?;
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    Ok(help
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(|w| {
            w.trim_end_matches([',', '.', ']', ')'])
                .split('=')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect())
}

#[test]
fn unit_files_pass_only_flags_the_binaries_accept() -> anyhow::Result<()> {
    for (unit, binary) in [
        ("dts-coordinator.service", "dts-coordinator"),
        ("dts-worker.service", "dts-worker"),
    ] {
        let text = std::fs::read_to_string(repo().join("deploy/systemd").join(unit))?;
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .ok_or_else(|| anyhow::anyhow!("{unit} has no ExecStart"))?;
        let known = known_flags(binary)?;
        anyhow::ensure!(!known.is_empty(), "{binary} --help listed no flags");
        for flag in exec.split_whitespace().filter(|w| w.starts_with("--")) {
            let name = flag.split('=').next().unwrap_or_default();
            assert!(
                known.iter().any(|k| k == name),
                "{unit} passes {name}, which {binary} does not accept"
            );
        }
    }
    Ok(())
}

#[test]
fn example_configs_are_accepted_by_the_daemons() -> anyhow::Result<()> {
    // The daemons load their files through these same functions; unknown keys
    // are errors there (deny_unknown_fields).
    let coordinator = dts_coordinator::config::CoordinatorConfig::from_file(
        &repo().join("deploy/config/coordinator.toml"),
    )?;
    coordinator.validate()?;
    assert_eq!(coordinator.members()?.len(), 3);
    let worker =
        dts_worker::config::WorkerConfig::from_file(&repo().join("deploy/config/worker.toml"))?;
    worker.validate()?;
    assert_eq!(worker.du, 8);
    Ok(())
}
