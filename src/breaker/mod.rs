//! The launch-loop breaker. An `ABANDON` keeps one broken instance out of service, but the
//! group then launches a replacement from the same launch template version, which is
//! abandoned in turn. After `breaker_abandons` `ABANDON`s for the same group and launch
//! template version within `breaker_window_seconds`, the breaker trips, once, and
//! suspends the group's launches or rolls back its instance refresh.
//!
//! It keeps no state of its own. The abandons are counted from the group's scaling
//! activities, AWS's own record of every launch. AWS words an abandoned launch two ways
//! (AWS knowledge center, "lifecycle actions CodeDeploy"): "... was abandoned: Lifecycle
//! Action Completed with ABANDON Result" when someone completed it with `ABANDON` (this
//! gate, another invocation, an operator), and "... was abandoned: Heartbeat Timeout" when
//! nobody decided and the hook's `DefaultResult` applied. Only the first counts: a timeout
//! says the gate was throttled, out of concurrency or down, not that the release is
//! broken, and a breaker that tripped on its own outage would halt healthy rollouts.
//! Timeouts are listed in the record.
//!
//! The launch template version of each abandoned launch comes from the
//! `aws:ec2launchtemplate:version` tag EC2 puts on the instance. EC2 drops the tags of a
//! terminated instance gradually, within the hour and sometimes within minutes, so an
//! abandon whose version EC2 no longer shows is counted toward the version abandoned now
//! (and listed as `unknown_version`): without that, the breaker would never trip in an
//! account where the tags go fast. A trip of any version restarts the count of those.
//!
//! A trip acts first and is recorded after: the group's `Launch` process is suspended (or
//! its instance refresh rolled back), then the [`BREAKER_TAG`] tag is written on the group.
//! A later run of abandons of the same version counts from there, so a person who resumes
//! launches after fixing, say, a database gets `breaker_abandons` fresh chances. The
//! actions are idempotent and judged by the group's real state (a suspended `Launch`
//! process, no refresh in progress), so every gate that counts the threshold acts (gates
//! that reach it together act together without harm; none defers to another, whose count
//! may have missed abandons not yet visible), and a trip that was killed before its tag
//! was written still stands.
//!
//! The breaker runs after the lifecycle action is completed and never changes a verdict;
//! an AWS error is recorded and logged, and the next `ABANDON` counts again.

use serde::Serialize;
use tracing::{error, warn};

use crate::aws::{
    AutoScalingGroups, BREAKER_TAG, ENVIRONMENT_TAG, Instances, LaunchTemplateVersion,
    RefreshAnswer, ScalingActivity,
};
use crate::config::{BreakerAction, GateConfig};
use crate::time::{epoch_seconds, rfc3339};

/// How AWS ends the status message of a launch whose lifecycle action was completed
/// with `ABANDON`.
pub const ABANDON_COMPLETED: &str = "Lifecycle Action Completed with ABANDON Result";

/// How AWS ends the status message of a launch whose lifecycle action timed out and was
/// abandoned by the hook's `DefaultResult`.
pub const ABANDON_TIMED_OUT: &str = "Heartbeat Timeout";

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

/// How a launch's lifecycle action was abandoned, from its activity's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandoned {
    /// Completed with `ABANDON` ([`ABANDON_COMPLETED`]).
    Completed,
    /// The heartbeat timeout ran out and `DefaultResult` applied ([`ABANDON_TIMED_OUT`]).
    TimedOut,
}

