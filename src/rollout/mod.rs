//! `launch-gate rollout`: the pipeline step. It waits until the Auto Scaling group has the
//! expected number of in-service instances of the release being rolled out that passed
//! the gate, or until the launch-loop breaker halts the release, or the instance refresh
//! fails, or time runs out, printing each of the gate's decisions as it appears.
//!
//! The release is a launch template version, fixed when the step starts: the one an
//! instance refresh in progress deploys (its `DesiredConfiguration`), else the one the
//! group names (`$Latest` and `$Default` resolved with `DescribeLaunchTemplates`), or the
//! one given. An instance passed the gate when its `launch-gate:decision` tag (written by
//! the gate once Auto Scaling accepted its completion) says `CONTINUE`. Everything is read
//! from AWS: the step needs no access to the gate's logs or events.
//!
//! [`assess`] is pure; [`run`] is the step's loop over the [`RolloutReads`] port, which
//! [`crate::aws::sdk`] implements over the SDK.

use serde::Serialize;

use std::time::Duration;

use tokio::time::Instant;

use crate::aws::{AwsError, GroupSnapshot, InstanceInfo, LaunchTemplateVersion, RolloutReads};
pub use crate::aws::{RefreshView, TemplateSpec};
use crate::breaker::Trip;

/// What the step reads of the group at each poll.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// `DesiredCapacity`.
    pub desired_capacity: u32,
    /// The group's instances that are `InService`.
    pub in_service: Vec<String>,
    /// `SuspendedProcesses`.
    pub suspended_processes: Vec<String>,
    /// The breaker's trip, from the group's `launch-gate:breaker` tag.
    pub trip: Option<Trip>,
    /// The launches abandoned through an environment outage the group's
    /// `launch-gate:environment-abandons` tag lists, and when the newest was (seconds since
    /// the Unix epoch).
    pub environment: Option<(u64, Vec<String>)>,
    /// The newest instance refresh.
    pub refresh: Option<RefreshView>,
    /// Every instance EC2 shows with the group's `aws:autoscaling:groupName` tag
    /// (terminated ones for about an hour).
    pub instances: Vec<(String, InstanceInfo)>,
}

impl From<GroupSnapshot> for Snapshot {
    /// The group as AWS showed it, with the breaker's tag read as a trip.
    fn from(g: GroupSnapshot) -> Self {
        Self {
            desired_capacity: g.desired_capacity,
            in_service: g.in_service,
            suspended_processes: g.suspended_processes,
            trip: g.breaker_tag.as_deref().and_then(Trip::parse),
            environment: g.environment_tag.as_deref().and_then(|v| {
                Some((
                    crate::breaker::environment_tag_time(v)?,
                    crate::breaker::environment_ids(v)
                        .map(str::to_owned)
                        .collect(),
                ))
            }),
            refresh: g.refresh,
            instances: g.instances,
        }
    }
}

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Progress {
    /// Not there yet.
    Waiting {
        /// In-service instances of the release that passed the gate.
        passed: usize,
        /// How many are expected.
        expected: usize,
    },
    /// Enough instances of the release passed the gate and are in service.
    Succeeded {
        /// In-service instances of the release that passed the gate.
        passed: usize,
        /// How many were expected.
        expected: usize,
    },
    /// The launch-loop breaker tripped for the release.
    Halted {
        /// Why, in words.
        reason: String,
    },
    /// The instance refresh ended without deploying the release.
    Failed {
        /// Why, in words.
        reason: String,
    },
}

/// How the step ended: exit status 0, 1 and 4 of `launch-gate rollout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutEnd {
    /// Enough instances of the release passed the gate and are in service.
    Succeeded,
    /// The release failed: halted by the breaker, a failed instance refresh, or the time
    /// ran out with no sign of an outage.
    Failed,
    /// The time ran out while launches of the release were abandoned through an
    /// environment outage: the running release failed the same checks the same way.
    EnvironmentFailed,
}

/// Whether an instance's decision tag says it was abandoned through an environment outage
/// (`ABANDON cause=environment_unhealthy`).
pub fn environment_abandoned(decision: Option<&str>) -> bool {
    decision.is_some_and(|d| {
        d.split_whitespace().next() == Some("ABANDON")
            && d.split_whitespace()
                .any(|w| w == "cause=environment_unhealthy")
    })
}

/// Whether an instance's decision tag says it passed the gate.
pub fn passed_gate(decision: Option<&str>) -> bool {
    decision.is_some_and(|d| d.split_whitespace().next() == Some("CONTINUE"))
}

