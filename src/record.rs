//! The decision record: one structured JSON document per lifecycle action the gate worked
//! on, written to standard output as a single line (CloudWatch Logs keeps it as JSON) and
//! returned in the invocation's response. Pure apart from [`DecisionRecord::emit`], which
//! prints the record and its metrics and reads the clock for the metrics' timestamp.

use serde::Serialize;

use crate::aws::{
    HookSettings, LaunchTemplateVersion, LifecycleActionResult, TargetGroupSettings, TargetHealth,
};
use crate::breaker::BreakerRecord;
use crate::config::{GateConfig, Mode};
use crate::diagnosis::Diagnosis;
use crate::event::{Delivery, LifecycleAction, Location};
use crate::policy::AbandonReason;
use crate::probe::{ProbeError, ProbeOutcome};
use crate::time::epoch_millis;

/// The `record` field of every decision record, to filter on in CloudWatch Logs Insights.
pub const RECORD_TYPE: &str = "launch-gate.decision";

/// How the gate's work on a lifecycle action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The gate completed the lifecycle action with `result`.
    Completed,
    /// `No active Lifecycle Action found`: the action had already ended (another invocation,
    /// an operator, or a timeout decided). Nothing more to do.
    AlreadyDecided,
    /// The gate completed nothing on purpose and left the action to the hook's
    /// `DefaultResult` at its heartbeat timeout; `reason` says why.
    HandedOff,
    /// The instance is shutting down or terminated: nothing to complete.
    InstanceGone,
    /// The group is served only by a tag (`LAUNCH_GATE_GROUP_TAG`), and it does not carry
    /// it: nothing is probed, tagged or completed.
    NotServed,
    /// Auto Scaling does not hold the named instance for the named launch hook (it is not
    /// a member of the group, or the group has no such launch hook): the notification's
    /// claim is refused, and nothing is probed, tagged or completed.
    NotHeld,
    /// The invocation was about to end before a verdict; the wait goes on in a fresh
    /// invocation of the gate, which received the state.
    Continued,
}

/// One probe, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeRecord {
    /// Which check: `deep_health`, or `target_group:<name>`.
    pub check: String,
    /// When it started, milliseconds from the start of the gate.
    pub at_ms: u64,
    /// HTTP status, if a response arrived.
    pub status: Option<u16>,
    /// Whether it passed.
    pub passed: bool,
    /// Duration, milliseconds.
    pub latency_ms: u64,
    /// Why there was no usable response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ProbeError>,
}

/// The last failed probe, for the reader of an `ABANDON`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastFailure {
    /// HTTP status, if any.
    pub status: Option<u16>,
    /// `Location` of a redirect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The start of the body, whitespace collapsed, control characters removed, at most
    /// 300 characters.
    pub body_snippet: String,
}

impl LastFailure {
    /// The status, `Location` and body start of a failed probe.
    pub fn of(outcome: &ProbeOutcome) -> Self {
        Self {
            status: outcome.status,
            location: outcome.location.clone(),
            body_snippet: body_snippet(&outcome.body),
        }
    }
}

/// A target group of the group, its health check as the gate ran it, and the results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetGroupRecord {
    /// `TargetGroupName`.
    pub name: String,
    /// `TargetGroupArn`.
    pub arn: String,
    /// `HealthCheckProtocol`.
    pub protocol: String,
    /// `HealthCheckPort`: a number or `traffic-port`.
    pub health_check_port: String,
    /// `HealthCheckPath`.
    pub path: String,
    /// `Matcher.HttpCode`.
    pub matcher: String,
    /// `HealthCheckTimeoutSeconds`.
    pub timeout_seconds: u64,
    /// `HealthyThresholdCount` (the ELB's; the gate applies its own threshold to rounds).
    pub healthy_threshold: u32,
    /// The URL checked, when the check could be run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Why the check was not run (a protocol the gate cannot speak, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Checks sent.
    pub checks: u32,
    /// Checks passed.
    pub passes: u32,
    /// Whether the last check passed.
    pub passing: bool,
    /// The last check's status.
    pub last_status: Option<u16>,
    /// The last check's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<ProbeError>,
}

