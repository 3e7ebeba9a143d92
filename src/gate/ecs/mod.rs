//! The second kind of hold: an Amazon ECS blue/green deployment's Lambda lifecycle hook.
//!
//! ECS invokes the gate at a lifecycle stage of a service deployment and reads its answer:
//! `SUCCEEDED` (the deployment goes on), `FAILED` (ECS rolls back), or `IN_PROGRESS` (ECS
//! invokes it again after `callBackDelay` seconds, passing back the `hookDetails` the gate
//! returned). Each invocation runs one round of checks against every green task and
//! returns; the tally of rounds travels in `hookDetails` under `launch_gate_state`, and
//! each task's tally is judged by the engine's rule ([`crate::policy::Tally`]).
//!
//! The invocation is a claim, and only AWS's documented state confirms it, before anything
//! is probed or published:
//! - the service is one the gate serves (`ecs_services`), before any call;
//! - `DescribeServiceDeployments`: the deployment exists, for that service and green
//!   revision, `IN_PROGRESS`, at that stage when ECS says which;
//! - `DescribeServices`: the service's own `deploymentConfiguration.lifecycleHooks` has a
//!   hook whose `hookTargetArn` is this function (qualifier included) and whose stages
//!   include this one. Its `hookDetails` are the settings; the invocation's carry only the
//!   gate's own state, bounded by the deployment's start.
//!
//! Whether ECS lists a running Lambda hook in the deployment's `lifecycleHookDetails` is not
//! documented, so nothing depends on it. The green tasks are those the service's `PRIMARY`
//! deployment started (`startedBy`), never those of a task definition
//! ([`green`]); their target group is ECS's `resolvedConfiguration`, else the one of the
//! two that holds them.

mod green;
mod round;

use std::collections::BTreeMap;

use super::*;
use crate::aws::ecs::{DeploymentStatus, EcsDeployments, ServiceDeploymentView, same_function};
use crate::event::ecs::{EcsHookInvocation, HookResponse, HookStatus, STATE_KEY};
use crate::policy::Tally;
use crate::record::EcsTaskRecord;

pub use green::{MAX_TASKS, NetworkMode};
use round::EcsVerdict;

/// Kept back from the invocation's deadline for the answer and the record: a round that
/// would run past it is cut, not counted, and answered `IN_PROGRESS`.
pub const ECS_RESERVE: Duration = Duration::from_secs(5);

/// The wait's state, as the gate returns it in `hookDetails` with `IN_PROGRESS`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EcsWaitState {
    /// The deployment it belongs to: a state of another is ignored.
    pub deployment: String,
    /// The stage it belongs to.
    pub stage: String,
    /// When the first round ran, milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// Rounds run so far.
    pub rounds: u32,
    /// Each green task's tally of rounds, by task ARN.
    pub tasks: BTreeMap<String, Tally>,
}

/// What the Lambda runtime says of one invocation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Invoked<'a> {
    /// The function ARN the invoker used (`invoked_function_arn`, with its qualifier).
    pub function_arn: Option<&'a str>,
    /// The request id.
    pub request_id: Option<&'a str>,
    /// When Lambda ends the invocation.
    pub deadline: Option<Instant>,
}

impl<P: Prober, A: Aws + EcsDeployments> Gate<P, A> {
    /// The function's answer to one Lambda event: an ECS lifecycle hook invocation gets
    /// the answer ECS reads ([`HookResponse`]), any other event the
    /// [`InvocationSummary`] of [`Gate::handle_invocation`], its records without the
    /// app's body excerpts ([`crate::publish::without_body`]).
    ///
    /// # Errors
    /// As [`Gate::handle_invocation`] and [`Gate::ecs_hook`].
    pub async fn respond(&self, event: &Value, invoked: Invoked<'_>) -> Result<Value, GateError> {
        if crate::event::ecs::is_ecs_hook(event) {
            let answer = serde_json::to_value(self.ecs_hook(event, invoked).await?.0);
            return Ok(answer.unwrap_or_default());
        }
        if let Some(records) = sqs_batch(event) {
            return Ok(self.sqs_batch(records, invoked).await);
        }
        let summary = self
            .handle_invocation(event, invoked.deadline, invoked.request_id)
            .await?;
        // The invoker's answer carries the decisions without the app's body excerpts.
        Ok(serde_json::json!({
            "decisions": summary.decisions.iter().map(crate::publish::without_body).collect::<Vec<_>>(),
            "ignored": summary.ignored,
        }))
    }

