//! The reconcile loop. One pass plans every NodeENI against one view of the cluster's owned
//! ENIs (described in one paginated round, then kept current by our own mutations), starts
//! the actions in the background within the EC2 budget, and writes the statuses that changed.
//! Passes run when a watch reports a relevant change, when an action ends, while EC2 finishes
//! an attach or detach, and once per resync period.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::ResourceExt;
use tokio::sync::{Notify, Semaphore};

use crate::api::NodeENI;
use crate::ec2::Ec2;
use crate::ec2::types::Eni;
use crate::ownership::{CLUSTER_TAG, NODEENI_TAG, Owner, PREDECESSOR_TAG, PREDECESSOR_VALUE};

use super::addresses::PodAddresses;
use super::desired::{Desired, NodeInfo, desired};
use super::eninode::Observed;
use super::executor::{Outcome, View, execute};
use super::kube_io::KubeIo;
use super::metrics::Metrics;
use super::plan::{Action, Context, Failure, InstanceFacts, NodeEniState, Plan, Want, plan};
use super::reasons;
use super::resolve::{Problem, Resolver};
use super::status::Blocker;

mod nads;
mod writes;

/// Subnets and security groups are looked up again every this many resyncs (and whenever a
/// NodeENI's spec changes): IDs never change their subnet, and names are rarely moved.
const RESOLVE_RESYNCS: u32 = 12;

/// How the controller behaves.
#[derive(Clone, Debug)]
pub struct Settings {
    pub cluster: String,
    pub resync: Duration,
    pub concurrency: usize,
    pub gc_grace: Duration,
    /// How often to describe again while EC2 finishes attaches and detaches.
    pub poll: Duration,
    /// How long a DPDK-bound ENI is kept attached, waiting for the node agent to release it.
    pub dpdk_release_timeout: Duration,
    /// `--adopt-predecessor-enis`: describe the ENIs of aws-multi-eni-controller too, adopt
    /// those that qualify ([`super::adopt`]), and replace its finalizer with ours.
    pub adopt_predecessor: bool,
}

/// What the watches keep up to date.
#[derive(Debug, Default)]
pub struct Cluster {
    pub nodeenis: BTreeMap<String, NodeENI>,
    pub nodes: BTreeMap<String, NodeInfo>,
    /// What the controller needs of each ENINode, by node.
    pub eninodes: BTreeMap<String, Observed>,
}

/// Memory that only saves work: losing it (a restart) costs calls, never correctness.
#[derive(Debug, Default)]
struct Memory {
    failures: BTreeMap<Owner, (Failure, u32)>,
    in_flight: BTreeSet<Key>,
    detached_by_us: BTreeSet<String>,
    orphans_since: BTreeMap<String, Instant>,
    held_since: BTreeMap<String, Instant>,
    /// The ENIs held for the node agent in the last plan.
    held: BTreeSet<String>,
    /// Described instances (`None`: EC2 does not know it), kept for a few polls.
    instances: BTreeMap<String, (Instant, Option<InstanceFacts>)>,
    incarnations: BTreeMap<Owner, u64>,
    wake_at: Option<Instant>,
}

pub struct Reconciler {
    pub settings: Settings,
    pub cluster: Mutex<Cluster>,
    pub wake: Notify,
    ec2: Ec2,
    kube: KubeIo,
    resolver: Resolver,
    view: Arc<Mutex<View>>,
    memory: Mutex<Memory>,
    nads: Mutex<nads::NadMemory>,
    permits: Arc<Semaphore>,
    metrics: Metrics,
}

/// A NodeENI's part of a pass.
pub(super) struct Planned {
    name: String,
    state: NodeEniState,
    desired: Desired,
    blocker: Option<Blocker>,
}

impl Reconciler {
    pub fn new(settings: Settings, ec2: Ec2, kube: KubeIo, metrics: Metrics) -> Arc<Reconciler> {
        Arc::new(Reconciler {
            resolver: Resolver::new(ec2.clone(), settings.resync * RESOLVE_RESYNCS),
            permits: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            settings,
            cluster: Mutex::default(),
            wake: Notify::new(),
            ec2,
            kube,
            view: Arc::default(),
            memory: Mutex::default(),
            nads: Mutex::default(),
            metrics,
        })
    }

