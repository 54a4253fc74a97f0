//! Attach and detach: EC2's refusals, the per-type and per-card limits, the asynchronous
//! states, DeleteOnTermination at termination, and the attachment hooks.

use aws_sdk_ec2::types::{
    AttachmentStatus, InstanceStateName, NetworkInterfaceAttachmentChanges, NetworkInterfaceStatus,
};
use axum::Json;
use axum::routing::post;
use tokio::sync::mpsc;

use super::{World, error_of, eventually, quiet};
use crate::support::ec2sim::{AttachmentEvent, AttachmentEventKind, SimConfig};

#[tokio::test]
async fn an_occupied_device_index_is_refused() {
    let w = World::new().await;
    let instance = w.instance("m5.xlarge");
    let (a, b) = (w.create_eni(&w.subnet).await, w.create_eni(&w.subnet).await);
    w.attach(&a, &instance, 1, 0).await;
    let (code, message) = w.try_attach(&b, &instance, 1, 0).await.unwrap_err();
    assert_eq!(code, "InvalidParameterValue");
    assert_eq!(
        message,
        format!("Instance '{instance}' already has an interface attached at device index '1'.")
    );
    let primary = w.try_attach(&b, &instance, 0, 0).await.unwrap_err();
    assert_eq!(primary.0, "InvalidParameterValue");
    w.attach(&b, &instance, 2, 0).await;
}

#[tokio::test]
async fn the_instance_type_limits_interfaces() {
    let w = World::new().await;
    let instance = w.instance("m5.large");
    for device in 1..=2 {
        let eni = w.create_eni(&w.subnet).await;
        w.attach(&eni, &instance, device, 0).await;
    }
    let fourth = w.create_eni(&w.subnet).await;
    let (code, message) = w.try_attach(&fourth, &instance, 3, 0).await.unwrap_err();
    assert_eq!(code, "AttachmentLimitExceeded");
    assert_eq!(message, "Interface count 4 exceeds the limit for m5.large");
}

#[tokio::test]
async fn each_network_card_has_its_own_limit() {
    let w = World::new().await;
    let instance = w.instance("p4d.24xlarge");
    for device in 0..15 {
        let eni = w.create_eni(&w.subnet).await;
        w.attach(&eni, &instance, device, 1).await;
    }
    let sixteenth = w.create_eni(&w.subnet).await;
    let (code, message) = w
        .try_attach(&sixteenth, &instance, 15, 1)
        .await
        .unwrap_err();
    assert_eq!(code, "AttachmentLimitExceeded");
    assert_eq!(
        message,
        "Interface count 16 exceeds the limit for p4d.24xlarge"
    );
    // The same index on another card is free, and within that card's limit.
    w.attach(&sixteenth, &instance, 1, 2).await;
    let no_card = w.create_eni(&w.subnet).await;
    let (code, _) = w.try_attach(&no_card, &instance, 1, 4).await.unwrap_err();
    assert_eq!(code, "InvalidParameterValue");
}

#[tokio::test]
async fn attach_is_refused_across_zones_in_use_or_not_running() {
    let w = World::new().await;
    let instance = w.instance("m5.large");
    let other = w.instance("m5.large");
    let far = w.create_eni(&w.subnet_b).await;
    let (code, _) = w.try_attach(&far, &instance, 1, 0).await.unwrap_err();
    assert_eq!(code, "InvalidParameterCombination");

    let eni = w.create_eni(&w.subnet).await;
    w.attach(&eni, &instance, 1, 0).await;
    let (code, _) = w.try_attach(&eni, &other, 1, 0).await.unwrap_err();
    assert_eq!(code, "InvalidNetworkInterface.InUse");

    w.ec2
        .terminate_instances()
        .instance_ids(&other)
        .send()
        .await
        .unwrap();
    let spare = w.create_eni(&w.subnet).await;
    let (_, message) = w.try_attach(&spare, &other, 1, 0).await.unwrap_err();
    assert!(message.contains("is not 'running'"), "{message}");
}

