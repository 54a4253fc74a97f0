//! NetworkAttachmentDefinitions through kube's dynamic API (Multus's CRD is not ours: no
//! typed client for it). Ours are found by their label; a name taken by someone else is
//! reported, never changed.

use std::collections::BTreeSet;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use super::super::nads::{
    GROUP, KIND, MANAGED_BY, MANAGED_BY_LABEL, NODEENI_LABEL, Nad, PLURAL, VERSION,
};
use super::KubeIo;

/// What a create found.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    Created,
    /// The name is taken: by the NodeENI named, if it is ours, else by the user.
    Taken(Option<String>),
}

fn resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk(GROUP, VERSION, KIND);
    ApiResource::from_gvk_with_plural(&gvk, PLURAL)
}

fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

impl KubeIo {
    fn nads_in(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &resource())
    }

    /// Every NetworkAttachmentDefinition of ours, in one list call; `None` when the API
    /// server does not serve the kind (Multus's CRD is not installed).
    pub async fn our_nads(&self) -> kube::Result<Option<BTreeSet<Nad>>> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource());
        let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY}");
        let list = match api.list(&ListParams::default().labels(&selector)).await {
            Err(error) if status_code(&error) == Some(404) => return Ok(None),
            other => other?,
        };
        let nads = list
            .items
            .into_iter()
            .filter_map(|object| {
                Some(Nad {
                    nodeeni: object.metadata.labels.as_ref()?.get(NODEENI_LABEL)?.clone(),
                    namespace: object.metadata.namespace?,
                    name: object.metadata.name?,
                })
            })
            .collect();
        Ok(Some(nads))
    }

    /// Creates the NetworkAttachmentDefinition, labelled as ours, with no `spec.config`.
    pub async fn create_nad(&self, nad: &Nad) -> kube::Result<Created> {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": KIND,
            "metadata": {
                "name": nad.name,
                "namespace": nad.namespace,
                "labels": {MANAGED_BY_LABEL: MANAGED_BY, NODEENI_LABEL: nad.nodeeni},
            },
            "spec": {},
        }))
        .map_err(kube::Error::SerdeError)?;
        let api = self.nads_in(&nad.namespace);
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => Ok(Created::Created),
            Err(error) if status_code(&error) == Some(409) => {
                let existing = api.get(&nad.name).await?;
                let labels = existing.metadata.labels.unwrap_or_default();
                let ours = labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY);
                let owner = labels.get(NODEENI_LABEL).filter(|_| ours).cloned();
                if owner.as_ref() == Some(&nad.nodeeni) {
                    Ok(Created::Created)
                } else {
                    Ok(Created::Taken(owner))
                }
            }
            Err(error) => Err(error),
        }
    }

    /// Deletes a NetworkAttachmentDefinition of ours (gone already is fine).
    pub async fn delete_nad(&self, nad: &Nad) -> kube::Result<()> {
        match self
            .nads_in(&nad.namespace)
            .delete(&nad.name, &DeleteParams::default())
            .await
        {
            Err(error) if status_code(&error) == Some(404) => Ok(()),
            other => other.map(drop),
        }
    }
}
