//! Attach and detach with EC2's checks (running instance, same Availability Zone, free device
//! index per network card, the type's interface limits) and its asynchronous states:
//! `attaching` → `attached`, `detaching` → `available`, each after its configured latency.

use std::time::{Duration, SystemTime};

use super::{Ctx, Xml, done};
use crate::support::ec2sim::error::ApiError;
use crate::support::ec2sim::hooks::{AttachmentEvent, AttachmentEventKind};
use crate::support::ec2sim::instance_types;
use crate::support::ec2sim::query::Params;
use crate::support::ec2sim::state::{AttachState, Attachment, World};

/// The end of a transitional attachment state (`attaching` or `detaching`), due after `after`.
pub struct Pending {
    pub eni_id: String,
    pub attachment_id: String,
    pub from: AttachState,
    pub after: Duration,
}

impl World {
    /// Completes the transition if the attachment is still where it was left: a reset, a
    /// termination or a detach in between makes it moot.
    pub fn complete(&mut self, pending: &Pending) -> Option<AttachmentEvent> {
        let eni = self.enis.get_mut(&pending.eni_id)?;
        let attachment = eni.attachment.as_mut()?;
        if attachment.id != pending.attachment_id || attachment.state != pending.from {
            return None;
        }
        match pending.from {
            AttachState::Attaching => {
                attachment.state = AttachState::Attached;
                let attachment = attachment.clone();
                Some(AttachmentEvent::new(
                    AttachmentEventKind::Attached,
                    eni,
                    &attachment,
                ))
            }
            AttachState::Detaching => {
                let attachment = eni.attachment.take()?;
                Some(AttachmentEvent::new(
                    AttachmentEventKind::Detached,
                    eni,
                    &attachment,
                ))
            }
            AttachState::Attached => None,
        }
    }
}

/// Completes the transition now when its latency is zero, so that tests see a deterministic
/// state, else leaves it to a timer.
fn advance(ctx: &mut Ctx, pending: Pending) {
    if pending.after.is_zero() {
        ctx.events.extend(ctx.world.complete(&pending));
    } else {
        ctx.pending.push(pending);
    }
}

pub fn attach(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let eni_id = p.required("NetworkInterfaceId")?;
    let instance_id = p.required("InstanceId")?;
    let device_index = p
        .int("DeviceIndex")?
        .ok_or_else(|| ApiError::missing("DeviceIndex"))?;
    let card_index = p.int("NetworkCardIndex")?.unwrap_or(0);
    check_attach(ctx, eni_id, instance_id, device_index, card_index)?;
    let attachment = Attachment {
        id: ctx.world.new_id("eni-attach"),
        instance_id: instance_id.to_owned(),
        device_index,
        card_index,
        state: AttachState::Attaching,
        time: SystemTime::now(),
        delete_on_termination: false,
    };
    x.leaf("attachmentId", &attachment.id)
        .leaf("networkCardIndex", card_index);
    let pending = Pending {
        eni_id: eni_id.to_owned(),
        attachment_id: attachment.id.clone(),
        from: AttachState::Attaching,
        after: Duration::from_millis(ctx.config.attach_latency_ms),
    };
    ctx.world.eni_mut(eni_id, ctx.now)?.attachment = Some(attachment);
    advance(ctx, pending);
    Ok(())
}

fn check_attach(
    ctx: &Ctx,
    eni_id: &str,
    instance_id: &str,
    device_index: i64,
    card_index: i64,
) -> Result<(), ApiError> {
    let instance = ctx.world.instance(instance_id)?;
    let eni = ctx.world.eni(eni_id, ctx.now)?;
    if !instance.running {
        return Err(ApiError::new(
            "IncorrectInstanceState",
            format!("The instance '{instance_id}' is not 'running'."),
        ));
    }
    if eni.attachment.is_some() {
        return Err(ApiError::new(
            "InvalidNetworkInterface.InUse",
            format!("Interface: [{eni_id}] in use."),
        ));
    }
    if eni.az != instance.az {
        return Err(ApiError::combination(
            "You may not attach a network interface to an instance if they are not in the same availability zone",
        ));
    }
    let limits = instance_types::find(&instance.type_name).expect("launched types are known");
    if !(0..i64::from(limits.network_cards)).contains(&card_index) {
        return Err(ApiError::invalid_value(format!(
            "Invalid network card index {card_index} for instance type {}",
            limits.name
        )));
    }
    let attached: Vec<_> = (ctx.world.enis_of(instance_id))
        .filter_map(|e| e.attachment.as_ref())
        .collect();
    if (attached.iter()).any(|a| a.card_index == card_index && a.device_index == device_index) {
        return Err(ApiError::invalid_value(format!(
            "Instance '{instance_id}' already has an interface attached at device index '{device_index}'."
        )));
    }
    let on_card = attached
        .iter()
        .filter(|a| a.card_index == card_index)
        .count();
    let over = if attached.len() >= limits.max_interfaces as usize {
        Some(attached.len() + 1)
    } else {
        (on_card >= limits.per_card() as usize).then_some(on_card + 1)
    };
    if let Some(count) = over {
        return Err(ApiError::new(
            "AttachmentLimitExceeded",
            format!(
                "Interface count {count} exceeds the limit for {}",
                limits.name
            ),
        ));
    }
    Ok(())
}

pub fn detach(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let attachment_id = p.required("AttachmentId")?;
    let eni = ctx.world.attached_eni_mut(attachment_id)?;
    let attachment = eni.attachment.as_mut().expect("found by its attachment");
    if attachment.is_primary() {
        return Err(ApiError::new(
            "OperationNotPermitted",
            "The network interface at device index 0 cannot be detached.",
        ));
    }
    match attachment.state {
        AttachState::Attaching => {
            return Err(ApiError::new(
                "IncorrectState",
                format!(
                    "The attachment '{attachment_id}' is not in a valid state for this operation."
                ),
            ));
        }
        AttachState::Detaching => {}
        AttachState::Attached => {
            attachment.state = AttachState::Detaching;
            let pending = Pending {
                eni_id: eni.id.clone(),
                attachment_id: attachment_id.to_owned(),
                from: AttachState::Detaching,
                after: Duration::from_millis(ctx.config.detach_latency_ms),
            };
            advance(ctx, pending);
        }
    }
    done(x);
    Ok(())
}