    /// Runs passes forever.
    pub async fn run(self: Arc<Self>) {
        let mut next_resync = Instant::now();
        loop {
            if Instant::now() >= next_resync {
                self.view.lock().expect("view").stale = true;
                self.memory
                    .lock()
                    .expect("memory")
                    .failures
                    .retain(|_, (f, _)| f.retry_at.is_some());
                next_resync = Instant::now() + self.settings.resync;
            }
            let started = Instant::now();
            if let Err(error) = self.pass().await {
                self.metrics.pass_errors.inc();
                tracing::warn!(%error, "reconcile pass failed; retrying");
                self.view.lock().expect("view").stale = true;
                self.wake_at(Instant::now() + Duration::from_secs(2));
            }
            self.metrics
                .pass_seconds
                .observe(started.elapsed().as_secs_f64());
            let wake_at = self.memory.lock().expect("memory").wake_at.take();
            let until = wake_at.map_or(next_resync, |at| at.min(next_resync));
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep_until(until.into()) => {}
            }
            // Let a burst of events settle into one pass (and bound the status writes).
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn wake_at(&self, at: Instant) {
        let mut memory = self.memory.lock().expect("memory");
        memory.wake_at = Some(memory.wake_at.map_or(at, |current| current.min(at)));
    }

    async fn pass(self: &Arc<Self>) -> anyhow::Result<()> {
        let (nodeenis, nodes) = {
            let cluster = self.cluster.lock().expect("cluster");
            (
                cluster.nodeenis.clone(),
                cluster.nodes.values().cloned().collect::<Vec<_>>(),
            )
        };
        for nodeeni in nodeenis
            .values()
            .filter(|n| n.metadata.deletion_timestamp.is_none())
        {
            self.kube
                .ensure_finalizer(nodeeni, self.settings.adopt_predecessor)
                .await?;
        }
        self.refresh_view().await?;
        let (wants, planned) = self.wanted(&nodeenis, &nodes).await;
        let states = planned.iter().map(|p| (p.name.clone(), p.state)).collect();
        let node_instances = nodes
            .iter()
            .filter_map(|node| Some((node.name.clone(), node.instance.clone()?)))
            .collect();
        let mut plan = self.plan(&wants, &states, &node_instances).await?;
        self.track_orphans(&plan);
        for action in std::mem::take(&mut plan.actions) {
            self.start(action);
        }
        self.sync_nads(&nodeenis).await;
        self.write_objects(&nodeenis, &planned, &plan).await?;
        self.release_finalizers(&nodeenis, &plan.adopting).await?;
        self.schedule();
        let view = self.view.lock().expect("view");
        let owned: Vec<&Eni> = (view.enis.values())
            .filter(|eni| eni.tags.contains_key(CLUSTER_TAG))
            .collect();
        self.metrics.observe_enis(&owned);
        Ok(())
    }

    /// One describe of what the view holds: every ENI of this cluster (one paginated call by
    /// its tag) and, with adoption on, every ENI of the predecessor not tagged for a cluster
    /// yet (one more, by the predecessor's tag).
    async fn describe(&self) -> Result<Vec<Eni>, crate::ec2::Error> {
        let mut enis = self
            .ec2
            .enis_tagged(CLUSTER_TAG, &self.settings.cluster)
            .await?;
        if self.settings.adopt_predecessor {
            let theirs = self
                .ec2
                .enis_tagged(PREDECESSOR_TAG, PREDECESSOR_VALUE)
                .await?;
            enis.extend(
                theirs
                    .into_iter()
                    .filter(|eni| !eni.tags.contains_key(CLUSTER_TAG)),
            );
        }
        Ok(enis)
    }

    /// Describes every owned ENI again when the view may be wrong or the resync is due, and
    /// only those in an attach or detach once the poll interval has passed (a few ENIs in
    /// one call, where the whole listing takes a call per 1,000 ENIs).
    async fn refresh_view(&self) -> anyhow::Result<()> {
        let interval = self.poll_interval();
        let (full, transitioning) = {
            let view = self.view.lock().expect("view");
            let polled = view.refreshed.is_none_or(|at| at.elapsed() >= interval);
            let full = view.refreshed.is_none() || view.stale;
            let ids: Vec<String> = if polled && !full {
                view.transitioning().map(str::to_owned).collect()
            } else {
                Vec::new()
            };
            (full, ids)
        };
        let sent = Instant::now();
        if full {
            let enis = self.describe().await?;
            self.view.lock().expect("view").replace(enis, sent);
        } else if !transitioning.is_empty() {
            let enis = self.ec2.enis_by_id(&transitioning).await?;
            (self.view.lock().expect("view")).update(&transitioning, enis, sent);
        }
        Ok(())
    }

    async fn wanted(
        &self,
        nodeenis: &BTreeMap<String, NodeENI>,
        nodes: &[NodeInfo],
    ) -> (Vec<Want>, Vec<Planned>) {
        let mut wants = Vec::new();
        let mut planned = Vec::new();
        for (name, nodeeni) in nodeenis {
            let mut item = Planned {
                name: name.clone(),
                state: NodeEniState::Planned,
                desired: Desired::default(),
                blocker: None,
            };
            if nodeeni.metadata.deletion_timestamp.is_some() {
                item.state = NodeEniState::Deleting;
                item.blocker = Some(self.deletion_blocker(name));
                planned.push(item);
                continue;
            }
            let uid = nodeeni.uid().unwrap_or_default();
            let generation = nodeeni.metadata.generation.unwrap_or_default();
            match self.resolver.resolve(&uid, generation, &nodeeni.spec).await {
                Ok(resolved) => {
                    item.desired = desired(
                        &self.settings.cluster,
                        name,
                        &nodeeni.spec,
                        &resolved,
                        nodes,
                    );
                    let memory = self.memory.lock().expect("memory");
                    wants.extend(item.desired.slots.iter().map(|slot| {
                        Want {
                            slot: slot.clone(),
                            nodeeni_uid: uid.clone(),
                            security_group_ids: resolved.security_group_ids.clone(),
                            description: nodeeni
                                .spec
                                .description
                                .clone()
                                .unwrap_or_else(|| format!("multi-eni {name}")),
                            extra_tags: nodeeni.spec.tags.clone(),
                            network_card_index: nodeeni.spec.network_card_index,
                            delete_on_termination: nodeeni.spec.delete_on_termination,
                            source_dest_check: nodeeni.spec.source_dest_check,
                            addresses: PodAddresses::of(&nodeeni.spec),
                            incarnation: memory
                                .incarnations
                                .get(&slot.owner)
                                .copied()
                                .unwrap_or_default(),
                        }
                    }));
                }
                Err(Problem {
                    reason,
                    message,
                    transient,
                }) => {
                    if transient {
                        self.wake_at(Instant::now() + Duration::from_secs(5));
                    }
                    item.state = NodeEniState::Unresolved;
                    item.desired.selected_nodes = nodes
                        .iter()
                        .filter(|n| n.matches(&nodeeni.spec.node_selector))
                        .count();
                    item.blocker = Some(Blocker {
                        reason: reason.into(),
                        message,
                    });
                }
            }
            planned.push(item);
        }
        (wants, planned)
    }

    fn deletion_blocker(&self, name: &str) -> Blocker {
        let left = self.owned_by(name);
        Blocker {
            reason: reasons::DELETING.into(),
            message: format!(
                "detaching and deleting {} ENIs before the NodeENI goes",
                left.len()
            ),
        }
    }

    fn owned_by(&self, nodeeni: &str) -> Vec<String> {
        let view = self.view.lock().expect("view");
        view.enis
            .values()
            .filter(|eni| eni.tags.get(NODEENI_TAG).map(String::as_str) == Some(nodeeni))
            .map(|eni| eni.id.clone())
            .collect()
    }

    /// Plans; if instances must be described first, describes them all in one call and plans again.
    async fn plan(
        &self,
        wants: &[Want],
        states: &BTreeMap<String, NodeEniState>,
        node_instances: &BTreeMap<String, String>,
    ) -> anyhow::Result<Plan> {
        let enis: Vec<_> = self
            .view
            .lock()
            .expect("view")
            .enis
            .values()
            .cloned()
            .collect();
        let first = plan(wants, &enis, &self.context(states, node_instances));
        if first.describe.is_empty() {
            return Ok(first);
        }
        let ids: Vec<String> = first.describe.into_iter().collect();
        let instances = self.ec2.instances(&ids).await?;
        let mut facts = Vec::new();
        for instance in &instances {
            let limits = self.ec2.network_limits(&instance.instance_type).await.ok();
            facts.push((
                instance.id.clone(),
                InstanceFacts {
                    instance_type: instance.instance_type.clone(),
                    state: instance.state.clone(),
                    interfaces: instance.interfaces.clone(),
                    limits,
                },
            ));
        }
        {
            let mut memory = self.memory.lock().expect("memory");
            let now = Instant::now();
            // Not found is not terminated: a wrong provider ID, another account or Region, or
            // an instance gone long ago. Its slots get a reason; its ENIs are left alone.
            for id in &ids {
                memory.instances.insert(id.clone(), (now, None));
            }
            for (id, fact) in facts {
                memory.instances.insert(id, (now, Some(fact)));
            }
        }
        Ok(plan(wants, &enis, &self.context(states, node_instances)))
    }

    fn context(
        &self,
        states: &BTreeMap<String, NodeEniState>,
        node_instances: &BTreeMap<String, String>,
    ) -> Context {
        let now = Instant::now();
        let mut memory = self.memory.lock().expect("memory");
        memory
            .instances
            .retain(|_, (at, _)| now.duration_since(*at) < self.settings.poll * 10);
        let held = self.held(&mut memory, now);
        memory.held.clone_from(&held);
        Context {
            cluster: self.settings.cluster.clone(),
            nodeenis: states.clone(),
            instances: memory
                .instances
                .iter()
                .filter_map(|(id, (_, facts))| Some((id.clone(), facts.clone()?)))
                .collect(),
            unknown_instances: memory
                .instances
                .iter()
                .filter(|(_, (_, facts))| facts.is_none())
                .map(|(id, _)| id.clone())
                .collect(),
            failures: memory
                .failures
                .iter()
                .map(|(owner, (failure, _))| (owner.clone(), failure.clone()))
                .collect(),
            in_flight: memory
                .in_flight
                .iter()
                .filter_map(|key| match key {
                    Key::Slot(owner) => Some(owner.clone()),
                    Key::Eni(_) => None,
                })
                .collect(),
            held,
            detached_by_us: memory.detached_by_us.clone(),
            orphans_since: memory.orphans_since.clone(),
            gc_grace: self.settings.gc_grace,
            now: Some(now),
            adopt_predecessor: self.settings.adopt_predecessor,
            node_instances: node_instances.clone(),
        }
    }

    /// ENIs the node agent reports bound to DPDK: kept attached until it releases them, or
    /// until the release timeout.
    fn held(&self, memory: &mut Memory, now: Instant) -> BTreeSet<String> {
        // By node and slot, not by the ENI ID the agent reports: a device it released after a
        // restart is known by its slot alone.
        let bound: BTreeSet<(String, String, String)> = {
            let cluster = self.cluster.lock().expect("cluster");
            cluster
                .eninodes
                .iter()
                .flat_map(|(node, eninode)| {
                    eninode
                        .agent
                        .iter()
                        .filter(|(_, report)| report.dpdk_bound == Some(true))
                        .map(move |((nodeeni, subnet), _)| {
                            (nodeeni.clone(), node.clone(), subnet.clone())
                        })
                })
                .collect()
        };
        let bound: BTreeSet<String> = self
            .view
            .lock()
            .expect("view")
            .enis
            .values()
            .filter(|eni| {
                Owner::from_tags(&eni.tags).is_some_and(|o| {
                    bound.contains(&(o.nodeeni.clone(), o.node.clone(), o.subnet.clone()))
                })
            })
            .map(|eni| eni.id.clone())
            .collect();
        memory.held_since.retain(|eni, _| bound.contains(eni));
        bound
            .into_iter()
            .filter(|eni| {
                now.duration_since(*memory.held_since.entry(eni.clone()).or_insert(now))
                    < self.settings.dpdk_release_timeout
            })
            .collect()
    }

    fn track_orphans(&self, plan: &Plan) {
        let now = Instant::now();
        let mut memory = self.memory.lock().expect("memory");
        let unseen: BTreeSet<&String> = plan.unseen.iter().collect();
        memory.orphans_since.retain(|eni, _| unseen.contains(eni));
        for eni in &plan.unseen {
            memory.orphans_since.entry(eni.clone()).or_insert(now);
        }
    }

    /// Starts an action in the background; its end wakes the loop.
    fn start(self: &Arc<Self>, action: Action) {
        let key = action_key(&action);
        if !self
            .memory
            .lock()
            .expect("memory")
            .in_flight
            .insert(key.clone())
        {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let _permit = this
                .permits
                .acquire()
                .await
                .expect("the semaphore is never closed");
            // Boxed, so that the SDK's and the API client's large futures exist only for the
            // actions under way, not in every queued task (thousands, at the start of a large
            // cluster's convergence).
            let outcome = Box::pin(execute(&this.ec2, &this.view, action.clone())).await;
            Box::pin(this.record(&action, outcome)).await;
            this.memory.lock().expect("memory").in_flight.remove(&key);
            this.wake.notify_one();
        });
    }