    /// An SQS batch, one message at a time and all at once: a message that fails (malformed,
    /// or AWS unreadable) is reported in `batchItemFailures` by its `messageId`, so that SQS
    /// delivers it again (the event source mapping's `ReportBatchItemFailures`), and the
    /// others are not failed with it. The decisions and ignored notifications follow, as for
    /// any other event.
    async fn sqs_batch(&self, records: &[Value], invoked: Invoked<'_>) -> Value {
        let results = futures::future::join_all(records.iter().map(|r| async move {
            let one = serde_json::json!({ "Records": [r] });
            let id = r
                .get("messageId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            (
                id,
                self.handle_invocation(&one, invoked.deadline, invoked.request_id)
                    .await,
            )
        }))
        .await;
        let mut failures = Vec::new();
        let mut decisions = Vec::new();
        let mut ignored = Vec::new();
        for (id, result) in results {
            match result {
                Ok(summary) => {
                    decisions.extend(summary.decisions.iter().map(crate::publish::without_body));
                    ignored.extend(summary.ignored);
                }
                Err(e) => {
                    warn!(message_id = %id, error = %e, "an SQS message failed; SQS delivers it again");
                    failures.push(serde_json::json!({ "itemIdentifier": id }));
                }
            }
        }
        serde_json::json!({
            "batchItemFailures": failures,
            "decisions": decisions,
            "ignored": ignored,
        })
    }

    /// Answers one ECS lifecycle hook invocation (`event`, already recognised by
    /// [`crate::event::ecs::is_ecs_hook`]): confirms it with ECS, runs one round of checks
    /// against the green tasks, and answers as ECS reads it. The record is emitted, and a
    /// decision event put for a confirmed invocation answered `SUCCEEDED` or `FAILED`.
    ///
    /// - Not served (`ecs_services`): nothing read; `FAILED` (shadow mode: `SUCCEEDED`).
    /// - Not confirmed by ECS: `IN_PROGRESS`, nothing probed or published.
    /// - A deployment that is no longer in progress (rolled back, stopped, done):
    ///   `SUCCEEDED`, which never stands in a rollback's way; an unknown status:
    ///   `IN_PROGRESS`.
    /// - AWS refuses a call (`AccessDenied`): `FAILED` naming the permission (shadow:
    ///   `SUCCEEDED`); any other AWS error `IN_PROGRESS`, so that ECS asks again.
    ///
    /// Shadow mode records the verdict and answers `SUCCEEDED`, always.
    ///
    /// # Errors
    /// [`GateError::Event`] when the invocation is malformed.
    pub async fn ecs_hook(
        &self,
        event: &Value,
        invoked: Invoked<'_>,
    ) -> Result<(HookResponse, DecisionRecord), GateError> {
        let inv = crate::event::ecs::parse(event)
            .inspect_err(|e| error!(error = %e, "rejected a malformed ECS hook invocation"))?;
        let started = epoch_millis();
        let mut record = DecisionRecord::for_ecs(&inv);
        record.invocation_id = invoked.request_id.map(str::to_owned);
        record.mode = Some(self.config.mode);
        let mut confirmed = false;
        let response = match self
            .ecs_confirmed(&inv, invoked, &mut record, &mut confirmed)
            .await
        {
            Ok(r) => r,
            Err(e) if e.is_access_denied() => {
                let why = format!(
                    "AWS refused {} to the gate's role ({}): grant it for this service, or the gate cannot check the deployment",
                    e.operation,
                    e.code.as_deref().unwrap_or("AccessDenied")
                );
                error!(error = %e, deployment = %inv.deployment_arn, "ECS hook: access denied");
                let mode = record.mode.unwrap_or(self.config.mode);
                self.decide(&mut record, mode, EcsVerdict::Fail(why))
            }
            Err(e) => {
                error!(error = %e, deployment = %inv.deployment_arn, "AWS could not be read; ECS asks again");
                record.outcome = Outcome::Continued;
                record.reason = format!("{e}; answered IN_PROGRESS so that ECS asks again");
                self.in_progress(self.config.interval, None)
            }
        };
        if let Some(e) = record.ecs.as_mut() {
            e.hook_status = Some(response.hook_status);
        }
        record.time_to_decision_ms = epoch_millis().saturating_sub(started);
        record.emit();
        if confirmed {
            let settings = record
                .settings
                .clone()
                .unwrap_or_else(|| self.config.clone());
            self.publish(&settings, &record, None).await;
        }
        Ok((response, record))
    }