impl TargetGroupRecord {
    /// A record of `tg`'s settings, before any check.
    pub fn new(tg: &TargetGroupSettings) -> Self {
        Self {
            name: tg.name.clone(),
            arn: tg.arn.clone(),
            protocol: tg.health_check_protocol.clone(),
            health_check_port: tg.health_check_port.clone(),
            path: tg.health_check_path.clone(),
            matcher: tg.matcher.clone(),
            timeout_seconds: tg.health_check_timeout.as_secs(),
            healthy_threshold: tg.healthy_threshold,
            target: None,
            skipped: None,
            checks: 0,
            passes: 0,
            passing: false,
            last_status: None,
            last_error: None,
        }
    }

    /// Counts one check.
    pub fn observe(&mut self, outcome: &ProbeOutcome) {
        self.checks += 1;
        self.passes += u32::from(outcome.passed);
        self.passing = outcome.passed;
        self.last_status = outcome.status;
        self.last_error = outcome.error.clone();
    }
}

/// The validation target group: the load balancer's own verdict, verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationRecord {
    /// `TargetGroupName`.
    pub name: String,
    /// `TargetGroupArn`.
    pub arn: String,
    /// The port the instance was registered on.
    pub port: u16,
    /// Whether `RegisterTargets` succeeded.
    pub registered: bool,
    /// Whether `DeregisterTargets` succeeded afterwards.
    pub deregistered: bool,
    /// `DescribeTargetHealth` calls.
    pub polls: u32,
    /// The last `TargetHealth`.
    pub last: Option<TargetHealth>,
}

impl ValidationRecord {
    /// A record before registration.
    pub fn new(tg: &TargetGroupSettings, port: u16) -> Self {
        Self {
            name: tg.name.clone(),
            arn: tg.arn.clone(),
            port,
            registered: false,
            deregistered: false,
            polls: 0,
            last: None,
        }
    }

    /// Counts one `DescribeTargetHealth`.
    pub fn observe(&mut self, health: &TargetHealth) {
        self.polls += 1;
        self.last = Some(health.clone());
    }
}

/// How the running release answered the check the new one failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineStatus {
    /// It passed: the new release is to blame.
    Passed,
    /// It failed too.
    Failed,
    /// Nothing was compared: no baseline, or no failing round to compare.
    None,
}

impl BaselineStatus {
    /// `passed`, `failed`, `none`: the metrics' `Baseline` dimension.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::None => "none",
        }
    }
}

/// The baseline: an `InService` instance of the group, preferably of the previous launch
/// template version, given each failing round's check at the same moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaselineRecord {
    /// The last comparison's answer.
    pub status: BaselineStatus,
    /// The baseline instance, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Its launch template version, as Auto Scaling lists it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_template_version: Option<String>,
    /// Its private IP, from `DescribeInstances`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
    /// Failing rounds compared with it.
    pub comparisons: u32,
    /// Of those, the rounds it failed the same way (the environment's failures).
    pub environment_rounds: u32,
    /// The last comparison in words.
    pub note: String,
}

/// What held the subject while the gate checked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldKind {
    /// An Auto Scaling launch lifecycle action (the instance in `Pending:Wait`).
    LifecycleAction,
    /// An ECS blue/green deployment's Lambda lifecycle hook (the green tasks, before
    /// production traffic).
    EcsDeploymentHook,
}

