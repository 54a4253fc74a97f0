//! The controller's own metrics (the EC2 client counts its calls itself).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::ec2::types::{Eni, EniStatus};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

#[derive(Clone, Debug)]
pub struct Metrics {
    pub pass_seconds: Histogram,
    pub pass_errors: Counter,
    pub status_writes: Counter,
    pub eninode_writes: Counter,
    pub enis: Family<StateLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            pass_seconds: Histogram::new(exponential_buckets(0.001, 4.0, 8)),
            pass_errors: Counter::default(),
            status_writes: Counter::default(),
            eninode_writes: Counter::default(),
            enis: Family::default(),
        }
    }
}

impl Metrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "multi_eni_reconcile_seconds",
            "Duration of reconcile passes",
            self.pass_seconds.clone(),
        );
        registry.register(
            "multi_eni_reconcile_errors",
            "Reconcile passes that failed",
            self.pass_errors.clone(),
        );
        registry.register(
            "multi_eni_status_writes",
            "NodeENI status writes",
            self.status_writes.clone(),
        );
        registry.register(
            "multi_eni_eninode_writes",
            "ENINode writes (applies and deletes)",
            self.eninode_writes.clone(),
        );
        registry.register(
            "multi_eni_enis",
            "Owned ENIs by EC2 status",
            self.enis.clone(),
        );
    }

    pub fn observe_enis(&self, enis: &[&Eni]) {
        for state in ["available", "attaching", "in-use", "detaching", "other"] {
            let count = enis
                .iter()
                .filter(|eni| label(&eni.status) == state)
                .count();
            self.enis
                .get_or_create(&StateLabels { state })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }
}

fn label(status: &EniStatus) -> &'static str {
    match status {
        EniStatus::Available => "available",
        EniStatus::Attaching => "attaching",
        EniStatus::InUse => "in-use",
        EniStatus::Detaching => "detaching",
        EniStatus::Associated | EniStatus::Other(_) => "other",
    }
}