    async fn record(&self, action: &Action, outcome: Outcome) {
        let (done, failure) = match outcome {
            Outcome::Done(done) => (done, None),
            Outcome::Failed { done, slot, error } => (done, Some((slot, error))),
        };
        for step in &done {
            if let super::executor::Step::Detached { eni_id } = step {
                self.memory
                    .lock()
                    .expect("memory")
                    .detached_by_us
                    .insert(eni_id.clone());
            }
            if let (super::executor::Step::Deleted { eni_id }, Action::Delete { owner, .. }) =
                (step, action)
            {
                self.forget_deleted(eni_id, owner);
            }
            self.kube.event_for_step(&self.cluster, action, step).await;
        }
        match failure {
            None => {
                if let Some(slot) = action.slot() {
                    self.memory.lock().expect("memory").failures.remove(slot);
                }
            }
            Some((slot, error)) => {
                self.kube
                    .event_for_failure(&self.cluster, action, &error)
                    .await;
                if let Some(slot) = slot {
                    self.remember_failure(slot, action, &error);
                }
            }
        }
    }

    /// A deleted ENI's slot gets a fresh ClientToken: EC2 would answer the old one with the
    /// deleted ENI.
    fn forget_deleted(&self, eni_id: &str, owner: &Owner) {
        let mut memory = self.memory.lock().expect("memory");
        memory.detached_by_us.remove(eni_id);
        memory.orphans_since.remove(eni_id);
        fresh_token(&mut memory, owner);
    }