/// One green task of an ECS deployment, as the round left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EcsTaskRecord {
    /// `taskArn`.
    pub arn: String,
    /// How it is reached: `awsvpc` (an IP target) or `host_port` (bridge or host: an
    /// instance target on a host port).
    pub network_mode: crate::aws::ecs::NetworkMode,
    /// Its target in the green target group, `id:port`.
    pub target: String,
    /// The address probed: its ENI's private IP, or its container instance's.
    pub private_ip: String,
    /// Consecutive passing rounds.
    pub passes: u32,
    /// Consecutive failing rounds after the grace period.
    pub failures: u32,
    /// The cause code of this round's failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<&'static str>,
}

/// The ECS deployment an ECS hook invocation is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EcsRecord {
    /// The cluster, from the deployment's ARN.
    pub cluster: String,
    /// The service.
    pub service: String,
    /// `resourceArn`: the service deployment.
    pub deployment_arn: String,
    /// The green revision.
    pub revision_arn: String,
    /// Its task definition, as ECS shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_task_definition: Option<String>,
    /// The target group its tasks are registered in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_group_arn: Option<String>,
    /// The id of the service's deployment that started the green tasks (their
    /// `startedBy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub green_deployment_id: Option<String>,
    /// `lifecycleStage`.
    pub lifecycle_stage: String,
    /// `executionId`.
    pub execution_id: String,
    /// The green tasks ECS asked for.
    pub requested_tasks: u32,
    /// The green tasks checked this round.
    pub tasks: Vec<EcsTaskRecord>,
    /// The answer given to ECS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_status: Option<crate::event::ecs::HookStatus>,
    /// The gate's own verdict (`SUCCEEDED` or `FAILED`); differs from `hook_status` only
    /// in shadow mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<crate::event::ecs::HookStatus>,
}

/// Everything the gate knows about one lifecycle action it worked on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionRecord {
    /// Always [`RECORD_TYPE`].
    pub record: &'static str,
    /// What held the subject: a lifecycle action, or an ECS deployment hook.
    pub hold: HoldKind,
    /// The ECS deployment, for an ECS hook invocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecs: Option<EcsRecord>,
    /// The Lambda request id of the invocation that worked on it.
    pub invocation_id: Option<String>,
    /// `EC2InstanceId` (empty for an ECS hook: see `ecs`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub instance_id: String,
    /// `AutoScalingGroupName` (empty for an ECS hook: see `ecs`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group_name: String,
    /// `LifecycleHookName` (empty for an ECS hook: see `ecs`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hook_name: String,
    /// `LifecycleTransition` (empty for an ECS hook: see `ecs`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub transition: String,
    /// `Origin` (EventBridge only).
    pub origin: Option<Location>,
    /// `Destination` (EventBridge only).
    pub destination: Option<Location>,
    /// How the notification arrived.
    pub delivery: Delivery,
    /// Enforce or shadow; absent when the settings were rejected.
    pub mode: Option<Mode>,
    /// How the work ended.
    pub outcome: Outcome,
    /// What the gate sent to `CompleteLifecycleAction` (or tried to).
    pub result: Option<LifecycleActionResult>,
    /// The gate's own verdict; differs from `result` only in shadow mode.
    pub verdict: Option<LifecycleActionResult>,
    /// Why, in one sentence.
    pub reason: String,
    /// The rule that abandoned, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abandon_reason: Option<AbandonReason>,
    /// Cause and fix of the last failed probe, when the verdict is `ABANDON`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Diagnosis>,
    /// The last failed probe's status, `Location` and body start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<LastFailure>,
    /// The launch template and version the instance was launched from (EC2's
    /// `aws:ec2launchtemplate:*` tags).
    pub launch_template: Option<LaunchTemplateVersion>,
    /// The running release's answers to the checks the new one failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineRecord>,
    /// The launch-loop breaker's count after an `ABANDON`, and its trip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerRecord>,
    /// The instance's private IP.
    pub private_ip: Option<String>,
    /// The URL probed.
    pub target: Option<String>,
    /// The `Host` header sent.
    pub host_header: Option<String>,
    /// Probes sent.
    pub probe_count: usize,
    /// The last [`MAX_PROBES_KEPT`] probes, oldest first.
    pub probes: Vec<ProbeRecord>,
    /// The group's target groups and their health checks as the gate ran them.
    pub target_groups: Vec<TargetGroupRecord>,
    /// Why no target group was checked, when none was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_groups_note: Option<String>,
    /// The validation target group, when one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationRecord>,
    /// `RecordLifecycleActionHeartbeat` calls accepted (by this and earlier invocations).
    pub heartbeats: u32,
    /// How many invocations handed this wait over before this one.
    pub hop: u32,
    /// The hook's timeouts, when read.
    pub hook: Option<HookSettings>,
    /// The settings in force (defaults with the hook's `NotificationMetadata` applied).
    pub settings: Option<GateConfig>,
    /// From the start of the gate to the end of its work, milliseconds.
    pub time_to_decision_ms: u64,
}