/// The instance of a launch whose lifecycle action was abandoned (`StatusCode`
/// `Cancelled`, and AWS's wording of an abandoned lifecycle action), and how.
pub fn abandoned_launch(activity: &ScalingActivity) -> Option<(&str, Abandoned)> {
    if activity.status_code != "Cancelled" {
        return None;
    }
    let message = activity
        .status_message
        .as_deref()
        .unwrap_or(&activity.description);
    if !message.contains("Lifecycle Action") || !message.contains("was abandoned") {
        return None;
    }
    let how = if message.contains(ABANDON_COMPLETED) {
        Abandoned::Completed
    } else {
        Abandoned::TimedOut
    };
    launched_instance(activity).map(|i| (i, how))
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
    /// Counted abandons whose launch template version is unknown (EC2 dropped the
    /// terminated instance's tags, or no longer shows it): counted toward this version.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_version: Vec<String>,
    /// Launches in the window abandoned by the hook's `DefaultResult` at the heartbeat
    /// timeout (nobody decided): not counted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timed_out: Vec<String>,
    /// Launches in the window the gate abandoned through an environment outage (the
    /// running release failed the same way, [`ENVIRONMENT_TAG`]): not counted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<String>,
    /// Whether this `ABANDON` tripped the breaker.
    pub tripped: bool,
    /// The instance whose `ABANDON` tripped the breaker before this one (the trip stands:
    /// the group's `Launch` process is suspended).
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
    TripAction::of(config.breaker_action)?;
    let now = epoch_seconds();
    let window_start = now.saturating_sub(config.breaker_window.as_secs());
    let mut record = BreakerRecord {
        action: config.breaker_action,
        threshold: config.breaker_abandons,
        window_seconds: config.breaker_window.as_secs(),
        counting_since: rfc3339(window_start),
        abandons: Vec::new(),
        unknown_version: Vec::new(),
        timed_out: Vec::new(),
        environment: Vec::new(),
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

/// After an `ABANDON` through an environment outage: not counted, and listed in the
/// group's [`ENVIRONMENT_TAG`] (the newest that fit in 256 characters) so that later counts
/// leave it out too. `None` when the breaker is off.
pub async fn after_environment_abandon<A: AutoScalingGroups>(
    aws: &A,
    config: &GateConfig,
    group_name: &str,
    instance_id: &str,
) -> Option<BreakerRecord> {
    TripAction::of(config.breaker_action)?;
    let now = epoch_seconds();
    let mut record = BreakerRecord {
        action: config.breaker_action,
        threshold: config.breaker_abandons,
        window_seconds: config.breaker_window.as_secs(),
        counting_since: rfc3339(now.saturating_sub(config.breaker_window.as_secs())),
        abandons: Vec::new(),
        unknown_version: Vec::new(),
        timed_out: Vec::new(),
        environment: vec![instance_id.to_owned()],
        tripped: false,
        tripped_by: None,
        action_taken: None,
        resume_command: None,
        note: Some(
            "an ABANDON through an environment outage (the running release failed the same way): not counted toward the breaker".into(),
        ),
        error: None,
    };
    let listed = match aws.group_state(group_name).await {
        Ok(g) => g
            .and_then(|g| g.tag(ENVIRONMENT_TAG).map(str::to_owned))
            .unwrap_or_default(),
        Err(e) => {
            record.error = Some(e.to_string());
            return Some(record);
        }
    };
    let value = environment_tag_with(&listed, instance_id, now);
    if let Err(e) = aws.tag_group(group_name, ENVIRONMENT_TAG, &value).await {
        error!(group = %group_name, error = %e, "could not list the environment ABANDON on the group; the breaker may count it");
        record.error = Some(e.to_string());
    }
    Some(record)
}

/// The [`ENVIRONMENT_TAG`] value `t=<now> <ids>`: the ids `listed` with `instance_id`
/// appended, the oldest dropped until the value fits a tag's 256 characters. `now` is when
/// the newest was abandoned (seconds since the Unix epoch).
pub fn environment_tag_with(listed: &str, instance_id: &str, now: u64) -> String {
    let stamp = format!("t={now}");
    let mut ids: Vec<&str> = environment_ids(listed)
        .filter(|id| *id != instance_id)
        .collect();
    ids.push(instance_id);
    while stamp.len() + ids.iter().map(|id| id.len() + 1).sum::<usize>() > 256 {
        ids.remove(0);
    }
    std::iter::once(stamp.as_str())
        .chain(ids)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The instance ids an [`ENVIRONMENT_TAG`] value lists.
pub fn environment_ids(value: &str) -> impl Iterator<Item = &str> {
    value.split_whitespace().filter(|w| !w.starts_with("t="))
}

/// When the newest launch an [`ENVIRONMENT_TAG`] value lists was abandoned (seconds since
/// the Unix epoch).
pub fn environment_tag_time(value: &str) -> Option<u64> {
    value
        .split_whitespace()
        .find_map(|w| w.strip_prefix("t="))
        .and_then(|t| t.parse().ok())
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
    let Some(trip_action) = TripAction::of(config.breaker_action) else {
        return Ok(());
    };
    let Some(group) = aws.group_state(group_name).await? else {
        record.error = Some(format!("the group {group_name} does not exist any more"));
        return Ok(());
    };
    let window_start = now.saturating_sub(config.breaker_window.as_secs());
    let mut since = window_start;
    let last = group.tag(BREAKER_TAG).and_then(Trip::parse);
    // After a trip of this release, only launches started after it count: those under way
    // when it tripped are its evidence's tail, not a new loop.
    let mut last_trip = None;
    if let Some(trip) = last.as_ref().filter(|t| t.of(release, window_start)) {
        since = trip.at.saturating_add(1);
        last_trip = Some(trip.at);
        record.counting_since = rfc3339(since);
    }
    // Abandons of unknown version count from the last trip of any version.
    let unknown_since = last
        .as_ref()
        .map_or(since, |t| since.max(t.at.saturating_add(1)));
    // A launch starts before its lifecycle action ends, by up to the gate's longest wait.
    let launched_since = since.saturating_sub(config.max_wait.as_secs().saturating_add(600));
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
    let environment: Vec<&str> = group
        .tag(ENVIRONMENT_TAG)
        .map(|v| environment_ids(v).collect())
        .unwrap_or_default();
    let mut abandoned: Vec<(String, u64)> = Vec::new();
    for a in activities.iter().filter(|a| started_after_trip(a)) {
        let (Some((id, how)), Some(at)) = (abandoned_launch(a), a.end_time) else {
            continue;
        };
        if at < since {
            continue;
        }
        if environment.contains(&id) {
            if !record.environment.iter().any(|e| e == id) {
                record.environment.push(id.to_owned());
            }
            continue;
        }
        match how {
            Abandoned::Completed => abandoned.push((id.to_owned(), at)),
            Abandoned::TimedOut => record.timed_out.push(id.to_owned()),
        }
    }
    abandoned.sort_by_key(|(_, at)| *at);
    abandoned.dedup_by(|a, b| a.0 == b.0);
    let ids: Vec<String> = abandoned.iter().map(|(id, _)| id.clone()).collect();
    let known = if ids.is_empty() {
        Vec::new()
    } else {
        // Throttled when many launches end at once: the versions are then unknown, and
        // counted toward this one, as for a terminated instance whose tags are gone. The
        // gate whose ABANDON reaches the threshold must be able to trip.
        match aws.describe_instances(&ids).await {
            Ok(known) => known,
            Err(e) => {
                warn!(group = %group_name, error = %e, "the abandoned launches' versions could not be read; counted as unknown");
                record.note = Some(format!(
                    "the abandoned launches' versions could not be read ({}); counted as of unknown version",
                    e.operation
                ));
                Vec::new()
            }
        }
    };
    // The abandons counted, with their ends (seconds since the Unix epoch).
    let mut counted: Vec<(String, u64)> = Vec::new();
    for (id, at) in abandoned {
        if id == instance_id {
            // This gate's own abandon: its version is known.
            counted.push((id, at));
            continue;
        }
        let version = known
            .iter()
            .find(|(k, _)| *k == id)
            .and_then(|(_, info)| info.launch_template.as_ref());
        match version {
            Some(v) if Some(v) == release => {}
            Some(_) => continue,
            None if at >= unknown_since => record.unknown_version.push(id.clone()),
            None => continue,
        }
        counted.push((id, at));
    }
    if !counted.iter().any(|(id, _)| id == instance_id) {
        // Its activity may not show the end yet.
        counted.push((instance_id.to_owned(), now));
    }
    counted.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    record.abandons = counted
        .iter()
        .map(|(id, at)| CountedAbandon {
            instance_id: id.clone(),
            at: rfc3339(*at),
        })
        .collect();
    let threshold = (config.breaker_abandons as usize).max(1);
    if counted.len() < threshold {
        return Ok(());
    }

    // The threshold is reached: act on the group's real state, then record the trip.
    let fresh = aws.group_state(group_name).await?.unwrap_or_default();
    if trip_action == TripAction::Suspend && fresh.suspended_processes.iter().any(|p| p == "Launch")
    {
        record.tripped_by = fresh
            .tag(BREAKER_TAG)
            .and_then(Trip::parse)
            .filter(|t| t.of(release, since))
            .map(|t| t.instance_id);
        record.note = Some(
            "the group's Launch process is already suspended (by an earlier trip or a person): nothing more to do"
                .into(),
        );
        return Ok(());
    }
    // A gate that counts the threshold trips, unless the group already shows the trip of
    // this run. It never leaves the trip to the gate whose abandon reached the threshold
    // first in AWS's order: that gate may have counted before the others' abandons were
    // visible, and then nobody would trip until a later launch. The actions are idempotent
    // and judged by the group's real state, so gates that trip together do no harm.
    let (reaching, reached_at) = &counted[threshold - 1];
    let trip_recorded = fresh
        .tag(BREAKER_TAG)
        .and_then(Trip::parse)
        .is_some_and(|t| t.of(release, since) && t.at >= *reached_at);
    if trip_recorded {
        record.tripped_by = Some(reaching.clone());
        return Ok(());
    }
    let done = act(aws, config, trip_action, group_name, release, record).await?;
    record.tripped = true;
    record.action_taken = Some(done);
    if trip_action == TripAction::Suspend {
        record.resume_command = Some(resume_command(group_name));
    }
    let trip = Trip {
        release: release.cloned(),
        at: now,
        instance_id: instance_id.to_owned(),
    };
    if let Err(e) = aws.tag_group(group_name, BREAKER_TAG, &trip.value()).await {
        // The trip stands (the group's state says so); only the next count's start is lost.
        warn!(group = %group_name, error = %e, "the launch-loop breaker acted but could not write its tag");
    }
    Ok(())
}

/// What a trip does: the configured `breaker_action` other than `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TripAction {
    /// `SuspendProcesses Launch`.
    Suspend,
    /// `RollbackInstanceRefresh` (or `CancelInstanceRefresh` when that is not possible).
    Rollback,
}

impl TripAction {
    /// The trip's action of `breaker_action`; `None` when the breaker is off.
    fn of(breaker_action: BreakerAction) -> Option<Self> {
        match breaker_action {
            BreakerAction::Off => None,
            BreakerAction::Suspend => Some(Self::Suspend),
            BreakerAction::Rollback => Some(Self::Rollback),
        }
    }
}

/// Carries out the trip's action; the words say what it did.
async fn act<A: AutoScalingGroups>(
    aws: &A,
    config: &GateConfig,
    action: TripAction,
    group_name: &str,
    release: Option<&LaunchTemplateVersion>,
    record: &BreakerRecord,
) -> Result<String, crate::aws::AwsError> {
    let what = release.map_or_else(
        || "instances launched without a launch template".to_owned(),
        |r| format!("launch template {r}"),
    );
    let count = record.abandons.len();
    let minutes = config.breaker_window.as_secs() / 60;
    let evidence = format!("{count} ABANDONs of {what} within {minutes} minutes");
    Ok(match action {
        TripAction::Suspend => {
            aws.suspend_launch(group_name).await?;
            format!(
                "{evidence}: suspended the group's Launch process, so no more instances are launched (nor replaced by an instance refresh or after health-check failures) until a person resumes launches. Fix the release (or point the group at a working launch template version), then resume"
            )
        }
        TripAction::Rollback => match aws.rollback_instance_refresh(group_name).await? {
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
mod tests;
