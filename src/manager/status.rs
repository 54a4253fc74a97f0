//! Writes the agent's reports into the NodeENIs' status by server-side apply.
//!
//! Each node's agent applies under a field manager of its own, with only its node's entries
//! and only the agent's fields (plus the list-map keys `nodeName` and `subnetID`). Server-side
//! apply then merges: the controller's fields of the same entries and the other nodes'
//! entries are untouched, and a field (or entry) this agent stops sending is removed.

use std::collections::HashMap;

use kube::Resource;
use kube::api::{Patch, PatchParams};
use kube::core::Request;
use serde_json::json;

use crate::api::{Attachment, NodeENI};
use crate::manager::report::{Reports, observed};

/// The longest field manager name the API server accepts.
const MAX_FIELD_MANAGER: usize = 128;

/// A status write that failed.
#[derive(Debug, thiserror::Error)]
#[error("writing the status of NodeENI {nodeeni}: {source}")]
pub struct StatusError {
    nodeeni: String,
    source: kube::Error,
}

impl StatusError {
    /// A stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match &self.source {
            kube::Error::Api(status) if status.code == 404 => "nodeeni_gone",
            kube::Error::Api(_) => "api_rejected",
            _ => "api_unreachable",
        }
    }

    /// A NodeENI deleted meanwhile needs no status; anything else is retried.
    pub fn is_transient(&self) -> bool {
        self.label() != "nodeeni_gone"
    }
}

/// The field manager of the agent on `node`: `multi-eni-manager/<node>`, with a long node
/// name shortened and made unique again by a hash of the whole name.
pub fn field_manager(node: &str) -> String {
    let manager = format!("multi-eni-manager/{node}");
    if manager.len() <= MAX_FIELD_MANAGER {
        return manager;
    }
    let hash = format!("-{:016x}", fnv1a(node.as_bytes()));
    let mut end = MAX_FIELD_MANAGER - hash.len();
    while !manager.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{hash}", &manager[..end])
}

/// FNV-1a: a hash that, unlike std's, is the same in every build.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Applies this node's reports, skipping NodeENIs whose status already says the same.
pub struct StatusWriter {
    client: kube::Client,
    node: String,
    params: PatchParams,
    /// What was last applied to each NodeENI, and the resourceVersion seen before: until
    /// the watch delivers a newer version, the store cannot show the write yet.
    applied: HashMap<String, (Vec<Attachment>, Option<String>)>,
}

impl StatusWriter {
    pub fn new(client: kube::Client, node: &str) -> StatusWriter {
        StatusWriter {
            client,
            node: node.into(),
            // The agent alone writes its fields: forcing takes them over from an earlier
            // manager name instead of failing on a conflict forever.
            params: PatchParams::apply(&field_manager(node)).force(),
            applied: HashMap::new(),
        }
    }

    /// Applies what differs between `reports` and the status of `nodeenis` (all of them);
    /// returns the errors (each NodeENI is tried, whatever the others do).
    pub async fn write(
        &mut self,
        nodeenis: impl IntoIterator<Item = &NodeENI>,
        reports: &Reports,
    ) -> Vec<StatusError> {
        let mut errors = Vec::new();
        for nodeeni in nodeenis {
            let name = nodeeni.metadata.name.clone().unwrap_or_default();
            let wanted = reports.get(&name).cloned().unwrap_or_default();
            let version = nodeeni.metadata.resource_version.clone();
            let pending = self.applied.get(&name) == Some(&(wanted.clone(), version.clone()));
            if pending || observed(nodeeni, &self.node) == wanted {
                continue;
            }
            match self.apply(&name, &wanted).await {
                Ok(()) => {
                    self.applied.insert(name, (wanted, version));
                }
                Err(error) if !error.is_transient() => {}
                Err(error) => errors.push(error),
            }
        }
        errors
    }

    /// Applies `entries` as this node's entries of the NodeENI.
    async fn apply(&self, nodeeni: &str, entries: &[Attachment]) -> Result<(), StatusError> {
        let patch = json!({
            "apiVersion": "networking.k8s.aws/v1alpha1",
            "kind": "NodeENI",
            "status": {"attachments": entries},
        });
        let error = |source| StatusError {
            nodeeni: nodeeni.into(),
            source,
        };
        let request = Request::new(NodeENI::url_path(&(), None))
            .patch_subresource("status", nodeeni, &self.params, &Patch::Apply(patch))
            .map_err(|e| error(kube::Error::BuildRequest(e)))?;
        // The answer (the whole NodeENI) is not decoded: the watch brings it anyway.
        self.client
            .request_text(request)
            .await
            .map(drop)
            .map_err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::field_manager;

    #[test]
    fn field_managers_fit_128_characters_and_stay_unique() {
        assert_eq!(
            field_manager("ip-10-0-1-5.ec2.internal"),
            "multi-eni-manager/ip-10-0-1-5.ec2.internal"
        );
        let long_a = format!("{}a", "n".repeat(252));
        let long_b = format!("{}b", "n".repeat(252));
        let (a, b) = (field_manager(&long_a), field_manager(&long_b));
        assert_eq!(a.len(), 128);
        assert_ne!(a, b);
        assert_eq!(a, field_manager(&long_a));
    }
}
