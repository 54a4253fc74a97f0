//! The executor: performs one planned action against EC2 and says what came of it. It keeps
//! the controller's view of the owned ENIs up to date with its own mutations, so that the
//! next plan needs no describe call to know what it just did.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ec2::types::{Assigned, AttachmentStatus, Eni, EniAttachment, EniStatus};
use crate::ec2::{Ec2, Error as Ec2Error, ErrorKind};
use crate::ownership::{CLUSTER_TAG, Owner};

use super::plan::{Action, AttachTo};

/// The owned ENIs as last described, patched with our own mutations since.
#[derive(Debug, Default)]
pub struct View {
    pub enis: BTreeMap<String, Eni>,
    pub refreshed: Option<Instant>,
    /// Something happened that the view cannot know (an error mid-way): describe again.
    pub stale: bool,
    /// When our own mutations last changed each ENI.
    touched: BTreeMap<String, Instant>,
}

impl View {
    /// Takes a describe's answer, sent at `sent`. What we changed after it was sent is newer
    /// than the answer and is kept (else an attach under way would look undone, and be done
    /// twice).
    pub fn replace(&mut self, enis: Vec<Eni>, sent: Instant) {
        self.take(None, enis, sent);
        self.stale = false;
    }

    /// Takes the answer of a describe of just `ids`, sent at `sent`: an ID missing from it
    /// is gone from EC2 (unless we changed it since).
    pub fn update(&mut self, ids: &[String], enis: Vec<Eni>, sent: Instant) {
        self.take(Some(ids), enis, sent);
    }

    /// Puts the answer of a describe of `ids` (`None`: of every ENI) sent at `sent` in place
    /// of what the view held of them, keeping what we changed since.
    fn take(&mut self, ids: Option<&[String]>, enis: Vec<Eni>, sent: Instant) {
        self.touched.retain(|_, at| *at >= sent);
        let ours: Vec<(String, Option<Eni>)> = (self.touched.keys())
            .map(|id| (id.clone(), self.enis.get(id).cloned()))
            .collect();
        match ids {
            None => self.enis.clear(),
            Some(ids) => ids.iter().for_each(|id| drop(self.enis.remove(id))),
        }
        (self.enis).extend(enis.into_iter().map(|eni| (eni.id.clone(), eni)));
        for (id, eni) in ours {
            match eni {
                Some(eni) => self.enis.insert(id, eni),
                None => self.enis.remove(&id),
            };
        }
        self.refreshed = Some(sent);
    }

    fn upsert(&mut self, eni: Eni) {
        self.touched.insert(eni.id.clone(), Instant::now());
        self.enis.insert(eni.id.clone(), eni);
    }

    fn forget(&mut self, eni_id: &str) {
        self.touched.insert(eni_id.to_owned(), Instant::now());
        self.enis.remove(eni_id);
    }

    fn modify(&mut self, eni_id: &str, change: impl FnOnce(&mut Eni)) {
        if let Some(eni) = self.enis.get_mut(eni_id) {
            change(eni);
            self.touched.insert(eni_id.to_owned(), Instant::now());
        }
    }

    /// Whether an attach or detach of ours is still in progress (EC2 finishes them
    /// asynchronously); ENIs of the predecessor not adopted yet do not count.
    pub fn in_transition(&self) -> bool {
        self.transitioning().next().is_some()
    }

    /// Our ENIs whose attach or detach is still in progress.
    pub fn transitioning(&self) -> impl Iterator<Item = &str> {
        let ours = (self.enis.values()).filter(|eni| eni.tags.contains_key(CLUSTER_TAG));
        ours.filter(|eni| {
            matches!(eni.status, EniStatus::Attaching | EniStatus::Detaching)
                || eni
                    .attachment
                    .as_ref()
                    .is_some_and(|a| a.status != AttachmentStatus::Attached)
        })
        .map(|eni| eni.id.as_str())
    }
}

/// What an action led to, for events and for the next plan.
#[derive(Debug)]
pub enum Outcome {
    Done(Vec<Step>),
    /// Some steps were done, then one failed.
    Failed {
        done: Vec<Step>,
        slot: Option<Owner>,
        error: Ec2Error,
    },
}

