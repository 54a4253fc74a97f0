//! The long-running agent: event-driven, with a slow resync.
//!
//! Three sources of work, each acted on at once: netlink link notifications (an ENI's
//! interface appeared, changed or went away), changes of this node's ENINode (the desired
//! state), and a timer (the periodic resync that repairs drift, or the retry of a failure,
//! with backoff). A notification is acted on only when it shows something the last attempt
//! did not see: the agent's own changes come back as notifications too, and a failed change
//! retried on its own echoes would toggle a link thousands of times a second.
//! The ENINode watch and the status writer run as tasks of their own (see [`super::tasks`]),
//! so that a slow API server never delays configuring a link.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::runtime::reflector::{self, Store};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::api::ENINode;
use crate::manager::cni::NetworkReport;
use crate::manager::desired::{Desired, EntryKey, Wanted, desired};
use crate::manager::links::{LinkState, Links, NAME_TAKEN};
use crate::manager::metrics::EventLabels;
use crate::manager::netlink::{LinkEvent, LinkEvents};
use crate::manager::outcome::Outcome;
use crate::manager::reconcile::Executor;
use crate::manager::report::{Reports, reports};
use crate::manager::status::StatusWriter;
use crate::manager::{AgentConfig, AgentError, plugin, tasks};

/// Runs the agent for `config.node_name` until an error ends it: its ENINode through `client`,
/// links through `links` and `events` (see [`crate::manager::netlink::open`]), DPDK
/// devices under `config.sysfs_root`.
pub async fn run(
    client: Client,
    links: impl Links,
    events: LinkEvents,
    config: AgentConfig,
) -> Result<(), AgentError> {
    let executor = config.executor(links, false)?;
    let (store, writer) = reflector::store();
    let (changed, eninode_changes) = watch::channel(false);
    let (reports, receiver) = watch::channel(Reports::new());
    // Dropped with this future, the set stops both tasks.
    let mut tasks = JoinSet::new();
    tasks.spawn(tasks::watch_eninode(
        Api::all(client.clone()),
        config.node_name.clone(),
        writer,
        changed,
    ));
    let status = StatusWriter::new(client.clone(), &config.node_name, config.metrics.clone());
    tasks.spawn(tasks::write_status(
        status,
        store.clone(),
        receiver,
        config.retry,
    ));
    let agent = Agent {
        executor,
        desired: Desired::default(),
        outcomes: BTreeMap::new(),
        networks: BTreeMap::new(),
        reports,
        client,
        retry_delay: config.retry.initial,
        retry_at: None,
        plugin_restart_pending: false,
        reports_stale: false,
        config,
    };
    let readiness = agent.config.readiness.clone();
    let result = tokio::select! {
        result = agent.serve(eninode_changes, events, store) => result,
        _ = tasks.join_next() => Err(AgentError::WatchEnded),
    };
    readiness.set(false);
    result
}

/// The delays between retries of failures: doubling from `initial` to `max`.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            initial: Duration::from_millis(200),
            max: Duration::from_mins(1),
        }
    }
}

struct Agent<L> {
    executor: Executor<L>,
    desired: Desired,
    outcomes: BTreeMap<EntryKey, Outcome>,
    /// What became of each entry's pod network.
    networks: BTreeMap<EntryKey, NetworkReport>,
    reports: watch::Sender<Reports>,
    client: Client,
    config: AgentConfig,
    retry_delay: Duration,
    retry_at: Option<Instant>,
    plugin_restart_pending: bool,
    /// Whether an outcome (or the desired state) changed since the reports were computed.
    reports_stale: bool,
}

