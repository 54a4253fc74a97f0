//! Turns a NodeENI's subnet and security group references (IDs or names) into what EC2
//! knows of them. Results are kept per spec generation for a resync period: subnets and
//! groups rarely change, and a converged cluster should cost no describe calls for them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::api::NodeENISpec;
use crate::ec2::types::Subnet;
use crate::ec2::{Ec2, Error as Ec2Error};

use super::desired::{Resolved, subnet_refs};
use super::reasons;

/// Why a NodeENI's references cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
    /// Throttling or an outage rather than a wrong reference: try again soon.
    pub transient: bool,
}

impl Problem {
    fn new(reason: &'static str, message: String) -> Problem {
        Problem {
            reason,
            message,
            transient: false,
        }
    }
}

impl From<Ec2Error> for Problem {
    fn from(error: Ec2Error) -> Problem {
        Problem {
            reason: reasons::for_code(&error)
                .filter(|reason| *reason == reasons::UNAUTHORIZED)
                .unwrap_or(reasons::EC2_ERROR),
            transient: error.kind.is_retryable(),
            message: error.to_string(),
        }
    }
}

type Entry = (Instant, Result<Resolved, Problem>);

/// Resolves references, remembering answers per (NodeENI UID, generation) for `ttl`.
#[derive(Debug)]
pub struct Resolver {
    ec2: Ec2,
    ttl: Duration,
    cache: Mutex<HashMap<(String, i64), Entry>>,
}

impl Resolver {
    pub fn new(ec2: Ec2, ttl: Duration) -> Resolver {
        Resolver {
            ec2,
            ttl,
            cache: Mutex::default(),
        }
    }

    pub async fn resolve(
        &self,
        uid: &str,
        generation: i64,
        spec: &NodeENISpec,
    ) -> Result<Resolved, Problem> {
        let key = (uid.to_owned(), generation);
        if let Some((at, answer)) = self.cache.lock().expect("resolver cache").get(&key)
            && at.elapsed() < self.ttl
        {
            return answer.clone();
        }
        let answer = self.lookup(spec).await;
        if answer.as_ref().is_ok() || answer.as_ref().is_err_and(|problem| !problem.transient) {
            let mut cache = self.cache.lock().expect("resolver cache");
            cache.retain(|(cached_uid, _), _| cached_uid != uid);
            cache.insert(key, (Instant::now(), answer.clone()));
        }
        answer
    }

    async fn lookup(&self, spec: &NodeENISpec) -> Result<Resolved, Problem> {
        let (ids, names) = subnet_refs(spec);
        let by_id = self.ec2.subnets(&ids).await?;
        let by_name = self.ec2.subnets_named(&names).await?;
        let subnets = order_subnets(&ids, &names, &by_id, &by_name)?;
        let mut vpcs: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
        for subnet in &subnets {
            vpcs.entry(&subnet.vpc_id).or_default().push(&subnet.id);
        }
        let [vpc] = vpcs.keys().copied().collect::<Vec<_>>()[..] else {
            let each: Vec<String> = vpcs
                .iter()
                .map(|(vpc, ids)| format!("{vpc}: {}", join(ids)))
                .collect();
            return Err(Problem::new(
                reasons::SUBNETS_IN_SEVERAL_VPCS,
                format!(
                    "the subnets are in {} VPCs ({}); they must all be in one",
                    vpcs.len(),
                    each.join("; ")
                ),
            ));
        };
        let mut groups = self.ec2.security_groups(&spec.security_group_ids).await?;
        let missing: Vec<&String> = spec
            .security_group_ids
            .iter()
            .filter(|id| !groups.iter().any(|g| &&g.id == id))
            .collect();
        if !missing.is_empty() {
            return Err(Problem::new(
                reasons::SECURITY_GROUP_NOT_FOUND,
                format!("security groups not found: {}", join(&missing)),
            ));
        }
        let named = self
            .ec2
            .security_groups_named(&spec.security_group_names, vpc)
            .await?;
        let missing: Vec<&String> = spec
            .security_group_names
            .iter()
            .filter(|name| !named.iter().any(|g| &&g.name == name))
            .collect();
        if !missing.is_empty() {
            return Err(Problem::new(
                reasons::SECURITY_GROUP_NOT_FOUND,
                format!("no security group named {} in {vpc}", join(&missing)),
            ));
        }
        if let Some(group) = groups.iter().find(|g| g.vpc_id != vpc) {
            return Err(Problem::new(
                reasons::SECURITY_GROUP_IN_OTHER_VPC,
                format!(
                    "security group {} is in {}, the subnets in {vpc}",
                    group.id, group.vpc_id
                ),
            ));
        }
        groups.extend(named);
        let mut security_group_ids: Vec<String> = groups.into_iter().map(|g| g.id).collect();
        let mut seen = BTreeSet::new();
        security_group_ids.retain(|id| seen.insert(id.clone()));
        Ok(Resolved {
            subnets,
            security_group_ids,
        })
    }
}

