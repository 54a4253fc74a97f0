//! Lookups: instances, subnets and security groups (by ID or by name), instance-type limits.

use aws_sdk_ec2::types::InstanceType;

use super::enis::filter;
use super::limiter::Bucket;
use super::types::{Instance, NetworkLimits, SecurityGroup, Subnet};
use super::{Ec2, Error, ErrorKind, convert};

/// DescribeInstances takes at most this many instance IDs.
const INSTANCES_PER_CALL: usize = 1000;

impl Ec2 {
    /// The instances with these IDs, in one call per 1000. Instances that no longer exist are
    /// left out (EC2 fails the whole call for them, so they are dropped and the call repeated).
    pub async fn instances(&self, ids: &[String]) -> Result<Vec<Instance>, Error> {
        let mut instances = Vec::new();
        for chunk in ids.chunks(INSTANCES_PER_CALL) {
            let mut chunk = chunk.to_vec();
            while !chunk.is_empty() {
                match self.describe_instances(&chunk).await {
                    Ok(found) => {
                        instances.extend(found);
                        break;
                    }
                    Err(error) if error.kind == ErrorKind::NotFound => {
                        let before = chunk.len();
                        chunk.retain(|id| !error.message.contains(id.as_str()));
                        if chunk.len() == before {
                            return Err(error);
                        }
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(instances)
    }

    async fn describe_instances(&self, ids: &[String]) -> Result<Vec<Instance>, Error> {
        let output = self
            .call("DescribeInstances", Bucket::DescribeUnfiltered, |counter| {
                self.client
                    .describe_instances()
                    .set_instance_ids(Some(ids.to_vec()))
                    .customize()
                    .interceptor(counter)
                    .send()
            })
            .await?;
        Ok(output
            .reservations()
            .iter()
            .flat_map(aws_sdk_ec2::types::Reservation::instances)
            .map(convert::instance)
            .collect())
    }

    /// The subnets with these IDs; unknown IDs are left out.
    pub async fn subnets(&self, ids: &[String]) -> Result<Vec<Subnet>, Error> {
        self.describe_subnets("subnet-id", ids).await
    }

    /// The subnets whose `Name` tag is one of `names` (several subnets may share a name).
    pub async fn subnets_named(&self, names: &[String]) -> Result<Vec<Subnet>, Error> {
        self.describe_subnets("tag:Name", names).await
    }

    async fn describe_subnets(&self, by: &str, values: &[String]) -> Result<Vec<Subnet>, Error> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let output = self
            .call("DescribeSubnets", Bucket::Describe, |counter| {
                self.client
                    .describe_subnets()
                    .filters(filter(by, values.iter().map(String::as_str)))
                    .customize()
                    .interceptor(counter)
                    .send()
            })
            .await?;
        Ok(output.subnets().iter().map(convert::subnet).collect())
    }

    /// The security groups with these IDs; unknown IDs are left out.
    pub async fn security_groups(&self, ids: &[String]) -> Result<Vec<SecurityGroup>, Error> {
        self.describe_security_groups("group-id", ids, None).await
    }

    /// The security groups of `vpc_id` named one of `names`.
    pub async fn security_groups_named(
        &self,
        names: &[String],
        vpc_id: &str,
    ) -> Result<Vec<SecurityGroup>, Error> {
        self.describe_security_groups("group-name", names, Some(vpc_id))
            .await
    }

    async fn describe_security_groups(
        &self,
        by: &str,
        values: &[String],
        vpc_id: Option<&str>,
    ) -> Result<Vec<SecurityGroup>, Error> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let mut filters = vec![filter(by, values.iter().map(String::as_str))];
        filters.extend(vpc_id.map(|vpc| filter("vpc-id", [vpc])));
        let output = self
            .call("DescribeSecurityGroups", Bucket::Describe, |counter| {
                self.client
                    .describe_security_groups()
                    .set_filters(Some(filters))
                    .customize()
                    .interceptor(counter)
                    .send()
            })
            .await?;
        Ok(output
            .security_groups()
            .iter()
            .map(convert::security_group)
            .collect())
    }

    /// The network limits of an instance type, asked once per process (they never change).
    pub async fn network_limits(&self, instance_type: &str) -> Result<NetworkLimits, Error> {
        if let Some(limits) = self
            .limits_cache
            .lock()
            .expect("limits cache")
            .get(instance_type)
        {
            return Ok(limits.clone());
        }
        let output = self
            .call("DescribeInstanceTypes", Bucket::Describe, |counter| {
                self.client
                    .describe_instance_types()
                    .instance_types(InstanceType::from(instance_type))
                    .customize()
                    .interceptor(counter)
                    .send()
            })
            .await?;
        let limits = output
            .instance_types()
            .iter()
            .find_map(convert::network_limits)
            .ok_or_else(|| Error {
                kind: ErrorKind::InvalidInput,
                action: "DescribeInstanceTypes",
                code: "InvalidInstanceType".into(),
                message: format!("EC2 knows no network limits for instance type {instance_type:?}"),
            })?;
        self.limits_cache
            .lock()
            .expect("limits cache")
            .insert(instance_type.to_owned(), limits.clone());
        Ok(limits)
    }
}
