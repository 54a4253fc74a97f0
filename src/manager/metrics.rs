//! The agent's metrics and its `/metrics`, `/healthz` and `/readyz` endpoint (the one of
//! [`crate::http`], as the controller serves it).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `multi_eni_agent_interfaces` | gauge | `state`: `configured`, `dpdk_bound`, `taken` (by a pod, see [`super::advertise`]), `waiting` (no interface yet), `failed` |
//! | `multi_eni_agent_netlink_events_total` | counter | `event`: `changed`, `removed`, `overrun` |
//! | `multi_eni_agent_configure_seconds` | histogram | (time to bring one entry to its spec, when something had to change) |
//! | `multi_eni_agent_status_writes_total` | counter | `result`: `ok` or the error's label |
//! | `multi_eni_agent_dpdk_binds_total` | counter | `operation` (`bind`, `release`), `result` (`ok` or the error's label) |

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::controller::metrics::StateLabels;
use crate::http::{self, Readiness};
use crate::manager::outcome::Outcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BindLabels {
    pub operation: &'static str,
    pub result: &'static str,
}

/// The agent's metrics. Cheap to clone: clones count into the same series.
#[derive(Clone, Debug)]
pub struct AgentMetrics {
    pub interfaces: Family<StateLabels, Gauge>,
    pub netlink_events: Family<EventLabels, Counter>,
    pub configure_seconds: Histogram,
    pub status_writes: Family<ResultLabels, Counter>,
    pub dpdk_binds: Family<BindLabels, Counter>,
}

impl Default for AgentMetrics {
    fn default() -> AgentMetrics {
        AgentMetrics {
            interfaces: Family::default(),
            netlink_events: Family::default(),
            // 0.5 ms to 4 s: a rename on an idle node takes about a millisecond, a DPDK bind
            // (unbind, probe) up to seconds.
            configure_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            status_writes: Family::default(),
            dpdk_binds: Family::default(),
        }
    }
}

/// The states of [`AgentMetrics::interfaces`].
const STATES: [&str; 5] = ["configured", "dpdk_bound", "taken", "waiting", "failed"];

impl AgentMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "multi_eni_agent_interfaces",
            "This node's served ENI interfaces by state",
            self.interfaces.clone(),
        );
        registry.register(
            "multi_eni_agent_netlink_events",
            "Netlink link notifications received",
            self.netlink_events.clone(),
        );
        registry.register(
            "multi_eni_agent_configure_seconds",
            "Time to bring one interface to its spec (rename, MTU, up, DPDK bind), when something changed",
            self.configure_seconds.clone(),
        );
        registry.register(
            "multi_eni_agent_status_writes",
            "ENINode status applies by result",
            self.status_writes.clone(),
        );
        registry.register(
            "multi_eni_agent_dpdk_binds",
            "PCI driver binds to DPDK drivers and releases back, by result",
            self.dpdk_binds.clone(),
        );
    }

    /// Sets the interfaces gauge from the outcomes of the served entries.
    pub fn observe_outcomes<'a>(&self, outcomes: impl IntoIterator<Item = &'a Outcome>) {
        let mut counts = [0_i64; STATES.len()];
        for outcome in outcomes.into_iter().filter(|o| o.serving) {
            let state = state(outcome);
            let index = STATES.iter().position(|s| *s == state).expect("a state");
            counts[index] += 1;
        }
        for (state, count) in STATES.into_iter().zip(counts) {
            self.interfaces
                .get_or_create(&StateLabels { state })
                .set(count);
        }
    }

    /// Counts a status apply.
    pub fn status_write(&self, result: &'static str) {
        self.status_writes
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Counts a bind (or release) of a device.
    pub fn dpdk_bind(&self, operation: &'static str, result: &'static str) {
        self.dpdk_binds
            .get_or_create(&BindLabels { operation, result })
            .inc();
    }
}

fn state(outcome: &Outcome) -> &'static str {
    match &outcome.problem {
        Some(problem) if problem.label == "interface_not_found" => "waiting",
        Some(_) => "failed",
        None if outcome.dpdk.as_ref().is_some_and(|d| d.bound) => "dpdk_bound",
        None if outcome.resource.as_ref().is_some_and(|r| r.taken) => "taken",
        None if outcome.configured() => "configured",
        None => "waiting",
    }
}

/// Serves `metrics` and `readiness` on `addr` (`/metrics`, `/healthz`, `/readyz`) from a
/// task of its own; the address it listens on (`addr` with port 0: the port chosen).
pub async fn serve(
    addr: SocketAddr,
    metrics: &AgentMetrics,
    readiness: Readiness,
) -> anyhow::Result<SocketAddr> {
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let listener = http::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(http::serve(listener, Arc::new(registry), readiness));
    Ok(local)
}
