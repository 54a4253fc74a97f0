//! The Kubernetes side of the migration from aws-multi-eni-controller: its status entries,
//! which block every write to a NodeENI once our CRD replaced its own.

use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::api::{NodeENI, NodeENIStatus};

/// Clears the status of every NodeENI whose status this version cannot read, and returns
/// their names. The predecessor's status entries (`nodeID`, `instanceID`, `eniID`,
/// `attachmentID`, `subnetID`, `subnetCIDR`, `mtu`, `deviceIndex`, `status: attached`,
/// `lastUpdated`) stay in etcd when our CRD replaces its own; the API server prunes from
/// what it reads the fields our schema does not know (`nodeID`, `status`, `lastUpdated`), and
/// what is left has no `nodeName`, which our schema requires of every entry. Until the status
/// is replaced, every write to the object is refused (422, `status.attachments[0].nodeName:
/// Required value`), a finalizer patch included, and a typed read fails. The controller then
/// writes the status anew from EC2. Done at every start, with or without adoption.
pub async fn clear_unreadable_statuses(client: &Client) -> kube::Result<Vec<String>> {
    let api: Api<DynamicObject> =
        Api::all_with(client.clone(), &ApiResource::erase::<NodeENI>(&()));
    let mut cleared = Vec::new();
    for object in api.list(&ListParams::default()).await? {
        let Some(status) = object.data.get("status") else {
            continue;
        };
        if serde_json::from_value::<NodeENIStatus>(status.clone()).is_ok() {
            continue;
        }
        let name = object.name_any();
        let patch = Patch::Merge(json!({"status": null}));
        api.patch_status(&name, &PatchParams::default(), &patch)
            .await?;
        tracing::info!(nodeeni = %name, "cleared a status this version cannot read (aws-multi-eni-controller's)");
        cleared.push(name);
    }
    Ok(cleared)
}
