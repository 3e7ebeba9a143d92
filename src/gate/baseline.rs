//! The baseline: is it the release, or the world around it? When a round fails after the
//! grace period, the failing check is sent at once to an `InService` instance of the same
//! group that runs another launch template version (the running release). If that
//! instance passes, the new release is to blame; if it fails the same way (the same cause
//! code), the environment is (the database is down for everyone), and the round does not
//! count toward the unhealthy threshold. A member of the same version proves nothing (a
//! failure they share is the release's), nor does one of an unknown version: without a
//! member of another version there is no baseline, and the failure counts. The baseline
//! gets the very request the new instance got (the same `User-Agent` included), so an app
//! cannot tell the two apart.
//!
//! Only AWS's facts choose the baseline: a member of the group as
//! `DescribeAutoScalingGroups` lists it (`InService`, `Healthy`, not the subject), on its
//! private IP from `DescribeInstances` (running, never link-local). Both are read once per
//! wait, at the first failing round past the grace period; a round that passes costs
//! nothing, a failing one one probe more.
//!
//! The first round the environment is blamed for puts an `Environment Unhealthy` event,
//! once per outage: a launch that finds the group's `launch-gate:environment-abandons` tag
//! written within the breaker's window (an earlier launch of the same outage) puts none.

use super::*;
use crate::aws::{ENVIRONMENT_TAG, GroupInstance};
use crate::record::{BaselineRecord, BaselineStatus};

/// The detail type of the event put once per wait when the baseline fails the same way.
pub const ENVIRONMENT_DETAIL_TYPE: &str = "Environment Unhealthy";

/// The cause code of an `ABANDON` at the wait's end while the baseline failed the same
/// way: the launch-loop breaker does not count it.
pub const ENVIRONMENT_CAUSE: &str = "environment_unhealthy";

/// Where the baseline comes from: the subject's group, the subject, and its release.
#[derive(Debug, Clone)]
pub(super) struct BaselineSource {
    pub(super) group_name: String,
    pub(super) instance_id: String,
    pub(super) version: Option<String>,
}

/// The instance chosen as the baseline.
#[derive(Debug, Clone)]
struct Target {
    instance_id: String,
    ip: IpAddr,
    version: Option<String>,
}

impl Target {
    fn words(&self) -> String {
        running_release(&self.instance_id, self.version.as_deref())
    }
}

/// "the running release (launch template version 6, i-0abc)".
pub(crate) fn running_release(instance_id: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("the running release (launch template version {v}, {instance_id})"),
        None => format!("the running release ({instance_id})"),
    }
}

/// The baseline of one wait: chosen once, then compared at each failing round.
#[derive(Debug, Default)]
pub(super) struct BaselineState {
    looked: bool,
    target: Option<Target>,
    event_put: bool,
    /// The last failing round's comparison: `Some(words)` when the environment was to
    /// blame, with the baseline's words.
    pub(super) environment: Option<String>,
}

/// The longest the baseline's reads take, the first time a wait needs them: a
/// `DescribeAutoScalingGroups` and a `DescribeInstances`, each at most the SDK's whole
/// operation timeout (`aws::sdk::OPERATION_TIMEOUT`, 8 s, retries included).
pub(super) const BASELINE_READS: Duration = Duration::from_secs(16);

impl BaselineState {
    /// The time the baseline's reads may still take: [`BASELINE_READS`] until they were
    /// made, then nothing.
    pub(super) fn reads_still_due(&self) -> Duration {
        if self.looked {
            Duration::ZERO
        } else {
            BASELINE_READS
        }
    }
}

/// What one comparison says of a failing round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Comparison {
    /// The baseline passes the check the new release fails.
    ReleaseToBlame,
    /// The baseline fails it with the same cause: the environment's failure.
    EnvironmentToBlame,
    /// The baseline fails it otherwise (its cause code): nothing is excused.
    Differs(&'static str),
}

/// The comparison of the new release's failure (`cause`) with the baseline's answer to the
/// same check (`baseline`: `None` when it passed, else its cause code).
pub(crate) fn compare(cause: &'static str, baseline: Option<&'static str>) -> Comparison {
    match baseline {
        None => Comparison::ReleaseToBlame,
        Some(code) if code == cause => Comparison::EnvironmentToBlame,
        Some(code) => Comparison::Differs(code),
    }
}

/// The group's members that may serve as the baseline: `InService` and `Healthy`, not the
/// subject, and of a known launch template version other than the subject's. A member of
/// the same release proves nothing (a failure they share is the release's, not the
/// environment's), and neither does a version nobody knows: with none, there is no
/// baseline and the release is judged alone.
pub(crate) fn candidates<'a>(
    members: &'a [GroupInstance],
    subject: &str,
    version: Option<&str>,
) -> Vec<&'a GroupInstance> {
    let Some(version) = version else {
        return Vec::new();
    };
    let mut out: Vec<&GroupInstance> = members
        .iter()
        .filter(|m| {
            m.instance_id != subject
                && m.lifecycle_state == "InService"
                && m.health_status == "Healthy"
                && m.launch_template_version
                    .as_deref()
                    .is_some_and(|v| v != version)
        })
        .collect();
    out.truncate(MAX_CANDIDATES);
    out
}

