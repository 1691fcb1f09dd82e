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
    assert_runs_tls(&coordinator, &worker);
    Ok(())
}

/// Every document of every manifest under deploy/k8s/.
fn manifests() -> anyhow::Result<Vec<serde_yaml_ng::Value>> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(repo().join("deploy/k8s"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no manifests under deploy/k8s");
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = serde_yaml_ng::Value::deserialize(doc)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            docs.push(value);
        }
    }
    Ok(docs)
}

fn find<'a>(
    docs: &'a [serde_yaml_ng::Value],
    kind: &str,
    name: &str,
) -> anyhow::Result<&'a serde_yaml_ng::Value> {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .ok_or_else(|| anyhow::anyhow!("deploy/k8s has no {kind} {name}"))
}

/// The words a container runs: command then args, shell strings split.
fn container_words(container: &serde_yaml_ng::Value) -> Vec<String> {
    let mut words = Vec::new();
    for key in ["command", "args"] {
        for item in container[key].as_sequence().into_iter().flatten() {
            words.extend(
                item.as_str()
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_string),
            );
        }
    }
    words
}

/// A ConfigMap entry written to a file, for the daemons' own file loaders.
fn config_entry(
    docs: &[serde_yaml_ng::Value],
    key: &str,
) -> anyhow::Result<tempfile::NamedTempFile> {
    let text = find(docs, "ConfigMap", "dts-config")?["data"][key]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("dts-config has no {key}"))?
        .to_string();
    let file = tempfile::Builder::new().suffix(".toml").tempfile()?;
    std::fs::write(file.path(), text)?;
    Ok(file)
}

#[test]
fn kubernetes_manifests_run_real_flags_and_configs_the_daemons_accept() -> anyhow::Result<()> {
    let docs = manifests()?;
    // Coordinators: a StatefulSet behind a headless service, with a volume per pod.
    let sts = find(&docs, "StatefulSet", "dts-coordinator")?;
    let service_name = sts["spec"]["serviceName"].as_str().unwrap_or_default();
    let service = find(&docs, "Service", service_name)?;
    assert_eq!(service["spec"]["clusterIP"].as_str(), Some("None"));
    assert!(sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"].is_string());
    let replicas = sts["spec"]["replicas"].as_u64().unwrap_or(0);
    assert!(
        replicas >= 3 && replicas % 2 == 1,
        "an odd Raft group of at least 3"
    );
    // Workers: a Deployment.
    let deployment = find(&docs, "Deployment", "dts-worker")?;

    for (workload, binary) in [(sts, "dts-coordinator"), (deployment, "dts-worker")] {
        let known = known_flags(binary)?;
        let containers = workload["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .cloned()
            .unwrap_or_default();
        anyhow::ensure!(!containers.is_empty(), "{binary}: no containers");
        for container in &containers {
            let words = container_words(container);
            assert!(
                words.iter().any(|w| w == binary),
                "{binary} is not run: {words:?}"
            );
            for flag in words.iter().filter(|w| w.starts_with("--")) {
                let name = flag.split('=').next().unwrap_or_default();
                assert!(
                    known.iter().any(|k| k == name),
                    "the {binary} manifest passes {name}, which {binary} does not accept"
                );
            }
        }
    }

    // The shared configs load through the daemons' own loaders, and the
    // initial members are exactly the StatefulSet's pods.
    let coordinator_toml = config_entry(&docs, "coordinator.toml")?;
    let coordinator =
        dts_coordinator::config::CoordinatorConfig::from_file(coordinator_toml.path())?;
    coordinator.validate()?;
    let expected: Vec<String> = (0..replicas)
        .map(|i| format!("dts-coordinator-{i}.{service_name}:7701"))
        .collect();
    let members: Vec<String> = coordinator.members()?.into_values().collect();
    assert_eq!(members, expected);
    let worker_toml = config_entry(&docs, "worker.toml")?;
    let worker = dts_worker::config::WorkerConfig::from_file(worker_toml.path())?;
    worker.validate()?;
    assert_eq!(worker.coordinators, expected);
    assert_runs_tls(&coordinator, &worker);
    Ok(())
}

#[test]
fn container_image_ships_the_workspace_binaries() -> anyhow::Result<()> {
    let dockerfile = std::fs::read_to_string(repo().join("deploy/container/Dockerfile"))?;
    let shipped: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY --from=build"))
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter_map(|path| path.rsplit('/').next())
        .collect();
    assert_eq!(shipped, ["dts-coordinator", "dts-worker", "dtsctl"]);
    for binary in shipped {
        dts_tests::process::binary(binary)?;
    }
    // The default command is a real flag of the coordinator.
    let known = known_flags("dts-coordinator")?;
    assert!(dockerfile.contains(r#"CMD ["dts-coordinator", "--config""#));
    assert!(known.iter().any(|k| k == "--config"));
    Ok(())
}

/// An example a user copies must not teach plaintext: each process names
/// its certificate, and the coordinators a key ring.
fn assert_runs_tls(
    coordinator: &dts_coordinator::config::CoordinatorConfig,
    worker: &dts_worker::config::WorkerConfig,
) {
    assert!(!coordinator.insecure && !worker.insecure);
    for files in [&coordinator.tls, &worker.tls] {
        assert!(
            files.ca.is_some() && files.cert.is_some() && files.key.is_some(),
            "{files:?}"
        );
    }
    assert!(coordinator.secrets_key.is_some());
}
