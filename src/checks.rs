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
    /// Its Auto Scaling group (EC2's `aws:autoscaling:groupName` tag), when it has one.
    pub group: Option<String>,
    /// The launch template version it was launched from.
    pub version: Option<String>,
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
        group: info.group_name.clone(),
        version: info.launch_template.as_ref().map(|t| t.version.clone()),
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
    let (arns, other): (Vec<String>, Vec<String>) = aws
        .target_group_arns(&group)
        .await?
        .ok_or_else(|| {
            ChecksError::Usage(format!("the Auto Scaling group {group} does not exist"))
        })?
        .into_iter()
        .partition(|a| crate::aws::is_elb_target_group(a));
    for arn in other {
        checks.notes.push(format!(
            "target group {arn}: not an Elastic Load Balancing target group (VPC Lattice); skipped"
        ));
    }
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

/// The running release's answers to the checks an instance failed, as `launch-gate probe
/// --instance-id` prints them.
#[derive(Debug, Serialize)]
pub struct BaselineReport {
    /// The baseline instance: an `InService`, `Healthy` member of the group, of another
    /// launch template version first; `None` when the group has none running.
    pub instance_id: Option<String>,
    /// Its launch template version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_template_version: Option<String>,
    /// Its private IP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// Each failed check, sent to it: `check`, `passed`, its cause code, and who is to
    /// blame (`release`, `environment`, or `unclear` when it fails otherwise).
    pub checks: Vec<serde_json::Value>,
    /// What the comparison says, in words.
    pub summary: String,
}

/// Sends the checks that failed in `results` to the running release beside the instance
/// (`for_instance`'s `found`): a member of its group as `DescribeAutoScalingGroups` lists
/// it, on its private IP from `DescribeInstances`, with the same requests retargeted.
/// `deep` is the deep health check the instance got.
///
/// # Errors
/// [`AwsError`] when the group or the instances cannot be read.
pub async fn against_baseline<P: Prober, A: Instances + AutoScalingGroups>(
    prober: &P,
    aws: &A,
    instance_id: &str,
    found: &InstanceChecks,
    deep: &ProbeRequest,
    results: &[CheckResult],
) -> Result<BaselineReport, AwsError> {
    let mut report = BaselineReport {
        instance_id: None,
        launch_template_version: None,
        ip: None,
        checks: Vec::new(),
        summary: String::new(),
    };
    let Some(group) = &found.group else {
        report.summary = "no baseline: the instance is in no Auto Scaling group".into();
        return Ok(report);
    };
    let members = aws
        .group_state(group)
        .await?
        .map(|g| g.instances)
        .unwrap_or_default();
    let candidates =
        crate::gate::baseline::candidates(&members, instance_id, found.version.as_deref());
    let ids: Vec<String> = candidates.iter().map(|c| c.instance_id.clone()).collect();
    let described = if ids.is_empty() {
        Vec::new()
    } else {
        aws.describe_instances(&ids).await?
    };
    let Some((member, ip)) = crate::gate::baseline::pick(&candidates, &described) else {
        report.summary = format!(
            "no baseline: the group {group} has no other InService instance running a launch template version other than {} (a member of the same release proves nothing); the release is judged alone",
            found
                .version
                .as_deref()
                .unwrap_or("this one's, which is unknown")
        );
        return Ok(report);
    };
    report.instance_id = Some(member.instance_id.clone());
    report.launch_template_version = member.launch_template_version.clone();
    report.ip = Some(ip);
    let requests: Vec<(CheckLabel, ProbeRequest)> =
        std::iter::once((CheckLabel::DeepHealth, deep.at(ip)))
            .chain(
                found
                    .target_groups
                    .iter()
                    .map(|(name, r)| (CheckLabel::TargetGroup(name.clone()), r.at(ip))),
            )
            .filter(|(label, _)| {
                results
                    .iter()
                    .any(|r| !r.passed && r.check == label.to_string())
            })
            .collect();
    let outcomes = join_all(requests.iter().map(|(_, r)| prober.probe(r))).await;
    let (mut release, mut environment) = (0, 0);
    for ((label, request), outcome) in requests.iter().zip(outcomes) {
        let cause = match label {
            CheckLabel::DeepHealth => diagnose(request, &outcome),
            CheckLabel::TargetGroup(name) => diagnose_target_group(name, request, &outcome),
        };
        let own = results
            .iter()
            .find(|r| r.check == label.to_string())
            .and_then(|r| r.cause.as_ref())
            .map(|c| c.code);
        let blame = match (&cause, own) {
            (None, _) => {
                release += 1;
                "release"
            }
            (Some(c), Some(code)) if c.code == code => {
                environment += 1;
                "environment"
            }
            _ => "unclear",
        };
        report.checks.push(serde_json::json!({
            "check": label.to_string(),
            "passed": outcome.passed,
            "cause": cause.as_ref().map(|c| c.code),
            "blame": blame,
        }));
    }
    let who = crate::gate::baseline::running_release(
        &member.instance_id,
        member.launch_template_version.as_deref(),
    );
    report.summary = match (release, environment) {
        (0, 0) => format!("{who} fails the same checks otherwise: unclear"),
        (_, 0) => format!("{who} passes the checks this instance fails: the release is to blame"),
        (0, _) => format!(
            "{who} fails the same checks the same way: the environment is unhealthy, not the release"
        ),
        _ => format!("{who} passes some of the checks and fails others the same way"),
    };
    Ok(report)
}

/// The running tasks of the ECS service `service` in `cluster`, each where the gate
/// reaches it: its ENI's private IP (awsvpc), or its container instance's private IP and
/// the host port `health_port` is published on (bridge, host). `ListTasks`,
/// `DescribeTasks`, and for tasks on container instances `DescribeContainerInstances` and
/// `DescribeInstances`.
///
/// # Errors
/// [`ChecksError::Usage`] when the service has no running task the gate can reach;
/// [`ChecksError::Aws`] when ECS or EC2 cannot be read.
pub async fn ecs_service_tasks<A: crate::aws::ecs::EcsDeployments + crate::aws::Instances>(
    aws: &A,
    cluster: &str,
    service: &str,
    health_port: u16,
) -> Result<Vec<crate::aws::ecs::TaskTarget>, ChecksError> {
    let tasks = aws.service_tasks(cluster, service).await?;
    let running: Vec<_> = tasks
        .iter()
        .filter(|t| t.last_status == "RUNNING")
        .collect();
    let entry = crate::aws::ecs::LoadBalancerEntry {
        container_port: Some(health_port),
        ..Default::default()
    };
    let targets =
        crate::aws::ecs::task_targets(aws, cluster, &running, &entry, health_port).await?;
    if targets.is_empty() {
        return Err(ChecksError::Usage(format!(
            "the ECS service {cluster}/{service} has no running task with a private IP (awsvpc) or a host port for container port {health_port} (bridge, host)"
        )));
    }
    Ok(targets)
}