/// Where the rollout of `release` stands. `started` is when the step started (seconds
/// since the Unix epoch); `refresh_id` the instance refresh it follows, if any;
/// `expect` the instances wanted (default: the group's desired capacity, at least 1).
pub fn assess(
    release: Option<&LaunchTemplateVersion>,
    started: u64,
    refresh_id: Option<&str>,
    expect: Option<u32>,
    snapshot: &Snapshot,
) -> Progress {
    let launch_suspended = snapshot.suspended_processes.iter().any(|p| p == "Launch");
    if let Some(trip) = snapshot
        .trip
        .as_ref()
        .filter(|t| t.of(release, if launch_suspended { 0 } else { started }))
    {
        return Progress::Halted {
            reason: format!(
                "the launch-loop breaker tripped for this release at {} on the ABANDON of {} (the Rollout Halted event says what it did, and the decision events why each instance was abandoned)",
                crate::time::rfc3339(trip.at),
                trip.instance_id
            ),
        };
    }
    if let Some(r) = snapshot
        .refresh
        .as_ref()
        .filter(|r| Some(r.id.as_str()) == refresh_id)
        && !r.is_rolling_out()
        && r.status != "Successful"
    {
        return Progress::Failed {
            reason: format!(
                "the instance refresh {} is {}{}",
                r.id,
                r.status,
                r.status_reason
                    .as_deref()
                    .map_or_else(String::new, |why| format!(": {why}"))
            ),
        };
    }
    let passed = snapshot
        .instances
        .iter()
        .filter(|(id, info)| {
            snapshot.in_service.contains(id)
                && passed_gate(info.decision.as_deref())
                && (release.is_none() || info.launch_template.as_ref() == release)
        })
        .count();
    let expected = expect.unwrap_or(snapshot.desired_capacity).max(1) as usize;
    if passed >= expected {
        Progress::Succeeded { passed, expected }
    } else {
        Progress::Waiting { passed, expected }
    }
}

/// What `launch-gate rollout` is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutRequest {
    /// The Auto Scaling group.
    pub group: String,
    /// In-service instances of the release that must pass the gate (default: the group's
    /// desired capacity).
    pub expect: Option<u32>,
    /// How long to wait in all.
    pub timeout: Duration,
    /// The release: this numbered version of the group's launch template (default: the
    /// version an instance refresh in progress deploys, else the group's).
    pub launch_template_version: Option<u32>,
    /// Time between two looks at the group.
    pub poll_interval: Duration,
}

/// Where the step's lines go: each has a kind (`start`, `decision`, `progress`,
/// `warning`, `end`), a sentence, and fields for a JSON reader.
pub trait Report {
    /// One line.
    fn line(&mut self, kind: &str, text: &str, fields: serde_json::Value);
}

