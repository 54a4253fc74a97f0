//! Counters of EC2 calls, by action and outcome, for the /metrics endpoint.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub action: &'static str,
    /// `ok`, or the error kind's label.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub action: &'static str,
    /// `ok`, `throttled`, `server_error`, `client_error` or `no_response`.
    pub result: &'static str,
}

/// EC2 call counters. Cheap to clone: clones count into the same series.
#[derive(Clone, Debug, Default)]
pub struct Ec2Metrics {
    /// One per method call, after the SDK's retries.
    pub calls: Family<CallLabels, Counter>,
    /// One per HTTP request, retries included: shows throttling the SDK absorbed.
    pub attempts: Family<AttemptLabels, Counter>,
}

impl Ec2Metrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "multi_eni_ec2_calls",
            "EC2 API calls by action and outcome",
            self.calls.clone(),
        );
        registry.register(
            "multi_eni_ec2_attempts",
            "EC2 HTTP requests (retries included) by action and result",
            self.attempts.clone(),
        );
    }

    /// Calls made so far of `action` with `outcome`.
    pub fn calls_of(&self, action: &'static str, outcome: &'static str) -> u64 {
        self.calls
            .get_or_create(&CallLabels { action, outcome })
            .get()
    }
}
