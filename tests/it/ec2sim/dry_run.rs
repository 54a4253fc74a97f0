//! DryRun: DryRunOperation (HTTP 412) when the call would succeed, the call's own error when it
//! would fail, no change either way, and a throttling token taken like any call.

use super::{World, error_of, status};
use crate::support::ec2sim::{Bucket, SimConfig, ThrottleConfig};

const DRY_RUN: (&str, &str) = (
    "DryRunOperation",
    "Request would have succeeded, but DryRun flag is set.",
);

/// What the world looks like to a client: every Describe answer, request IDs left out.
async fn snapshot(w: &World) -> Vec<String> {
    let mut answers = Vec::new();
    for action in [
        "DescribeNetworkInterfaces",
        "DescribeInstances",
        "DescribeSubnets",
        "DescribeSecurityGroups",
    ] {
        let query = format!("/?Action={action}&Version=2016-11-15");
        let (code, body) = w.sim.control("POST", &query, "").await;
        assert_eq!(code, 200, "{body}");
        let (head, rest) = body.split_once("<requestId>").expect("a request ID");
        let (_, tail) = rest.split_once("</requestId>").expect("a request ID");
        answers.push(format!("{head}{tail}"));
    }
    answers
}

#[tokio::test]
async fn every_action_answers_a_dry_run_and_changes_nothing() {
    let w = World::new().await;
    let heard = w.heard();
    let instance = w.instance("m5.xlarge");
    let (free, attached) = (w.create_eni(&w.subnet).await, w.create_eni(&w.subnet).await);
    let attachment = w.attach(&attached, &instance, 1, 0).await;
    let assigned = (w.ec2.assign_private_ip_addresses())
        .network_interface_id(&free)
        .secondary_private_ip_address_count(1)
        .send()
        .await
        .unwrap();
    let secondary = assigned.assigned_private_ip_addresses()[0]
        .private_ip_address()
        .unwrap()
        .to_owned();
    let (vpc, subnet) = (&w.vpc, &w.subnet);
    // Every action the simulator serves, each with parameters that would make it succeed.
    let calls = [
        String::from("CreateVpc&CidrBlock=10.1.0.0/16"),
        format!("CreateSubnet&VpcId={vpc}&CidrBlock=10.0.9.0/24&AvailabilityZone=us-east-1a"),
        format!("CreateSecurityGroup&VpcId={vpc}&GroupName=dry&GroupDescription=dry"),
        String::from("DescribeSubnets"),
        String::from("DescribeSecurityGroups"),
        format!("RunInstances&SubnetId={subnet}&ImageId=ami-1&MinCount=1&MaxCount=1"),
        format!("StopInstances&InstanceId.1={instance}"),
        format!("StartInstances&InstanceId.1={instance}"),
        format!("TerminateInstances&InstanceId.1={instance}"),
        String::from("DescribeInstances"),
        String::from("DescribeInstanceTypes"),
        format!("CreateNetworkInterface&SubnetId={subnet}&ClientToken=dry"),
        format!("DeleteNetworkInterface&NetworkInterfaceId={free}"),
        String::from("DescribeNetworkInterfaces"),
        format!(
            "ModifyNetworkInterfaceAttribute&NetworkInterfaceId={free}&SourceDestCheck.Value=false"
        ),
        format!(
            "AssignPrivateIpAddresses&NetworkInterfaceId={free}&SecondaryPrivateIpAddressCount=1"
        ),
        format!(
            "UnassignPrivateIpAddresses&NetworkInterfaceId={free}&PrivateIpAddress.1={secondary}"
        ),
        format!(
            "AttachNetworkInterface&NetworkInterfaceId={free}&InstanceId={instance}&DeviceIndex=2"
        ),
        format!("DetachNetworkInterface&AttachmentId={attachment}&Force=true"),
        format!("CreateTags&ResourceId.1={free}&Tag.1.Key=dry&Tag.1.Value=run"),
        format!("DeleteTags&ResourceId.1={free}"),
    ];
    let before = snapshot(&w).await;
    let heard_before = heard.lock().unwrap().len();
    for call in &calls {
        let body = format!("Action={call}&Version=2016-11-15&DryRun=true");
        let (code, answer) = w.sim.control("POST", "/", &body).await;
        assert_eq!(code, 412, "{call}: {answer}");
        let expected = format!("<Code>{}</Code><Message>{}</Message>", DRY_RUN.0, DRY_RUN.1);
        assert!(answer.contains(&expected), "{call}: {answer}");
    }
    assert_eq!(snapshot(&w).await, before, "a dry run changes nothing");
    assert_eq!(
        heard.lock().unwrap().len(),
        heard_before,
        "nor tells a hook"
    );
    let stats = w.sim.stats();
    for call in &calls {
        let action = call.split('&').next().unwrap();
        let counted = stats.action(action);
        assert_eq!((counted.dry_runs, counted.errors), (1, 0), "{action}");
    }
    assert_eq!(stats.forced_detach_calls, 1, "a forced dry run is counted");
}

