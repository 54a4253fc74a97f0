//! The EC2 boundary: the only module that speaks aws-sdk-ec2. It offers EC2 operations in the
//! project's own types ([`types`]); every call passes a client-side rate limiter, is counted,
//! and has its errors sorted once ([`Error`]).

mod convert;
mod enis;
mod error;
mod limiter;
mod lookups;
mod metrics;
pub mod types;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use aws_sdk_ec2::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_ec2::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_ec2::error::{BoxError, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

pub use error::{Error, ErrorKind, classify};
pub use limiter::{Bucket, Limiter};
pub use metrics::{AttemptLabels, CallLabels, Ec2Metrics};

/// How to reach EC2.
#[derive(Clone, Debug, Default)]
pub struct Ec2Config {
    /// Region; `None` for the SDK's chain (`AWS_REGION`, profile, instance metadata).
    pub region: Option<String>,
    /// Endpoint; `None` for the SDK's (which honours `AWS_ENDPOINT_URL_EC2`).
    pub endpoint_url: Option<String>,
    /// Fraction of AWS's throttling rates to stay within; `None` for no client-side limit.
    pub budget: Option<f64>,
}

/// EC2, as multi-eni uses it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Ec2 {
    client: aws_sdk_ec2::Client,
    limiter: Arc<Limiter>,
    metrics: Ec2Metrics,
    limits_cache: Arc<Mutex<HashMap<String, types::NetworkLimits>>>,
}

impl Ec2 {
    /// Connects with the SDK's usual configuration sources: region and credentials from the
    /// environment, profile, web identity (IRSA), EKS Pod Identity or instance metadata.
    pub async fn connect(config: &Ec2Config) -> Ec2 {
        let mut loader =
            aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client());
        if let Some(region) = &config.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let shared = loader.load().await;
        Ec2::new(aws_sdk_ec2::Client::new(&shared), config.budget)
    }

    /// Wraps an SDK client (its retry configuration is kept: standard mode retries
    /// throttling and 5xx with exponential backoff and jitter).
    pub fn new(client: aws_sdk_ec2::Client, budget: Option<f64>) -> Ec2 {
        Ec2 {
            client,
            limiter: Arc::new(Limiter::new(budget)),
            metrics: Ec2Metrics::default(),
            limits_cache: Arc::default(),
        }
    }

    pub fn metrics(&self) -> &Ec2Metrics {
        &self.metrics
    }

    /// Runs one SDK call: waits for the bucket, counts attempts and the outcome, sorts errors.
    /// `send` gets an interceptor to pass to the operation's `customize()`.
    async fn call<T, E, F, Fut>(
        &self,
        action: &'static str,
        bucket: Bucket,
        send: F,
    ) -> Result<T, Error>
    where
        F: FnOnce(AttemptCounter) -> Fut,
        Fut: Future<Output = Result<T, SdkError<E>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.limiter.acquire(action, bucket).await;
        let counter = AttemptCounter {
            action,
            metrics: self.metrics.clone(),
        };
        let result = send(counter)
            .await
            .map_err(|error| Error::from_sdk(action, &error));
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error.kind.label(),
        };
        self.metrics
            .calls
            .get_or_create(&CallLabels { action, outcome })
            .inc();
        if let Err(error) = &result {
            tracing::debug!(%error, "EC2 call failed");
        }
        result
    }
}

/// The HTTP(S) client for aws-sdk-ec2: rustls with ring (the SDK's default features, which
/// would bring a second TLS stack, are off).
pub fn https_client() -> aws_sdk_ec2::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Counts every HTTP attempt of one call, so that throttling absorbed by retries shows.
#[derive(Debug)]
struct AttemptCounter {
    action: &'static str,
    metrics: Ec2Metrics,
}

impl Intercept for AttemptCounter {
    fn name(&self) -> &'static str {
        "multi-eni attempt counter"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let result = match context
            .response()
            .map(|response| response.status().as_u16())
        {
            None => "no_response",
            Some(503) => "throttled",
            Some(status) if status >= 500 => "server_error",
            Some(status) if status >= 400 => "client_error",
            Some(_) => "ok",
        };
        self.metrics
            .attempts
            .get_or_create(&AttemptLabels {
                action: self.action,
                result,
            })
            .inc();
        Ok(())
    }
}
