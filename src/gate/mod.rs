//! The gate: one invocation in (events, hand-overs, the sweep), one decision record per
//! lifecycle action out. Does I/O only through its ports
//! ([`Prober`] and the [`Aws`] ports) and reads time only through
//! `tokio::time`, so tests can pause and advance the clock.
//!
//! Every path ends in a completion, or in a logged, deliberate hand-off to the hook's
//! `DefaultResult` (settings rejected, the invocation about to time out), or in the
//! knowledge that there is nothing to complete (the action already ended, the instance
//! is gone).

use std::net::IpAddr;
use std::time::Duration;

use futures::future::join_all;
use serde::Serialize;
use serde_json::Value;
use tokio::time::{Instant, sleep_until};
use tracing::{error, info, warn};

use crate::admission::{self, Admission, Admitted};
use crate::aws::{
    ActionAnswer, Aws, AwsError, HookSettings, InstanceInfo, LifecycleActionResult,
    TargetGroupSettings,
};
use crate::breaker;
use crate::config::{GateConfig, Mode, WarmPoolLaunch};
use crate::diagnosis::{Diagnosis, diagnose, diagnose_target_group, diagnose_target_health};
use crate::event::{self, Continuation, EventError, Ignored, LifecycleAction, Notification};
use crate::policy::{AbandonReason, HealthPolicy, ProbeSample, Verdict, evaluate};
use crate::probe::{ProbeRequest, Prober};
use crate::publish;
use crate::record::{
    DecisionRecord, LastFailure, Outcome, ProbeRecord, TargetGroupRecord, ValidationRecord,
};
use crate::time::{epoch_millis, epoch_seconds, instant_of};

pub mod baseline;
mod clock;
mod decide;
pub mod ecs;
mod hold;
mod resolve;
mod sweep;
mod targets;
mod tell;
#[cfg(test)]
mod tests;
mod wait;

use crate::probe::CheckLabel;
use clock::{Clock, whole_seconds};
use hold::LifecycleActionHold;
use targets::{Check, Validation};
use wait::{Hold, Round, Wait, WaitEnd};

/// Time kept back from the invocation's deadline for the completion call and the record:
/// the SDK's whole operation timeout (`aws::sdk::OPERATION_TIMEOUT`, 8 s, retries
/// included) and 2 s for the record. With a validation target group, the deregistration
/// before the completion gets [`VALIDATION_RESERVE`] more.
pub const INVOCATION_RESERVE: Duration = Duration::from_secs(10);
/// Kept back besides [`INVOCATION_RESERVE`] when the instance must be deregistered from
/// the validation target group before the completion: one more operation timeout.
pub const VALIDATION_RESERVE: Duration = Duration::from_secs(8);
/// While checks fail, how often the gate looks whether the instance is going away.
pub const INSTANCE_RECHECK: Duration = Duration::from_secs(10);
/// The least invocation time left in which the launch-loop breaker runs after an
/// `ABANDON`: its reads, its action and its tag.
pub const BREAKER_TIME: Duration = Duration::from_secs(15);
/// How long the gate waits for EC2 to know a just-launched instance and its private IP.
pub const RESOLVE_WAIT: Duration = Duration::from_secs(60);

/// Why an invocation fails. Nothing is completed on any of these.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The event is not a lifecycle notification the gate can read.
    #[error("malformed event: {0}")]
    Event(#[from] EventError),
    /// An AWS call failed after the SDK's retries; the invocation fails so that Lambda
    /// retries it (asynchronous invocations are retried twice).
    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl GateError {
    /// A stable error type for the Lambda runtime's error report.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Event(_) => "LaunchGate.MalformedEvent",
            Self::Aws(_) => "LaunchGate.AwsError",
        }
    }
}

/// What one invocation did: a record per lifecycle action gated, and the notifications
/// acknowledged without action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvocationSummary {
    /// One per launch lifecycle action.
    pub decisions: Vec<DecisionRecord>,
    /// Test notifications and other transitions.
    pub ignored: Vec<Ignored>,
}

/// The gate, with its settings and ports, built once at cold start.
#[derive(Debug, Clone)]
pub struct Gate<P, A> {
    config: GateConfig,
    prober: P,
    aws: A,
    /// The gate's own function ARN, when the invocation does not say it (in-process
    /// callers): an ECS service's lifecycle hook must name it.
    function_arn: Option<String>,
}

impl<P: Prober, A: Aws> Gate<P, A> {
    /// A gate with validated default settings, its prober and its AWS ports.
    pub fn new(config: GateConfig, prober: P, aws: A) -> Self {
        Self {
            config,
            prober,
            aws,
            function_arn: None,
        }
    }

    /// This gate, knowing its own function ARN (`arn:aws:lambda:...:function:name`, with
    /// a qualifier when invoked through one) for invocations whose context does not carry
    /// it. An ECS lifecycle hook is answered only when the service's configuration names
    /// this function.
    pub fn with_function_arn(mut self, arn: impl Into<String>) -> Self {
        self.function_arn = Some(arn.into());
        self
    }

