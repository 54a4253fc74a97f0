//! Client-side token buckets, one per EC2 throttling bucket, so that multi-eni stays below
//! the account's budget (which it shares with every other tool) instead of running into it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// EC2's throttling buckets (see AWS "Request throttling for the Amazon EC2 API").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    const ALL: [Bucket; 5] = [
        Bucket::Describe,
        Bucket::DescribeUnfiltered,
        Bucket::EniMutation,
        Bucket::Tags,
        Bucket::OtherMutation,
    ];

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

/// Token buckets at a fraction of AWS's rates.
#[derive(Debug)]
pub struct Limiter {
    buckets: [Mutex<TokenBucket>; 5],
}

impl Limiter {
    /// `fraction` of AWS's capacity and refill (e.g. 0.95 leaves 5% to other tools);
    /// `None` for no client-side limit.
    pub fn new(fraction: Option<f64>) -> Limiter {
        Limiter {
            buckets: Bucket::ALL.map(|bucket| {
                let (capacity, refill) = bucket.aws_rate();
                Mutex::new(match fraction {
                    Some(f) => TokenBucket::new(capacity * f, refill * f),
                    None => TokenBucket::new(f64::INFINITY, f64::INFINITY),
                })
            }),
        }
    }

    /// Waits until the bucket has a token and takes it.
    pub async fn acquire(&self, bucket: Bucket) {
        let index = Bucket::ALL
            .iter()
            .position(|b| *b == bucket)
            .expect("every bucket is in ALL");
        loop {
            let wait = self.buckets[index]
                .lock()
                .expect("limiter lock")
                .take(Instant::now());
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
        TokenBucket {
            capacity,
            refill_per_second,
            tokens: capacity,
            updated: Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self, now: Instant) -> Option<Duration> {
        if self.capacity.is_infinite() {
            return None;
        }
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

    #[test]
    fn no_fraction_means_no_limit() {
        let mut bucket = TokenBucket::new(f64::INFINITY, f64::INFINITY);
        assert!((0..10_000).all(|_| bucket.take(Instant::now()).is_none()));
    }
}