/// One EC2 mutation that succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Created {
        eni_id: String,
    },
    Attached {
        eni_id: String,
        instance: String,
        device_index: i32,
    },
    Modified {
        eni_id: String,
    },
    /// More pod addresses (AssignPrivateIpAddresses).
    AddressesAssigned {
        eni_id: String,
        private_ips: usize,
        ipv4_prefixes: usize,
    },
    /// Tagged as this cluster's (an ENI of the predecessor).
    Adopted {
        eni_id: String,
    },
    Detached {
        eni_id: String,
    },
    Deleted {
        eni_id: String,
    },
}

/// Performs `action`, recording every step in `view`.
pub async fn execute(ec2: &Ec2, view: &Arc<Mutex<View>>, action: Action) -> Outcome {
    let mut done = Vec::new();
    let slot = action.slot().cloned();
    match run(ec2, view, action, &mut done).await {
        Ok(()) => Outcome::Done(done),
        Err(error) => {
            view.lock().expect("view lock").stale = true;
            Outcome::Failed { done, slot, error }
        }
    }
}

async fn run(
    ec2: &Ec2,
    view: &Arc<Mutex<View>>,
    action: Action,
    done: &mut Vec<Step>,
) -> Result<(), Ec2Error> {
    let update = |f: &dyn Fn(&mut View)| f(&mut view.lock().expect("view lock"));
    match action {
        Action::Create {
            new,
            source_dest_check,
            attach,
            ..
        } => {
            let eni = ec2.create_eni(&new).await?;
            let eni_id = eni.id.clone();
            update(&|view| view.upsert(eni.clone()));
            done.push(Step::Created {
                eni_id: eni_id.clone(),
            });
            let check = source_dest_check;
            // EC2 may not know the new ENI yet: what it refused for that is done again once it
            // does, within the consistency allowance.
            match set_up_created(ec2, &update, &eni_id, check, &attach, done).await {
                Err(error) if unknown_eni(&error) && done.len() == 1 => {
                    known_within_allowance(ec2, &eni_id).await?;
                    set_up_created(ec2, &update, &eni_id, check, &attach, done).await
                }
                other => other,
            }
        }
        Action::Attach { eni_id, attach, .. } => {
            attach_and_protect(ec2, &update, &eni_id, &attach, done).await
        }
        Action::SetDeleteOnTermination {
            eni_id,
            attachment_id,
            value,
            ..
        } => {
            ec2.set_delete_on_termination(&eni_id, &attachment_id, value)
                .await?;
            update(&|view| set_delete_on_termination(view, &eni_id, value));
            done.push(Step::Modified { eni_id });
            Ok(())
        }
        Action::AssignAddresses {
            eni_id,
            secondary,
            prefixes,
            ..
        } => {
            let assigned = ec2.assign_private_ips(&eni_id, secondary, prefixes).await?;
            update(&|view| view.modify(&eni_id, |eni| add_assigned(eni, &assigned)));
            done.push(Step::AddressesAssigned {
                eni_id,
                private_ips: assigned.private_ips.len(),
                ipv4_prefixes: assigned.ipv4_prefixes.len(),
            });
            Ok(())
        }
        Action::SetSourceDestCheck { eni_id, value, .. } => {
            ec2.set_source_dest_check(&eni_id, value).await?;
            update(&|view| view.modify(&eni_id, |eni| eni.source_dest_check = Some(value)));
            done.push(Step::Modified { eni_id });
            Ok(())
        }
        Action::Adopt { eni_id, tags, .. } => {
            ec2.tag_eni(&eni_id, &tags).await?;
            update(&|view| view.modify(&eni_id, |eni| eni.tags.extend(tags.clone())));
            done.push(Step::Adopted { eni_id });
            Ok(())
        }
        Action::Detach {
            eni_id,
            attachment_id,
            ..
        } => {
            ec2.detach(&attachment_id, false).await?;
            update(&|view| {
                view.modify(&eni_id, |eni| {
                    eni.status = EniStatus::Detaching;
                    if let Some(attachment) = &mut eni.attachment {
                        attachment.status = AttachmentStatus::Detaching;
                    }
                });
            });
            done.push(Step::Detached { eni_id });
            Ok(())
        }
        Action::Delete { eni_id, .. } => {
            ec2.delete_eni(&eni_id).await?;
            update(&|view| view.forget(&eni_id));
            done.push(Step::Deleted { eni_id });
            Ok(())
        }
    }
}

