//! The instance metadata service (IMDSv2) as a cross-check of the status: before the agent
//! first touches an ENI's interface, it asks which ENI the instance sees behind that MAC
//! (`/latest/meta-data/network/interfaces/macs/<mac>/interface-id`). Where metadata is not
//! reachable (not on EC2, or blocked), the MACs in the status are used alone.

use std::time::Duration;

use aws_config::imds::client::error::ImdsError;
use aws_config::provider_config::ProviderConfig;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

use crate::manager::mac::Mac;

/// The metadata client.
#[derive(Clone, Debug)]
pub struct Imds {
    client: aws_config::imds::Client,
}

/// What the instance says of a MAC.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The ENI behind the MAC.
    Eni(String),
    /// The instance does not list the MAC (yet: metadata lags a hot attach).
    Unknown,
    /// Metadata did not answer.
    Unreachable(String),
}

impl Imds {
    /// A client of the service at `endpoint` (`http://169.254.169.254` on EC2), quick to
    /// give up: a node without metadata must not wait on it.
    pub fn new(endpoint: &str) -> Result<Imds, String> {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let config = ProviderConfig::without_region().with_http_client(http);
        let client = aws_config::imds::Client::builder()
            .configure(&config)
            .endpoint(endpoint)
            .map_err(|error| format!("--imds-endpoint {endpoint}: {error}"))?
            .connect_timeout(Duration::from_millis(500))
            .read_timeout(Duration::from_secs(1))
            .max_attempts(1)
            .build();
        Ok(Imds { client })
    }

    /// The ENI the instance has behind `mac`.
    pub async fn interface_id(&self, mac: Mac) -> Lookup {
        let path = format!("/latest/meta-data/network/interfaces/macs/{mac}/interface-id");
        match self.client.get(path).await {
            Ok(id) => Lookup::Eni(id.as_ref().trim().to_string()),
            Err(ImdsError::ErrorResponse(response))
                if response.response().status().as_u16() == 404 =>
            {
                Lookup::Unknown
            }
            Err(error) => Lookup::Unreachable(error.to_string()),
        }
    }
}