#[tokio::test]
async fn a_dry_run_uses_up_no_address_or_client_token() {
    let w = World::new().await;
    let create = |description: &str, dry_run: bool| {
        (w.ec2.create_network_interface())
            .subnet_id(&w.subnet)
            .description(description)
            .client_token("node-a/multus/0")
            .dry_run(dry_run)
            .send()
    };
    let error = create("first", true).await.unwrap_err();
    assert_eq!(error_of(&error), (DRY_RUN.0.into(), DRY_RUN.1.into()));
    assert_eq!(status(&error), 412);
    // Had the dry run recorded the token, other parameters would be a mismatch now.
    let created = create("second", false).await.unwrap();
    let eni = created.network_interface().unwrap();
    assert_eq!(eni.description(), Some("second"));
    assert_eq!(
        eni.private_ip_address(),
        Some("10.0.1.4"),
        "the first address"
    );
}

#[tokio::test]
async fn a_dry_run_that_would_fail_answers_the_real_error() {
    let w = World::new().await;
    let instance = w.instance("m5.xlarge");
    let (eni, other) = (w.create_eni(&w.subnet).await, w.create_eni(&w.subnet).await);
    let attachment = w.attach(&eni, &instance, 1, 0).await;
    // "Does this attachment still exist?", asked the way other ENI tools ask it.
    let probe = || {
        (w.ec2.detach_network_interface())
            .attachment_id(&attachment)
            .dry_run(true)
            .send()
    };
    assert_eq!(error_of(&probe().await.unwrap_err()).0, DRY_RUN.0);
    assert_eq!(
        w.eni_status(&eni).await,
        "in-use",
        "the probe detached nothing"
    );
    let in_use = (w.ec2.delete_network_interface())
        .network_interface_id(&eni)
        .dry_run(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_of(&in_use).0, "InvalidNetworkInterface.InUse");
    let taken = (w.ec2.attach_network_interface())
        .network_interface_id(&other)
        .instance_id(&instance)
        .device_index(1)
        .dry_run(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_of(&taken).0, "InvalidParameterValue");
    assert_eq!(status(&taken), 400);

    w.detach(&attachment, false).await.unwrap();
    let gone = probe().await.unwrap_err();
    assert_eq!(error_of(&gone).0, "InvalidAttachmentID.NotFound");
    let stats = w.sim.stats().action("DetachNetworkInterface");
    assert_eq!((stats.calls, stats.dry_runs, stats.errors), (3, 1, 1));
}

#[tokio::test]
async fn a_dry_run_takes_a_token_from_its_bucket() {
    // Two tokens that barely refill, so that the count is exact however slow the machine.
    let w = World::with(SimConfig {
        throttle: ThrottleConfig {
            mutating: Bucket::new(2.0, 0.001),
            ..ThrottleConfig::default()
        },
        ..SimConfig::default()
    })
    .await;
    let instance = w.instance("m5.large");
    let eni = w.create_eni(&w.subnet).await;
    let attach = |dry_run: bool| {
        (w.ec2.attach_network_interface())
            .network_interface_id(&eni)
            .instance_id(&instance)
            .device_index(1)
            .dry_run(dry_run)
            .send()
    };
    for _ in 0..2 {
        assert_eq!(error_of(&attach(true).await.unwrap_err()).0, DRY_RUN.0);
    }
    let throttled = attach(false).await.unwrap_err();
    assert_eq!(error_of(&throttled).0, "RequestLimitExceeded");
    let stats = w.sim.stats().action("AttachNetworkInterface");
    assert_eq!((stats.dry_runs, stats.throttled), (2, 1));
}