/// The CloudWatch namespace of the gate's metrics.
pub const METRIC_NAMESPACE: &str = "LaunchGate";

/// How many probes a record keeps.
pub const MAX_PROBES_KEPT: usize = 200;

impl DecisionRecord {
    /// Leaves the action to the hook's `DefaultResult`, deliberately: the outcome
    /// [`Outcome::HandedOff`], and `why` with what happens next as the reason.
    pub fn hand_off(&mut self, why: impl std::fmt::Display) {
        self.outcome = Outcome::HandedOff;
        self.reason = format!("{why}; the lifecycle action is left to the hook's DefaultResult");
    }

    /// A record for `action`, to be filled in as the gate works.
    pub fn new(action: &LifecycleAction) -> Self {
        Self {
            record: RECORD_TYPE,
            hold: HoldKind::LifecycleAction,
            ecs: None,
            invocation_id: None,
            instance_id: action.instance_id.clone(),
            group_name: action.group_name.clone(),
            hook_name: action.hook_name.clone(),
            transition: action.transition.clone(),
            origin: action.origin,
            destination: action.destination,
            delivery: action.delivery,
            mode: None,
            outcome: Outcome::HandedOff,
            result: None,
            verdict: None,
            reason: String::new(),
            abandon_reason: None,
            cause: None,
            last_failure: None,
            launch_template: None,
            baseline: None,
            breaker: None,
            private_ip: None,
            target: None,
            host_header: None,
            probe_count: 0,
            probes: Vec::new(),
            target_groups: Vec::new(),
            target_groups_note: None,
            validation: None,
            heartbeats: 0,
            hop: 0,
            hook: None,
            settings: None,
            time_to_decision_ms: 0,
        }
    }

    /// A record for an ECS lifecycle hook invocation: the cluster, service, deployment and
    /// stage in `ecs`, the Auto Scaling fields empty.
    pub fn for_ecs(inv: &crate::event::ecs::EcsHookInvocation) -> Self {
        let (cluster, service) = inv.cluster_and_service().unwrap_or_default();
        let claim = LifecycleAction {
            token: None,
            group_name: String::new(),
            hook_name: String::new(),
            instance_id: String::new(),
            transition: String::new(),
            notification_metadata: None,
            origin: None,
            destination: None,
            sent_at: None,
            delivery: Delivery::EcsHook,
        };
        Self {
            hold: HoldKind::EcsDeploymentHook,
            ecs: Some(EcsRecord {
                cluster: cluster.to_owned(),
                service: service.to_owned(),
                deployment_arn: inv.deployment_arn.clone(),
                revision_arn: inv.target_revision_arn.clone(),
                revision_task_definition: None,
                target_group_arn: None,
                green_deployment_id: None,
                lifecycle_stage: inv.lifecycle_stage.clone(),
                execution_id: inv.execution_id.clone(),
                requested_tasks: 0,
                tasks: Vec::new(),
                hook_status: None,
                verdict: None,
            }),
            ..Self::new(&claim)
        }
    }

