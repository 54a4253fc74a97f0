//! Pods in node VMs, as Multus makes them: a pod-like network namespace gets an ipvlan
//! interface on the node's ENI from Debian's CNI plugins ipvlan and host-local, run with a
//! configuration file (the one the node's agent wrote in Multus's directory for a
//! NetworkAttachmentDefinition without `spec.config`, or a hand-written one) on stdin.

use serde_json::Value;

use super::NodeVm;

/// Where the node agent writes the pod network `network` (its default --cni-conf-dir).
pub fn network_file(network: &str) -> String {
    format!("/etc/cni/multus/net.d/multi-eni-{network}.conf")
}

/// Creates the pod namespace `/run/netns/<pod>` on `vm` and runs the ipvlan CNI plugin for
/// it with `config` (an ipvlan configuration file in the VM, waited for), as Multus does:
/// ADD, interface `net1`, the file on stdin. Returns the pod's address (without its prefix
/// length).
pub async fn add_pod(vm: &NodeVm, pod: &str, config: &str) -> Result<String, String> {
    let script = format!(
        "for i in $(seq 100); do test -f {config} && break; sleep 0.1; done\n\
         touch /run/netns/{pod} && unshare --net=/run/netns/{pod} true\n\
         CNI_COMMAND=ADD CNI_CONTAINERID={pod} CNI_NETNS=/run/netns/{pod} \
         CNI_IFNAME=net1 CNI_PATH=/usr/lib/cni /usr/lib/cni/ipvlan < {config}"
    );
    let output = match vm.try_sh(&script).await {
        Ok((0, output)) => output,
        Ok((code, output)) => return Err(format!("the CNI plugin failed ({code}): {output}")),
        Err(error) => return Err(format!("{}: {error}", vm.name)),
    };
    let result: Value =
        serde_json::from_str(&output).map_err(|e| format!("{e}: the plugin said {output}"))?;
    let address = result["ips"][0]["address"].as_str().unwrap_or_default();
    match address.split_once('/') {
        Some((address, _)) => Ok(address.to_owned()),
        None => Err(format!("no address in the plugin's result: {output}")),
    }
}

/// `ping` from the pod namespace `pod` of `vm` to `address`: its output, and whether
/// replies came.
pub async fn ping(vm: &NodeVm, pod: &str, address: &str) -> (bool, String) {
    let script = format!("nsenter --net=/run/netns/{pod} ping -c 3 -W 2 {address}");
    match vm.try_sh(&script).await {
        Ok((code, output)) => (code == 0, output),
        Err(error) => (false, error.to_string()),
    }
}
