//! The usability check: a pod-like network namespace in a node VM gets an ipvlan (L2)
//! interface on the node's configured ENI interface, made by the CNI plugins ipvlan and
//! host-local exactly as Multus runs them for the README's NetworkAttachmentDefinition
//! (host-local standing in for whereabouts), and pods on two nodes ping each other through
//! the VPC bridge.

use crate::support::vm::NodeVm;

/// The README's NetworkAttachmentDefinition config, each node's pod getting `address`.
fn network_config(master: &str, address: &str) -> String {
    format!(
        r#"{{"cniVersion": "0.4.0", "name": "multus-ipvlan", "type": "ipvlan", "master": "{master}",
"mode": "l2", "mtu": 9001, "ipam": {{"type": "host-local",
"ranges": [[{{"subnet": "10.99.0.0/24", "rangeStart": "{address}", "rangeEnd": "{address}"}}]]}}}}"#
    )
}

/// Creates the pod namespace `/run/netns/pod` on `vm` and runs the ipvlan plugin's ADD
/// for it (interface `net1`, `address`); the plugin's output.
pub async fn add_pod(vm: &NodeVm, master: &str, address: &str) -> Result<String, String> {
    let script = format!(
        "touch /run/netns/pod && unshare --net=/run/netns/pod true\n\
         echo '{}' | CNI_COMMAND=ADD CNI_CONTAINERID=pod-{} CNI_NETNS=/run/netns/pod \
         CNI_IFNAME=net1 CNI_PATH=/usr/lib/cni /usr/lib/cni/ipvlan",
        network_config(master, address),
        vm.name
    );
    match vm.try_sh(&script).await {
        Ok((0, output)) => Ok(output),
        Ok((code, output)) => Err(format!("the ipvlan plugin failed ({code}): {output}")),
        Err(error) => Err(format!("{}: {error}", vm.name)),
    }
}

/// `ping` from the pod namespace of `vm` to `address`: its output, and whether replies came.
pub async fn ping(vm: &NodeVm, address: &str) -> (bool, String) {
    let script = format!("nsenter --net=/run/netns/pod ping -c 3 -W 2 {address}");
    match vm.try_sh(&script).await {
        Ok((code, output)) => (code == 0, output),
        Err(error) => (false, error.to_string()),
    }
}
