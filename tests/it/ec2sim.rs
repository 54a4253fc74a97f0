//! The EC2 simulator's own tests, each through aws-sdk-ec2 over HTTP.

use crate::support::ec2sim::{SimConfig, Simulator};

#[tokio::test]
async fn smoke() {
    let sim = Simulator::start(SimConfig::default()).await;
    let vpc = sim.create_vpc("10.0.0.0/16");
    let subnet = sim.create_subnet(&vpc, "us-east-1a", "10.0.1.0/24", "a");
    let ec2 = sim.client();
    let out = ec2
        .describe_subnets()
        .subnet_ids(&subnet)
        .send()
        .await
        .unwrap();
    assert_eq!(out.subnets().len(), 1);
}
