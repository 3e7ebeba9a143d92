//! The decision record: one structured JSON document per lifecycle action the gate worked
//! on, written to standard output as a single line (CloudWatch Logs keeps it as JSON) and
//! returned in the invocation's response. Pure apart from [`DecisionRecord::emit`].

use serde::Serialize;

use crate::aws::{HookSettings, LifecycleActionResult};
use crate::config::{GateConfig, Mode};
use crate::diagnosis::Diagnosis;
use crate::event::{Delivery, LifecycleAction, Location};
use crate::policy::AbandonReason;
use crate::probe::ProbeError;

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
}

/// One probe, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeRecord {
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

/// Everything the gate knows about one lifecycle action it worked on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionRecord {
    /// Always [`RECORD_TYPE`].
    pub record: &'static str,
    /// `EC2InstanceId`.
    pub instance_id: String,
    /// `AutoScalingGroupName`.
    pub group_name: String,
    /// `LifecycleHookName`.
    pub hook_name: String,
    /// `LifecycleTransition`.
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
    /// `RecordLifecycleActionHeartbeat` calls accepted.
    pub heartbeats: u32,
    /// The hook's timeouts, when read.
    pub hook: Option<HookSettings>,
    /// The settings in force (defaults with the hook's `NotificationMetadata` applied).
    pub settings: Option<GateConfig>,
    /// From the start of the gate to the end of its work, milliseconds.
    pub time_to_decision_ms: u64,
}

/// How many probes a record keeps.
pub const MAX_PROBES_KEPT: usize = 100;

impl DecisionRecord {
    /// A record for `action`, to be filled in as the gate works.
    pub fn new(action: &LifecycleAction) -> Self {
        Self {
            record: RECORD_TYPE,
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
            private_ip: None,
            target: None,
            host_header: None,
            probe_count: 0,
            probes: Vec::new(),
            heartbeats: 0,
            hook: None,
            settings: None,
            time_to_decision_ms: 0,
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

    /// Writes the record to standard output as one JSON line.
    pub fn emit(&self) {
        match serde_json::to_string(self) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                tracing::error!(cause = %e, instance_id = %self.instance_id, "cannot serialise the decision record")
            }
        }
    }
}

/// A body start fit for a log: whitespace collapsed, control characters dropped, at most
/// 300 characters.
pub fn body_snippet(body: &str) -> String {
    let cleaned: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    cleaned.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_clean_and_short() {
        assert_eq!(body_snippet("a\r\n\t b\u{1b}[31m"), "a b [31m");
        assert_eq!(body_snippet(&"x".repeat(1000)).len(), 300);
    }
}