    fn in_progress(&self, delay: Duration, state: Option<&EcsWaitState>) -> HookResponse {
        HookResponse {
            hook_status: HookStatus::InProgress,
            call_back_delay: Some(delay.as_secs().max(1)),
            hook_details: state.map(|s| serde_json::json!({ STATE_KEY: s })),
        }
    }

    /// Words a verdict for ECS: `Pass` `SUCCEEDED`; `Fail` `FAILED`, or `SUCCEEDED` in
    /// shadow mode; `Wait` is not a decision and is answered by the caller.
    fn decide(&self, record: &mut DecisionRecord, mode: Mode, verdict: EcsVerdict) -> HookResponse {
        let (own, reason) = match verdict {
            EcsVerdict::Pass(r) => (HookStatus::Succeeded, r),
            EcsVerdict::Fail(r) => (HookStatus::Failed, r),
            EcsVerdict::Wait(r) => (HookStatus::InProgress, r),
        };
        let sent = match (mode, own) {
            (Mode::Shadow, HookStatus::Failed) => HookStatus::Succeeded,
            (_, s) => s,
        };
        record.outcome = Outcome::Completed;
        record.reason = match (mode, own) {
            (Mode::Shadow, HookStatus::Failed) => {
                format!("{reason} (shadow mode: the verdict is FAILED, answered SUCCEEDED)")
            }
            _ => reason,
        };
        if let Some(e) = record.ecs.as_mut() {
            e.verdict = Some(own);
        }
        HookResponse {
            hook_status: sent,
            call_back_delay: None,
            hook_details: None,
        }
    }

