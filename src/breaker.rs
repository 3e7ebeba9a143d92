//! The launch-loop breaker. An `ABANDON` keeps one broken instance out of service, but the
//! group then launches a replacement from the same launch template version, which is
//! abandoned in turn. After `breaker_abandons` `ABANDON`s for the same group and launch
//! template version within `breaker_window_seconds`, the breaker trips, once, and
//! suspends the group's launches or rolls back its instance refresh.
//!
//! It keeps no state of its own. The abandons are counted from the group's scaling
//! activities, AWS's own record of every launch: a launch whose lifecycle action was
//! abandoned ends `Cancelled` with "... was abandoned: Lifecycle Action Completed with
//! ABANDON Result", whoever abandoned it (this gate, another invocation, the hook's
//! `DefaultResult`). The launch template version of each comes from the
//! `aws:ec2launchtemplate:version` tag EC2 puts on the instance, which `DescribeInstances`
//! shows for about an hour after termination (hence a window of at most an hour). A trip
//! is written on the group as the [`BREAKER_TAG`] tag: a later run of abandons of the same
//! version counts from there, so a person who resumes launches after fixing, say, a
//! database gets `breaker_abandons` fresh chances. Concurrent gates that reach the
//! threshold together agree on the one that acts: each looks for a newer trip of the
//! release just before writing its own, and after [`LEASE_SETTLE`] reads the tag back;
//! the last writer acts.
//!
//! The breaker runs after the lifecycle action is completed and never changes a verdict;
//! an AWS error is recorded and logged, and the next `ABANDON` counts again.

use std::time::Duration;

use serde::Serialize;
use tracing::{error, warn};

use crate::aws::{
    AutoScalingGroups, BREAKER_TAG, Instances, LaunchTemplateVersion, RefreshAnswer,
    ScalingActivity,
};
use crate::config::{BreakerAction, GateConfig};

/// How long a gate that wrote the breaker tag waits before reading it back: concurrent
/// writers have all written by then, and the last one acts.
pub const LEASE_SETTLE: Duration = Duration::from_secs(2);

/// The instance of a launch activity: `Launching a new EC2 instance: i-...`, also into or
/// from a warm pool; `None` for other activities (terminations, failed launches without an
/// instance).
pub fn launched_instance(activity: &ScalingActivity) -> Option<&str> {
    let d = activity.description.as_str();
    if !(d.starts_with("Launching") || d.starts_with("Moving EC2 instance out of warm pool")) {
        return None;
    }
    let before_reason = d.split("Status Reason").next().unwrap_or(d);
    before_reason
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .find(|t| t.len() > 2 && t.starts_with("i-"))
}

/// The instance of a launch whose lifecycle action was abandoned: `StatusCode`
/// `Cancelled`, and a status message saying the lifecycle action was abandoned.
pub fn abandoned_launch(activity: &ScalingActivity) -> Option<&str> {
    if activity.status_code != "Cancelled" {
        return None;
    }
    let message = activity
        .status_message
        .as_deref()
        .unwrap_or(&activity.description);
    if !message.contains("Lifecycle Action") || !message.contains("abandoned") {
        return None;
    }
    launched_instance(activity)
}

/// A trip, as written in the group's [`BREAKER_TAG`] tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trip {
    /// The launch template version it tripped for; `None` for instances launched without
    /// a launch template.
    pub release: Option<LaunchTemplateVersion>,
    /// When, seconds since the Unix epoch.
    pub at: u64,
    /// The instance whose `ABANDON` tripped it.
    pub instance_id: String,
}

impl Trip {
    /// The tag value: `<launch template id>:<version> <epoch seconds> <instance id>`
    /// (`-` for no launch template).
    pub fn value(&self) -> String {
        let release = self
            .release
            .as_ref()
            .map_or_else(|| "-".to_owned(), |r| format!("{}:{}", r.id, r.version));
        format!("{release} {} {}", self.at, self.instance_id)
    }

    /// Whether this is a trip of `release` at or after `since` (seconds since the Unix
    /// epoch).
    pub fn of(&self, release: Option<&LaunchTemplateVersion>, since: u64) -> bool {
        self.release.as_ref() == release && self.at >= since
    }

    /// Reads a tag value; `None` when it is not one the gate wrote.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split_whitespace();
        let release = match parts.next()? {
            "-" => None,
            r => {
                let (id, version) = r.rsplit_once(':')?;
                Some(LaunchTemplateVersion {
                    id: id.to_owned(),
                    version: version.to_owned(),
                })
            }
        };
        let at = parts.next()?.parse().ok()?;
        let instance_id = parts.next()?.to_owned();
        parts.next().is_none().then_some(Self {
            release,
            at,
            instance_id,
        })
    }
}