/// The subnets in spec order: IDs first, then names. A name may stand for one subnet per
/// zone (the same `Name` in several zones); two subnets of one name in one zone are ambiguous.
fn order_subnets(
    ids: &[String],
    names: &[String],
    by_id: &[Subnet],
    by_name: &[Subnet],
) -> Result<Vec<Subnet>, Problem> {
    let mut subnets: Vec<Subnet> = Vec::new();
    for id in ids {
        let subnet = by_id.iter().find(|s| &s.id == id).ok_or_else(|| {
            Problem::new(
                reasons::SUBNET_NOT_FOUND,
                format!("subnet {id} does not exist"),
            )
        })?;
        subnets.push(subnet.clone());
    }
    for name in names {
        let mut per_zone: BTreeMap<&str, Vec<&Subnet>> = BTreeMap::new();
        for subnet in by_name.iter().filter(|s| s.name.as_ref() == Some(name)) {
            per_zone
                .entry(&subnet.availability_zone)
                .or_default()
                .push(subnet);
        }
        if per_zone.is_empty() {
            return Err(Problem::new(
                reasons::SUBNET_NOT_FOUND,
                format!("no subnet is named {name:?}"),
            ));
        }
        for (zone, found) in per_zone {
            if let [one] = found[..] {
                subnets.push(one.clone());
            } else {
                let ids: Vec<&String> = found.iter().map(|s| &s.id).collect();
                return Err(Problem::new(
                    reasons::AMBIGUOUS_SUBNET_NAME,
                    format!(
                        "{} subnets in {zone} are named {name:?} ({}); use subnetIDs",
                        found.len(),
                        join(&ids)
                    ),
                ));
            }
        }
    }
    let mut seen = BTreeSet::new();
    subnets.retain(|s| seen.insert(s.id.clone()));
    Ok(subnets)
}

fn join(values: &[&String]) -> String {
    values
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(id: &str, zone: &str, name: &str) -> Subnet {
        Subnet {
            id: id.into(),
            availability_zone: zone.into(),
            name: Some(name.into()),
            ..Subnet::default()
        }
    }

    #[test]
    fn names_stand_for_one_subnet_per_zone_after_the_ids() {
        let by_id = [subnet("subnet-1", "a", "x")];
        let by_name = [
            subnet("subnet-2", "a", "multus"),
            subnet("subnet-3", "b", "multus"),
            subnet("subnet-1", "a", "x"),
        ];
        let ordered = order_subnets(
            &["subnet-1".into()],
            &["multus".into(), "x".into()],
            &by_id,
            &by_name,
        )
        .unwrap();
        let ids: Vec<&str> = ordered.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["subnet-1", "subnet-2", "subnet-3"]);
    }

    #[test]
    fn missing_and_ambiguous_references_are_problems() {
        let missing = order_subnets(&["subnet-9".into()], &[], &[], &[]).unwrap_err();
        assert_eq!(missing.reason, "SubnetNotFound");
        let unnamed = order_subnets(&[], &["nope".into()], &[], &[]).unwrap_err();
        assert_eq!(unnamed.reason, "SubnetNotFound");
        let twins = [
            subnet("subnet-2", "a", "multus"),
            subnet("subnet-3", "a", "multus"),
        ];
        let ambiguous = order_subnets(&[], &["multus".into()], &[], &twins).unwrap_err();
        assert_eq!(ambiguous.reason, "AmbiguousSubnetName");
        assert!(ambiguous.message.contains("subnet-2, subnet-3"));
    }
}
