//! Changes to an existing ENI's attributes: ModifyNetworkInterfaceAttribute (the attachment's
//! DeleteOnTermination, source/dest check, description, security groups). Its addresses
//! change in `addresses.rs`.

use super::{Ctx, Xml, done};
use crate::support::ec2sim::error::ApiError;
use crate::support::ec2sim::query::Params;

pub fn modify(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let id = p.required("NetworkInterfaceId")?;
    let eni = ctx.world.eni(id, ctx.now)?;
    let groups = p.list("SecurityGroupId");
    let groups = if groups.is_empty() {
        None
    } else {
        Some(
            ctx.world
                .groups_in_vpc(&groups, &eni.vpc_id, &eni.subnet_id)?,
        )
    };
    let attachment = match p.get("Attachment.AttachmentId") {
        Some(attachment_id) => {
            let attached = eni
                .attachment
                .as_ref()
                .is_some_and(|a| a.id == attachment_id);
            if !attached {
                return Err(ApiError::not_found(
                    "InvalidAttachmentID.NotFound",
                    "attachment",
                    attachment_id,
                ));
            }
            p.bool("Attachment.DeleteOnTermination")?
        }
        None => None,
    };
    let source_dest_check = p.bool("SourceDestCheck.Value")?;
    let description = p.get("Description.Value");
    if groups.is_none()
        && attachment.is_none()
        && source_dest_check.is_none()
        && description.is_none()
    {
        return Err(ApiError::combination("No attributes specified."));
    }
    let eni = ctx.world.eni_mut(id, ctx.now)?;
    if let (Some(dot), Some(a)) = (attachment, eni.attachment.as_mut()) {
        a.delete_on_termination = dot;
    }
    eni.groups = groups.unwrap_or_else(|| eni.groups.clone());
    eni.source_dest_check = source_dest_check.unwrap_or(eni.source_dest_check);
    if let Some(description) = description {
        description.clone_into(&mut eni.description);
    }
    done(x);
    Ok(())
}