/// One counted `ABANDON`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CountedAbandon {
    /// The abandoned instance.
    pub instance_id: String,
    /// When its lifecycle action ended (RFC 3339).
    pub at: String,
}

/// What the breaker did after one `ABANDON`, in the decision record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakerRecord {
    /// The configured action.
    pub action: BreakerAction,
    /// `ABANDON`s that trip it.
    pub threshold: u32,
    /// Its window, seconds.
    pub window_seconds: u64,
    /// Abandons count from here (RFC 3339): the window's start, or the last trip of this
    /// version, whichever is later.
    pub counting_since: String,
    /// The `ABANDON`s counted, this one included, oldest first.
    pub abandons: Vec<CountedAbandon>,
    /// Abandoned launches in the window whose launch template version is unknown
    /// (EC2 no longer shows the instance).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_version: Vec<String>,
    /// Whether this `ABANDON` tripped the breaker.
    pub tripped: bool,
    /// Another gate's `ABANDON` tripped it at the same time; that gate acts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tripped_by: Option<String>,
    /// What the trip did, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_taken: Option<String>,
    /// The command that undoes a suspension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume_command: Option<String>,
    /// Why this `ABANDON` was not counted, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// An AWS call that failed; the breaker counts again at the next `ABANDON`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The command that resumes launches after a `suspend` trip.
pub fn resume_command(group_name: &str) -> String {
    format!(
        "aws autoscaling resume-processes --auto-scaling-group-name {group_name} --scaling-processes Launch"
    )
}

/// RFC 3339 of seconds since the Unix epoch.
pub fn rfc3339(epoch_seconds: u64) -> String {
    use aws_sdk_autoscaling::primitives::{DateTime, DateTimeFormat};
    DateTime::from_secs(i64::try_from(epoch_seconds).unwrap_or(i64::MAX))
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_default()
}

/// Counts the `ABANDON`s of `release` in `group_name` after the gate abandoned
/// `instance_id`, and trips the breaker when they reach the threshold. `None` when the
/// breaker is off.
pub async fn after_abandon<A: AutoScalingGroups + Instances>(
    aws: &A,
    config: &GateConfig,
    group_name: &str,
    instance_id: &str,
    release: Option<&LaunchTemplateVersion>,
) -> Option<BreakerRecord> {
    if config.breaker_action == BreakerAction::Off {
        return None;
    }
    let now = crate::record::epoch_seconds();
    let window_start = now.saturating_sub(config.breaker_window.as_secs());
    let mut record = BreakerRecord {
        action: config.breaker_action,
        threshold: config.breaker_abandons,
        window_seconds: config.breaker_window.as_secs(),
        counting_since: rfc3339(window_start),
        abandons: Vec::new(),
        unknown_version: Vec::new(),
        tripped: false,
        tripped_by: None,
        action_taken: None,
        resume_command: None,
        note: None,
        error: None,
    };
    if let Err(e) = count_and_trip(
        aws,
        config,
        group_name,
        instance_id,
        release,
        now,
        &mut record,
    )
    .await
    {
        error!(group = %group_name, error = %e, "the launch-loop breaker could not count or act; it counts again at the next ABANDON");
        record.error = Some(e.to_string());
    }
    Some(record)
}