/// Why the step could not run.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The request does not fit the group (no such group, no launch template, an unknown
    /// version): a usage or configuration error.
    #[error("{0}")]
    Usage(String),
    /// AWS could not be read at the start, after the SDK's retries.
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// Runs the step: fixes the release, then looks at the group every `poll_interval` and
/// reports each decision as it appears, until the rollout succeeds, is halted or fails,
/// or times out: [`RolloutEnd::EnvironmentFailed`] when launches of the release were
/// abandoned through an environment outage meanwhile, else [`RolloutEnd::Failed`]. A
/// failed look after the start is reported as a warning and tried again.
///
/// # Errors
/// [`RolloutError::Usage`] when the request does not fit the group;
/// [`RolloutError::Aws`] when AWS cannot be read at the start.
pub async fn run<R: RolloutReads>(
    reads: &R,
    args: &RolloutRequest,
    report: &mut impl Report,
) -> Result<RolloutEnd, RolloutError> {
    let start = Instant::now();
    let started = crate::time::epoch_seconds();
    let (first, template) = reads.rollout_snapshot(&args.group).await?.ok_or_else(|| {
        RolloutError::Usage(format!(
            "the Auto Scaling group {} does not exist",
            args.group
        ))
    })?;
    let refresh = first.refresh.clone().filter(|r| r.is_rolling_out());
    // The release: the one asked for, else the one a refresh in progress deploys, else the
    // group's.
    let (spec, from) = match (&args.launch_template_version, &refresh, &template) {
        (Some(v), _, Some(t)) => (
            Some(TemplateSpec {
                version: Some(v.to_string()),
                ..t.clone()
            }),
            "--launch-template-version".to_owned(),
        ),
        (Some(_), _, None) => {
            return Err(RolloutError::Usage(format!(
                "--launch-template-version: the group {} has no launch template",
                args.group
            )));
        }
        (None, Some(r), _) if r.desired.is_some() => (
            r.desired.clone(),
            format!("the desired configuration of instance refresh {}", r.id),
        ),
        (None, _, t) => (t.clone(), "the group's launch template".to_owned()),
    };
    let release = match &spec {
        Some(t) => Some(
            reads
                .resolve_launch_template(t, t.version.as_deref())
                .await?
                .ok_or_else(|| {
                    RolloutError::Usage(format!(
                        "EC2 does not know the launch template {}",
                        t.id.as_deref().or(t.name.as_deref()).unwrap_or("?")
                    ))
                })?,
        ),
        None => None,
    };
    let refresh_id = refresh.as_ref().map(|r| r.id.clone());
    let what = release.as_ref().map_or_else(
        || "any launch configuration".to_owned(),
        |r| format!("launch template {r} (from {from})"),
    );
    report.line(
        "start",
        &format!(
            "rollout of {}: release {what}; waiting for {} in-service instances that pass the gate{}, at most {} s",
            args.group,
            args.expect.unwrap_or(first.desired_capacity).max(1),
            if args.expect.is_some() { "" } else { " (the desired capacity)" },
            args.timeout.as_secs()
        ),
        serde_json::json!({"group": args.group, "launch_template": release, "instance_refresh": refresh_id}),
    );

    let mut printed: Vec<(String, String)> = Vec::new();
    // Launches of the release abandoned through an environment outage since the start.
    let mut environment: Vec<String> = Vec::new();
    let mut last: Option<Progress> = None;
    let mut snapshot = Some(Snapshot::from(first));
    loop {
        let snap = match snapshot.take() {
            Some(s) => Some(s),
            None => match reads.rollout_snapshot(&args.group).await {
                Ok(Some((s, _))) => Some(Snapshot::from(s)),
                Ok(None) => {
                    report.line(
                        "end",
                        &format!("rollout failed: the group {} was deleted", args.group),
                        serde_json::json!({"status": "failed"}),
                    );
                    return Ok(RolloutEnd::Failed);
                }
                Err(e) => {
                    report.line(
                        "warning",
                        &format!("{e}; looking again"),
                        serde_json::json!({}),
                    );
                    None
                }
            },
        };
        if let Some(snap) = snap {
            let mut outage: Vec<String> = snap
                .instances
                .iter()
                .filter(|(_, info)| {
                    (release.is_none() || info.launch_template == release)
                        && environment_abandoned(info.decision.as_deref())
                })
                .map(|(id, _)| id.clone())
                .collect();
            if let Some((_, ids)) = snap.environment.as_ref().filter(|(at, _)| *at >= started) {
                outage.extend(ids.iter().cloned());
            }
            for id in outage {
                if !environment.contains(&id) {
                    if environment.is_empty() {
                        report.line(
                            "warning",
                            &format!("{id} was abandoned through an environment outage: the running release fails the same checks the same way (cause environment_unhealthy); the group launches again, and the step waits"),
                            serde_json::json!({"instance_id": id, "cause": "environment_unhealthy"}),
                        );
                    }
                    environment.push(id);
                }
            }
            for (id, info) in &snap.instances {
                let Some(decision) = &info.decision else {
                    continue;
                };
                if release.is_some() && info.launch_template != release {
                    continue;
                }
                if printed.iter().any(|(i, d)| i == id && d == decision) {
                    continue;
                }
                printed.push((id.clone(), decision.clone()));
                report.line(
                    "decision",
                    &format!("{id} {decision}"),
                    serde_json::json!({"instance_id": id, "decision": decision, "launch_template": info.launch_template}),
                );
            }
            let progress = assess(
                release.as_ref(),
                started,
                refresh_id.as_deref(),
                args.expect,
                &snap,
            );
            match &progress {
                Progress::Waiting { passed, expected } => {
                    if last.as_ref() != Some(&progress) {
                        report.line(
                            "progress",
                            &format!("{passed} of {expected} in service and passed the gate"),
                            serde_json::json!({"passed": passed, "expected": expected}),
                        );
                    }
                }
                Progress::Succeeded { passed, expected } => {
                    report.line(
                        "end",
                        &format!("rollout succeeded: {passed} of {expected} in service and passed the gate"),
                        serde_json::json!({"status": "succeeded", "passed": passed, "expected": expected}),
                    );
                    return Ok(RolloutEnd::Succeeded);
                }
                Progress::Halted { reason } | Progress::Failed { reason } => {
                    let status = if matches!(progress, Progress::Halted { .. }) {
                        "halted"
                    } else {
                        "failed"
                    };
                    report.line(
                        "end",
                        &format!("rollout {status}: {reason}"),
                        serde_json::json!({"status": status}),
                    );
                    return Ok(RolloutEnd::Failed);
                }
            }
            last = Some(progress);
        }
        let left = args.timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            let passed = match &last {
                Some(Progress::Waiting { passed, expected }) => format!("{passed} of {expected}"),
                _ => "none".to_owned(),
            };
            if !environment.is_empty() {
                report.line(
                    "end",
                    &format!(
                        "rollout timed out after {} s through an environment outage, not a failed release: {passed} in service and passed the gate; {} launches of the release were abandoned because the running release failed the same checks the same way ({}). Fix the environment (the decision events' cause says what failed) and run the step again",
                        args.timeout.as_secs(),
                        environment.len(),
                        environment.join(", ")
                    ),
                    serde_json::json!({"status": "environment_unhealthy", "environment_abandons": environment}),
                );
                return Ok(RolloutEnd::EnvironmentFailed);
            }
            report.line(
                "end",
                &format!(
                    "rollout timed out after {} s: {passed} in service and passed the gate",
                    args.timeout.as_secs()
                ),
                serde_json::json!({"status": "timed_out"}),
            );
            return Ok(RolloutEnd::Failed);
        }
        tokio::time::sleep(args.poll_interval.min(left)).await;
    }
}

#[cfg(test)]
mod tests;