    /// Appends a probe, keeping the last [`MAX_PROBES_KEPT`].
    pub fn push_probe(&mut self, probe: ProbeRecord) {
        self.probe_count += 1;
        if self.probes.len() == MAX_PROBES_KEPT {
            self.probes.remove(0);
        }
        self.probes.push(probe);
    }

    /// Writes the record, then its metrics in CloudWatch Embedded Metric Format, to
    /// standard output, one JSON line each.
    pub fn emit(&self) {
        match serde_json::to_value(self) {
            Ok(value) => println!("{}", fit(value, MAX_DOCUMENT_BYTES)),
            Err(e) => {
                tracing::error!(cause = %e, instance_id = %self.instance_id, "cannot serialise the decision record")
            }
        }
        println!("{}", self.metrics(epoch_millis()));
    }

    /// The decision's metrics as one CloudWatch Embedded Metric Format document
    /// (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>),
    /// namespace [`METRIC_NAMESPACE`]: `Decisions` (count), `TimeToDecision`
    /// (milliseconds) and `ProbesPerDecision` (count), by `Verdict`, by `Verdict` and
    /// `Cause`, by `AutoScalingGroupName` and `Verdict`, by `Mode` and `GateVerdict`, and
    /// by `Verdict` and `Baseline`. `Verdict` is the result sent (`CONTINUE`, `ABANDON`),
    /// or the outcome when nothing was sent (`handed_off`, ...); `Cause` is the cause
    /// code, or `none`; `Baseline` is [`BaselineStatus`] (`passed`, `failed`, `none`).
    pub fn metrics(&self, timestamp_ms: u64) -> serde_json::Value {
        let (verdict, gate_verdict, subject_key, subject) = match &self.ecs {
            // An ECS hook: the answer ECS read, the gate's own verdict, by service.
            Some(e) => (
                match (self.outcome, e.hook_status) {
                    (Outcome::Completed, Some(s)) => word(&s),
                    (outcome, _) => word(&outcome),
                },
                e.verdict.map_or_else(|| "none".to_owned(), |v| word(&v)),
                "EcsService",
                format!("{}/{}", e.cluster, e.service),
            ),
            None => (
                match (self.outcome, self.result) {
                    (Outcome::Completed, Some(r)) => r.as_str().to_owned(),
                    (outcome, _) => word(&outcome),
                },
                self.verdict.map_or("none", |v| v.as_str()).to_owned(),
                "AutoScalingGroupName",
                self.group_name.clone(),
            ),
        };
        let mut doc = serde_json::json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": METRIC_NAMESPACE,
                    "Dimensions": [
                        ["Verdict"],
                        ["Verdict", "Cause"],
                        [subject_key, "Verdict"],
                        ["Mode", "GateVerdict"],
                        ["Verdict", "Baseline"],
                    ],
                    "Metrics": [
                        {"Name": "Decisions", "Unit": "Count"},
                        {"Name": "TimeToDecision", "Unit": "Milliseconds"},
                        {"Name": "ProbesPerDecision", "Unit": "Count"},
                    ],
                }],
            },
            "Verdict": verdict,
            "Cause": self.cause.as_ref().map_or("none", |c| c.code),
            // The gate's own verdict: in shadow mode it differs from what was sent.
            "GateVerdict": gate_verdict,
            "Mode": self.mode.map_or("none", |m| m.as_str()),
            "Baseline": self.baseline.as_ref().map_or("none", |b| b.status.as_str()),
            "Decisions": 1,
            "TimeToDecision": self.time_to_decision_ms,
            "ProbesPerDecision": self.probe_count,
        });
        // A refused claim's names are the claim's, not AWS's: no dimension takes them.
        let refused = matches!(self.outcome, Outcome::NotServed | Outcome::NotHeld);
        let subject = if refused {
            "(refused)".to_owned()
        } else {
            subject
        };
        if let Some(map) = doc.as_object_mut() {
            map.insert(subject_key.to_owned(), serde_json::Value::String(subject));
            match &self.ecs {
                _ if refused => None,
                Some(e) => map.insert(
                    "ServiceDeploymentArn".to_owned(),
                    e.deployment_arn.clone().into(),
                ),
                None => map.insert("InstanceId".to_owned(), self.instance_id.clone().into()),
            };
        }
        doc
    }
}

