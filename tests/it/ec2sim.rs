//! The EC2 simulator's own tests: every behaviour it models, asserted through a real
//! aws-sdk-ec2 client over HTTP (or, for the control endpoint, plain HTTP). Each test starts
//! its own simulator, so counters, buckets and faults never leak between tests.

mod addresses;
mod attachments;
mod behaviour;
mod describe;
mod detach;
mod dry_run;
mod interfaces;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::NetworkInterface;

use crate::support::ec2sim::{AttachmentEvent, SimConfig, Simulator, ThrottleConfig};

/// A simulator with one VPC, a subnet in each of two Availability Zones and a security group.
struct World {
    sim: Simulator,
    ec2: Client,
    vpc: String,
    subnet: String,
    subnet_b: String,
    group: String,
}

impl World {
    async fn new() -> World {
        World::with(quiet()).await
    }

    async fn with(config: SimConfig) -> World {
        let sim = Simulator::start(config).await;
        let vpc = sim.create_vpc("10.0.0.0/16");
        let subnet = sim.create_subnet(&vpc, "us-east-1a", "10.0.1.0/24", "multus-a");
        let subnet_b = sim.create_subnet(&vpc, "us-east-1b", "10.0.2.0/24", "multus-b");
        let group = sim.create_security_group(&vpc, "multus");
        let ec2 = sim.client();
        World {
            sim,
            ec2,
            vpc,
            subnet,
            subnet_b,
            group,
        }
    }

    /// The attachment events the simulator's hooks hear from now on.
    fn heard(&self) -> Arc<Mutex<Vec<AttachmentEvent>>> {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&heard);
        (self.sim).on_attachment(Box::new(move |event| sink.lock().unwrap().push(event)));
        heard
    }

    fn instance(&self, instance_type: &str) -> String {
        self.sim
            .run_instances(&self.subnet, instance_type, 1)
            .remove(0)
    }

    async fn create_eni(&self, subnet: &str) -> String {
        let created = self
            .ec2
            .create_network_interface()
            .subnet_id(subnet)
            .send()
            .await;
        let eni = created
            .expect("CreateNetworkInterface")
            .network_interface
            .expect("an ENI");
        eni.network_interface_id.expect("an ID")
    }

    async fn attach(&self, eni: &str, instance: &str, device: i32, card: i32) -> String {
        self.try_attach(eni, instance, device, card)
            .await
            .expect("AttachNetworkInterface")
    }

    async fn try_attach(
        &self,
        eni: &str,
        instance: &str,
        device: i32,
        card: i32,
    ) -> Result<String, (String, String)> {
        let attached = (self.ec2.attach_network_interface())
            .network_interface_id(eni)
            .instance_id(instance)
            .device_index(device)
            .network_card_index(card)
            .send()
            .await
            .map_err(|e| error_of(&e))?;
        Ok(attached.attachment_id.expect("an attachment ID"))
    }

    /// DetachNetworkInterface, forced or not.
    async fn detach(&self, attachment: &str, force: bool) -> Result<(), (String, String)> {
        (self.ec2.detach_network_interface())
            .attachment_id(attachment)
            .force(force)
            .send()
            .await
            .map(drop)
            .map_err(|e| error_of(&e))
    }

    /// The ENI's `Status`: `available`, `in-use`, `detaching`…
    async fn eni_status(&self, id: &str) -> String {
        let eni = self.eni(id).await;
        eni.status().expect("a status").as_str().to_owned()
    }

    async fn eni(&self, id: &str) -> NetworkInterface {
        self.try_eni(id).await.expect("DescribeNetworkInterfaces")
    }

    async fn try_eni(&self, id: &str) -> Result<NetworkInterface, (String, String)> {
        let described = (self.ec2.describe_network_interfaces())
            .network_interface_ids(id)
            .send()
            .await
            .map_err(|e| error_of(&e))?;
        Ok(described.network_interfaces()[0].clone())
    }
}

/// The default configuration with throttling off: only the throttling tests want it.
fn quiet() -> SimConfig {
    SimConfig {
        throttle: ThrottleConfig {
            enabled: false,
            ..ThrottleConfig::default()
        },
        ..SimConfig::default()
    }
}

/// The EC2 error code and message of a failed call.
fn error_of(error: &impl ProvideErrorMetadata) -> (String, String) {
    (
        error.code().unwrap_or("no code").to_owned(),
        error.message().unwrap_or("no message").to_owned(),
    )
}

/// The HTTP status of a failed SDK call.
fn status<E>(error: &aws_sdk_ec2::error::SdkError<E>) -> u16 {
    error
        .raw_response()
        .expect("an HTTP answer")
        .status()
        .as_u16()
}

/// Polls `probe` until it answers; a bound of seconds, far above the latencies under test,
/// only turns a hang into a failure.
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    for _ in 0..500 {
        if let Some(value) = probe().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within 5 s");
}
