//! Pod networks: the agent writes each network's CNI configuration in Multus's directory
//! from its ENINode alone, rewrites it only when it changes, removes it when the network or
//! the ENI goes, and never touches another file there. Debian's host-local plugin allocates
//! from the file as written (ipvlan needs a node VM: `node_vm::pod_network`).

use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::{attached, config, controller_writes, start_agent, wait_for_entry, with};
use crate::support::control_plane::wait_for;
use crate::support::netns::TestNetns;

const NODE: &str = "pod-network-node";
const NODEENI: &str = "pod-network";
const SUBNET: &str = "subnet-0000001a";
const MAC: &str = "02:00:00:00:0a:01";

fn entry(addresses: &[&str], network: Option<&str>) -> Value {
    let mut fields = json!({
        "interfaceName": "multus", "mtu": 9001, "subnetCIDR": "10.0.1.0/24",
        "ipv4Addresses": addresses, "ipvlanMode": "l2",
    });
    if let Some(network) = network {
        fields["podNetwork"] = json!(network);
    }
    with(attached(NODEENI, SUBNET, MAC, 1), &fields)
}

fn read(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).unwrap())
}

fn range(address: &str) -> Value {
    json!({"subnet": "10.0.1.0/24", "rangeStart": address, "rangeEnd": address, "gateway": "10.0.1.1"})
}

#[tokio::test]
async fn the_network_file_follows_the_eninode_and_host_local_allocates_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(NODE, dir.path());
    let conf_dir = config.cni_conf_dir.clone();
    std::fs::create_dir_all(&conf_dir).unwrap();
    let foreign = conf_dir.join("10-admin.conf");
    std::fs::write(
        &foreign,
        r#"{"cniVersion": "1.0.0", "name": "admin", "type": "macvlan"}"#,
    )
    .unwrap();
    // A file of an earlier run of the agent, for a network this node no longer has.
    let stale = conf_dir.join("multi-eni-gone.conf");
    std::fs::write(&stale, "{}").unwrap();
    let file = conf_dir.join("multi-eni-pods.conf");

    controller_writes(NODE, &[entry(&["10.0.1.10", "10.0.1.11"], Some("pods"))]).await;
    let ns = TestNetns::new();
    let _agent = start_agent(&ns, config).await;
    ns.add_link("eth1", MAC).await;

    let reported = wait_for_entry(NODEENI, NODE, SUBNET, "the network written", |e| {
        e.pod_network_written == Some(true)
    })
    .await;
    assert_eq!(reported.pod_network_message, None);
    assert_eq!(
        read(&file).unwrap(),
        json!({
            "cniVersion": "1.0.0", "name": "pods", "type": "ipvlan", "master": "multus",
            "mode": "l2", "mtu": 9001,
            "ipam": {"type": "host-local", "ranges": [[range("10.0.1.10"), range("10.0.1.11")]]},
        })
    );
    assert!(!stale.exists(), "the agent's stale file is removed");
    host_local_allocates(&file, dir.path(), &["10.0.1.10", "10.0.1.11"]);

    // Nothing the network depends on changes: the file is not rewritten.
    let inode = std::fs::metadata(&file).unwrap().ino();
    ns.set_mtu("multus", 1500).await;
    wait_for("the MTU repaired", || ns.is_configured("multus", 9001)).await;
    // Another ENI, without a network: a full pass, which compares the file with what it wants.
    let other = attached(NODEENI, "subnet-0000001b", "02:00:00:00:0a:02", 2);
    controller_writes(
        NODE,
        &[entry(&["10.0.1.10", "10.0.1.11"], Some("pods")), other],
    )
    .await;
    wait_for_entry(
        NODEENI,
        NODE,
        "subnet-0000001b",
        "the other ENI reported",
        |e| e.configured == Some(false),
    )
    .await;
    assert_eq!(
        std::fs::metadata(&file).unwrap().ino(),
        inode,
        "rewritten without a change"
    );

    // An address more: the file is replaced (a new inode: written aside and renamed).
    controller_writes(
        NODE,
        &[entry(
            &["10.0.1.10", "10.0.1.11", "10.0.1.12"],
            Some("pods"),
        )],
    )
    .await;
    wait_for("the third address in the file", || async {
        read(&file).is_some_and(|config| config["ipam"]["ranges"][0].as_array().unwrap().len() == 3)
    })
    .await;
    assert_ne!(std::fs::metadata(&file).unwrap().ino(), inode);

    // The network goes (the spec entry has none): the file goes, the report too.
    controller_writes(NODE, &[entry(&["10.0.1.10"], None)]).await;
    wait_for("the file removed", || async { !file.exists() }).await;
    wait_for_entry(NODEENI, NODE, SUBNET, "no network report", |e| {
        e.pod_network_written.is_none() && e.configured == Some(true)
    })
    .await;

    // Back, then the ENI goes (detaching): removed again.
    controller_writes(NODE, &[entry(&["10.0.1.10"], Some("pods"))]).await;
    wait_for("the file written again", || async { file.exists() }).await;
    let mut detaching = entry(&["10.0.1.10"], Some("pods"));
    detaching["state"] = json!("Detaching");
    controller_writes(NODE, &[detaching]).await;
    wait_for("the file removed with the ENI", || async { !file.exists() }).await;

    let mut names: Vec<_> = std::fs::read_dir(&conf_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["10-admin.conf"], "only the foreign file is left");
}

/// Runs Debian's host-local plugin on the file (its state under `dir`, not the host's) once
/// per address and once more: each address once, then none left.
fn host_local_allocates(file: &Path, dir: &Path, addresses: &[&str]) {
    let mut config = read(file).unwrap();
    config["ipam"]["dataDir"] = json!(dir.join("host-local").to_str().unwrap());
    let mut allocated = Vec::new();
    for container in 0..=addresses.len() {
        let mut child = Command::new("/usr/lib/cni/host-local")
            .env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", format!("pod-{container}"))
            .env("CNI_NETNS", "/proc/self/ns/net")
            .env("CNI_IFNAME", "net1")
            .env("CNI_PATH", "/usr/lib/cni")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("Debian's containernetworking-plugins (just vm-deps)");
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(config.to_string().as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        let result: Value = serde_json::from_slice(&output.stdout).unwrap();
        if container < addresses.len() {
            assert!(output.status.success(), "{result}");
            assert_eq!(result["cniVersion"], "1.0.0");
            assert_eq!(result["ips"][0]["gateway"], "10.0.1.1");
            let address = result["ips"][0]["address"].as_str().unwrap();
            allocated.push(address.to_string());
        } else {
            assert!(!output.status.success());
            let message = result["msg"].as_str().unwrap_or_default();
            assert!(message.contains("no IP addresses available"), "{result}");
        }
    }
    allocated.sort();
    let expected: Vec<String> = addresses.iter().map(|a| format!("{a}/24")).collect();
    assert_eq!(allocated, expected);
}

#[tokio::test]
async fn a_node_without_an_eninode_loses_the_agents_files_of_an_earlier_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = config("pod-network-bare-node", dir.path());
    let conf_dir = config.cni_conf_dir.clone();
    std::fs::create_dir_all(&conf_dir).unwrap();
    let (stale, foreign) = (
        conf_dir.join("multi-eni-old.conf"),
        conf_dir.join("old.conf"),
    );
    std::fs::write(&stale, "{}").unwrap();
    std::fs::write(&foreign, "{}").unwrap();
    let ns = TestNetns::new();
    let _agent = start_agent(&ns, config).await;
    wait_for("the stale file removed", || async { !stale.exists() }).await;
    assert!(foreign.exists());
}