async fn count_and_trip<A: AutoScalingGroups + Instances>(
    aws: &A,
    config: &GateConfig,
    group_name: &str,
    instance_id: &str,
    release: Option<&LaunchTemplateVersion>,
    now: u64,
    record: &mut BreakerRecord,
) -> Result<(), crate::aws::AwsError> {
    let Some(group) = aws.group_state(group_name).await? else {
        record.error = Some(format!("the group {group_name} does not exist any more"));
        return Ok(());
    };
    let mut since = now.saturating_sub(config.breaker_window.as_secs());
    // After a trip of this release, only launches started after it count: those under way
    // when it tripped are its evidence's tail, not a new loop.
    let mut last_trip = None;
    if let Some(trip) = group
        .tag(BREAKER_TAG)
        .and_then(Trip::parse)
        .filter(|t| t.of(release, since))
    {
        since = trip.at + 1;
        last_trip = Some(trip.at);
        record.counting_since = rfc3339(since);
    }
    // A launch starts before its lifecycle action ends, by up to the gate's longest wait.
    let launched_since = since.saturating_sub(config.max_wait.as_secs() + 600);
    let activities = aws.scaling_activities(group_name, launched_since).await?;
    let started_after_trip = |a: &ScalingActivity| last_trip.is_none_or(|t| a.start_time > t);
    if let Some(t) = last_trip
        && activities
            .iter()
            .any(|a| launched_instance(a) == Some(instance_id) && !started_after_trip(a))
    {
        record.note = Some(format!(
            "launched before the breaker tripped for this release at {}: not counted again",
            rfc3339(t)
        ));
        return Ok(());
    }
    let mut abandoned: Vec<(String, u64)> = activities
        .iter()
        .filter(|a| started_after_trip(a))
        .filter_map(|a| {
            let id = abandoned_launch(a)?;
            let at = a.end_time?;
            (at >= since && id != instance_id).then(|| (id.to_owned(), at))
        })
        .collect();
    abandoned.sort_by_key(|(_, at)| *at);
    abandoned.dedup_by(|a, b| a.0 == b.0);
    let ids: Vec<String> = abandoned.iter().map(|(id, _)| id.clone()).collect();
    let known = if ids.is_empty() {
        Vec::new()
    } else {
        aws.describe_instances(&ids).await?
    };
    for (id, at) in abandoned {
        match known.iter().find(|(k, _)| *k == id) {
            Some((_, info)) if info.launch_template.as_ref() == release => {
                record.abandons.push(CountedAbandon {
                    instance_id: id,
                    at: rfc3339(at),
                })
            }
            Some(_) => {}
            None => record.unknown_version.push(id),
        }
    }
    record.abandons.push(CountedAbandon {
        instance_id: instance_id.to_owned(),
        at: rfc3339(now),
    });
    if record.abandons.len() < config.breaker_abandons as usize {
        return Ok(());
    }

    // The threshold is reached. Another gate may have tripped for this release since the
    // count began; if not, claim the trip, and act only if the claim holds.
    let fresh = aws.group_state(group_name).await?.unwrap_or_default();
    if let Some(other) = fresh
        .tag(BREAKER_TAG)
        .and_then(Trip::parse)
        .filter(|t| t.of(release, since))
    {
        record.tripped_by = Some(other.instance_id);
        return Ok(());
    }
    let previous = fresh.tag(BREAKER_TAG).unwrap_or("").to_owned();
    let trip = Trip {
        release: release.cloned(),
        at: now,
        instance_id: instance_id.to_owned(),
    };
    aws.tag_group(group_name, BREAKER_TAG, &trip.value())
        .await?;
    tokio::time::sleep(LEASE_SETTLE).await;
    let group = aws.group_state(group_name).await?.unwrap_or_default();
    let holder = group.tag(BREAKER_TAG).map(str::to_owned);
    if holder.as_deref() != Some(trip.value().as_str()) {
        record.tripped_by = holder
            .as_deref()
            .and_then(Trip::parse)
            .map(|t| t.instance_id);
        warn!(group = %group_name, by = ?record.tripped_by, "the launch-loop breaker tripped for another gate's ABANDON at the same time; that gate acts");
        return Ok(());
    }
    match act(aws, config, group_name, release, &group, record).await {
        Ok(done) => {
            record.tripped = true;
            record.action_taken = Some(done);
            if config.breaker_action == BreakerAction::Suspend {
                record.resume_command = Some(resume_command(group_name));
            }
            Ok(())
        }
        Err(e) => {
            // Not tripped after all: the next ABANDON counts again and retries.
            if let Err(undo) = aws.tag_group(group_name, BREAKER_TAG, &previous).await {
                error!(group = %group_name, error = %undo, "could not take back the breaker's tag after its action failed");
            }
            Err(e)
        }
    }
}

