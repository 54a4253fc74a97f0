//! Client-side token buckets, one per EC2 action as EC2 keeps them, so that multi-eni stays
//! below the account's budget (which it shares with every other tool) instead of running
//! into it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The classes of EC2's throttling buckets (see AWS "Request throttling for the Amazon EC2
/// API"): each action has a bucket of its own, sized by its class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// Describe* with a filter or pagination.
    Describe,
    /// DescribeInstances / DescribeNetworkInterfaces with neither.
    DescribeUnfiltered,
    /// Create/Delete/ModifyNetworkInterfaceAttribute, Assign/UnassignPrivateIpAddresses.
    EniMutation,
    /// CreateTags, DeleteTags.
    Tags,
    /// Every other mutating action: AttachNetworkInterface, DetachNetworkInterface, …
    OtherMutation,
}

impl Bucket {
    /// AWS's published (capacity, refill per second).
    pub fn aws_rate(self) -> (f64, f64) {
        match self {
            Bucket::Describe => (100.0, 20.0),
            Bucket::DescribeUnfiltered => (50.0, 10.0),
            Bucket::EniMutation => (100.0, 5.0),
            Bucket::Tags => (100.0, 10.0),
            Bucket::OtherMutation => (50.0, 5.0),
        }
    }
}

/// Token buckets at a fraction of AWS's rates, one per action (and class).
#[derive(Debug)]
pub struct Limiter {
    fraction: Option<f64>,
    buckets: Mutex<HashMap<(&'static str, Bucket), TokenBucket>>,
}

impl Limiter {
    /// `fraction` of AWS's capacity and refill (e.g. 0.95 leaves 5% to other tools);
    /// `None` for no client-side limit.
    pub fn new(fraction: Option<f64>) -> Limiter {
        Limiter {
            fraction,
            buckets: Mutex::default(),
        }
    }

    /// Waits until the action's bucket has a token and takes it.
    pub async fn acquire(&self, action: &'static str, bucket: Bucket) {
        let Some(fraction) = self.fraction else {
            return;
        };
        loop {
            let wait = {
                let mut buckets = self.buckets.lock().expect("limiter lock");
                let (capacity, refill) = bucket.aws_rate();
                let bucket = buckets
                    .entry((action, bucket))
                    .or_insert_with(|| TokenBucket::new(capacity * fraction, refill * fraction));
                bucket.take(Instant::now())
            };
            match wait {
                None => return,
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
    }
}

#[derive(Debug)]
struct TokenBucket {
    capacity: f64,
    refill_per_second: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    fn new(capacity: f64, refill_per_second: f64) -> TokenBucket {
        // A bucket under one token would never give one.
        let capacity = capacity.max(1.0);
        TokenBucket {
            capacity,
            refill_per_second,
            tokens: capacity,
            updated: Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.refill_per_second).min(self.capacity);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.refill_per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_gives_its_capacity_then_its_refill_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket {
            capacity: 3.0,
            refill_per_second: 2.0,
            tokens: 3.0,
            updated: start,
        };
        for _ in 0..3 {
            assert_eq!(bucket.take(start), None);
        }
        assert_eq!(bucket.take(start), Some(Duration::from_millis(500)));
        assert_eq!(bucket.take(start + Duration::from_millis(500)), None);
        // Idle time refills up to the capacity, no further.
        let later = start + Duration::from_mins(1);
        for _ in 0..3 {
            assert_eq!(bucket.take(later), None);
        }
        assert!(bucket.take(later).is_some());
    }

    #[tokio::test]
    async fn each_action_has_its_own_bucket() {
        let limiter = Limiter::new(Some(0.01));
        // A capacity of 1 per action: the first call of each passes at once.
        for action in ["CreateNetworkInterface", "ModifyNetworkInterfaceAttribute"] {
            tokio::time::timeout(
                Duration::from_millis(100),
                limiter.acquire(action, Bucket::EniMutation),
            )
            .await
            .expect("a full bucket");
        }
        let unlimited = Limiter::new(None);
        for _ in 0..10_000 {
            unlimited
                .acquire("CreateNetworkInterface", Bucket::EniMutation)
                .await;
        }
    }
}
