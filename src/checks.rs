//! The gate's checks of one address, once, for `launch-gate probe`: the deep health check
//! and, resolved with AWS for an instance, its group's target groups' health checks, each
//! probed as the load balancer sends it and diagnosed in the words of the decision records.
//! Does network I/O through the [`Prober`] and the AWS ports.

use std::net::IpAddr;

use futures::future::join_all;
use serde::Serialize;

use crate::aws::{AutoScalingGroups, AwsError, Instances, TargetGroups};
use crate::config::GateConfig;
use crate::diagnosis::{Diagnosis, diagnose, diagnose_target_group};
use crate::probe::{CheckLabel, ProbeOutcome, ProbeRequest, Prober};
use crate::record::body_snippet;

/// Why the checks of an instance could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ChecksError {
    /// The instance or its group is not what the request needs (unknown, no private IP,
    /// in no group): a usage error.
    #[error("{0}")]
    Usage(String),
    /// AWS could not be read, after the SDK's retries.
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// What to check of an instance: its private IP and its target groups' health checks.
#[derive(Debug)]
pub struct InstanceChecks {
    /// The private IP, as `DescribeInstances` gives it.
    pub ip: IpAddr,
    /// Each target group's name and its health check, as the load balancer sends it.
    pub target_groups: Vec<(String, ProbeRequest)>,
    /// What could not be checked, and why (a group without target groups, a TCP check).
    pub notes: Vec<String>,
}

/// The checks of `instance_id`: its private IP and, with `with_target_groups`, its group's
/// target groups' health checks (`DescribeInstances`, `DescribeAutoScalingGroups`,
/// `DescribeTargetGroups`). `body_limit` is in bytes.
///
/// # Errors
/// [`ChecksError::Usage`] when EC2 does not know the instance, it has no private IP, or
/// (with target groups) it is in no group; [`ChecksError::Aws`] when AWS cannot be read.
pub async fn for_instance<A: Instances + AutoScalingGroups + TargetGroups>(
    aws: &A,
    instance_id: &str,
    with_target_groups: bool,
    body_limit: usize,
) -> Result<InstanceChecks, ChecksError> {
    let info = aws.describe_instance(instance_id).await?.ok_or_else(|| {
        ChecksError::Usage(format!("EC2 does not know the instance {instance_id}"))
    })?;
    let ip = info.private_ip.ok_or_else(|| {
        ChecksError::Usage(format!(
            "the instance {instance_id} ({}) has no private IP",
            info.state
        ))
    })?;
    let mut checks = InstanceChecks {
        ip,
        target_groups: Vec::new(),
        notes: Vec::new(),
    };
    if !with_target_groups {
        return Ok(checks);
    }
    let group = info.group_name.ok_or_else(|| {
        ChecksError::Usage(format!(
            "the instance {instance_id} is in no Auto Scaling group (no aws:autoscaling:groupName tag)"
        ))
    })?;
    let arns = aws.target_group_arns(&group).await?.ok_or_else(|| {
        ChecksError::Usage(format!("the Auto Scaling group {group} does not exist"))
    })?;
    if arns.is_empty() {
        checks
            .notes
            .push(format!("the group {group} has no target groups"));
        return Ok(checks);
    }
    for tg in aws.describe_target_groups(&arns).await? {
        match ProbeRequest::for_target_group(&tg, ip, body_limit) {
            Ok(request) => checks.target_groups.push((tg.name, request)),
            Err(why) => checks
                .notes
                .push(format!("target group {}: {why}", tg.name)),
        }
    }
    Ok(checks)
}

/// One check's result, as `launch-gate probe` prints it.
#[derive(Debug, Serialize)]
pub struct CheckResult {
    /// `deep_health`, or `target_group:<name>`, as in the decision records.
    pub check: String,
    /// The URL probed.
    pub url: String,
    /// The `Host` header sent.
    pub host: String,
    /// Whether it passed.
    pub passed: bool,
    /// What the probe saw.
    #[serde(flatten)]
    pub outcome: ProbeOutcome,
    /// Cause and fix, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Diagnosis>,
    /// The body's start, when it failed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub body_snippet: String,
}

/// Probes `ip` once with the deep health check of `config` and the `target_groups`'
/// checks, all at once, and diagnoses each failure.
pub async fn run_once<P: Prober>(
    prober: &P,
    config: &GateConfig,
    ip: IpAddr,
    target_groups: Vec<(String, ProbeRequest)>,
) -> Vec<CheckResult> {
    let mut checks = vec![(
        CheckLabel::DeepHealth,
        ProbeRequest::deep_health(config, ip),
    )];
    checks.extend(
        target_groups
            .into_iter()
            .map(|(name, r)| (CheckLabel::TargetGroup(name), r)),
    );
    let outcomes = join_all(checks.iter().map(|(_, r)| prober.probe(r))).await;
    checks
        .into_iter()
        .zip(outcomes)
        .map(|((label, request), outcome)| CheckResult {
            cause: match &label {
                CheckLabel::DeepHealth => diagnose(&request, &outcome),
                CheckLabel::TargetGroup(name) => diagnose_target_group(name, &request, &outcome),
            },
            check: label.to_string(),
            url: request.url(),
            host: request.host.clone(),
            passed: outcome.passed,
            body_snippet: if outcome.passed {
                String::new()
            } else {
                body_snippet(&outcome.body)
            },
            outcome,
        })
        .collect()
}
