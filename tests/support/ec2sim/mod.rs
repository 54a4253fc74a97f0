//! An EC2 simulator: an HTTP server speaking the EC2 Query protocol (as aws-sdk-ec2 and boto3
//! do) for the VPC, instance and ENI actions multi-eni uses, modelling what EC2 does and
//! simpler stand-ins do not: ClientToken idempotency, device-index conflicts, per-type and
//! per-card attachment limits, asynchronous attach and detach (held by the guest until it
//! releases the device, or forced, leaving the index blocked until the instance stops),
//! DeleteOnTermination at termination, DryRun, AWS's token-bucket throttling, eventual
//! consistency and injected faults.
//!
//! Runs in process for tests ([`Simulator::start`]) and standalone (`just ec2-sim ADDR`).
//! `/_sim/` on the same port is its JSON control endpoint (see `control.rs`).

mod actions;
mod config;
mod control;
mod error;
mod faults;
mod hooks;
mod instance_types;
mod query;
mod server;
mod state;
mod throttle;
mod xml;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{Bucket, SimConfig, ThrottleConfig};
pub use error::ApiError;
pub use faults::NextFault;
pub use hooks::{AttachmentEvent, AttachmentEventKind, DetachRequest, Hook, http_request};
pub use server::{ActionStats, Stats};

use actions::Launch;
use query::Tags;
use server::{Shared, lock};

/// An ENI's addresses, as [`Simulator::addresses`] reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EniAddresses {
    pub primary: Ipv4Addr,
    pub secondary: Vec<Ipv4Addr>,
    /// (first address, prefix length): `(10.0.1.16, 28)`.
    pub prefixes: Vec<(Ipv4Addr, u8)>,
}

impl EniAddresses {
    /// Whether `ip` is one of the ENI's addresses, or inside one of its prefixes.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let inside = |(base, len): &(Ipv4Addr, u8)| {
            let mask = u32::MAX << (32 - u32::from(*len));
            u32::from(ip) & mask == u32::from(*base)
        };
        ip == self.primary || self.secondary.contains(&ip) || self.prefixes.iter().any(inside)
    }

    /// Every address block: `10.0.1.5/32` per address, the primary first, then the prefixes.
    pub fn blocks(&self) -> Vec<String> {
        let single = std::iter::once(&self.primary).chain(&self.secondary);
        let mut blocks: Vec<String> = single.map(|ip| format!("{ip}/32")).collect();
        blocks.extend(
            self.prefixes
                .iter()
                .map(|(base, len)| format!("{base}/{len}")),
        );
        blocks
    }
}

fn addresses(shared: &Shared, eni_id: &str) -> Option<EniAddresses> {
    let world = lock(&shared.world);
    let eni = world.enis.get(eni_id)?;
    Some(EniAddresses {
        primary: eni.ips[0],
        secondary: eni.ips[1..].to_vec(),
        prefixes: (eni.prefixes.iter())
            .map(|p| (Ipv4Addr::from(p.base), p.prefix))
            .collect(),
    })
}

/// A running simulator; it stops when dropped.
pub struct Simulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl Simulator {
    /// Serves on a free loopback port, on the current tokio runtime.
    pub async fn start(config: SimConfig) -> Simulator {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        Simulator::serve(loopback, config)
            .await
            .expect("bind a loopback port")
    }