#[tokio::test]
async fn attach_and_detach_pass_through_their_transitional_states() {
    let w = World::with(SimConfig {
        // Far longer than a loopback call, so that the transitional states are seen.
        attach_latency_ms: 300,
        detach_latency_ms: 300,
        ..quiet()
    })
    .await;
    let instance = w.instance("m5.large");
    let eni = w.create_eni(&w.subnet).await;
    let heard = w.heard();
    let attachment = w.attach(&eni, &instance, 1, 0).await;
    let seen = w.eni(&eni).await;
    assert!(heard.lock().unwrap().is_empty(), "not attached yet");
    assert_eq!(
        seen.status().map(NetworkInterfaceStatus::as_str),
        Some("attaching")
    );
    assert_eq!(
        seen.attachment().unwrap().status(),
        Some(&AttachmentStatus::Attaching)
    );
    eventually("attached", || async {
        let eni = w.eni(&eni).await;
        (eni.status().map(NetworkInterfaceStatus::as_str) == Some("in-use")).then_some(())
    })
    .await;
    assert_eq!(
        w.eni(&eni).await.attachment().unwrap().status(),
        Some(&AttachmentStatus::Attached)
    );

    w.ec2
        .detach_network_interface()
        .attachment_id(&attachment)
        .send()
        .await
        .unwrap();
    assert_eq!(
        w.eni(&eni)
            .await
            .status()
            .map(NetworkInterfaceStatus::as_str),
        Some("detaching")
    );
    eventually("available", || async {
        let eni = w.eni(&eni).await;
        eni.attachment().is_none().then_some(())
    })
    .await;
    assert_eq!(
        w.eni(&eni)
            .await
            .status()
            .map(NetworkInterfaceStatus::as_str),
        Some("available")
    );
    let again = w
        .ec2
        .detach_network_interface()
        .attachment_id(&attachment)
        .send()
        .await;
    assert_eq!(
        error_of(&again.unwrap_err()).0,
        "InvalidAttachmentID.NotFound"
    );
    let kinds: Vec<_> = heard.lock().unwrap().iter().map(|e| e.kind).collect();
    let both = [AttachmentEventKind::Attached, AttachmentEventKind::Detached];
    assert_eq!(kinds, both, "hooks hear transitions completed later");
}

#[tokio::test]
async fn termination_deletes_only_delete_on_termination_enis() {
    let w = World::new().await;
    let instance = w.instance("m5.xlarge");
    let (kept, deleted) = (w.create_eni(&w.subnet).await, w.create_eni(&w.subnet).await);
    w.attach(&kept, &instance, 1, 0).await;
    let attachment = w.attach(&deleted, &instance, 2, 0).await;
    let dot = NetworkInterfaceAttachmentChanges::builder()
        .attachment_id(attachment)
        .delete_on_termination(true)
        .build();
    let modify = w
        .ec2
        .modify_network_interface_attribute()
        .network_interface_id(&deleted);
    modify.attachment(dot).send().await.unwrap();
    let heard = w.heard();

    let terminated = w
        .ec2
        .terminate_instances()
        .instance_ids(&instance)
        .send()
        .await
        .unwrap();
    let change = &terminated.terminating_instances()[0];
    assert_eq!(
        change
            .current_state()
            .and_then(|s| s.name())
            .map(InstanceStateName::as_str),
        Some("terminated")
    );
    assert_eq!(
        w.try_eni(&deleted).await.unwrap_err().0,
        "InvalidNetworkInterfaceID.NotFound"
    );
    let kept = w.eni(&kept).await;
    assert_eq!(
        kept.status().map(NetworkInterfaceStatus::as_str),
        Some("available")
    );
    let left = w.ec2.describe_network_interfaces().send().await.unwrap();
    assert_eq!(
        left.network_interfaces().len(),
        1,
        "the primary ENI went with the instance"
    );
    let heard = heard.lock().unwrap();
    let detached: Vec<_> = heard.iter().map(|e| (e.kind, e.device_index)).collect();
    assert_eq!(
        detached,
        [
            (AttachmentEventKind::Detached, 1),
            (AttachmentEventKind::Detached, 2)
        ]
    );
}

#[tokio::test]
async fn hooks_hear_attach_and_detach() {
    let w = World::new().await;
    let heard = w.heard();
    let (sender, mut posted) = mpsc::unbounded_channel();
    let receiver = axum::Router::new().route(
        "/events",
        post(move |Json(event): Json<AttachmentEvent>| async move { sender.send(event).unwrap() }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let body = serde_json::json!({ "url": url }).to_string();
    assert_eq!(w.sim.control("POST", "/_sim/hooks", &body).await.0, 204);

    let instance = w.instance("m5.large");
    let eni = w.create_eni(&w.subnet).await;
    let attachment = w.attach(&eni, &instance, 1, 0).await;
    w.ec2
        .detach_network_interface()
        .attachment_id(attachment)
        .send()
        .await
        .unwrap();
    let mac = w.eni(&eni).await.mac_address().unwrap().to_owned();

    let expected = |kind| AttachmentEvent {
        kind,
        instance_id: instance.clone(),
        network_interface_id: eni.clone(),
        mac_address: mac.clone(),
        device_index: 1,
        network_card_index: 0,
    };
    let both = [
        expected(AttachmentEventKind::Attached),
        expected(AttachmentEventKind::Detached),
    ];
    assert_eq!(*heard.lock().unwrap(), both);
    assert_eq!(posted.recv().await.unwrap(), both[0]);
    assert_eq!(posted.recv().await.unwrap(), both[1]);
}