    fn remember_failure(&self, slot: Owner, action: &Action, error: &crate::ec2::Error) {
        let mut memory = self.memory.lock().expect("memory");
        let attempts = memory.failures.get(&slot).map_or(0, |(_, n)| *n) + 1;
        let permanent = super::executor::is_permanent(error);
        let backoff = Duration::from_millis(500 * 2u64.saturating_pow(attempts.min(10)))
            .min(Duration::from_mins(5));
        // The ClientToken named an ENI that EC2, asked again past its consistency window, does
        // not know: one deleted since (by another process, or by hand). Or the token was used
        // with other parameters (a spec changed after a create whose answer was lost). Either
        // way a fresh token, at once.
        let token_spent = matches!(action, Action::Create { .. })
            && (error.code.starts_with("InvalidNetworkInterfaceID")
                || error.code == "IdempotentParameterMismatch");
        if token_spent {
            fresh_token(&mut memory, &slot);
        }
        if let Action::Attach { attach, .. } | Action::Create { attach, .. } = action {
            memory.instances.remove(&attach.instance);
        }
        let now = Instant::now();
        let failure = Failure {
            reason: reasons::failure_reason(action, error).into(),
            message: error.to_string(),
            retry_at: match (token_spent, permanent) {
                (true, _) => Some(now),
                (false, true) => None,
                (false, false) => Some(now + backoff),
            },
        };
        if let Some(at) = failure.retry_at {
            memory.wake_at = Some(memory.wake_at.map_or(at, |w| w.min(at)));
        }
        memory.failures.insert(slot, (failure, attempts));
    }

