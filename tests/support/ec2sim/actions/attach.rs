//! Attach and detach with EC2's checks (an instance not terminated, same Availability Zone,
//! free device index per network card, the type's interface limits) and its asynchronous
//! states: `attaching` → `attached` after the attach latency, `detaching` → `available` once
//! the guest releases the device (after the detach latency, or when a guest that holds its
//! detaches says so), or at once when forced.

use std::time::{Duration, SystemTime};

use super::addresses::check_type;
use super::{Ctx, Xml, done};
use crate::support::ec2sim::error::ApiError;
use crate::support::ec2sim::hooks::{AttachmentEvent, AttachmentEventKind, DetachRequest};
use crate::support::ec2sim::instance_types;
use crate::support::ec2sim::query::Params;
use crate::support::ec2sim::state::{AttachState, Attachment, InstanceState, World};

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
            AttachState::Detaching => self.finish_detach(&pending.eni_id),
            AttachState::Attached => None,
        }
    }

    /// Ends the ENI's attachment: the ENI is `available`, and the event tells the hooks.
    pub fn finish_detach(&mut self, eni_id: &str) -> Option<AttachmentEvent> {
        let eni = self.enis.get_mut(eni_id)?;
        let attachment = eni.attachment.take()?;
        Some(AttachmentEvent::new(
            AttachmentEventKind::Detached,
            eni,
            &attachment,
        ))
    }

    /// The guest has released the device of a `detaching` attachment: the detach completes.
    pub fn release(&mut self, attachment_id: &str) -> Result<AttachmentEvent, String> {
        let detaching = self.enis.values().find(|eni| {
            (eni.attachment.as_ref())
                .is_some_and(|a| a.id == attachment_id && a.state == AttachState::Detaching)
        });
        let eni_id = detaching
            .map(|eni| eni.id.clone())
            .ok_or_else(|| format!("no detach of attachment '{attachment_id}' is waiting"))?;
        Ok(self.finish_detach(&eni_id).expect("detaching"))
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
    // A stopped instance takes attachments too ("warm attach", EC2 user guide).
    if instance.state == InstanceState::Terminated {
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
    let slot = (card_index, device_index);
    // A slot a forced detach left blocked fails as an occupied one: EC2 documents that the
    // index may stay unusable, not with which error; this is the error for a taken index.
    if (attached.iter()).any(|a| a.slot() == slot) || instance.blocked.contains(&slot) {
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
    let addresses = eni.address_count();
    let over = ApiError::new(
        "InvalidInterface.IpAddressLimitExceeded",
        format!(
            "Address count {addresses} on interface-{} exceeds the limit for {}",
            eni_id.trim_start_matches("eni-"),
            limits.name
        ),
    );
    check_type(limits, addresses, eni.prefixes.len(), over)
}

/// DetachNetworkInterface. Without `Force` the attachment goes `detaching` until the guest
/// releases the device. With `Force` (the API reference: "only as a last resort to detach a
/// network interface from a failed instance") it ends at once whether or not the guest let go,
/// and the running instance keeps the device index blocked until it stops: the reference warns
/// "you might not be able to attach a different network interface to the same index on the
/// instance without first stopping and starting the instance". (Its other warning, that
/// instance metadata may still show the old interface, has no counterpart here: the simulator
/// serves no instance metadata.)
pub fn detach(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let attachment_id = p.required("AttachmentId")?;
    let force = p.bool("Force")?.unwrap_or(false);
    let eni = ctx.world.attached_eni_mut(attachment_id)?;
    let eni_id = eni.id.clone();
    let attachment = eni.attachment.clone().expect("found by its attachment");
    if attachment.is_primary() {
        return Err(ApiError::new(
            "OperationNotPermitted",
            "The network interface at device index 0 cannot be detached.",
        ));
    }
    if attachment.state == AttachState::Attaching {
        return Err(ApiError::new(
            "IncorrectState",
            format!("The attachment '{attachment_id}' is not in a valid state for this operation."),
        ));
    }
    let instance = ctx.world.instance(&attachment.instance_id)?;
    let running = instance.state == InstanceState::Running;
    let held = running && instance.guest_releases;
    if force {
        ctx.events.extend(ctx.world.finish_detach(&eni_id));
        let instance = (ctx.world.instances.get_mut(&attachment.instance_id)).expect("looked up");
        if running {
            instance.blocked.insert(attachment.slot());
        }
    } else if attachment.state == AttachState::Attached {
        let eni = ctx.world.enis.get_mut(&eni_id).expect("looked up");
        let detaching = eni.attachment.as_mut().expect("attached");
        detaching.state = AttachState::Detaching;
        if held {
            ctx.requests.push(DetachRequest::new(eni, &attachment));
        } else {
            let pending = Pending {
                eni_id,
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
