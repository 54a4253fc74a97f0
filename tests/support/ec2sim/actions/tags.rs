//! CreateTags and DeleteTags on any resource the simulator knows, all or nothing.

use super::{Ctx, Xml, done};
use crate::support::ec2sim::error::ApiError;
use crate::support::ec2sim::query::{Params, Tags};

pub fn create_tags(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let tags = p.tags("Tag");
    if tags.is_empty() {
        return Err(ApiError::missing("Tag"));
    }
    change_tags(ctx, p, |resource| {
        for (key, value) in &tags {
            resource.insert(key.clone(), value.clone().unwrap_or_default());
        }
    })?;
    done(x);
    Ok(())
}

/// Without `Tag.N`, every tag goes; a tag given with a value goes only if the value matches.
pub fn delete_tags(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let tags = p.tags("Tag");
    change_tags(ctx, p, |resource| {
        if tags.is_empty() {
            resource.clear();
        }
        for (key, value) in &tags {
            if value.is_none() || resource.get(key) == value.as_ref() {
                resource.remove(key);
            }
        }
    })?;
    done(x);
    Ok(())
}

fn change_tags(ctx: &mut Ctx, p: &Params, change: impl Fn(&mut Tags)) -> Result<(), ApiError> {
    let ids = p.list("ResourceId");
    if ids.is_empty() {
        return Err(ApiError::missing("ResourceId"));
    }
    for id in &ids {
        ctx.world.tags_mut(id, ctx.now)?;
    }
    for id in &ids {
        change(ctx.world.tags_mut(id, ctx.now)?);
    }
    Ok(())
}