impl<L: Links> Agent<L> {
    /// `eninode` turns true once the ENINode is listed, and changes with every event.
    async fn serve(
        mut self,
        mut eninode: watch::Receiver<bool>,
        mut events: LinkEvents,
        store: Store<ENINode>,
    ) -> Result<(), AgentError> {
        let mut ready = false;
        let period = self.config.resync_period;
        let mut resync = tokio::time::interval_at(Instant::now() + period, period);
        loop {
            let retry_at = self.retry_at;
            let retry = async move {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            // Biased: a link waiting to be configured goes before ENINode changes and resyncs.
            tokio::select! {
                biased;
                event = events.next() => match event {
                    Some(event) => {
                        self.count(&event);
                        if ready {
                            self.link_event(event).await;
                        }
                    }
                    None => return Err(AgentError::NetlinkClosed),
                },
                changed = eninode.changed() => {
                    if changed.is_err() {
                        return Err(AgentError::WatchEnded);
                    }
                    let listed = !ready;
                    ready = *eninode.borrow_and_update();
                    if ready {
                        self.config.readiness.set(true);
                        self.eninode_changed(&store, listed).await;
                    }
                }
                _ = resync.tick(), if ready => self.full_pass().await,
                () = retry, if ready => self.full_pass().await,
            }
        }
    }

    /// `listed`: the first reading, which makes a full pass whatever it holds (a node
    /// without an ENINode still has the agent's files of an earlier run to remove).
    async fn eninode_changed(&mut self, store: &Store<ENINode>, listed: bool) {
        let state = store.state();
        let desired = desired(state.first().map(AsRef::as_ref));
        if desired != self.desired || listed {
            self.desired = desired;
            self.reports_stale = true;
            self.full_pass().await;
        }
        // The spec's generation (in Ready) may have moved, or someone else's write: let the
        // writer compare, whether the reports changed or not.
        self.reports.send_modify(|_| {});
    }

    /// Serves everything from one fresh list of the links.
    async fn full_pass(&mut self) {
        let outcomes = match self.executor.pass(&self.desired).await {
            Ok(outcomes) => outcomes,
            Err(error) => {
                warn!(label = error.label(), "listing links: {error}");
                self.schedule_retry(true);
                return;
            }
        };
        let served: Vec<EntryKey> = self.desired.serve.iter().map(|w| w.key.clone()).collect();
        self.executor.failed.retain(|key, _| served.contains(key));
        // Keep the last word on released entries (dpdkBound: false) while they exist.
        self.outcomes.retain(|key, outcome| {
            !outcome.serving && !served.contains(key) && self.desired.entries.contains(key)
        });
        for outcome in outcomes {
            self.record(outcome);
        }
        self.after_changes().await;
    }

    fn count(&self, event: &LinkEvent) {
        let event = match event {
            LinkEvent::Changed(_) => "changed",
            LinkEvent::Removed(_) => "removed",
            LinkEvent::Overrun => "overrun",
        };
        let labels = EventLabels { event };
        self.config
            .metrics
            .netlink_events
            .get_or_create(&labels)
            .inc();
    }

    async fn link_event(&mut self, event: LinkEvent) {
        let (link, removed) = match event {
            LinkEvent::Overrun => return self.full_pass().await,
            LinkEvent::Changed(link) => (link, false),
            LinkEvent::Removed(link) => (link, true),
        };
        if let Some(wanted) = self.desired.by_mac(link.mac).cloned() {
            debug!(interface = link.name, mac = %link.mac, removed, "link event");
            self.serve_link(&wanted, &link, removed).await;
        }
        // Any link's rename or removal may free a name an entry waits for.
        self.retry_name_conflicts(link.index).await;
    }

    /// Serves the entry of a link that changed, unless the link and the wanted state are what
    /// the entry's last attempt failed on (the notification is an echo of that attempt).
    async fn serve_link(&mut self, wanted: &Wanted, link: &LinkState, removed: bool) {
        // Notifications queue up behind the agent's own changes: act on the link as it is now.
        let current = if removed {
            Ok(None)
        } else {
            self.executor.links.link(link.index).await
        };
        match current {
            Ok(current) => {
                let current = current.filter(|current| current.mac == wanted.mac);
                if self.executor.failed_on(wanted, current.as_ref()) {
                    return;
                }
                let outcome = self.executor.serve(wanted, current.as_ref()).await;
                self.record(outcome);
                self.after_changes().await;
            }
            Err(error) => {
                warn!(label = error.label(), "reading link {}: {error}", link.name);
                self.schedule_retry(true);
            }
        }
    }

    /// Serves again the entries whose interface name another link holds, after a change of
    /// a link other than theirs (`changed`). Their failing renames change nothing, so this
    /// cannot feed itself.
    async fn retry_name_conflicts(&mut self, changed: u32) {
        let waiting: Vec<Wanted> = (self.desired.serve.iter())
            .filter(|wanted| {
                let problem = self
                    .outcomes
                    .get(&wanted.key)
                    .and_then(|o| o.problem.as_ref());
                problem.is_some_and(|p| p.label == NAME_TAKEN)
            })
            .cloned()
            .collect();
        if waiting.is_empty() {
            return;
        }
        let links = match self.executor.links.links().await {
            Ok(links) => links,
            Err(error) => {
                warn!(label = error.label(), "listing links: {error}");
                return self.schedule_retry(true);
            }
        };
        for wanted in &waiting {
            let link = links.iter().find(|link| link.mac == wanted.mac);
            if let Some(link) = link.filter(|link| link.index != changed) {
                let outcome = self.executor.serve(wanted, Some(link)).await;
                self.record(outcome);
            }
        }
        self.after_changes().await;
    }

    /// Keeps an entry's outcome, logging what changed.
    fn record(&mut self, outcome: Outcome) {
        let previous = self.outcomes.get(&outcome.key);
        self.reports_stale |= previous.is_none_or(|previous| !previous.same_report(&outcome));
        if !outcome.changes.is_empty() {
            info!(
                nodeeni = outcome.key.nodeeni,
                subnet = outcome.key.subnet_id,
                eni = outcome.eni_id,
                "{}",
                outcome.changes.join(", ")
            );
        }
        if let Some(problem) = &outcome.problem
            && previous.and_then(|p| p.problem.as_ref()) != Some(problem)
        {
            warn!(
                nodeeni = outcome.key.nodeeni,
                subnet = outcome.key.subnet_id,
                label = problem.label,
                "{}",
                problem.message
            );
        }
        self.outcomes.insert(outcome.key.clone(), outcome);
    }

    /// Brings the pod networks and the device plugin in step, publishes the reports and plans
    /// a retry.
    async fn after_changes(&mut self) {
        let mut failed = !self.sync_networks();
        match self.executor.sync_plugin_config() {
            Ok(changed) => self.plugin_restart_pending |= changed,
            Err(error) => {
                warn!(label = error.label(), "{error}");
                failed = true;
            }
        }
        if self.plugin_restart_pending {
            failed |= !self.restart_plugin().await;
        }
        // Most notifications are echoes of the agent's own changes: nothing new to report.
        if std::mem::take(&mut self.reports_stale) {
            let served = self
                .outcomes
                .iter()
                .filter(|(key, _)| self.desired.entries.contains(key));
            self.config
                .metrics
                .observe_outcomes(served.map(|(_, outcome)| outcome));
            let reports = reports(&self.desired, self.outcomes.values(), &self.networks);
            self.reports.send_if_modified(|current| {
                let changed = *current != reports;
                *current = reports;
                changed
            });
        }
        let transient = self
            .outcomes
            .values()
            .any(|o| o.problem.as_ref().is_some_and(|p| p.transient));
        self.schedule_retry(failed || transient);
    }

    /// Writes the pod networks' CNI configurations; true unless the directory failed.
    fn sync_networks(&mut self) -> bool {
        let outcomes = &self.outcomes;
        let (networks, result) = self
            .executor
            .sync_networks(&self.desired, |key| outcomes.get(key));
        if networks != self.networks {
            self.networks = networks;
            self.reports_stale = true;
        }
        match result {
            Ok(changes) => {
                for change in changes {
                    info!("pod network: {change}");
                }
                true
            }
            Err(error) => {
                warn!(label = error.label(), "{error}");
                false
            }
        }
    }

    /// Restarts the device plugin; true when done (or nothing is configured to restart).
    async fn restart_plugin(&mut self) -> bool {
        let Some(pods) = &self.config.plugin else {
            info!(
                config = %self.executor.plugin_config.path().display(),
                "the SR-IOV device plugin config changed; restart the plugin to apply it (or set --sriov-plugin-selector)"
            );
            self.plugin_restart_pending = false;
            return true;
        };
        match plugin::restart(self.client.clone(), pods, &self.config.node_name).await {
            Ok(count) => {
                info!(
                    pods = count,
                    "restarted the SR-IOV device plugin to load its new config"
                );
                self.plugin_restart_pending = false;
                true
            }
            Err(error) => {
                warn!(label = error.label(), "{error}");
                false
            }
        }
    }

    fn schedule_retry(&mut self, needed: bool) {
        if needed {
            self.retry_at = Some(Instant::now() + self.retry_delay);
            self.retry_delay = (self.retry_delay * 2).min(self.config.retry.max);
        } else {
            self.retry_at = None;
            self.retry_delay = self.config.retry.initial;
        }
    }
}
