//! The Helm chart (chart/) and manifests/multi-eni.yaml rendered from it: lint-clean, values
//! validated, in step with the checked-in manifests, accepted by a real API server, and each
//! ServiceAccount allowed what its component does and nothing more.

use std::collections::BTreeMap;
use std::process::{Command, Output};

use serde::Deserialize as _;

use crate::support::chart::{helm, render, sets};
use crate::support::control_plane::{self, testbins};
use crate::support::repo_file;

/// Every optional part of the chart turned on that a bare API server can take (the
/// ServiceMonitor needs prometheus-operator's CRD).
const ALL_FEATURES: &[&str] = &[
    "clusterName=test-cluster",
    "region=eu-west-1",
    "controller.serviceAccount.roleArn=arn:aws:iam::123456789012:role/multi-eni-controller",
    "manager.probes.enabled=true",
    "dpdk.enabled=true",
    "dpdk.sriovPlugin.restart=true",
];

/// Stdout of a command that must succeed.
fn succeeded(what: &str, output: &Output) -> String {
    assert!(
        output.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn chart_lints_clean_in_strict_mode() {
    let chart = repo_file("chart");
    let with_monitor = [ALL_FEATURES, &["controller.serviceMonitor.enabled=true"]].concat();
    for values in [&["clusterName=my-cluster"][..], &with_monitor] {
        let mut args = vec!["lint", "--strict", chart.to_str().unwrap()];
        args.extend(sets(values));
        let stdout = succeeded(&format!("helm lint with {values:?}"), &helm(&args));
        assert!(
            !stdout.contains("[WARNING]") && !stdout.contains("[ERROR]"),
            "helm lint with {values:?}:\n{stdout}"
        );
    }
}

#[test]
fn chart_renders_every_component() {
    let values = [ALL_FEATURES, &["controller.serviceMonitor.enabled=true"]].concat();
    let rendered = render("multi-eni", "kube-system", &values).unwrap();
    for expected in [
        "kind: Deployment",
        "kind: DaemonSet",
        "kind: ServiceMonitor",
        "kind: PodDisruptionBudget",
        "kind: ValidatingAdmissionPolicy",
        "kind: ValidatingAdmissionPolicyBinding",
        "eks.amazonaws.com/role-arn: \"arn:aws:iam::123456789012:role/multi-eni-controller\"",
        "value: \"test-cluster\"",
        "value: /host/sys",
        "add: [NET_ADMIN]",
    ] {
        assert!(rendered.contains(expected), "{expected:?} is not rendered");
    }
    let defaults = render("multi-eni", "kube-system", &["clusterName=my-cluster"]).unwrap();
    // The one hostPath by default: Multus's configuration directory, for the pod networks.
    assert_eq!(defaults.matches("hostPath:").count(), 1);
    assert!(defaults.contains("path: /etc/cni/multus/net.d\n"));
    for absent in ["ServiceMonitor", "/host/sys", "privileged", "pods"] {
        assert!(
            !defaults.contains(absent),
            "{absent:?} is rendered by default"
        );
    }
}

#[test]
fn rendering_without_a_cluster_name_fails_naming_it() {
    for values in [&[][..], &["clusterName="]] {
        let error = render("multi-eni", "kube-system", values).unwrap_err();
        assert!(error.contains("clusterName"), "{values:?}: {error}");
    }
}

#[test]
fn schema_rejects_bad_values_naming_them() {
    let cases = [
        (
            "controller.replicas=2,controller.leaderElect=false",
            "leaderElect",
        ),
        ("controller.replicas=0", "replicas"),
        ("controller.ec2Budget=1.5", "ec2Budget"),
        ("controller.resyncPeriod=soon", "resyncPeriod"),
        ("controller.serviceAccount.roleArn=my-role", "roleArn"),
        ("region=Europe", "region"),
        ("logFormat=yaml", "logFormat"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("controler.replicas=1", "controler"),
        ("dpdk.sriovConfigPath=pcidp/config.json", "sriovConfigPath"),
        ("clusterName=my cluster", "clusterName"),
        ("manager.probes.bindAddress=", "bindAddress"),
        ("manager.probes.bindAddress=localhost", "bindAddress"),
    ];
    let mut failures = Vec::new();
    for (value, field) in cases {
        let values = [value, "clusterName=my-cluster"];
        let values = if field == "clusterName" {
            &values[..1]
        } else {
            &values[..]
        };
        match render("multi-eni", "kube-system", values) {
            Ok(_) => failures.push(format!("{value} was accepted")),
            Err(error) if error.contains(field) => {}
            Err(error) => failures.push(format!("{value}: {field} is not named in: {error}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The defaults `multi-eni <command> --help` shows, by environment variable.
fn binary_defaults(command: &str) -> BTreeMap<String, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_multi-eni"))
        .args([command, "--help"])
        .output()
        .unwrap();
    let help = succeeded(&format!("multi-eni {command} --help"), &output);
    let mut defaults = BTreeMap::new();
    let mut env = None;
    for line in help.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("[env: ") {
            env = rest.split('=').next().map(str::to_owned);
        } else if let Some(rest) = line.strip_prefix("[default: ")
            && let Some(name) = env.take()
        {
            defaults.insert(name, rest.trim_end_matches(']').to_owned());
        }
    }
    defaults
}

/// The environment variables with a literal value of the container of the `kind` workload.
fn rendered_env(rendered: &str, kind: &str) -> BTreeMap<String, String> {
    let workload = serde_yaml::Deserializer::from_str(rendered)
        .map(|document| serde_yaml::Value::deserialize(document).unwrap())
        .find(|object| object["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} rendered"));
    let env = workload["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()
        .unwrap();
    env.iter()
        .filter_map(|var| Some((var["name"].as_str()?.into(), var["value"].as_str()?.into())))
        .collect()
}

#[test]
fn chart_defaults_are_the_binarys() {
    let rendered = render("multi-eni", "kube-system", &["clusterName=my-cluster"]).unwrap();
    let mut differences = Vec::new();
    for (kind, command, at_least) in [("Deployment", "controller", 8), ("DaemonSet", "manager", 2)]
    {
        let defaults = binary_defaults(command);
        let mut compared = 0;
        for (name, value) in rendered_env(&rendered, kind) {
            let Some(default) = defaults.get(&name) else {
                continue;
            };
            compared += 1;
            if *default != value {
                differences.push(format!(
                    "{kind} sets {name}={value}, `multi-eni {command}` defaults to {default}"
                ));
            }
        }
        assert!(
            compared >= at_least,
            "{kind}: only {compared} defaults compared"
        );
    }
    assert!(
        differences.is_empty(),
        "chart/values.yaml should keep the binary's defaults:\n{}",
        differences.join("\n")
    );
}

#[test]
fn checked_in_manifests_are_the_chart_rendered_with_defaults() {
    let output = Command::new(repo_file("tests/tools/manifests.sh"))
        .env("MULTI_ENI_TESTBINS", testbins())
        .output()
        .unwrap();
    let rendered = succeeded("tests/tools/manifests.sh", &output);
    let checked_in =
        std::fs::read_to_string(repo_file("manifests/multi-eni.yaml")).unwrap_or_default();
    assert!(
        checked_in == rendered,
        "manifests/multi-eni.yaml differs from the chart rendered with its defaults; regenerate it with `just manifests`"
    );
}

/// `kubectl apply` of `yaml` with `args`, as the cluster admin.
fn kubectl_apply(yaml: &str, args: &[&str]) -> Output {
    control_plane::shared().kubectl_apply(yaml, args)
}

fn create_namespace(name: &str) {
    let output = control_plane::shared()
        .kubectl()
        .args(["create", "namespace", name])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() || stderr.contains("AlreadyExists"),
        "{stderr}"
    );
}

#[test]
fn rendered_manifests_pass_a_server_side_dry_run() {
    let checked_in = std::fs::read_to_string(repo_file("manifests/multi-eni.yaml")).unwrap();
    let applied = succeeded(
        "kubectl apply --dry-run=server of manifests/multi-eni.yaml",
        &kubectl_apply(&checked_in, &["--dry-run=server"]),
    );
    for object in [
        "deployment.apps/multi-eni-controller",
        "daemonset.apps/multi-eni-manager",
    ] {
        assert!(applied.contains(object), "{object} missing in:\n{applied}");
    }

    create_namespace("chart-dry-run");
    let everything = render("multi-eni", "chart-dry-run", ALL_FEATURES).unwrap();
    succeeded(
        "kubectl apply --dry-run=server of the chart with every feature",
        &kubectl_apply(&everything, &["--dry-run=server"]),
    );
}

const RBAC_NAMESPACE: &str = "chart-rbac";

/// Whether `service_account` of [`RBAC_NAMESPACE`] may make `request` (`kubectl auth can-i`).
fn may(service_account: &str, request: &str) -> bool {
    let user = format!("system:serviceaccount:{RBAC_NAMESPACE}:{service_account}");
    control_plane::shared().can_i(&user, request)
}

#[test]
fn service_accounts_may_do_what_their_component_does_and_nothing_more() {
    create_namespace(RBAC_NAMESPACE);
    let rendered = render("rbac-check", RBAC_NAMESPACE, ALL_FEATURES).unwrap();
    succeeded("kubectl apply of the chart", &kubectl_apply(&rendered, &[]));
    // Multus's CRD, so that kubectl knows the kind the controller's NetworkAttachmentDefinition
    // rules name.
    let multus = std::fs::read_to_string(repo_file(
        "tests/fixtures/crd/network-attachment-definition.yaml",
    ))
    .unwrap();
    succeeded(
        "kubectl apply of Multus's CRD",
        &kubectl_apply(&multus, &[]),
    );

    let nodeenis = "nodeenis.networking.k8s.aws";
    let eninodes = "eninodes.networking.k8s.aws";
    let lease = format!("leases.coordination.k8s.io/multi-eni-controller -n {RBAC_NAMESPACE}");
    let nads = "network-attachment-definitions.k8s.cni.cncf.io";
    let controller_may = [
        format!("list {nodeenis}"),
        format!("watch {nodeenis}"),
        format!("patch {nodeenis}"),
        format!("patch {nodeenis} --subresource=status"),
        format!("list {eninodes}"),
        format!("watch {eninodes}"),
        format!("create {eninodes}"),
        format!("patch {eninodes}"),
        format!("delete {eninodes}"),
        "list nodes".into(),
        "watch nodes".into(),
        format!("create leases.coordination.k8s.io -n {RBAC_NAMESPACE}"),
        format!("get {lease}"),
        format!("update {lease}"),
        "create events.events.k8s.io -n default".into(),
        "patch events.events.k8s.io -n default".into(),
        format!("list {nads} -A"),
        format!("get {nads} -n team-a"),
        format!("create {nads} -n team-a"),
        format!("delete {nads} -n team-a"),
    ];
    let controller_may_not = [
        format!("update {nads} -n team-a"),
        format!("patch {nads} -n team-a"),
        format!("get {nodeenis}"),
        format!("update {nodeenis}"),
        format!("delete {nodeenis}"),
        format!("create {nodeenis}"),
        format!("patch {eninodes} --subresource=status"),
        format!("update {eninodes}"),
        "patch nodes".into(),
        format!("update leases.coordination.k8s.io/another -n {RBAC_NAMESPACE}"),
        "update leases.coordination.k8s.io/multi-eni-controller -n kube-system".into(),
        "create events.events.k8s.io -n kube-system".into(),
        "create events -n default".into(),
        format!("list pods -n {RBAC_NAMESPACE}"),
        format!("create pods --subresource=exec -n {RBAC_NAMESPACE}"),
        format!("get secrets -n {RBAC_NAMESPACE}"),
        "list secrets -A".into(),
    ];
    let manager_may = [
        format!("get {eninodes}"),
        format!("list {eninodes}"),
        format!("watch {eninodes}"),
        format!("patch {eninodes} --subresource=status"),
        "deletecollection pods -n kube-system".into(),
    ];
    let manager_may_not = [
        format!("list {nodeenis}"),
        format!("watch {nodeenis}"),
        format!("patch {nodeenis} --subresource=status"),
        format!("patch {eninodes}"),
        format!("create {eninodes}"),
        format!("update {eninodes} --subresource=status"),
        format!("delete {eninodes}"),
        "list nodes".into(),
        "list pods -n kube-system".into(),
        "delete pods -n kube-system".into(),
        "deletecollection pods -n default".into(),
        "create pods --subresource=exec -n kube-system".into(),
        "get secrets -n kube-system".into(),
        format!("update {lease}"),
        format!("list {nads} -A"),
    ];
    let mut wrong = Vec::new();
    for (account, requests, allowed) in [
        ("rbac-check-multi-eni-controller", &controller_may[..], true),
        (
            "rbac-check-multi-eni-controller",
            &controller_may_not[..],
            false,
        ),
        ("rbac-check-multi-eni-manager", &manager_may[..], true),
        ("rbac-check-multi-eni-manager", &manager_may_not[..], false),
    ] {
        for request in requests {
            if may(account, request) != allowed {
                let verdict = if allowed { "may not" } else { "may" };
                wrong.push(format!("{account} {verdict}: {request}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