/// The most bytes one record, log line or event detail may take: under CloudWatch Logs'
/// and EventBridge's 256 KB entry limits, with room for their envelopes.
pub const MAX_DOCUMENT_BYTES: usize = 200 * 1024;

/// `value` (a record or an event detail) serialised in at most `max` bytes, whatever it
/// was fed: first the oldest probes go, then the ECS tasks past the first ten, then every
/// string is clipped to 1,000 characters; a note says what was cut.
pub fn fit(mut value: serde_json::Value, max: usize) -> String {
    use serde_json::Value;
    let size = |v: &Value| serde_json::to_string(v).map_or(0, |s| s.len());
    if size(&value) <= max {
        return value.to_string();
    }
    let mut cut = Vec::new();
    if let Some(probes) = value.get_mut("probes").and_then(Value::as_array_mut) {
        let n = probes.len();
        probes.drain(..n.saturating_sub(5));
        cut.push(format!("probes: {n} kept 5"));
    }
    if size(&value) > max
        && let Some(tasks) = value
            .get_mut("ecs")
            .and_then(|e| e.get_mut("tasks"))
            .and_then(Value::as_array_mut)
    {
        let n = tasks.len();
        tasks.truncate(10);
        cut.push(format!("ecs.tasks: {n} kept 10"));
    }
    fn clip_all(v: &mut Value) {
        match v {
            Value::String(s) if s.chars().count() > 1000 => *s = crate::text::clip(s, 1000),
            Value::Array(a) => a.iter_mut().for_each(clip_all),
            Value::Object(o) => o.values_mut().for_each(clip_all),
            _ => {}
        }
    }
    if size(&value) > max {
        clip_all(&mut value);
        cut.push("strings: clipped to 1000 characters".into());
    }
    if let Some(o) = value.as_object_mut() {
        o.insert("truncated".into(), Value::from(cut));
    }
    let text = value.to_string();
    if text.len() <= max {
        text
    } else {
        serde_json::json!({"record": RECORD_TYPE, "truncated": ["the whole record: too large"]})
            .to_string()
    }
}

/// A body start fit for a log: whitespace collapsed, control characters dropped, what
/// looks like a credential masked ([`crate::text::mask_secrets`]), at most 300 characters.
pub fn body_snippet(body: &str) -> String {
    let body = crate::text::mask_secrets(body);
    let cleaned: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    cleaned.chars().take(300).collect()
}