    /// Serves on `addr` (port 0: a free one), on the current tokio runtime.
    pub async fn serve(addr: SocketAddr, config: SimConfig) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        // Small answers on kept-alive connections: do not let Nagle hold them back.
        let listener = listener.tap_io(|stream| {
            let _ = stream.set_nodelay(true);
        });
        let shared = Arc::new(Shared::new(config));
        let app = server::router(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("ec2sim serves");
        });
        Ok(Simulator {
            shared,
            addr,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`: the EC2 endpoint URL, and `/_sim/` below it.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An aws-sdk-ec2 client for this simulator: region us-east-1, static credentials, and
    /// no retries, so that callers see every error the simulator answers.
    pub fn client(&self) -> aws_sdk_ec2::Client {
        use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region, retry::RetryConfig};
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let config = aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.endpoint_url())
            .credentials_provider(Credentials::new(
                "AKIDSIMULATOR",
                "secret",
                None,
                None,
                "ec2sim",
            ))
            .retry_config(RetryConfig::disabled())
            .http_client(http)
            .build();
        aws_sdk_ec2::Client::from_conf(config)
    }

    pub fn config(&self) -> SimConfig {
        lock(&self.shared.control).config.clone()
    }

    /// Takes effect for the next call; throttle buckets start full again.
    pub fn set_config(&self, config: SimConfig) {
        lock(&self.shared.control).set_config(config);
    }

    pub fn inject_fault(&self, fault: NextFault) {
        lock(&self.shared.control).faults.inject(fault);
    }

    pub fn stats(&self) -> Stats {
        lock(&self.shared.control).stats.clone()
    }

    /// Forgets every resource, counter and pending fault; keeps the configuration and hooks.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Calls `hook` when an attachment becomes `attached` and when an ENI is detached (once
    /// its guest releases it, when forced, or at termination). Primary ENIs give no events.
    pub fn on_attachment(&self, hook: Hook) {
        (self.shared.hooks.write())
            .unwrap_or_else(PoisonError::into_inner)
            .push(hook);
    }

    /// The instance's guest releases its devices itself from now on: a detach from it, while
    /// it runs, stays `detaching` (`on_request`, if any, hears of it) until `release`, or until
    /// a forced detach or a stop ends it. Other instances release after the detach latency.
    pub fn hold_detaches(
        &self,
        instance_id: &str,
        on_request: Option<Hook<DetachRequest>>,
    ) -> Result<(), ApiError> {
        self.shared.hold_detaches(instance_id, on_request)
    }

    /// The guest has released the device of a `detaching` attachment: the ENI is `available`.
    /// Errs when no detach of that attachment is waiting.
    pub fn release(&self, attachment_id: &str) -> Result<(), String> {
        self.shared.release(attachment_id)
    }

    /// The private IPv4 addresses and /28 prefixes EC2 has assigned to the ENI now (what the
    /// VPC delivers to and accepts from it); `None` when there is no such ENI.
    pub fn addresses(&self, eni_id: &str) -> Option<EniAddresses> {
        addresses(&self.shared, eni_id)
    }

    /// A call to the control endpoint over HTTP, as an outside process makes it:
    /// `control("POST", "/_sim/config", r#"{"error_rate": 1}"#)`. Returns status and body.
    pub async fn control(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let url = format!("{}{path}", self.endpoint_url());
        http_request(method, &url, body)
            .await
            .expect("the simulator answers")
    }

    /// [`Simulator::addresses`] for a task that outlives this borrow (the VPC fabric's).
    pub fn address_reader(&self) -> impl Fn(&str) -> Option<EniAddresses> + Send + Sync + 'static {
        let shared = Arc::clone(&self.shared);
        move |eni_id| addresses(&shared, eni_id)
    }

    // Setup shortcuts for tests and the sandbox: the same state changes as the EC2 actions,
    // without throttling, faults or counting. They panic on invalid input.

    /// A VPC (with its `default` security group).
    pub fn create_vpc(&self, cidr: &str) -> String {
        lock(&self.shared.world)
            .create_vpc(cidr, Tags::new())
            .expect("create a VPC")
    }

    /// A subnet tagged `Name=name`.
    pub fn create_subnet(&self, vpc_id: &str, az: &str, cidr: &str, name: &str) -> String {
        let tags = Tags::from([("Name".to_owned(), name.to_owned())]);
        lock(&self.shared.world)
            .create_subnet(vpc_id, az, cidr, tags)
            .expect("create a subnet")
    }

    pub fn create_security_group(&self, vpc_id: &str, name: &str) -> String {
        lock(&self.shared.world)
            .create_security_group(vpc_id, name, name, Tags::new())
            .expect("create a security group")
    }

    /// `count` running instances of the type in the subnet, each with its primary ENI.
    pub fn run_instances(&self, subnet_id: &str, instance_type: &str, count: usize) -> Vec<String> {
        let launch = Launch {
            subnet_id,
            instance_type,
            image_id: "ami-0123456789abcdef0",
            count,
            tags: Tags::new(),
        };
        let (_, ids) = lock(&self.shared.world)
            .run_instances(&launch, Instant::now())
            .expect("run instances");
        ids
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}