/// How long EC2 may not know a network interface its create has just answered with: its
/// API is eventually consistent ("a Describe right after a Create can briefly answer
/// InvalidNetworkInterfaceID.NotFound"). Past this, an ENI it still does not know is one a
/// reused ClientToken named after that ENI was deleted.
const CONSISTENCY_ALLOWANCE: Duration = Duration::from_secs(2);

fn unknown_eni(error: &Ec2Error) -> bool {
    error.code.starts_with("InvalidNetworkInterfaceID")
}

/// Waits (describing it, with doubling pauses) until EC2 knows the ENI; the last describe's
/// NotFound when it does not within [`CONSISTENCY_ALLOWANCE`].
async fn known_within_allowance(ec2: &Ec2, eni_id: &str) -> Result<(), Ec2Error> {
    let deadline = Instant::now() + CONSISTENCY_ALLOWANCE;
    let mut pause = Duration::from_millis(250);
    loop {
        tokio::time::sleep(pause).await;
        if ec2.eni_exists(eni_id).await? {
            return Ok(());
        }
        if Instant::now() + pause * 2 > deadline {
            return Err(Ec2Error {
                kind: ErrorKind::NotFound,
                action: "DescribeNetworkInterfaces",
                code: "InvalidNetworkInterfaceID.NotFound".into(),
                message: format!(
                    "the network interface '{eni_id}' that CreateNetworkInterface answered with does not exist (its ClientToken was used before, for an ENI since deleted)"
                ),
            });
        }
        pause *= 2;
    }
}

/// What follows a create: the source/destination check if asked, then attach and protect.
async fn set_up_created(
    ec2: &Ec2,
    update: &impl Fn(&dyn Fn(&mut View)),
    eni_id: &str,
    source_dest_check: Option<bool>,
    attach: &AttachTo,
    done: &mut Vec<Step>,
) -> Result<(), Ec2Error> {
    if let Some(value) = source_dest_check {
        ec2.set_source_dest_check(eni_id, value).await?;
        update(&|view| view.modify(eni_id, |eni| eni.source_dest_check = Some(value)));
    }
    attach_and_protect(ec2, update, eni_id, attach, done).await
}

/// Attach, then DeleteOnTermination (not an attach parameter; if it fails the next plan
/// sees the attachment without it and sets it again).
async fn attach_and_protect(
    ec2: &Ec2,
    update: &impl Fn(&dyn Fn(&mut View)),
    eni_id: &str,
    attach: &AttachTo,
    done: &mut Vec<Step>,
) -> Result<(), Ec2Error> {
    let attachment_id = ec2
        .attach(
            eni_id,
            &attach.instance,
            attach.device_index,
            attach.network_card_index,
        )
        .await?;
    update(&|view| {
        view.modify(eni_id, |eni| {
            eni.status = EniStatus::Attaching;
            eni.attachment = Some(EniAttachment {
                id: attachment_id.clone(),
                instance_id: attach.instance.clone(),
                device_index: attach.device_index,
                network_card_index: attach.network_card_index,
                status: AttachmentStatus::Attaching,
                delete_on_termination: false,
            });
        });
    });
    done.push(Step::Attached {
        eni_id: eni_id.to_owned(),
        instance: attach.instance.clone(),
        device_index: attach.device_index,
    });
    if attach.delete_on_termination {
        ec2.set_delete_on_termination(eni_id, &attachment_id, true)
            .await?;
        update(&|view| set_delete_on_termination(view, eni_id, true));
        done.push(Step::Modified {
            eni_id: eni_id.to_owned(),
        });
    }
    Ok(())
}

