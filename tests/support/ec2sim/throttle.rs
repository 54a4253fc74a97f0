//! EC2 request throttling: a token bucket per action (and per class, since an unfiltered
//! DescribeInstances draws from a smaller bucket than a filtered one), refilled continuously.

use std::collections::HashMap;
use std::time::Instant;

use super::config::{Bucket, ThrottleConfig};
use super::query::Params;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Class {
    Describe,
    DescribeUnfiltered,
    InterfaceMutating,
    Tags,
    Mutating,
}

pub fn classify(action: &str, params: &Params) -> Class {
    match action {
        "DescribeInstances" | "DescribeNetworkInterfaces"
            if !params.has_prefix("Filter.")
                && params.get("MaxResults").is_none()
                && params.get("NextToken").is_none() =>
        {
            Class::DescribeUnfiltered
        }
        _ if action.starts_with("Describe") => Class::Describe,
        "CreateNetworkInterface"
        | "DeleteNetworkInterface"
        | "ModifyNetworkInterfaceAttribute"
        | "AssignPrivateIpAddresses"
        | "UnassignPrivateIpAddresses" => Class::InterfaceMutating,
        "CreateTags" | "DeleteTags" => Class::Tags,
        _ => Class::Mutating,
    }
}

impl ThrottleConfig {
    fn bucket(&self, class: Class) -> Bucket {
        match class {
            Class::Describe => self.describe,
            Class::DescribeUnfiltered => self.describe_unfiltered,
            Class::InterfaceMutating => self.interface_mutating,
            Class::Tags => self.tags,
            Class::Mutating => self.mutating,
        }
    }
}

/// The buckets' fill levels; each starts full on its first call.
#[derive(Default)]
pub struct Throttle {
    levels: HashMap<(String, Class), (f64, Instant)>,
}

impl Throttle {
    /// Takes a token for the call, or answers false when its bucket is empty.
    pub fn admit(&mut self, config: &ThrottleConfig, action: &str, class: Class) -> bool {
        if !config.enabled {
            return true;
        }
        let bucket = config.bucket(class);
        let now = Instant::now();
        let (tokens, last) = self
            .levels
            .entry((action.to_owned(), class))
            .or_insert((bucket.capacity, now));
        let refilled = now.duration_since(*last).as_secs_f64() * bucket.refill_per_sec;
        *tokens = (*tokens + refilled).min(bucket.capacity);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
