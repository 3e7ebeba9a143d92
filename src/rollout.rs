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
/// reports each decision as it appears, until the rollout succeeds (`true`), or is
/// halted, fails or times out (`false`). A failed look after the start is reported as a
/// warning and tried again.
///
/// # Errors
/// [`RolloutError::Usage`] when the request does not fit the group;
/// [`RolloutError::Aws`] when AWS cannot be read at the start.
pub async fn run<R: RolloutReads>(
    reads: &R,
    args: &RolloutRequest,
    report: &mut impl Report,
) -> Result<bool, RolloutError> {
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
                    return Ok(false);
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
                    return Ok(true);
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
                    return Ok(false);
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
            report.line(
                "end",
                &format!(
                    "rollout timed out after {} s: {passed} in service and passed the gate",
                    args.timeout.as_secs()
                ),
                serde_json::json!({"status": "timed_out"}),
            );
            return Ok(false);
        }
        tokio::time::sleep(args.poll_interval.min(left)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lt(version: &str) -> LaunchTemplateVersion {
        LaunchTemplateVersion {
            id: "lt-1".into(),
            version: version.into(),
        }
    }

    fn instance(id: &str, version: &str, decision: Option<&str>) -> (String, InstanceInfo) {
        (
            id.into(),
            InstanceInfo {
                state: "running".into(),
                private_ip: None,
                group_name: Some("shop-web".into()),
                claimed_until: None,
                launch_template: Some(lt(version)),
                decision: decision.map(str::to_owned),
                launched_at: None,
            },
        )
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            desired_capacity: 2,
            in_service: vec!["i-old".into(), "i-new1".into(), "i-new2".into()],
            instances: vec![
                instance("i-old", "1", Some("CONTINUE")),
                instance("i-new1", "2", Some("CONTINUE")),
                instance("i-new2", "2", Some("CONTINUE shadow-verdict=ABANDON")),
                instance("i-bad", "2", Some("ABANDON cause=host_rejected")),
            ],
            ..Snapshot::default()
        }
    }

    #[test]
    fn only_in_service_instances_of_the_release_that_passed_count() {
        let s = snapshot();
        assert_eq!(
            assess(Some(&lt("2")), 0, None, None, &s),
            Progress::Succeeded {
                passed: 2,
                expected: 2
            }
        );
        assert_eq!(
            assess(Some(&lt("3")), 0, None, None, &s),
            Progress::Waiting {
                passed: 0,
                expected: 2
            }
        );
        assert_eq!(
            assess(Some(&lt("2")), 0, None, Some(3), &s),
            Progress::Waiting {
                passed: 2,
                expected: 3
            }
        );
    }

    #[test]
    fn a_trip_of_the_release_halts_it() {
        let mut s = snapshot();
        s.trip = Some(Trip {
            release: Some(lt("2")),
            at: 100,
            instance_id: "i-bad".into(),
        });
        assert!(matches!(
            assess(Some(&lt("2")), 50, None, None, &s),
            Progress::Halted { .. }
        ));
        // an older trip, of a release a person has resumed since, does not
        assert!(matches!(
            assess(Some(&lt("2")), 150, None, None, &s),
            Progress::Succeeded { .. }
        ));
        s.suspended_processes.push("Launch".into());
        assert!(matches!(
            assess(Some(&lt("2")), 150, None, None, &s),
            Progress::Halted { .. }
        ));
        // another release's trip is not this one's
        assert!(matches!(
            assess(Some(&lt("3")), 50, None, None, &s),
            Progress::Waiting { .. }
        ));
    }

    #[test]
    fn a_refresh_that_ends_otherwise_fails_the_rollout() {
        let mut s = snapshot();
        s.in_service.clear();
        s.refresh = Some(RefreshView {
            id: "r-1".into(),
            status: "RollbackSuccessful".into(),
            status_reason: Some("Rollback started by user request".into()),
            desired: Some(TemplateSpec {
                id: Some("lt-1".into()),
                name: None,
                version: Some("2".into()),
            }),
        });
        let p = assess(Some(&lt("2")), 0, Some("r-1"), None, &s);
        assert!(
            matches!(&p, Progress::Failed { reason } if reason.contains("RollbackSuccessful")),
            "{p:?}"
        );
        assert!(matches!(
            assess(Some(&lt("2")), 0, None, None, &s),
            Progress::Waiting { .. }
        ));
    }

    /// The group as a scripted series of looks (the last one repeats), with launch
    /// template `lt-1` named by the group at version `2`.
    struct FakeReads(std::sync::Mutex<Vec<GroupSnapshot>>);

    impl RolloutReads for FakeReads {
        async fn rollout_snapshot(
            &self,
            _: &str,
        ) -> Result<Option<(GroupSnapshot, Option<TemplateSpec>)>, AwsError> {
            let mut looks = self.0.lock().unwrap();
            if looks.is_empty() {
                return Ok(None);
            }
            let look = if looks.len() > 1 {
                looks.remove(0)
            } else {
                looks[0].clone()
            };
            let template = TemplateSpec {
                id: Some("lt-1".into()),
                name: None,
                version: Some("2".into()),
            };
            Ok(Some((look, Some(template))))
        }

        async fn resolve_launch_template(
            &self,
            _: &TemplateSpec,
            version: Option<&str>,
        ) -> Result<Option<LaunchTemplateVersion>, AwsError> {
            Ok(Some(lt(version.unwrap_or("2"))))
        }
    }

    #[derive(Default)]
    struct Lines(Vec<(String, String)>);

    impl Report for Lines {
        fn line(&mut self, kind: &str, text: &str, _: serde_json::Value) {
            self.0.push((kind.to_owned(), text.to_owned()));
        }
    }

    fn request() -> RolloutRequest {
        RolloutRequest {
            group: "shop-web".into(),
            expect: None,
            timeout: Duration::from_secs(60),
            launch_template_version: None,
            poll_interval: Duration::from_secs(5),
        }
    }

    fn look(in_service: &[&str], instances: Vec<(String, InstanceInfo)>) -> GroupSnapshot {
        GroupSnapshot {
            desired_capacity: 2,
            in_service: in_service.iter().map(|s| (*s).to_owned()).collect(),
            instances,
            ..GroupSnapshot::default()
        }
    }

    // Paused time: the polls run in virtual time, without waiting.
    #[tokio::test(start_paused = true)]
    async fn the_step_reports_each_decision_once_and_succeeds() {
        let reads = FakeReads(std::sync::Mutex::new(vec![
            look(&[], vec![instance("i-1", "2", Some("CONTINUE"))]),
            look(
                &["i-1"],
                vec![
                    instance("i-1", "2", Some("CONTINUE")),
                    instance("i-bad", "2", Some("ABANDON cause=host_rejected")),
                ],
            ),
            look(
                &["i-1", "i-2"],
                vec![
                    instance("i-1", "2", Some("CONTINUE")),
                    instance("i-2", "2", Some("CONTINUE")),
                    instance("i-old", "1", Some("CONTINUE")),
                ],
            ),
        ]));
        let mut lines = Lines::default();

        let succeeded = run(&reads, &request(), &mut lines).await.unwrap();

        assert!(succeeded, "{:?}", lines.0);
        let decisions: Vec<&str> = lines
            .0
            .iter()
            .filter(|(k, _)| k == "decision")
            .map(|(_, t)| t.as_str())
            .collect();
        assert_eq!(
            decisions,
            [
                "i-1 CONTINUE",
                "i-bad ABANDON cause=host_rejected",
                "i-2 CONTINUE"
            ]
        );
        let (kind, text) = lines.0.last().unwrap();
        assert_eq!(kind, "end");
        assert!(text.starts_with("rollout succeeded: 2 of 2"), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_trip_of_the_release_halts_the_step() {
        let mut halted = look(&[], vec![]);
        halted.breaker_tag = Some(format!("lt-1:2 {} i-bad", crate::time::epoch_seconds()));
        halted.suspended_processes = vec!["Launch".into()];
        let reads = FakeReads(std::sync::Mutex::new(vec![look(&[], vec![]), halted]));
        let mut lines = Lines::default();

        assert!(!run(&reads, &request(), &mut lines).await.unwrap());
        let (_, text) = lines.0.last().unwrap();
        assert!(
            text.starts_with("rollout halted: the launch-loop breaker tripped"),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_step_that_never_gets_there_times_out() {
        let reads = FakeReads(std::sync::Mutex::new(vec![look(&[], vec![])]));
        let mut lines = Lines::default();

        assert!(!run(&reads, &request(), &mut lines).await.unwrap());
        let (_, text) = lines.0.last().unwrap();
        assert!(text.starts_with("rollout timed out after 60 s"), "{text}");
    }

    #[tokio::test]
    async fn an_unknown_group_is_a_usage_error() {
        let reads = FakeReads(std::sync::Mutex::new(Vec::new()));
        let err = run(&reads, &request(), &mut Lines::default())
            .await
            .unwrap_err();
        assert!(matches!(err, RolloutError::Usage(_)), "{err}");
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