/// The view learns what AssignPrivateIpAddresses gave (only what the ENI did not list: an
/// answer that repeats known addresses adds nothing).
fn add_assigned(eni: &mut Eni, assigned: &Assigned) {
    for ip in &assigned.private_ips {
        if eni.private_ip.as_ref() != Some(ip) && !eni.secondary_private_ips.contains(ip) {
            eni.secondary_private_ips.push(ip.clone());
        }
    }
    for prefix in &assigned.ipv4_prefixes {
        if !eni.ipv4_prefixes.contains(prefix) {
            eni.ipv4_prefixes.push(prefix.clone());
        }
    }
}

fn set_delete_on_termination(view: &mut View, eni_id: &str, value: bool) {
    view.modify(eni_id, |eni| {
        if let Some(attachment) = &mut eni.attachment {
            attachment.delete_on_termination = value;
        }
    });
}

/// Whether a failure needs a change (spec, node, instance) rather than time to go away. A
/// subnet short of addresses or of /28 blocks is not: addresses come free as others release
/// them, so those are retried with backoff.
pub fn is_permanent(error: &Ec2Error) -> bool {
    let subnet_short = matches!(
        error.code.as_str(),
        "InsufficientFreeAddressesInSubnet" | "InsufficientCidrBlocks"
    );
    (matches!(
        error.kind,
        ErrorKind::LimitExceeded | ErrorKind::InvalidInput
    ) && !subnet_short)
        || (error.kind == ErrorKind::NotFound && error.code.starts_with("InvalidSubnetID"))
        || (error.kind == ErrorKind::NotFound && error.code.starts_with("InvalidGroup"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eni(id: &str, status: EniStatus) -> Eni {
        Eni {
            id: id.into(),
            status,
            ..Eni::default()
        }
    }

    #[test]
    fn a_describe_sent_before_our_mutation_does_not_undo_it() {
        let mut view = View::default();
        view.replace(
            vec![
                eni("eni-1", EniStatus::Available),
                eni("eni-2", EniStatus::Available),
            ],
            Instant::now(),
        );
        let sent = Instant::now();
        view.modify("eni-1", |eni| eni.status = EniStatus::Attaching);
        view.forget("eni-2");
        // The answer to a describe sent before those changes still shows the old state.
        view.replace(
            vec![
                eni("eni-1", EniStatus::Available),
                eni("eni-2", EniStatus::Available),
            ],
            sent,
        );
        assert_eq!(view.enis["eni-1"].status, EniStatus::Attaching);
        assert!(!view.enis.contains_key("eni-2"));
        // A describe sent afterwards is the truth.
        let later = Instant::now();
        view.replace(vec![eni("eni-1", EniStatus::InUse)], later);
        assert_eq!(view.enis["eni-1"].status, EniStatus::InUse);
    }

    #[test]
    fn a_describe_of_some_enis_changes_only_those() {
        let mut view = View::default();
        let ids = ["eni-1", "eni-2", "eni-3", "eni-4"];
        let all = ids.iter().map(|id| eni(id, EniStatus::Attaching)).collect();
        view.replace(all, Instant::now());
        let sent = Instant::now();
        view.modify("eni-3", |eni| eni.status = EniStatus::Detaching);
        // Asked about 1, 2 and 3 (sent before our change to 3): 1 is in use, 2 is gone.
        let asked: Vec<String> = ids[..3].iter().map(|id| (*id).to_owned()).collect();
        let answer = vec![
            eni("eni-1", EniStatus::InUse),
            eni("eni-3", EniStatus::Attaching),
        ];
        view.update(&asked, answer, sent);
        let status = |id: &str| view.enis.get(id).map(|eni| eni.status.clone());
        assert_eq!(status("eni-1"), Some(EniStatus::InUse));
        assert_eq!(status("eni-2"), None, "gone from EC2");
        assert_eq!(status("eni-3"), Some(EniStatus::Detaching), "ours, newer");
        assert_eq!(status("eni-4"), Some(EniStatus::Attaching), "not asked");
    }
}