    /// Handles one Lambda event: parses it, logs and skips what is not a launch, and
    /// gates every launch lifecycle action in it concurrently. Each decision record is
    /// emitted as it is made.
    ///
    /// `deadline` is when the invocation is killed; the gate hands off to the hook's
    /// `DefaultResult` [`INVOCATION_RESERVE`] before it.
    ///
    /// # Errors
    /// [`GateError::Event`] when the event is malformed (nothing is completed);
    /// [`GateError::Aws`] when an AWS call failed after retries (the records made are
    /// emitted; the failed action is not completed).
    pub async fn handle(
        &self,
        event: &Value,
        deadline: Option<Instant>,
    ) -> Result<InvocationSummary, GateError> {
        self.handle_invocation(event, deadline, None).await
    }

    /// [`Gate::handle`] for the Lambda invocation `invocation_id` (its request id), which
    /// the decision records carry: with duplicate deliveries, they show which invocation
    /// decided.
    ///
    /// # Errors
    /// As [`Gate::handle`].
    pub async fn handle_invocation(
        &self,
        event: &Value,
        deadline: Option<Instant>,
        invocation_id: Option<&str>,
    ) -> Result<InvocationSummary, GateError> {
        let notifications = event::parse(event)
            .inspect_err(|e| error!(error = %e, "rejected a malformed event; nothing completed"))?;
        let mut ignored = Vec::new();
        let mut actions = Vec::new();
        for n in notifications {
            let claimed = match &n {
                Notification::Launch(a) => Some(a),
                Notification::Continuation(c) => Some(&c.action),
                _ => None,
            };
            if let Some(a) =
                claimed.filter(|a| !self.config.serves_hook(&a.group_name, &a.hook_name))
            {
                let i = Ignored::NotServed {
                    group_name: a.group_name.clone(),
                    hook_name: a.hook_name.clone(),
                    instance_id: a.instance_id.clone(),
                };
                warn!(notification = ?i, "a launch lifecycle action of a group or hook this gate does not serve (LAUNCH_GATE_GROUP_NAMES, LAUNCH_GATE_HOOK_NAMES); nothing probed or completed");
                ignored.push(i);
                continue;
            }
            match n {
                Notification::Launch(a) => actions.push((a, None)),
                Notification::Sweep => {
                    actions.extend(self.sweep().await?.into_iter().map(|a| (a, None)))
                }
                Notification::Continuation(c) => actions.push((c.action.clone(), Some(c))),
                Notification::Ignored(i) => {
                    info!(notification = ?i, "acknowledged a notification that is not a launch lifecycle action; nothing to do");
                    ignored.push(i);
                }
            }
        }
        let results = join_all(
            actions
                .iter()
                .map(|(a, c)| self.gate_invocation(a, c.as_deref(), deadline, invocation_id)),
        )
        .await;
        let mut decisions = Vec::new();
        let mut first_error = None;
        for r in results {
            match r {
                Ok(record) => decisions.push(record),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(InvocationSummary { decisions, ignored }),
        }
    }

    /// Gates one launch lifecycle action and emits its decision record.
    ///
    /// # Errors
    /// [`GateError::Aws`] when an AWS call the decision depends on fails after retries.
    pub async fn gate(
        &self,
        action: &LifecycleAction,
        deadline: Option<Instant>,
    ) -> Result<DecisionRecord, GateError> {
        self.gate_invocation(action, None, deadline, None).await
    }

    /// Gates one action, from its start or (`resume`) where an earlier invocation stopped.
    async fn gate_invocation(
        &self,
        action: &LifecycleAction,
        resume: Option<&Continuation>,
        deadline: Option<Instant>,
        invocation_id: Option<&str>,
    ) -> Result<DecisionRecord, GateError> {
        // Moved back to the first invocation's start once AWS's launch time bounds it.
        let mut start = Instant::now();
        let mut record = DecisionRecord::new(action);
        record.invocation_id = invocation_id.map(str::to_owned);
        if let Some(c) = resume {
            // For the record only: a hand-over's counts decide nothing.
            record.hop = c.hop.min(event::MAX_HOPS);
            record.probe_count = c.probe_count;
            record.heartbeats = c.heartbeats;
        }
        let result = self
            .run(action, resume, deadline, &mut start, &mut record)
            .await;
        record.time_to_decision_ms = start.elapsed().as_millis() as u64;
        if let Err(e) = &result {
            record.outcome = Outcome::HandedOff;
            record.reason = format!(
                "{e}; the lifecycle action was not completed, the invocation fails so that Lambda retries it"
            );
            error!(instance_id = %action.instance_id, group = %action.group_name, error = %e, "AWS call failed");
        }
        // The record first: whatever happens next, the decision is on record.
        log_decision(&record);
        record.emit();
        let settings = record
            .settings
            .clone()
            .unwrap_or_else(|| self.config.clone());
        if record.outcome == Outcome::Completed
            && record.result == Some(LifecycleActionResult::Abandon)
        {
            record.breaker = self.breaker(action, &settings, &record, deadline).await;
        }
        self.publish(&settings, &record, deadline).await;
        result.map(|()| record)
    }
}

fn log_decision(record: &DecisionRecord) {
    let cause = record.cause.as_ref().map_or("", |c| c.code);
    let result = record.result.map_or("none", |r| r.as_str());
    let verdict = record.verdict.map_or("none", |r| r.as_str());
    info!(
        instance_id = %record.instance_id,
        group = %record.group_name,
        hook = %record.hook_name,
        outcome = ?record.outcome,
        verdict,
        result,
        cause,
        probes = record.probe_count,
        time_to_decision_ms = record.time_to_decision_ms,
        reason = %record.reason,
        "lifecycle action decided"
    );
}
