//! Changes the kernel refuses: a name another link holds, an MTU above the device's maximum,
//! a link that cannot be set up. Each is reported, leaves the link up where it can be, and
//! is not tried again on the agent's own notifications: the link changes not once after the
//! first attempt. Changes are counted as the kernel's link notifications (RTM_NEWLINK).

use std::time::Duration;

use multi_eni::manager::links::LinkState;
use multi_eni::manager::netlink::{self, LinkEvent};
use serde_json::json;

use super::{attached, config, controller_writes, start_agent, wait_for_entry, with};
use crate::support::control_plane::wait_for;
use crate::support::netns::TestNetns;

/// How long a link is watched for changes once the agent has made its attempt.
const QUIET: Duration = Duration::from_secs(3);

/// The notifications about link `index` during `period`, as the states they report.
async fn changes_of(ns: &TestNetns, index: u32, period: Duration) -> Vec<LinkState> {
    let (_links, mut events) = netlink::open(Some(&ns.path())).expect("netlink");
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + period;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.next()).await {
        if let LinkEvent::Changed(link) | LinkEvent::Removed(link) = event
            && link.index == index
        {
            seen.push(link);
        }
    }
    seen
}

async fn assert_left_alone(ns: &TestNetns, index: u32, what: &str) {
    let changes = changes_of(ns, index, QUIET).await;
    assert!(
        changes.is_empty(),
        "{what}: {} changes of the link in {QUIET:?}, the first {:?}",
        changes.len(),
        changes.first()
    );
}

/// One ENI of node `node`, of a NodeENI with one subnet.
struct Entry {
    nodeeni: &'static str,
    node: &'static str,
    subnet: &'static str,
}

impl Entry {
    /// Writes the controller's entry, the ENI at `mac`, with the interface `settings`.
    async fn create(&self, settings: serde_json::Value, mac: &str) {
        let entry = with(attached(self.nodeeni, self.subnet, mac, 1), &settings);
        controller_writes(self.node, &[entry]).await;
    }

    /// The agent's message once it reports the entry not configured.
    async fn refusal(&self) -> String {
        let entry = wait_for_entry(self.nodeeni, self.node, self.subnet, "a refusal", |e| {
            e.configured == Some(false) && e.message.is_some()
        })
        .await;
        entry.message.unwrap()
    }
}

#[tokio::test]
async fn a_name_held_by_another_link_leaves_the_link_up_and_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let entry = Entry {
        nodeeni: "flap-taken",
        node: "flap-node",
        subnet: "subnet-0000000e",
    };
    let settings = json!({"interfaceName": "net-c", "mtu": 9001});
    entry.create(settings, "02:00:00:00:05:0e").await;
    let ns = TestNetns::new();
    ns.add_link("net-c", "02:00:00:00:09:0e").await;
    ns.add_link("ens9", "02:00:00:00:05:0e").await;
    ns.set_up("ens9").await;
    let index = ns.link("ens9").await.unwrap().index;
    let agent = start_agent(&ns, config(entry.node, dir.path())).await;

    let message = entry.refusal().await;
    assert!(message.contains("net-c is taken"), "{message}");
    wait_for("ens9 up with MTU 9001", || async {
        ns.is_configured("ens9", 9001).await
    })
    .await;
    assert_left_alone(&ns, index, "after the failed rename").await;

    // A restarted agent makes one attempt, which changes nothing.
    drop(agent);
    let _agent = start_agent(&ns, config(entry.node, dir.path())).await;
    assert_left_alone(&ns, index, "after a restart").await;
    assert!(ns.is_configured("ens9", 9001).await);

    // The name freed, the link takes it without going down.
    let watching = changes_of(&ns, index, QUIET);
    let free = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        ns.rename("net-c", "old-net-c").await;
    };
    let (changes, ()) = tokio::join!(watching, free);
    let renamed = ns.link("net-c").await.expect("the ENI's link renamed");
    assert_eq!((renamed.index, renamed.up), (index, true));
    assert!(
        !changes.is_empty() && changes.iter().all(|link| link.up),
        "the link went down: {changes:?}"
    );
}

#[tokio::test]
async fn an_mtu_the_device_refuses_is_reported_and_not_tried_again() {
    let dir = tempfile::tempdir().unwrap();
    let entry = Entry {
        nodeeni: "mtu-refused",
        node: "mtu-node",
        subnet: "subnet-0000000f",
    };
    let settings = json!({"interfaceName": "data", "mtu": 9001});
    entry.create(settings, "02:00:00:00:06:0f").await;
    let ns = TestNetns::new();
    // A VXLAN over a 1500-byte device takes at most 1450 (the kernel answers EINVAL above).
    ns.add_link("lower", "02:00:00:00:09:0f").await;
    ns.add_vxlan("vx0", "02:00:00:00:06:0f", 42, 4789, Some("lower"))
        .await;
    let index = ns.link("vx0").await.unwrap().index;
    let _agent = start_agent(&ns, config(entry.node, dir.path())).await;

    let message = entry.refusal().await;
    assert!(
        message.contains("MTU 1450 to 9001") && message.contains("spec.mtu"),
        "{message}"
    );
    assert!(ns.is_configured("data", 1450).await, "renamed and up");
    assert_left_alone(&ns, index, "after the refused MTU").await;
}

#[tokio::test]
async fn a_link_the_kernel_will_not_set_up_is_reported_and_retried_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let entry = Entry {
        nodeeni: "up-refused",
        node: "up-node",
        subnet: "subnet-00000010",
    };
    let settings = json!({"interfaceName": "tunnel"});
    entry.create(settings, "02:00:00:00:07:10").await;
    let ns = TestNetns::new();
    // A VXLAN opens its UDP port when set up: EADDRINUSE while a socket holds the port.
    let holder = ns.bind_udp(4790);
    ns.add_vxlan("vx1", "02:00:00:00:07:10", 43, 4790, None)
        .await;
    let index = ns.link("vx1").await.unwrap().index;
    let _agent = start_agent(&ns, config(entry.node, dir.path())).await;

    let message = entry.refusal().await;
    assert!(message.contains("set up on tunnel failed"), "{message}");
    assert_left_alone(&ns, index, "after the refused set up").await;

    // Nothing tells the agent that the port is free: its retry finds out.
    drop(holder);
    wait_for("the link up once the port is free", || async {
        ns.link("tunnel").await.is_some_and(|link| link.up)
    })
    .await;
}
