//! Writes the agent's reports into its node's ENINode status by server-side apply, under the
//! one field manager `multi-eni-manager` (the agents of all nodes share it: each writes its
//! own object only, and the API server's admission policy refuses any other), only when they
//! differ from what is there.

use crate::manager::metrics::AgentMetrics;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use kube::api::{Patch, PatchParams};
use kube::core::Request;
use serde_json::json;

use crate::api::{ENINode, ENINodeStatus};
use crate::manager::report::{Reports, differs, same, status};

/// The agent's field manager for server-side apply.
pub const FIELD_MANAGER: &str = "multi-eni-manager";

/// A status write that failed.
#[derive(Debug, thiserror::Error)]
#[error("writing the status of ENINode {node}: {source}")]
pub struct StatusError {
    node: String,
    source: kube::Error,
}

impl StatusError {
    /// A stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match &self.source {
            kube::Error::Api(status) if status.code == 404 => "eninode_gone",
            kube::Error::Api(_) => "api_rejected",
            _ => "api_unreachable",
        }
    }

    /// An ENINode deleted meanwhile needs no status; anything else is retried.
    pub fn is_transient(&self) -> bool {
        self.label() != "eninode_gone"
    }
}

/// Applies this node's reports, skipping a status that already says the same.
pub struct StatusWriter {
    client: kube::Client,
    node: String,
    params: PatchParams,
    /// What was last applied, and the resourceVersion seen before: until the watch delivers
    /// a newer version, the object cannot show the write yet.
    applied: Option<(ENINodeStatus, Option<String>)>,
    metrics: AgentMetrics,
}

impl StatusWriter {
    /// Writes `node`'s status through `client`, counting its applies in `metrics`.
    pub fn new(client: kube::Client, node: &str, metrics: AgentMetrics) -> StatusWriter {
        StatusWriter {
            client,
            node: node.into(),
            // The agent alone writes the status: forcing takes its fields over from any
            // earlier manager instead of failing on a conflict forever.
            params: PatchParams::apply(FIELD_MANAGER).force(),
            applied: None,
            metrics,
        }
    }

    /// Applies `reports` to `eninode` (this node's, as the watch has it) if they differ from
    /// its status. Without an ENINode there is nothing to report on.
    pub async fn write(
        &mut self,
        eninode: Option<&ENINode>,
        reports: &Reports,
    ) -> Result<(), StatusError> {
        let Some(eninode) = eninode else {
            return Ok(());
        };
        let current = eninode.status.as_ref();
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let wanted = status(reports.clone(), eninode.metadata.generation, current, now);
        let version = eninode.metadata.resource_version.clone();
        let pending = self
            .applied
            .as_ref()
            .is_some_and(|(applied, at)| *at == version && same(applied, &wanted));
        if pending || !differs(current, &wanted) {
            return Ok(());
        }
        let result = self.apply(&wanted).await;
        let label = result.as_ref().err().map_or("ok", StatusError::label);
        self.metrics.status_write(label);
        match result {
            Ok(()) => {
                self.applied = Some((wanted, version));
                Ok(())
            }
            Err(error) if !error.is_transient() => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn apply(&self, status: &ENINodeStatus) -> Result<(), StatusError> {
        let patch = json!({
            "apiVersion": "networking.k8s.aws/v1alpha1",
            "kind": "ENINode",
            "status": status,
        });
        let error = |source| StatusError {
            node: self.node.clone(),
            source,
        };
        let request = Request::new(ENINode::url_path(&(), None))
            .patch_subresource("status", &self.node, &self.params, &Patch::Apply(patch))
            .map_err(|e| error(kube::Error::BuildRequest(e)))?;
        // The answer (the whole ENINode) is not decoded: the watch brings it anyway.
        self.client
            .request_text(request)
            .await
            .map(drop)
            .map_err(error)
    }
}
