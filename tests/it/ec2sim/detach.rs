//! Detach as the guest sees it: held until the guest releases the device, forced without it
//! (leaving the device index blocked until the instance stops), and stop and start.

use std::sync::{Arc, Mutex};

use aws_sdk_ec2::operation::start_instances::StartInstancesOutput;
use aws_sdk_ec2::operation::stop_instances::StopInstancesOutput;
use aws_sdk_ec2::types::InstanceStateName;
use axum::Json;
use axum::routing::post;
use tokio::sync::mpsc;

use super::{World, error_of, eventually, quiet};
use crate::support::ec2sim::{
    AttachmentEventKind, Bucket, DetachRequest, SimConfig, ThrottleConfig,
};

impl World {
    /// An instance whose guest holds its detaches; the requests it hears.
    fn guest(&self, instance_type: &str) -> (String, Arc<Mutex<Vec<DetachRequest>>>) {
        let instance = self.instance(instance_type);
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&heard);
        let hook = Box::new(move |request| sink.lock().unwrap().push(request));
        self.sim.hold_detaches(&instance, Some(hook)).unwrap();
        (instance, heard)
    }

    async fn stop(&self, instance: &str) -> Result<StopInstancesOutput, (String, String)> {
        let stop = self.ec2.stop_instances().instance_ids(instance);
        stop.send().await.map_err(|e| error_of(&e))
    }

    async fn start(&self, instance: &str) -> Result<StartInstancesOutput, (String, String)> {
        let start = self.ec2.start_instances().instance_ids(instance);
        start.send().await.map_err(|e| error_of(&e))
    }

    async fn instance_state(&self, instance: &str) -> InstanceStateName {
        let described = (self.ec2.describe_instances())
            .instance_ids(instance)
            .send()
            .await
            .unwrap();
        let found = &described.reservations()[0].instances()[0];
        found.state().and_then(|s| s.name()).unwrap().clone()
    }
}

#[tokio::test]
async fn a_guest_holds_a_detach_until_it_releases_the_device() {
    // A detach latency, so that an unheld detach ends by itself while the held one waits.
    let w = World::with(SimConfig {
        detach_latency_ms: 50,
        ..quiet()
    })
    .await;
    let (held, requests) = w.guest("m5.large");
    let timed = w.instance("m5.large");
    let (eni, other) = (w.create_eni(&w.subnet).await, w.create_eni(&w.subnet).await);
    let attachment = w.attach(&eni, &held, 1, 0).await;
    let other_attachment = w.attach(&other, &timed, 1, 0).await;
    let heard = w.heard();
    w.detach(&attachment, false).await.unwrap();
    w.detach(&other_attachment, false).await.unwrap();
    eventually("the unheld detach completes", || async {
        (w.eni_status(&other).await == "available").then_some(())
    })
    .await;
    assert_eq!(w.eni_status(&eni).await, "detaching", "held by the guest");
    let mac = w.eni(&eni).await.mac_address().unwrap().to_owned();
    let request = DetachRequest {
        instance_id: held.clone(),
        attachment_id: attachment.clone(),
        network_interface_id: eni.clone(),
        mac_address: mac,
        device_index: 1,
        network_card_index: 0,
    };
    assert_eq!(*requests.lock().unwrap(), [request], "only the held detach");
    w.detach(&attachment, false).await.unwrap();
    assert_eq!(requests.lock().unwrap().len(), 1, "asked once");

    w.sim.release(&attachment).unwrap();
    assert_eq!(w.eni_status(&eni).await, "available");
    let detached: Vec<_> = (heard.lock().unwrap().iter())
        .map(|e| (e.kind, e.network_interface_id.clone()))
        .collect();
    let kind = AttachmentEventKind::Detached;
    assert_eq!(detached, [(kind, other.clone()), (kind, eni.clone())]);
    assert!(
        w.sim.release(&attachment).is_err(),
        "nothing left to release"
    );
    // The index is free again: the guest let go of the device.
    w.attach(&other, &held, 1, 0).await;
}