    /// Removes the finalizer of a deleted NodeENI (and, with adoption on, the predecessor's)
    /// once EC2, described afresh, shows none of its ENIs, and none of the predecessor's is
    /// still to adopt (`adopting`).
    async fn release_finalizers(
        &self,
        nodeenis: &BTreeMap<String, NodeENI>,
        adopting: &BTreeSet<String>,
    ) -> anyhow::Result<()> {
        for (name, nodeeni) in nodeenis
            .iter()
            .filter(|(_, n)| n.metadata.deletion_timestamp.is_some())
        {
            let nads_left = self.nads.lock().expect("nads").left.contains(name);
            if !self.owned_by(name).is_empty() || adopting.contains(name) || nads_left {
                continue;
            }
            let sent = Instant::now();
            let enis = self.describe().await?;
            let left = enis
                .iter()
                .any(|eni| eni.tags.get(NODEENI_TAG) == Some(name));
            self.view.lock().expect("view").replace(enis, sent);
            let predecessor = self.settings.adopt_predecessor;
            // A conflict is most often this pass's own status write, which the watch does not
            // wake the loop for: another pass soon, with the object as it is now.
            if !left && !self.kube.remove_finalizer(nodeeni, predecessor).await? {
                tracing::debug!(nodeeni = %name, "the NodeENI changed meanwhile; removing the finalizer again");
                self.wake_at(Instant::now() + Duration::from_millis(200));
            }
        }
        Ok(())
    }

