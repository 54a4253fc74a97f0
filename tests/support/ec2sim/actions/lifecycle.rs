//! The instance lifecycle: StopInstances and StartInstances, and TerminateInstances with EC2's
//! DeleteOnTermination rule. Stop and start complete at once. ENIs stay attached through a stop
//! and a start, as in EC2; a stop is what frees the device indexes forced detaches left blocked
//! (see `attach.rs`).

use super::{Ctx, Xml};
use crate::support::ec2sim::error::ApiError;
use crate::support::ec2sim::hooks::{AttachmentEvent, AttachmentEventKind};
use crate::support::ec2sim::query::Params;
use crate::support::ec2sim::state::{AttachState, InstanceState, World};

impl World {
    /// Deletes the attached ENIs whose attachment says DeleteOnTermination and detaches the
    /// others, which become `available`.
    fn terminate(&mut self, instance_id: &str, events: &mut Vec<AttachmentEvent>) {
        let mut attached: Vec<_> = (self.enis_of(instance_id))
            .filter_map(|e| Some((e.attachment.as_ref()?.slot(), e.id.clone())))
            .collect();
        attached.sort();
        for (_, eni_id) in attached {
            let eni = self.enis.get_mut(&eni_id).expect("listed");
            let attachment = eni.attachment.take().expect("attached");
            // Hooks heard of every attachment but the primary once it was attached.
            if !attachment.is_primary() && attachment.state != AttachState::Attaching {
                events.push(AttachmentEvent::new(
                    AttachmentEventKind::Detached,
                    eni,
                    &attachment,
                ));
            }
            if attachment.delete_on_termination {
                self.remove_interface(&eni_id);
            }
        }
        self.set_state(instance_id, InstanceState::Terminated);
    }

    /// Stops the instance. Its guest goes with it, so the detaches it was holding complete,
    /// and so do the device indexes forced detaches left blocked: the DetachNetworkInterface
    /// reference says a forced detach may keep the index from a new attachment "without first
    /// stopping and starting the instance". Which of the two frees it, it does not say; here
    /// the stop does.
    fn stop(&mut self, instance_id: &str, events: &mut Vec<AttachmentEvent>) {
        let detaching: Vec<String> = (self.enis_of(instance_id))
            .filter(|e| (e.attachment.as_ref()).is_some_and(|a| a.state == AttachState::Detaching))
            .map(|e| e.id.clone())
            .collect();
        for eni_id in detaching {
            events.extend(self.finish_detach(&eni_id));
        }
        self.set_state(instance_id, InstanceState::Stopped);
        if let Some(instance) = self.instances.get_mut(instance_id) {
            instance.blocked.clear();
        }
    }

    fn set_state(&mut self, instance_id: &str, state: InstanceState) {
        if let Some(instance) = self.instances.get_mut(instance_id) {
            instance.state = state;
        }
    }
}

/// The instances the call names with their states, all checked before anything changes (EC2
/// changes every instance of a call or none). A terminated one fails with `IncorrectInstanceState`
/// unless `terminated_ok`; `verb` completes "not in a state from which it can be …".
fn targets(
    ctx: &Ctx,
    p: &Params,
    verb: &str,
    terminated_ok: bool,
) -> Result<Vec<(String, InstanceState)>, ApiError> {
    let ids = p.list("InstanceId");
    if ids.is_empty() {
        return Err(ApiError::missing("InstanceId"));
    }
    let mut targets = Vec::new();
    for id in ids {
        let state = ctx.world.instance(&id)?.state;
        if state == InstanceState::Terminated && !terminated_ok {
            return Err(ApiError::new(
                "IncorrectInstanceState",
                format!("The instance '{id}' is not in a state from which it can be {verb}."),
            ));
        }
        targets.push((id, state));
    }
    Ok(targets)
}

/// `<instancesSet>` of InstanceStateChange items: each instance's state now and before.
fn state_changes(x: &mut Xml, world: &World, changes: &[(String, InstanceState)]) {
    x.items("instancesSet", changes, |x, (id, before)| {
        let (code, name) = world.instances[id].state.code_and_name();
        let (before_code, before_name) = before.code_and_name();
        x.leaf("instanceId", id)
            .node("currentState", |x| {
                x.leaf("code", code).leaf("name", name);
            })
            .node("previousState", |x| {
                x.leaf("code", before_code).leaf("name", before_name);
            });
    });
}

/// Stopping a stopped instance changes nothing and succeeds, as in EC2.
pub fn stop_instances(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let changes = targets(ctx, p, "stopped", false)?;
    for (id, before) in &changes {
        if *before == InstanceState::Running {
            ctx.world.stop(id, &mut ctx.events);
        }
    }
    state_changes(x, ctx.world, &changes);
    Ok(())
}

/// Starting a running instance changes nothing and succeeds, as in EC2.
pub fn start_instances(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let changes = targets(ctx, p, "started", false)?;
    for (id, _) in &changes {
        ctx.world.set_state(id, InstanceState::Running);
    }
    state_changes(x, ctx.world, &changes);
    Ok(())
}

pub fn terminate_instances(ctx: &mut Ctx, p: &Params, x: &mut Xml) -> Result<(), ApiError> {
    let changes = targets(ctx, p, "terminated", true)?;
    for (id, _) in &changes {
        ctx.world.terminate(id, &mut ctx.events);
    }
    state_changes(x, ctx.world, &changes);
    Ok(())
}