#[tokio::test]
async fn guests_hold_and_release_over_http() {
    let w = World::new().await;
    let instance = w.instance("m5.large");
    let (sender, mut posted) = mpsc::unbounded_channel();
    let receiver = axum::Router::new().route(
        "/detaches",
        post(
            move |Json(request): Json<DetachRequest>| async move { sender.send(request).unwrap() },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/detaches", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let guest = serde_json::json!({ "instance_id": instance, "url": url }).to_string();
    assert_eq!(w.sim.control("POST", "/_sim/guests", &guest).await.0, 204);
    let unknown = r#"{"instance_id": "i-0000000000000dead"}"#;
    assert_eq!(w.sim.control("POST", "/_sim/guests", unknown).await.0, 404);

    let eni = w.create_eni(&w.subnet).await;
    let attachment = w.attach(&eni, &instance, 1, 0).await;
    w.detach(&attachment, false).await.unwrap();
    let request = posted.recv().await.unwrap();
    assert_eq!(
        (request.attachment_id, request.device_index),
        (attachment.clone(), 1)
    );
    assert_eq!(w.eni_status(&eni).await, "detaching");
    let release = serde_json::json!({ "attachment_id": attachment }).to_string();
    assert_eq!(
        w.sim.control("POST", "/_sim/release", &release).await.0,
        204
    );
    assert_eq!(w.eni_status(&eni).await, "available");
    let (code, body) = w.sim.control("POST", "/_sim/release", &release).await;
    assert_eq!(code, 404, "{body}");
}

#[tokio::test]
async fn a_forced_detach_blocks_the_device_index_until_the_instance_stops() {
    let w = World::new().await;
    let (instance, _) = w.guest("m5.xlarge");
    let heard = w.heard();
    let (eni, next) = (w.create_eni(&w.subnet).await, w.create_eni(&w.subnet).await);
    let attachment = w.attach(&eni, &instance, 1, 0).await;
    w.detach(&attachment, false).await.unwrap();
    assert_eq!(
        w.eni_status(&eni).await,
        "detaching",
        "the guest does not let go"
    );

    w.detach(&attachment, true).await.unwrap();
    assert_eq!(w.eni_status(&eni).await, "available", "forced, at once");
    let kinds: Vec<_> = heard.lock().unwrap().iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [AttachmentEventKind::Attached, AttachmentEventKind::Detached]
    );
    assert_eq!(w.sim.stats().forced_detach_calls, 1);
    let (code, message) = w.try_attach(&next, &instance, 1, 0).await.unwrap_err();
    assert_eq!(code, "InvalidParameterValue");
    assert_eq!(
        message,
        format!("Instance '{instance}' already has an interface attached at device index '1'.")
    );
    // Only that index: the ENI itself, and the other indexes, are free.
    let elsewhere = w.attach(&eni, &instance, 2, 0).await;
    w.detach(&elsewhere, true).await.unwrap();

    w.stop(&instance).await.unwrap();
    w.start(&instance).await.unwrap();
    w.attach(&next, &instance, 1, 0).await;
    w.attach(&eni, &instance, 2, 0).await;
}

#[tokio::test]
async fn stop_and_start_keep_attachments_and_end_held_detaches() {
    let w = World::new().await;
    let (instance, _) = w.guest("m5.xlarge");
    let (kept, held) = (w.create_eni(&w.subnet).await, w.create_eni(&w.subnet).await);
    w.attach(&kept, &instance, 1, 0).await;
    let attachment = w.attach(&held, &instance, 2, 0).await;
    w.detach(&attachment, false).await.unwrap();
    let heard = w.heard();

    let stopped = w.stop(&instance).await.unwrap();
    let change = &stopped.stopping_instances()[0];
    let names = (
        change.previous_state().and_then(|s| s.name()),
        change.current_state().and_then(|s| s.name()),
    );
    assert_eq!(
        names,
        (
            Some(&InstanceStateName::Running),
            Some(&InstanceStateName::Stopped)
        )
    );
    assert_eq!(
        w.instance_state(&instance).await,
        InstanceStateName::Stopped
    );
    assert_eq!(
        w.eni_status(&kept).await,
        "in-use",
        "a stop keeps attachments"
    );
    assert_eq!(
        w.eni_status(&held).await,
        "available",
        "the guest went with the stop"
    );
    let kinds: Vec<_> = heard.lock().unwrap().iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [AttachmentEventKind::Detached]);
    // A stopped instance takes an attachment (EC2's "warm attach") and lets it go unheld.
    let warm = w.attach(&held, &instance, 2, 0).await;
    w.detach(&warm, false).await.unwrap();
    assert_eq!(w.eni_status(&held).await, "available");

    let started = w.start(&instance).await.unwrap();
    let change = &started.starting_instances()[0];
    assert_eq!(
        change.current_state().and_then(|s| s.name()),
        Some(&InstanceStateName::Running)
    );
    assert_eq!(w.eni_status(&kept).await, "in-use");

    (w.ec2.terminate_instances())
        .instance_ids(&instance)
        .send()
        .await
        .unwrap();
    assert_eq!(
        w.start(&instance).await.unwrap_err().0,
        "IncorrectInstanceState"
    );
    assert_eq!(
        w.stop(&instance).await.unwrap_err().0,
        "IncorrectInstanceState"
    );
}

#[tokio::test]
async fn stop_and_start_draw_from_the_mutating_buckets() {
    // One token each that barely refills, so that the count is exact however slow the machine.
    let w = World::with(SimConfig {
        throttle: ThrottleConfig {
            mutating: Bucket::new(1.0, 0.001),
            ..ThrottleConfig::default()
        },
        ..SimConfig::default()
    })
    .await;
    let instance = w.instance("m5.large");
    w.stop(&instance).await.unwrap();
    w.start(&instance).await.unwrap();
    assert_eq!(
        w.stop(&instance).await.unwrap_err().0,
        "RequestLimitExceeded"
    );
}