    /// Checks the claim against the gate's settings and ECS's state, then one round;
    /// `confirmed` is set once ECS has confirmed the invocation.
    async fn ecs_confirmed(
        &self,
        inv: &EcsHookInvocation,
        invoked: Invoked<'_>,
        record: &mut DecisionRecord,
        confirmed: &mut bool,
    ) -> Result<HookResponse, AwsError> {
        let refuse = |record: &mut DecisionRecord, why: String| {
            record.outcome = Outcome::NotHeld;
            record.reason = format!("{why}; nothing probed, answered IN_PROGRESS");
            warn!(deployment = %inv.deployment_arn, reason = %record.reason, "refused a claimed ECS hook invocation");
            self.in_progress(self.config.interval, None)
        };
        let Some((cluster, service)) = inv.cluster_and_service() else {
            return Ok(refuse(
                record,
                "the deployment's ARN names no cluster and service".into(),
            ));
        };
        if !self.config.serves_ecs_service(cluster, service) {
            record.outcome = Outcome::NotServed;
            let why = format!(
                "the gate does not serve the ECS service {cluster}/{service} (LAUNCH_GATE_ECS_SERVICES: add {cluster}/{service} or {cluster}/*); nothing read or probed"
            );
            warn!(deployment = %inv.deployment_arn, "{why}");
            let response = self.decide(record, self.config.mode, EcsVerdict::Fail(why));
            record.outcome = Outcome::NotServed;
            return Ok(response);
        }
        let described = self
            .aws
            .describe_service_deployment(&inv.deployment_arn)
            .await?;
        let deployment = match confirm_deployment(inv, described.as_ref()) {
            Ok(d) => d,
            Err(why) => return Ok(refuse(record, why)),
        };
        let Some(view) = self.aws.describe_service(cluster, service).await? else {
            return Ok(refuse(
                record,
                format!("ECS does not know the service {cluster}/{service}"),
            ));
        };
        let own = invoked.function_arn.or(self.function_arn.as_deref());
        let Some(own) = own else {
            return Ok(refuse(
                record,
                "the gate does not know its own function ARN, so it cannot find its hook in the service's configuration".into(),
            ));
        };
        let Some(hook) = view
            .hooks
            .iter()
            .find(|h| same_function(&h.target_arn, own) && h.stages.contains(&inv.lifecycle_stage))
        else {
            return Ok(refuse(
                record,
                format!(
                    "the service's deployment configuration has no lifecycle hook that invokes {own} at {}",
                    inv.lifecycle_stage
                ),
            ));
        };
        *confirmed = true;
        match &deployment.status {
            DeploymentStatus::InProgress => {}
            DeploymentStatus::Unknown(_) | DeploymentStatus::Pending => {
                record.outcome = Outcome::Continued;
                record.reason = format!(
                    "the deployment's status is {}: nothing is decided on it; answered IN_PROGRESS",
                    deployment.status
                );
                return Ok(self.in_progress(self.config.interval, None));
            }
            other => {
                record.outcome = Outcome::AlreadyDecided;
                record.reason = format!(
                    "the deployment is {other}: nothing to hold (a rollback is never held up); answered SUCCEEDED"
                );
                return Ok(HookResponse {
                    hook_status: HookStatus::Succeeded,
                    call_back_delay: None,
                    hook_details: None,
                });
            }
        }
        if !inv.is_served_stage() {
            record.outcome = Outcome::AlreadyDecided;
            record.reason = format!(
                "the gate checks green tasks at {}; at {} it has nothing to check: answered SUCCEEDED",
                crate::event::ecs::SERVED_STAGES.join(" and "),
                inv.lifecycle_stage
            );
            return Ok(HookResponse {
                hook_status: HookStatus::Succeeded,
                call_back_delay: None,
                hook_details: None,
            });
        }
        // The settings: the configured hook's hookDetails, as ECS stores them.
        let details = hook.hook_details.as_ref().map(|d| match d {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let config = match self.config.with_metadata(details.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                return Ok(self.decide(
                    record,
                    self.config.mode,
                    EcsVerdict::Fail(format!(
                        "configuration error: the hook's settings (hookDetails) are rejected: {e}"
                    )),
                ));
            }
        };
        record.mode = Some(config.mode);
        record.settings = Some(config.clone());
        let timeout = Duration::from_secs(u64::from(hook.timeout_minutes.unwrap_or(1440)) * 60);
        if config.max_wait >= timeout {
            return Ok(self.decide(
                record,
                config.mode,
                EcsVerdict::Fail(format!(
                    "configuration error: max_wait_seconds {} is not shorter than the hook's timeout ({} minutes, timeoutConfiguration.timeoutInMinutes): ECS would apply the hook's timeout action ({}) before the gate decides. Fix: raise the timeout or lower max_wait_seconds",
                    whole_seconds(config.max_wait),
                    timeout.as_secs() / 60,
                    hook.timeout_action.as_deref().unwrap_or("ROLLBACK")
                )),
            ));
        }
        let now = epoch_millis();
        // The claimed start, bounded by AWS's facts: no earlier than the deployment
        // started, no later than now.
        let floor = deployment.started_at.map_or(0, |s| s.saturating_mul(1000));
        let mut state = inv
            .state
            .clone()
            .and_then(|v| serde_json::from_value::<EcsWaitState>(v).ok())
            .filter(|s| s.deployment == inv.deployment_arn && s.stage == inv.lifecycle_stage)
            .unwrap_or_else(|| EcsWaitState {
                deployment: inv.deployment_arn.clone(),
                stage: inv.lifecycle_stage.clone(),
                started_ms: now,
                ..EcsWaitState::default()
            });
        state.started_ms = state.started_ms.clamp(floor, now);
        let before = state.clone();
        state.rounds = state.rounds.saturating_add(1);
        let elapsed = Duration::from_millis(now - state.started_ms);
        let round = self.ecs_round(&config, inv, deployment, &view, elapsed, &mut state, record);
        let verdict = match invoked.deadline.and_then(|d| d.checked_sub(ECS_RESERVE)) {
            Some(cut) => match tokio::time::timeout_at(cut, round).await {
                Ok(v) => v?,
                Err(_) => {
                    record.outcome = Outcome::Continued;
                    record.reason = "the invocation's time ran out during the round: not counted; answered IN_PROGRESS".into();
                    return Ok(self.in_progress(config.interval, Some(&before)));
                }
            },
            None => round.await?,
        };
        Ok(match verdict {
            EcsVerdict::Wait(why) => {
                record.outcome = Outcome::Continued;
                record.reason = format!("{why}; answered IN_PROGRESS");
                self.in_progress(config.interval, Some(&state))
            }
            decided => self.decide(record, config.mode, decided),
        })
    }

    /// The green tasks, then one round of checks against them.
    #[allow(clippy::too_many_arguments)]
    async fn ecs_round(
        &self,
        config: &GateConfig,
        inv: &EcsHookInvocation,
        deployment: &ServiceDeploymentView,
        service: &crate::aws::ecs::ServiceView,
        elapsed: Duration,
        state: &mut EcsWaitState,
        record: &mut DecisionRecord,
    ) -> Result<EcsVerdict, AwsError> {
        let out_of_time = elapsed >= config.max_wait;
        let within = format!("within {} s", whole_seconds(config.max_wait));
        let (cluster, service_name) = inv.cluster_and_service().unwrap_or_default();
        let wait_or_fail = |why: String| {
            if out_of_time {
                EcsVerdict::Fail(format!("{why} {within}"))
            } else {
                EcsVerdict::Wait(why)
            }
        };
        let Some(revision) = self
            .aws
            .describe_service_revision(&inv.target_revision_arn)
            .await?
        else {
            return Ok(wait_or_fail(format!(
                "ECS does not show the green revision {}",
                inv.target_revision_arn
            )));
        };
        let green = green::read(
            &self.aws,
            cluster,
            service_name,
            service,
            &revision,
            config.health_port,
        )
        .await?;
        let requested = deployment.requested_task_count.max(1);
        if let Some(e) = record.ecs.as_mut() {
            e.revision_task_definition = Some(revision.task_definition.clone());
            e.target_group_arn = green.target_group_arn.clone();
            e.green_deployment_id = green.deployment_id.clone();
            e.requested_tasks = deployment.requested_task_count;
        }
        if let Some(n) = green.too_many {
            return Ok(EcsVerdict::Fail(format!(
                "the deployment started {n} green tasks; the gate checks at most {MAX_TASKS} and does not pass a deployment it checked in part"
            )));
        }
        if let Some(note) = &green.note {
            return Ok(wait_or_fail(format!("{note}; no green task to check")));
        }
        let registered = green.registered.len() as u32;
        if registered < requested {
            let place = match &green.target_group_arn {
                Some(tg) => format!("running and registered in {tg}"),
                None => "running with an address (no target group: checked on health_port)".into(),
            };
            return Ok(wait_or_fail(format!(
                "{registered} of {requested} green tasks are {place} (green tasks started by {}: {}{})",
                green.deployment_id.as_deref().unwrap_or("?"),
                green.status_words(),
                if green.unregistered.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; running but not registered: {}",
                        green.unregistered.join(", ")
                    )
                }
            )));
        }
        let tg = match (&green.target_group_arn, config.target_group_checks) {
            (Some(arn), true) => self
                .aws
                .describe_target_groups(std::slice::from_ref(arn))
                .await?
                .into_iter()
                .next(),
            _ => None,
        };
        Ok(self
            .ecs_checks(config, &green, tg.as_ref(), elapsed, state, record)
            .await)
    }
}

