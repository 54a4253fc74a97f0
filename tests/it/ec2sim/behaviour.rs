//! The behaviour knobs: throttling, eventual consistency, injected faults and latency, and the
//! `/_sim/` control endpoint.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;

use super::{World, error_of, eventually, quiet, status};
use crate::support::ec2sim::{Bucket, NextFault, SimConfig, Stats, ThrottleConfig};

#[tokio::test]
async fn throttling_answers_request_limit_exceeded_per_bucket() {
    // Buckets that barely refill, so that the count is exact however slow the machine.
    let w = World::with(SimConfig {
        throttle: ThrottleConfig {
            describe_unfiltered: Bucket::new(3.0, 0.001),
            ..ThrottleConfig::default()
        },
        ..SimConfig::default()
    })
    .await;
    let unfiltered = || w.ec2.describe_network_interfaces().send();
    for _ in 0..3 {
        unfiltered().await.unwrap();
    }
    let throttled = unfiltered().await.unwrap_err();
    assert_eq!(error_of(&throttled).0, "RequestLimitExceeded");
    assert_eq!(status(&throttled), 503);
    // A filtered call draws from the larger bucket of filtered describes.
    let available = Filter::builder().name("status").values("available").build();
    w.ec2
        .describe_network_interfaces()
        .filters(available)
        .send()
        .await
        .unwrap();
    let stats = w.sim.stats().action("DescribeNetworkInterfaces");
    assert_eq!((stats.calls, stats.throttled, stats.errors), (5, 1, 0));

    w.sim.set_config(quiet());
    for _ in 0..10 {
        unfiltered().await.unwrap();
    }
}

#[tokio::test]
async fn a_new_eni_is_not_found_during_the_consistency_window() {
    let w = World::with(SimConfig {
        consistency_window_ms: 500,
        ..quiet()
    })
    .await;
    let instance = w.instance("m5.large");
    let eni = w.create_eni(&w.subnet).await;
    assert_eq!(
        w.try_eni(&eni).await.unwrap_err().0,
        "InvalidNetworkInterfaceID.NotFound"
    );
    let (code, _) = w.try_attach(&eni, &instance, 1, 0).await.unwrap_err();
    assert_eq!(code, "InvalidNetworkInterfaceID.NotFound");
    eventually("the ENI is visible", || async {
        w.try_eni(&eni).await.ok()
    })
    .await;
    w.attach(&eni, &instance, 1, 0).await;
}

#[tokio::test]
async fn injected_errors_hit_the_next_calls_of_an_action() {
    let w = World::new().await;
    w.sim.inject_fault(NextFault::new(
        "DescribeSubnets",
        2,
        "InternalError",
        "injected",
    ));
    let describe = || w.ec2.describe_subnets().subnet_ids(&w.subnet).send();
    for _ in 0..2 {
        let error = describe().await.unwrap_err();
        assert_eq!(
            error_of(&error),
            ("InternalError".into(), "injected".into())
        );
        assert_eq!(status(&error), 500);
    }
    describe().await.unwrap();
    assert_eq!(w.sim.stats().action("DescribeSubnets").errors, 2);

    let any = r#"{"action": "*", "count": 1, "code": "Unavailable", "message": "down"}"#;
    assert_eq!(w.sim.control("POST", "/_sim/faults", any).await.0, 204);
    let error = w.ec2.describe_security_groups().send().await.unwrap_err();
    assert_eq!(
        (error_of(&error).0.as_str(), status(&error)),
        ("Unavailable", 503)
    );
    w.ec2.describe_security_groups().send().await.unwrap();
}

#[tokio::test]
async fn an_error_rate_answers_server_errors() {
    let w = World::with(SimConfig {
        error_rate: 1.0,
        ..quiet()
    })
    .await;
    for _ in 0..6 {
        let error = w.ec2.describe_subnets().send().await.unwrap_err();
        let answer = (error_of(&error).0, status(&error));
        assert!(
            [
                ("InternalError".to_owned(), 500),
                ("Unavailable".to_owned(), 503)
            ]
            .contains(&answer),
            "{answer:?}"
        );
    }
    w.sim.set_config(quiet());
    w.ec2.describe_subnets().send().await.unwrap();
}

#[tokio::test]
async fn added_latency_delays_every_call() {
    let w = World::with(SimConfig {
        added_latency_ms: 150,
        ..quiet()
    })
    .await;
    let started = Instant::now();
    w.ec2.describe_subnets().send().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn the_control_endpoint_configures_counts_and_resets() {
    let w = World::new().await;
    let patch =
        r#"{"attach_latency_ms": 250, "throttle": {"tags": {"capacity": 7, "refill_per_sec": 1}}}"#;
    let (code, _) = w.sim.control("POST", "/_sim/config", patch).await;
    assert_eq!(code, 200);
    let config = w.sim.config();
    assert_eq!(
        (config.attach_latency_ms, config.throttle.tags),
        (250, Bucket::new(7.0, 1.0))
    );
    assert!(
        !config.throttle.enabled,
        "a patch keeps what it does not name"
    );
    let (code, _) = w
        .sim
        .control("POST", "/_sim/config", r#"{"no_such_knob": 1}"#)
        .await;
    assert_eq!(code, 400);

    w.ec2.describe_subnets().send().await.unwrap();
    let (code, body) = w.sim.control("GET", "/_sim/stats", "").await;
    let stats: Stats = serde_json::from_str(&body).unwrap();
    assert_eq!((code, stats.action("DescribeSubnets").calls), (200, 1));

    assert_eq!(w.sim.control("POST", "/_sim/reset", "").await.0, 204);
    assert_eq!(w.sim.stats(), Stats::default());
    let subnets = w.ec2.describe_subnets().send().await.unwrap();
    assert!(subnets.subnets().is_empty());
    assert_eq!(
        w.sim.config().attach_latency_ms,
        250,
        "reset keeps the configuration"
    );
}

#[tokio::test]
async fn an_unknown_action_is_an_ec2_error_document() {
    let w = World::new().await;
    let (code, body) = w
        .sim
        .control("POST", "/?Action=Frobnicate&Version=2016-11-15", "")
        .await;
    assert_eq!(code, 400);
    assert!(
        body.contains("<Response><Errors><Error><Code>InvalidAction</Code>"),
        "{body}"
    );
    assert!(body.contains("<RequestID>"), "{body}");
}