/// Carries out the configured action of a trip; the words say what it did.
async fn act<A: AutoScalingGroups>(
    aws: &A,
    config: &GateConfig,
    group_name: &str,
    release: Option<&LaunchTemplateVersion>,
    group: &crate::aws::GroupState,
    record: &BreakerRecord,
) -> Result<String, crate::aws::AwsError> {
    let what = release.map_or_else(
        || "instances launched without a launch template".to_owned(),
        |r| format!("launch template {r}"),
    );
    let count = record.abandons.len();
    let minutes = config.breaker_window.as_secs() / 60;
    let evidence = format!("{count} ABANDONs of {what} within {minutes} minutes");
    Ok(match config.breaker_action {
        BreakerAction::Off => unreachable!("after_abandon returns before counting"),
        BreakerAction::Suspend => {
            if group.suspended_processes.iter().any(|p| p == "Launch") {
                format!("{evidence}; the group's Launch process was already suspended")
            } else {
                aws.suspend_launch(group_name).await?;
                format!(
                    "{evidence}: suspended the group's Launch process, so no more instances are launched (nor replaced by an instance refresh or after health-check failures) until a person resumes launches. Fix the release (or point the group at a working launch template version), then resume"
                )
            }
        }
        BreakerAction::Rollback => match aws.rollback_instance_refresh(group_name).await? {
            RefreshAnswer::Accepted(id) => format!(
                "{evidence}: rolled back instance refresh {id}; the group replaces the instances it launched with its previous configuration"
            ),
            RefreshAnswer::NotFound(message) => format!(
                "{evidence}, but no instance refresh is in progress ({message}), so nothing was rolled back and the group goes on launching this release. Point the group at a working launch template version, or suspend launches: aws autoscaling suspend-processes --auto-scaling-group-name {group_name} --scaling-processes Launch"
            ),
            RefreshAnswer::Irreversible(why) => {
                match aws.cancel_instance_refresh(group_name).await? {
                    RefreshAnswer::Accepted(id) => format!(
                        "{evidence}: the instance refresh cannot be rolled back ({why}), so it was cancelled instead (instance refresh {id}): it replaces no more instances, but the instances it replaced stay, and launches for missing capacity still use the group's launch template. Start refreshes with a DesiredConfiguration naming a numbered launch template version to make rollbacks possible"
                    ),
                    RefreshAnswer::NotFound(message) | RefreshAnswer::Irreversible(message) => {
                        format!(
                            "{evidence}: the instance refresh cannot be rolled back ({why}) and cancelling it failed too ({message})"
                        )
                    }
                }
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(code: &str, description: &str, message: Option<&str>) -> ScalingActivity {
        ScalingActivity {
            id: "a".into(),
            description: description.into(),
            status_code: code.into(),
            status_message: message.map(str::to_owned),
            start_time: 0,
            end_time: Some(1),
        }
    }

    #[test]
    fn abandoned_launches_are_read_from_aws_wording() {
        let message = "Instance failed to complete user's Lifecycle Action: Lifecycle Action with token e85eb647-4fe0-4909-b341-a6c42d8aba1f was abandoned: Lifecycle Action Completed with ABANDON Result";
        let cancelled = activity(
            "Cancelled",
            &format!(
                "Launching a new EC2 instance: i-003a5b3ffe1e9358e.  Status Reason: {message}"
            ),
            Some(message),
        );
        assert_eq!(abandoned_launch(&cancelled), Some("i-003a5b3ffe1e9358e"));
        let ok = activity(
            "Successful",
            "Launching a new EC2 instance: i-003a5b3ffe1e9358e",
            None,
        );
        assert_eq!(abandoned_launch(&ok), None);
        let spot = activity(
            "Cancelled",
            "Launching a new EC2 instance.  Status Reason: Your Spot request price ...",
            Some("Your Spot request price of 0.001 is lower than the minimum"),
        );
        assert_eq!(abandoned_launch(&spot), None);
        let termination = activity(
            "Cancelled",
            "Terminating EC2 instance: i-0123",
            Some(message),
        );
        assert_eq!(abandoned_launch(&termination), None);
        let warm = activity(
            "Cancelled",
            &format!(
                "Launching a new EC2 instance from warm pool: i-0abc.  Status Reason: {message}"
            ),
            Some(message),
        );
        assert_eq!(abandoned_launch(&warm), Some("i-0abc"));
    }

    #[test]
    fn trips_round_trip_through_the_tag() {
        let trip = Trip {
            release: Some(LaunchTemplateVersion {
                id: "lt-0abc".into(),
                version: "7".into(),
            }),
            at: 1_795_251_600,
            instance_id: "i-0123".into(),
        };
        assert_eq!(trip.value(), "lt-0abc:7 1795251600 i-0123");
        assert_eq!(Trip::parse(&trip.value()), Some(trip.clone()));
        let bare = Trip {
            release: None,
            ..trip
        };
        assert_eq!(Trip::parse(&bare.value()), Some(bare));
        for bad in [
            "",
            "lt-0abc:7",
            "lt-0abc:7 soon i-1",
            "x 1 i-1 extra",
            "lt 1 i-1",
        ] {
            assert_eq!(Trip::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(1_795_251_600), "2026-11-21T09:00:00Z");
    }
}
