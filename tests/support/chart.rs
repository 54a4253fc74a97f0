//! The Helm chart (chart/), rendered by the helm of `just testbins`.

use std::process::{Command, Output};

use serde::Deserialize as _;

use super::control_plane::testbins;
use super::repo_file;

/// `helm` with `args`, isolated from any helm configuration of the machine.
pub fn helm(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(testbins().join("helm"))
        .args(args)
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .output()
        .expect("run helm")
}

/// `--set` arguments for each of `values`.
pub fn sets<'a>(values: &[&'a str]) -> Vec<&'a str> {
    values.iter().flat_map(|value| ["--set", value]).collect()
}

/// The chart rendered as `release` in `namespace` with `values`: its YAML, or helm's error.
pub fn render(release: &str, namespace: &str, values: &[&str]) -> Result<String, String> {
    let chart = repo_file("chart");
    let mut args = vec!["template", release, chart.to_str().unwrap()];
    args.extend(["--namespace", namespace]);
    args.extend(sets(values));
    let output = helm(&args);
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// The node agent's ServiceAccount, RBAC and admission policy out of a rendered chart: the
/// objects of the `manager` component but its DaemonSet.
pub fn agent_rights(rendered: &str) -> String {
    let objects: Vec<String> = serde_yaml::Deserializer::from_str(rendered)
        .map(|document| serde_yaml::Value::deserialize(document).expect("rendered YAML"))
        .filter(|object| {
            object["metadata"]["labels"]["app.kubernetes.io/component"].as_str() == Some("manager")
                && object["kind"].as_str() != Some("DaemonSet")
        })
        .map(|object| serde_yaml::to_string(&object).expect("YAML"))
        .collect();
    assert!(
        objects.len() >= 5,
        "the agent's rights are missing: {objects:?}"
    );
    objects.join("---\n")
}
