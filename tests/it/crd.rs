//! The CRDs: generated output in sync with manifests/, applied over the NodeENI CRD of before
//! ENINode, and admission by a real kube-apiserver (schema bounds and CEL rules).

use std::process::Command;

use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use multi_eni::api::{AttachmentState, ENINode, NodeENI};
use serde_json::{Value, json};

use crate::support::control_plane::{self, ControlPlane, wait_for};
use crate::support::repo_file;

#[test]
fn checked_in_crd_is_what_the_binary_prints() {
    let output = Command::new(env!("CARGO_BIN_EXE_multi-eni"))
        .args(["crd", "print"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).unwrap();
    for copy in ["manifests/crd.yaml", "chart/crds/crds.yaml"] {
        let checked_in = std::fs::read_to_string(repo_file(copy)).unwrap_or_default();
        assert!(
            checked_in == printed,
            "{copy} differs from `multi-eni crd print`; regenerate it with `just crd`"
        );
    }
}

#[test]
fn checked_in_crd_applies_with_kubectl() {
    let plane = control_plane::shared();
    plane.apply(&repo_file("manifests/crd.yaml"));
    for kind in ["neni", "eninodes"] {
        let get = plane.kubectl().args(["get", kind]).output().unwrap();
        assert!(
            get.status.success(),
            "{}",
            String::from_utf8_lossy(&get.stderr)
        );
    }
}

#[tokio::test]
async fn the_crds_apply_over_the_nodeeni_crd_of_before_eninode() {
    let plane = ControlPlane::start().await;
    plane.apply(&repo_file("tests/fixtures/crd/nodeeni-before-eninode.yaml"));
    let client = plane.client().await;
    let api = dynamic_api(client.clone());
    wait_for("the old CRD to be served", || async {
        api.list(&ListParams::default()).await.is_ok()
    })
    .await;
    api.create(&PostParams::default(), &object("old", &base_spec()))
        .await
        .unwrap();
    // A status of the old shape, as the controller and a node's agent wrote it.
    let controller = json!({
        "nodeName": "n1", "subnetID": "subnet-0f59b4f14737be9ad", "instanceID": "i-0123456789abcdef0",
        "eniID": "eni-0123456789abcdef0", "macAddress": "02:00:00:00:00:01", "deviceIndex": 1,
        "networkCardIndex": 0, "state": "Attached", "lastTransitionTime": "2025-01-01T00:00:00Z",
    });
    let agent = json!({
        "nodeName": "n1", "subnetID": "subnet-0f59b4f14737be9ad", "interfaceName": "multus",
        "configured": true, "mtu": 9001, "interfaceMessage": "fine", "dpdkBound": false,
    });
    for (manager, entry) in [
        ("multi-eni-controller", controller),
        ("multi-eni-manager/n1", agent),
    ] {
        let patch = json!({"apiVersion": "networking.k8s.aws/v1alpha1", "kind": "NodeENI",
                           "status": {"attachments": [entry]}});
        let params = PatchParams::apply(manager).force();
        api.patch_status("old", &params, &Patch::Apply(patch))
            .await
            .unwrap();
    }

    plane.apply(&repo_file("manifests/crd.yaml"));
    let eninodes: Api<ENINode> = Api::all(client.clone());
    wait_for("the ENINode CRD to be served", || async {
        eninodes.list(&ListParams::default()).await.is_ok()
    })
    .await;
    let typed: Api<NodeENI> = Api::all(client);
    let read = typed.get("old").await.unwrap();
    let entry = &read.status.as_ref().unwrap().attachments[0];
    assert_eq!(
        (
            entry.node_name.as_str(),
            entry.eni_id.as_deref(),
            entry.state
        ),
        (
            "n1",
            Some("eni-0123456789abcdef0"),
            Some(AttachmentState::Attached)
        )
    );
    assert_eq!(
        (entry.interface_name.as_deref(), entry.configured),
        (Some("multus"), Some(true))
    );
    // The controller's first status of the new shape goes over it.
    let patch = json!({"apiVersion": "networking.k8s.aws/v1alpha1", "kind": "NodeENI",
                       "status": {"desiredNodes": 1, "attachedNodes": 1, "configuredNodes": 1}});
    let params = PatchParams::apply("multi-eni-controller").force();
    let written = typed
        .patch_status("old", &params, &Patch::Apply(patch))
        .await
        .unwrap();
    assert_eq!(written.status.unwrap().configured_nodes, 1);
    let get = plane
        .kubectl()
        .args(["get", "neni", "old"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&get.stdout);
    assert!(table.contains("CONFIGURED"), "{table}");
}

fn dynamic_api(client: kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("networking.k8s.aws", "v1alpha1", "NodeENI");
    Api::all_with(client, &ApiResource::from_gvk(&gvk))
}

/// Asserts that every field of `sent` is in `got` with the same value.
fn assert_contains(got: &Value, sent: &Value, path: &str) {
    match (got, sent) {
        (Value::Object(got), Value::Object(sent)) => {
            for (key, value) in sent {
                let got = got
                    .get(key)
                    .unwrap_or_else(|| panic!("{path}.{key} was dropped"));
                assert_contains(got, value, &format!("{path}.{key}"));
            }
        }
        _ => assert_eq!(got, sent, "{path} changed"),
    }
}

#[tokio::test]
async fn seed_manifests_are_accepted_and_read_back_unchanged() {
    let api = dynamic_api(control_plane::shared().client().await);
    let dir = repo_file("tests/fixtures/nodeeni");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let manifest: Value =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let object: DynamicObject = serde_json::from_value(manifest.clone()).unwrap();
        let created = api
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("{} was rejected: {e}", path.display()));
        let read = api
            .get(&created.metadata.name.clone().unwrap())
            .await
            .unwrap();
        let read = serde_json::to_value(&read).unwrap();
        assert_contains(&read["spec"], &manifest["spec"], "spec");
        // The Rust types read every seed, with the defaults the API server filled in.
        let typed: NodeENI = serde_json::from_value(read).unwrap();
        assert!((1..=31).contains(&typed.spec.device_index));
        seen += 1;
    }
    assert!(seen >= 5, "the seed manifests are missing");
}

