//! `launch-gate rollout`: the pipeline step. It waits until the Auto Scaling group has the
//! expected number of in-service instances of the release being rolled out that passed
//! the gate, or until the launch-loop breaker halts the release, or the instance refresh
//! fails, or time runs out, printing each of the gate's decisions as it appears.
//!
//! The release is a launch template version, fixed when the step starts: the one an
//! instance refresh in progress deploys (its `DesiredConfiguration`), else the one the
//! group names (`$Latest` and `$Default` resolved with `DescribeLaunchTemplates`), or the
//! one given. An instance passed the gate when its `launch-gate:decision` tag (written by
//! the gate before it completes the lifecycle action) says `CONTINUE`. Everything is read
//! from AWS: the step needs no access to the gate's logs or events.
//!
//! [`assess`] is pure; the SDK reads are in [`crate::aws::sdk`].

use serde::Serialize;

use crate::aws::{InstanceInfo, LaunchTemplateVersion};
use crate::breaker::Trip;

/// A launch template as a group or an instance refresh names it: `LaunchTemplate`, or a
/// `MixedInstancesPolicy`'s `LaunchTemplateSpecification`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TemplateSpec {
    /// `LaunchTemplateId`.
    pub id: Option<String>,
    /// `LaunchTemplateName`.
    pub name: Option<String>,
    /// `Version`: a number, `$Latest` or `$Default` (absent means `$Default`).
    pub version: Option<String>,
}

/// One instance refresh, from `DescribeInstanceRefreshes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefreshView {
    /// `InstanceRefreshId`.
    pub id: String,
    /// `Status`: `Pending`, `InProgress`, `Successful`, `Failed`, `Cancelling`,
    /// `Cancelled`, `RollbackInProgress`, `RollbackFailed`, `RollbackSuccessful`, `Baking`.
    pub status: String,
    /// `StatusReason`.
    pub status_reason: Option<String>,
    /// The launch template of its `DesiredConfiguration`, as given when it was started.
    pub desired: Option<TemplateSpec>,
}

impl RefreshView {
    /// Whether it still works toward its desired configuration.
    pub fn is_rolling_out(&self) -> bool {
        matches!(self.status.as_str(), "Pending" | "InProgress" | "Baking")
    }
}

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
}