/// Serde's word for a unit variant (`Completed` is `completed`, `Succeeded` `SUCCEEDED`).
fn word<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_fed_anything_stays_under_the_limit() {
        let huge = serde_json::json!({
            "record": RECORD_TYPE,
            "reason": "r".repeat(500_000),
            "probes": (0..5000).map(|i| serde_json::json!({"check": "deep_health", "at_ms": i})).collect::<Vec<_>>(),
        });
        let text = fit(huge, MAX_DOCUMENT_BYTES);
        assert!(text.len() <= MAX_DOCUMENT_BYTES, "{}", text.len());
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["probes"].as_array().unwrap().len(), 5);
        assert!(back["truncated"].as_array().unwrap().len() >= 2);
        let small = serde_json::json!({"record": RECORD_TYPE});
        assert_eq!(fit(small.clone(), MAX_DOCUMENT_BYTES), small.to_string());
    }

    #[test]
    fn an_ecs_hooks_metrics_are_by_service() {
        let event: serde_json::Value =
            serde_json::from_str(include_str!("../events/ecs-hook.json")).unwrap();
        let inv = crate::event::ecs::parse(&event).unwrap();
        let mut r = DecisionRecord::for_ecs(&inv);
        r.outcome = Outcome::Completed;
        r.mode = Some(crate::config::Mode::Shadow);
        if let Some(e) = r.ecs.as_mut() {
            e.hook_status = Some(crate::event::ecs::HookStatus::Succeeded);
            e.verdict = Some(crate::event::ecs::HookStatus::Failed);
        }
        let m = r.metrics(0);
        let directive = &m["_aws"]["CloudWatchMetrics"][0];
        for set in directive["Dimensions"].as_array().unwrap() {
            for d in set.as_array().unwrap() {
                assert!(m[d.as_str().unwrap()].is_string(), "{d}");
            }
        }
        assert_eq!(m["EcsService"], "shop/web");
        assert!(m.get("AutoScalingGroupName").is_none());
        assert_eq!(
            (m["Verdict"].as_str(), m["GateVerdict"].as_str()),
            (Some("SUCCEEDED"), Some("FAILED"))
        );
        // the record names the service and deployment in its own fields, not the group's
        let record = serde_json::to_value(&r).unwrap();
        assert!(record.get("group_name").is_none(), "{record}");
        assert_eq!(record["ecs"]["service"], "web");
        // a refused claim's names never become a dimension
        r.outcome = Outcome::NotServed;
        let m = r.metrics(0);
        assert_eq!(m["EcsService"], "(refused)");
        assert!(m.get("ServiceDeploymentArn").is_none());
    }

    #[test]
    fn metrics_are_embedded_metric_format() {
        let event: serde_json::Value =
            serde_json::from_str(include_str!("../events/launch.json")).unwrap();
        let action = match crate::event::parse(&event).unwrap().remove(0) {
            crate::event::Notification::Launch(a) => a,
            other => panic!("{other:?}"),
        };
        let mut r = DecisionRecord::new(&action);
        r.outcome = Outcome::Completed;
        r.result = Some(LifecycleActionResult::Abandon);
        r.time_to_decision_ms = 3026;
        r.probe_count = 4;
        r.cause = Some(Diagnosis {
            code: "host_rejected",
            summary: String::new(),
            fix: String::new(),
            target_group: None,
            elb_reason: None,
        });
        let m = r.metrics(1_795_251_600_000);
        let directive = &m["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "LaunchGate");
        // every dimension and metric the directive names is a member of the document
        for set in directive["Dimensions"].as_array().unwrap() {
            for d in set.as_array().unwrap() {
                assert!(m[d.as_str().unwrap()].is_string(), "{d}");
            }
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            assert!(m[metric["Name"].as_str().unwrap()].is_number(), "{metric}");
        }
        assert_eq!(
            (m["Verdict"].as_str(), m["Cause"].as_str()),
            (Some("ABANDON"), Some("host_rejected"))
        );
        assert_eq!(m["TimeToDecision"], 3026);
        r.outcome = Outcome::HandedOff;
        r.result = None;
        assert_eq!(r.metrics(0)["Verdict"], "handed_off");
        // In shadow mode the metrics carry the verdict the gate would have sent.
        r.outcome = Outcome::Completed;
        r.result = Some(LifecycleActionResult::Continue);
        r.verdict = Some(LifecycleActionResult::Abandon);
        r.mode = Some(Mode::Shadow);
        let m = r.metrics(0);
        assert_eq!(
            (
                m["Verdict"].as_str(),
                m["Mode"].as_str(),
                m["GateVerdict"].as_str()
            ),
            (Some("CONTINUE"), Some("shadow"), Some("ABANDON"))
        );
    }

    #[test]
    fn snippets_are_clean_and_short() {
        assert_eq!(body_snippet("a\r\n\t b\u{1b}[31m"), "a b [31m");
        assert_eq!(body_snippet(&"x".repeat(1000)).len(), 300);
    }
}