#[tokio::test]
async fn defaults_are_applied_and_false_survives_a_round_trip() {
    let client = control_plane::shared().client().await;
    let api = dynamic_api(client.clone());
    let minimal = object("defaults", &base_spec());
    api.create(&PostParams::default(), &minimal).await.unwrap();
    let typed: Api<NodeENI> = Api::all(client);
    let read = typed.get("defaults").await.unwrap();
    assert_eq!(read.spec.device_index, 1);
    assert_eq!(read.spec.network_card_index, 0);
    assert!(read.spec.delete_on_termination);
    assert_eq!(read.spec.dpdk_driver, multi_eni::api::DpdkDriver::VfioPci);

    let mut spec = read.spec.clone();
    spec.delete_on_termination = false;
    let created = typed
        .create(&PostParams::default(), &NodeENI::new("keep", spec))
        .await
        .unwrap();
    assert!(!created.spec.delete_on_termination);
    assert!(!typed.get("keep").await.unwrap().spec.delete_on_termination);
}

fn base_spec() -> Value {
    json!({
        "nodeSelector": {"ng": "multi-eni"},
        "subnetID": "subnet-0f59b4f14737be9ad",
        "securityGroupIDs": ["sg-05da196f3314d4af8"],
    })
}

fn object(name: &str, spec: &Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.aws/v1alpha1",
        "kind": "NodeENI",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

/// The base spec with `changes` merged in; a null removes the field.
fn spec_with(changes: &Value) -> Value {
    let mut spec = base_spec();
    for (key, value) in changes.as_object().unwrap() {
        if value.is_null() {
            spec.as_object_mut().unwrap().remove(key);
        } else {
            spec[key] = value.clone();
        }
    }
    spec
}

#[tokio::test]
async fn invalid_specs_are_rejected_naming_the_field() {
    let api = dynamic_api(control_plane::shared().client().await);
    let long_description = "x".repeat(256);
    let many_groups: Vec<String> = (0..17).map(|i| format!("sg-{i:08x}")).collect();
    let cases = [
        (json!({"nodeSelector": {}}), "spec.nodeSelector"),
        (json!({"nodeSelector": null}), "spec.nodeSelector"),
        (
            json!({"subnetID": null}),
            "subnetIDs, subnetName or subnetNames",
        ),
        (
            json!({"subnetID": null, "subnetIDs": []}),
            "subnetIDs, subnetName or subnetNames",
        ),
        (
            json!({"securityGroupIDs": null}),
            "securityGroupIDs or securityGroupNames",
        ),
        (json!({"deviceIndex": 0}), "spec.deviceIndex"),
        (json!({"deviceIndex": 32}), "spec.deviceIndex"),
        (json!({"deviceIndex": "one"}), "spec.deviceIndex"),
        (json!({"networkCardIndex": 16}), "spec.networkCardIndex"),
        (json!({"mtu": 100}), "spec.mtu"),
        (json!({"mtu": 9217}), "spec.mtu"),
        (
            json!({"interfaceName": "much-too-long-name"}),
            "spec.interfaceName",
        ),
        (json!({"interfaceName": "eth 1"}), "spec.interfaceName"),
        (json!({"interfaceName": ".."}), "spec.interfaceName"),
        (json!({"tags": {"AWS:team": "x"}}), "spec.tags"),
        (json!({"tags": {"": "x"}}), "spec.tags"),
        (json!({"interfaceName": "all"}), "spec.interfaceName"),
        (json!({"interfaceName": "default"}), "spec.interfaceName"),
        (
            json!({"interfaceName": "fourteen-chars", "subnetIDs": ["subnet-0a1b2c3d"]}),
            "spec.interfaceName",
        ),
        (json!({"dpdkDriver": "ixgbe"}), "spec.dpdkDriver"),
        (
            json!({"dpdkResourceName": "sriov_dpdk"}),
            "spec.dpdkResourceName",
        ),
        (json!({"dpdkPCIAddress": "00:06"}), "spec.dpdkPCIAddress"),
        (json!({"subnetID": "subnet-xyz"}), "spec.subnetID"),
        (
            json!({"subnetIDs": ["subnet-0a1b2c3d", "sn-1"]}),
            "spec.subnetIDs",
        ),
        (
            json!({"securityGroupIDs": ["default"]}),
            "spec.securityGroupIDs",
        ),
        (
            json!({"securityGroupIDs": many_groups}),
            "spec.securityGroupIDs",
        ),
        (
            json!({"tags": {"aws:cloudformation:stack-name": "x"}}),
            "spec.tags",
        ),
        (json!({"description": long_description}), "spec.description"),
    ];
    assert!(cases.len() >= 15);
    assert_rejected(&api, "invalid", &cases).await;
}

/// Each spec (the base with the changes) is refused at admission, with its field named.
async fn assert_rejected(api: &Api<DynamicObject>, prefix: &str, cases: &[(Value, &str)]) {
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let mut failures = Vec::new();
    for (i, (changes, field)) in cases.iter().enumerate() {
        let object = object(&format!("{prefix}-{i}"), &spec_with(changes));
        match api.create(&dry_run, &object).await {
            Ok(_) => failures.push(format!("{changes} was accepted")),
            Err(kube::Error::Api(status))
                if status.code == 422 && status.message.contains(field) => {}
            Err(error) => failures.push(format!(
                "{changes}: expected {field:?} in the error, got {error}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn pod_address_rules_are_enforced_at_admission_naming_the_field() {
    let api = dynamic_api(control_plane::shared().client().await);
    let network = json!({"namespaces": ["default"]});
    let cases = [
        (
            json!({"secondaryPrivateIPAddressCount": 50}),
            "spec.secondaryPrivateIPAddressCount",
        ),
        (json!({"ipv4PrefixCount": -1}), "spec.ipv4PrefixCount"),
        (
            json!({"secondaryPrivateIPAddressCount": 2, "ipv4PrefixCount": 1}),
            "spec.ipv4PrefixCount",
        ),
        (json!({"podNetwork": network}), "spec.podNetwork"),
        (
            json!({"podNetwork": network, "ipv4PrefixCount": 1, "enableDPDK": true}),
            "spec.podNetwork",
        ),
        (
            json!({"podNetwork": {"namespaces": []}, "ipv4PrefixCount": 1}),
            "spec.podNetwork.namespaces",
        ),
        (
            json!({"podNetwork": {"namespaces": ["Default"]}, "ipv4PrefixCount": 1}),
            "spec.podNetwork.namespaces",
        ),
        (
            json!({"podNetwork": {}, "ipv4PrefixCount": 1}),
            "spec.podNetwork.namespaces",
        ),
        (
            json!({"podNetwork": {"name": "Pods_1", "namespaces": ["default"]}, "ipv4PrefixCount": 1}),
            "spec.podNetwork.name",
        ),
        (
            json!({"podNetwork": {"ipvlanMode": "vepa", "namespaces": ["default"]}, "ipv4PrefixCount": 1}),
            "spec.podNetwork.ipvlanMode",
        ),
    ];
    assert_rejected(&api, "pods-invalid", &cases).await;

    // Counts may be raised, never lowered (pods may hold the addresses).
    let name = "pods-counts";
    let created = spec_with(&json!({"secondaryPrivateIPAddressCount": 4, "podNetwork": network}));
    api.create(&PostParams::default(), &object(name, &created))
        .await
        .unwrap();
    let patch = |count: i32| {
        let spec =
            spec_with(&json!({"secondaryPrivateIPAddressCount": count, "podNetwork": network}));
        Patch::Merge(json!({"spec": spec}))
    };
    let lowered = api.patch(name, &PatchParams::default(), &patch(2)).await;
    match lowered {
        Err(kube::Error::Api(status)) => assert!(
            status.code == 422
                && status
                    .message
                    .contains("spec.secondaryPrivateIPAddressCount")
                && status.message.contains("cannot be lowered"),
            "{status:?}"
        ),
        other => panic!("lowering the count was not refused: {other:?}"),
    }
    api.patch(name, &PatchParams::default(), &patch(6))
        .await
        .expect("raising the count is allowed");
    api.delete(name, &kube::api::DeleteParams::default())
        .await
        .unwrap();
}