/// The first of `candidates` that EC2 (`described`, from `DescribeInstances`) shows
/// running with a private IP that is not link-local, and that IP.
pub(crate) fn pick<'a>(
    candidates: &[&'a GroupInstance],
    described: &[(String, InstanceInfo)],
) -> Option<(&'a GroupInstance, IpAddr)> {
    candidates.iter().find_map(|c| {
        let (_, info) = described.iter().find(|(id, _)| *id == c.instance_id)?;
        let ip = info
            .private_ip
            .filter(|ip| info.state == "running" && !crate::probe::is_never_probed(*ip))?;
        Some((*c, ip))
    })
}

/// At most this many members are described in the one `DescribeInstances` of a wait.
const MAX_CANDIDATES: usize = 20;

impl<P: Prober, A: Aws> Gate<P, A> {
    /// Chooses the baseline, once per wait; the record says which, or why none.
    async fn choose_baseline(
        &self,
        source: &BaselineSource,
        state: &mut BaselineState,
        window: Duration,
        record: &mut DecisionRecord,
    ) -> Result<(), GateError> {
        state.looked = true;
        let group = self
            .aws
            .group_state(&source.group_name)
            .await?
            .unwrap_or_default();
        // An outage another launch already reported (its ABANDON listed on the group
        // within the breaker's window) is the same episode: no second event.
        state.event_put = group
            .tag(ENVIRONMENT_TAG)
            .and_then(breaker::environment_tag_time)
            .is_some_and(|t| epoch_seconds().saturating_sub(t) <= window.as_secs());
        let members = group.instances;
        let candidates = candidates(&members, &source.instance_id, source.version.as_deref());
        let none = no_baseline;
        if candidates.is_empty() {
            let in_service = members
                .iter()
                .filter(|m| m.instance_id != source.instance_id && m.lifecycle_state == "InService")
                .count();
            record.baseline = Some(none(match (&source.version, in_service) {
                (_, 0) => format!(
                    "no baseline: the group {} has no other InService instance (a new group, or a scale from zero); the release is judged alone",
                    source.group_name
                ),
                (None, _) => "no baseline: the new instance's launch template version is unknown, so no running release can be told apart from it; the release is judged alone and its failure counts".to_owned(),
                (Some(v), n) => format!(
                    "no baseline: none of the group's {n} other InService instances runs a launch template version other than {v} (a member of the same release proves nothing: a failure they share is the release's); the release is judged alone and its failure counts"
                ),
            }));
            return Ok(());
        }
        let ids: Vec<String> = candidates.iter().map(|c| c.instance_id.clone()).collect();
        let described = self.aws.describe_instances(&ids).await?;
        if let Some((c, ip)) = pick(&candidates, &described) {
            let target = Target {
                instance_id: c.instance_id.clone(),
                ip,
                version: c.launch_template_version.clone(),
            };
            record.baseline = Some(BaselineRecord {
                instance_id: Some(target.instance_id.clone()),
                launch_template_version: target.version.clone(),
                private_ip: Some(ip.to_string()),
                ..none(format!("the baseline is {}", target.words()))
            });
            state.target = Some(target);
            return Ok(());
        }
        record.baseline = Some(none(format!(
            "no baseline: none of the group's {} InService instances is running with a private IP EC2 shows; the release is judged alone",
            candidates.len()
        )));
        Ok(())
    }