/// The records of an SQS batch (`Records[]` whose every record has `eventSource`
/// `aws:sqs` and a `messageId`), or `None` for any other event.
fn sqs_batch(event: &Value) -> Option<&[Value]> {
    let records = event.get("Records")?.as_array()?;
    let all_sqs = !records.is_empty()
        && records.iter().all(|r| {
            r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs")
                && r.get("messageId")
                    .and_then(Value::as_str)
                    .is_some_and(|m| !m.is_empty())
        });
    all_sqs.then_some(records.as_slice())
}

/// Whether ECS confirms the invocation's deployment: it exists, for that service and green
/// revision, and, while in progress, at that stage when ECS says which. The deployment ECS
/// showed, or why not. Its `lifecycleHookDetails` decide nothing: AWS does not document
/// that Lambda hooks are listed there.
fn confirm_deployment<'a>(
    inv: &EcsHookInvocation,
    deployment: Option<&'a ServiceDeploymentView>,
) -> Result<&'a ServiceDeploymentView, String> {
    let Some(d) = deployment else {
        return Err(format!(
            "ECS does not know the service deployment {}",
            inv.deployment_arn
        ));
    };
    if d.service_arn != inv.service_arn {
        return Err(format!(
            "the deployment belongs to {}, not {}",
            d.service_arn, inv.service_arn
        ));
    }
    if d.target_revision_arn.as_deref() != Some(inv.target_revision_arn.as_str()) {
        return Err(format!(
            "the deployment's green revision is {}, not {}",
            d.target_revision_arn.as_deref().unwrap_or("none"),
            inv.target_revision_arn
        ));
    }
    if d.status == DeploymentStatus::InProgress
        && let Some(stage) = d
            .lifecycle_stage
            .as_deref()
            .filter(|s| *s != inv.lifecycle_stage)
    {
        return Err(format!(
            "the deployment is at {stage}, not {}",
            inv.lifecycle_stage
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests;
