//! The simulator's behaviour knobs, set at start and changed at runtime (in Rust or by a JSON
//! merge patch on `POST /_sim/config`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    pub throttle: ThrottleConfig,
    /// How long an attachment stays `attaching` (0: attached at once).
    pub attach_latency_ms: u64,
    /// How long an attachment stays `detaching` before the ENI is `available` (0: at once),
    /// unless the instance's guest holds its detaches (`Simulator::hold_detaches`).
    pub detach_latency_ms: u64,
    /// For this long after CreateNetworkInterface, the ENI answers NotFound to every call
    /// but an idempotent retry of the create.
    pub consistency_window_ms: u64,
    /// The fraction (0 to 1) of calls answered with a 500 InternalError or 503 Unavailable.
    pub error_rate: f64,
    /// Added to every call before it is served.
    pub added_latency_ms: u64,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            throttle: ThrottleConfig::default(),
            attach_latency_ms: 0,
            detach_latency_ms: 0,
            consistency_window_ms: 0,
            error_rate: 0.0,
            added_latency_ms: 0,
        }
    }
}

/// EC2's token buckets, one per action and class, AWS's published sizes by default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    pub enabled: bool,
    /// Describe* with a filter or pagination, and every other Describe*.
    pub describe: Bucket,
    /// DescribeInstances and DescribeNetworkInterfaces with neither filter nor pagination.
    pub describe_unfiltered: Bucket,
    /// Create/Delete/ModifyNetworkInterfaceAttribute, Assign/UnassignPrivateIpAddresses.
    pub interface_mutating: Bucket,
    /// CreateTags, DeleteTags.
    pub tags: Bucket,
    /// Every other mutating action: Attach/DetachNetworkInterface, Run/Stop/Start/
    /// TerminateInstances…
    pub mutating: Bucket,
}

impl Default for ThrottleConfig {
    fn default() -> ThrottleConfig {
        ThrottleConfig {
            enabled: true,
            describe: Bucket::new(100.0, 20.0),
            describe_unfiltered: Bucket::new(50.0, 10.0),
            interface_mutating: Bucket::new(100.0, 5.0),
            tags: Bucket::new(100.0, 10.0),
            mutating: Bucket::new(50.0, 5.0),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    pub capacity: f64,
    pub refill_per_sec: f64,
}

impl Bucket {
    pub const fn new(capacity: f64, refill_per_sec: f64) -> Bucket {
        Bucket {
            capacity,
            refill_per_sec,
        }
    }
}

impl SimConfig {
    /// This configuration with the fields of a JSON merge patch (RFC 7386) replaced.
    pub fn patched(&self, patch: &Value) -> Result<SimConfig, serde_json::Error> {
        let mut merged = serde_json::to_value(self)?;
        merge(&mut merged, patch);
        serde_json::from_value(merged)
    }
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}
