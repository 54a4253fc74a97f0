//! The agent's /metrics, /healthz and /readyz, served as `multi-eni manager` serves them
//! (`manager::metrics::serve`), read over HTTP: not ready until the ENINode watch has synced,
//! and the metrics of a link configured.

use std::net::SocketAddr;
use std::time::Duration;

use kube::{Client, Config};
use multi_eni::manager::{self, AgentConfig, metrics, netlink};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{attached, config, controller_writes, start_agent, wait_for_entry, with};
use crate::support::control_plane::wait_for;
use crate::support::netns::TestNetns;
use crate::support::process::free_port;

const NODE: &str = "endpoint-node";

/// `GET path`: the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok());
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned());
    (code.expect("a status code"), body.unwrap_or_default())
}

/// The value of one series in the Prometheus text, e.g. `name{label="value"}`.
fn value<'a>(text: &'a str, series: &str) -> &'a str {
    let line = text
        .lines()
        .find(|line| line.starts_with(&format!("{series} ")));
    let line = line.unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    line[series.len()..].trim()
}

fn number(text: &str, series: &str) -> f64 {
    value(text, series).parse().expect("a number")
}

/// The endpoint of an agent with `config`, as `multi-eni manager` serves it, on a free port.
async fn serve(config: &AgentConfig) -> SocketAddr {
    let any_port = "127.0.0.1:0".parse().unwrap();
    (metrics::serve(any_port, &config.metrics, config.readiness.clone()).await).unwrap()
}

#[tokio::test]
async fn not_ready_while_the_eninode_watch_has_not_synced() {
    let dir = tempfile::tempdir().unwrap();
    let config = config("endpoint-unsynced", dir.path());
    let addr = serve(&config).await;
    // An API server that is not there: the watch retries, and never syncs.
    let url = format!("https://127.0.0.1:{}", free_port())
        .parse()
        .unwrap();
    let client = Client::try_from(Config::new(url)).unwrap();
    let ns = TestNetns::new();
    let (links, events) = netlink::open(Some(&ns.path())).unwrap();
    let agent = tokio::spawn(manager::run(client, links, events, config));
    for _ in 0..10 {
        assert_eq!(get(addr, "/healthz").await, (200, "ok\n".into()));
        assert_eq!(get(addr, "/readyz").await, (503, "not ready\n".into()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!agent.is_finished());
    agent.abort();
}

#[tokio::test]
async fn ready_once_synced_and_the_metrics_of_a_configured_link() {
    let dir = tempfile::tempdir().unwrap();
    let mac = "02:00:00:00:0e:01";
    let settings = json!({"interfaceName": "metrics0", "mtu": 9001});
    let entries = [
        with(attached("endpoint", "subnet-0000000e", mac, 1), &settings),
        attached("endpoint", "subnet-0000000f", "02:00:00:00:0e:02", 2),
    ];
    controller_writes(NODE, &entries).await;
    let ns = TestNetns::new();
    let config = config(NODE, dir.path());
    let addr = serve(&config).await;
    let _agent = start_agent(&ns, config).await;
    wait_for("/readyz to answer 200", || async {
        get(addr, "/readyz").await == (200, "ok\n".into())
    })
    .await;

    ns.add_link("ens9", mac).await;
    wait_for_entry("endpoint", NODE, "subnet-0000000e", "configured", |e| {
        e.configured == Some(true)
    })
    .await;
    let (code, text) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    assert_eq!(
        value(&text, r#"multi_eni_agent_interfaces{state="configured"}"#),
        "1"
    );
    // The second ENI's interface has not appeared.
    assert_eq!(
        value(&text, r#"multi_eni_agent_interfaces{state="waiting"}"#),
        "1"
    );
    assert_eq!(
        value(&text, r#"multi_eni_agent_interfaces{state="failed"}"#),
        "0"
    );
    assert!(
        number(
            &text,
            r#"multi_eni_agent_netlink_events_total{event="changed"}"#
        ) >= 1.0
    );
    assert!(number(&text, "multi_eni_agent_configure_seconds_count") >= 1.0);
    assert!(number(&text, "multi_eni_agent_configure_seconds_sum") > 0.0);
    assert!(number(&text, r#"multi_eni_agent_status_writes_total{result="ok"}"#) >= 1.0);
    assert_eq!(get(addr, "/nothing").await.0, 404);
}