    /// Sends the failing `check` to the baseline and compares the answer with the new
    /// release's `diagnosis`. True when the environment is to blame (the round is
    /// excused). Puts the `Environment Unhealthy` event at the first such round.
    pub(super) async fn against_baseline(
        &self,
        source: &BaselineSource,
        state: &mut BaselineState,
        check: &Check,
        diagnosis: &Diagnosis,
        config: &GateConfig,
        record: &mut DecisionRecord,
    ) -> Result<bool, GateError> {
        if !state.looked {
            // The baseline is a second opinion, never a reason to fail the gate: AWS that
            // cannot be read leaves the release judged alone.
            if let Err(e) = self
                .choose_baseline(source, state, config.breaker_window, record)
                .await
            {
                warn!(instance_id = %source.instance_id, error = %e, "no baseline: AWS could not be read");
                state.looked = true;
                record.baseline = Some(no_baseline(format!(
                    "no baseline: {e}; the release is judged alone"
                )));
            }
        }
        let Some(target) = state.target.clone() else {
            state.environment = None;
            return Ok(false);
        };
        let request = check.request.at(target.ip);
        let outcome = self.prober.probe(&request).await;
        let baseline_cause = match &check.label {
            CheckLabel::DeepHealth => diagnose(&request, &outcome),
            CheckLabel::TargetGroup(name) => diagnose_target_group(name, &request, &outcome),
        };
        let comparison = compare(diagnosis.code, baseline_cause.as_ref().map(|d| d.code));
        let who = target.words();
        let Some(b) = record.baseline.as_mut() else {
            return Ok(false);
        };
        b.comparisons += 1;
        let (status, note, excused) = match comparison {
            Comparison::ReleaseToBlame => (
                BaselineStatus::Passed,
                format!(
                    "{who} passes the same check ({}); the new release fails it",
                    check.label
                ),
                false,
            ),
            Comparison::EnvironmentToBlame => {
                b.environment_rounds += 1;
                (
                    BaselineStatus::Failed,
                    format!(
                        "{who} fails the same check the same way ({}: {}): the environment is unhealthy, not the release",
                        check.label, diagnosis.code
                    ),
                    true,
                )
            }
            Comparison::Differs(code) => (
                BaselineStatus::Failed,
                format!(
                    "{who} fails the same check otherwise ({code}, the new release {}): not counted as the environment's",
                    diagnosis.code
                ),
                false,
            ),
        };
        b.status = status;
        b.note = note;
        state.environment = excused.then_some(who);
        if excused && !state.event_put {
            state.event_put = true;
            warn!(instance_id = %source.instance_id, group = %source.group_name, note = %b.note, "the environment is unhealthy: the wait goes on");
            if let Some(bus) = config.event_bus.as_deref() {
                let detail = serde_json::json!({
                    "group_name": source.group_name,
                    "instance_id": source.instance_id,
                    "launch_template_version": source.version,
                    "baseline": b.clone(),
                    "cause": diagnosis,
                    "note": "the running release fails the same check the same way: the gate keeps the instance held until the environment recovers or the wait ends (then ABANDON with cause environment_unhealthy, which the launch-loop breaker does not count)",
                });
                publish::publish(
                    &self.aws,
                    bus,
                    ENVIRONMENT_DETAIL_TYPE,
                    &detail,
                    Duration::from_secs(5),
                )
                .await;
            }
        }
        Ok(excused)
    }
}

/// A record of no comparison yet, saying `note`.
fn no_baseline(note: String) -> BaselineRecord {
    BaselineRecord {
        status: BaselineStatus::None,
        instance_id: None,
        launch_template_version: None,
        private_ip: None,
        comparisons: 0,
        environment_rounds: 0,
        note,
    }
}

/// The cause of an `ABANDON` at the wait's end through an outage: the new release's
/// last failure, told as the environment's.
pub(super) fn environment_cause(failure: &Diagnosis, baseline_words: &str) -> Diagnosis {
    Diagnosis {
        code: ENVIRONMENT_CAUSE,
        summary: format!(
            "{baseline_words} fails the same check the same way, so the environment is unhealthy, not the release: {}",
            failure.summary
        ),
        fix: format!(
            "Fix the environment the releases share (the launch is replaced once it recovers; the launch-loop breaker does not count this ABANDON): {}",
            failure.fix
        ),
        target_group: failure.target_group.clone(),
        elb_reason: failure.elb_reason.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, state: &str, health: &str, version: &str) -> GroupInstance {
        GroupInstance {
            instance_id: id.into(),
            lifecycle_state: state.into(),
            health_status: health.into(),
            launch_template_version: Some(version.into()),
        }
    }

    #[test]
    fn the_baseline_is_an_in_service_member_of_another_release_only() {
        let members = [
            member("i-new", "Pending:Wait", "Healthy", "7"),
            member("i-same", "InService", "Healthy", "7"),
            member("i-standby", "Standby", "Healthy", "6"),
            member("i-leaving", "Terminating", "Healthy", "6"),
            member("i-sick", "InService", "Unhealthy", "6"),
            member("i-old", "InService", "Healthy", "6"),
        ];
        let ids: Vec<&str> = candidates(&members, "i-new", Some("7"))
            .iter()
            .map(|m| m.instance_id.as_str())
            .collect();
        // never a member of the same release: a failure they share is the release's
        assert_eq!(ids, ["i-old"]);
        assert!(candidates(&members[..1], "i-new", Some("7")).is_empty());
        // the subject's version unknown, or the member's: no baseline
        assert!(candidates(&members, "i-new", None).is_empty());
        let unknown = [GroupInstance {
            launch_template_version: None,
            ..member("i-old", "InService", "Healthy", "6")
        }];
        assert!(candidates(&unknown, "i-new", Some("7")).is_empty());
    }

    #[test]
    fn the_same_cause_blames_the_environment() {
        assert_eq!(
            compare("deep_check_failed", None),
            Comparison::ReleaseToBlame
        );
        assert_eq!(
            compare("deep_check_failed", Some("deep_check_failed")),
            Comparison::EnvironmentToBlame
        );
        assert_eq!(
            compare("host_rejected", Some("timeout")),
            Comparison::Differs("timeout")
        );
    }
}
