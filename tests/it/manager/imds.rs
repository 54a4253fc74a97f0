//! The instance metadata cross-check, against a stand-in for IMDSv2.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, put};
use serde_json::json;

use super::{attached, config, controller_writes, start_agent, wait_for_entry, with};
use crate::support::netns::TestNetns;

/// Serves IMDSv2's token and `macs/<mac>/interface-id` on a free port; returns its URL.
async fn metadata(enis: &[(&str, &str)]) -> String {
    let enis: HashMap<String, String> = enis
        .iter()
        .map(|(mac, eni)| ((*mac).into(), (*eni).into()))
        .collect();
    let token = || async { ([("x-aws-ec2-metadata-token-ttl-seconds", "21600")], "token") };
    let interface_id = |State(enis): State<Arc<HashMap<String, String>>>,
                        Path(mac): Path<String>| async move {
        enis.get(&mac)
            .cloned()
            .ok_or(StatusCode::NOT_FOUND)
            .into_response()
    };
    let router = Router::new()
        .route("/latest/api/token", put(token))
        .route(
            "/latest/meta-data/network/interfaces/macs/{mac}/interface-id",
            get(interface_id),
        )
        .with_state(Arc::new(enis));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

#[tokio::test]
async fn an_interface_whose_mac_metadata_gives_to_another_eni_is_left_alone() {
    let (name, node) = ("imds-check", "imds-node");
    let (agreed, disputed) = ("02:00:00:00:0d:01", "02:00:00:00:0d:02");
    let mtu = json!({"mtu": 9001});
    controller_writes(
        node,
        &[
            with(attached(name, "subnet-0000000a", agreed, 1), &mtu),
            with(attached(name, "subnet-0000000b", disputed, 2), &mtu),
        ],
    )
    .await;
    let endpoint = metadata(&[(agreed, "eni-0d01"), (disputed, "eni-ffff")]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(node, dir.path());
    config.imds_endpoint = Some(endpoint);
    let ns = TestNetns::new();
    let _agent = start_agent(&ns, config).await;
    ns.add_link("eth1", agreed).await;
    ns.add_link("eth2", disputed).await;

    wait_for_entry(
        name,
        node,
        "subnet-0000000a",
        "the confirmed ENI configured",
        |e| e.configured == Some(true),
    )
    .await;
    let entry = wait_for_entry(
        name,
        node,
        "subnet-0000000b",
        "the disputed ENI reported",
        |e| e.configured == Some(false),
    )
    .await;
    let message = entry.message.unwrap();
    assert!(
        message.contains("eni-ffff") && message.contains("eni-0d02"),
        "{message}"
    );
    let untouched = ns.link("eth2").await.unwrap();
    assert!(!untouched.up && untouched.mtu == 1500, "{untouched:?}");
}

#[tokio::test]
async fn without_metadata_the_status_is_trusted() {
    let (name, node, mac) = ("imds-absent", "imds-absent-node", "02:00:00:00:0e:01");
    let entry = with(
        attached(name, "subnet-0000000a", mac, 1),
        &json!({"mtu": 9001}),
    );
    controller_writes(node, &[entry]).await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(node, dir.path());
    config.imds_endpoint = Some(format!("http://{closed}"));
    let ns = TestNetns::new();
    let _agent = start_agent(&ns, config).await;
    ns.add_link("eth1", mac).await;
    wait_for_entry(
        name,
        node,
        "subnet-0000000a",
        "configured without metadata",
        |e| e.configured == Some(true),
    )
    .await;
}