    /// How soon to ask EC2 again while attaches or detaches finish: the configured interval
    /// while actions are still being started, quicker once only EC2 is left to finish (the
    /// last few transitions), so that the end of a convergence is seen without delay.
    fn poll_interval(&self) -> Duration {
        if self.memory.lock().expect("memory").in_flight.is_empty() {
            self.settings.poll.min(Duration::from_millis(500))
        } else {
            self.settings.poll
        }
    }

    /// Wakes the loop again while EC2 finishes what was started, when the grace period of
    /// an orphan ends, and when the next failed slot is due for its retry (a retry time
    /// noted while a pass was running, and taken by that pass's sleep, is not lost).
    fn schedule(&self) {
        let busy = self.view.lock().expect("view").in_transition();
        let memory = self.memory.lock().expect("memory");
        let waiting_grace = memory
            .orphans_since
            .values()
            .map(|since| *since + self.settings.gc_grace)
            .min();
        let now = Instant::now();
        let next_retry = (memory.failures.values())
            .filter_map(|(failure, _)| failure.retry_at)
            .filter(|at| *at > now)
            .min();
        drop(memory);
        if busy {
            self.wake_at(now + self.poll_interval());
        }
        for at in waiting_grace.into_iter().chain(next_retry) {
            self.wake_at(at);
        }
    }
}

/// Moves the owner to a ClientToken no request has used.
fn fresh_token(memory: &mut Memory, owner: &Owner) {
    let previous = memory.incarnations.get(owner).copied();
    let next = crate::ownership::next_incarnation(previous, std::time::SystemTime::now());
    memory.incarnations.insert(owner.clone(), next);
}

/// What an action works on: one action at a time per slot, or per ENI for removals.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Slot(Owner),
    Eni(String),
}

fn action_key(action: &Action) -> Key {
    match action {
        Action::Detach { eni_id, .. } | Action::Delete { eni_id, .. } => Key::Eni(eni_id.clone()),
        other => Key::Slot(other.owner().clone()),
    }
}
