//! `multi-eni manager --once [--dry-run]`, the real binary in a test's network namespace.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::json;

use super::{attached, controller_writes, entry, with};
use crate::support::control_plane;
use crate::support::netns::TestNetns;

fn manager_once(ns: &TestNetns, node: &str, dir: &Path, extra: &[&str]) -> Output {
    let plane = control_plane::shared();
    let binary = Path::new(env!("CARGO_BIN_EXE_multi-eni"));
    let mut command = ns.manager_command(binary, &plane.kubeconfig, node, dir);
    command.arg("--once").args(extra).output().unwrap()
}

#[tokio::test]
async fn once_prints_what_it_would_change_then_changes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (name, node) = ("once", "once-node");
    let settings = |name: &str| json!({"interfaceName": name, "mtu": 9001});
    controller_writes(
        node,
        &[
            with(
                attached(name, "subnet-0000000a", "02:00:00:00:0a:0a", 1),
                &settings("fast0"),
            ),
            with(
                attached(name, "subnet-0000000b", "02:00:00:00:0a:0b", 2),
                &settings("fast1"),
            ),
        ],
    )
    .await;
    let ns = TestNetns::new();
    ns.add_link("ens6", "02:00:00:00:0a:0a").await;

    let dry = manager_once(&ns, node, dir.path(), &["--dry-run"]);
    let table = String::from_utf8(dry.stdout).unwrap();
    println!("{table}");
    assert!(
        !dry.status.success(),
        "subnet b's interface is missing:\n{table}"
    );
    assert!(table.contains("WOULD CHANGE"), "{table}");
    assert!(
        table.contains("rename ens6 to fast0, MTU 1500 to 9001, set up"),
        "{table}"
    );
    assert!(
        table.contains("no interface with MAC 02:00:00:00:0a:0b"),
        "{table}"
    );
    let untouched = ns.link("ens6").await.expect("a dry run renames nothing");
    assert!(!untouched.up && untouched.mtu == 1500);
    assert!(
        entry(name, node, "subnet-0000000a").await.is_none(),
        "a dry run writes no status"
    );

    ns.add_link("ens7", "02:00:00:00:0a:0b").await;
    let run = manager_once(&ns, node, dir.path(), &[]);
    let table = String::from_utf8(run.stdout).unwrap();
    println!("{table}{}", String::from_utf8_lossy(&run.stderr));
    assert!(
        run.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        table.contains("CHANGED") && table.contains("fast1"),
        "{table}"
    );
    assert!(ns.is_configured("fast0", 9001).await && ns.is_configured("fast1", 9001).await);
    assert_eq!(
        entry(name, node, "subnet-0000000b")
            .await
            .unwrap()
            .configured,
        Some(true)
    );

    let again = manager_once(&ns, node, dir.path(), &["--dry-run"]);
    let table = String::from_utf8(again.stdout).unwrap();
    assert!(again.status.success(), "{table}");
    assert_eq!(table.matches("configured").count(), 2, "{table}");
}

#[test]
fn a_missing_node_name_says_how_to_set_it() {
    let output = Command::new(env!("CARGO_BIN_EXE_multi-eni"))
        .args(["manager", "--once"])
        .env_remove("NODE_NAME")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("--node-name") && stderr.contains("NODE_NAME"),
        "{stderr}"
    );
}
