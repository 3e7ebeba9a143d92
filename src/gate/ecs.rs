//! The second kind of hold: an Amazon ECS blue/green deployment's Lambda lifecycle hook.
//!
//! ECS invokes the gate at a lifecycle stage of a service deployment and reads its answer:
//! `SUCCEEDED` (the deployment goes on), `FAILED` (ECS rolls back), or `IN_PROGRESS` (ECS
//! invokes it again after `callBackDelay` seconds, passing back the `hookDetails` the gate
//! returned). So each invocation runs one round of checks against every green task and
//! returns: no waiting inside Lambda, no heartbeats, no hand-over. The wait's state (when
//! it started, each task's run of passes and failures) travels in `hookDetails` under
//! `launch_gate_state`. ECS only ever passes back what the gate returned to ECS; an
//! invoker that forges it gets the answer, ECS does not, and a forged run of passes cannot
//! make a failing task pass: the round of this invocation must pass too.
//!
//! The invocation is a claim. `DescribeServiceDeployments` must show the deployment in
//! progress, for that service and green revision, at that stage, with a Lambda hook in
//! progress; `DescribeServiceRevisions` gives the green revision's task definition and
//! target group; the green tasks are the service's running tasks of that task definition
//! (`ListTasks`, `DescribeTasks`, their ENI's private IP, never link-local) that are
//! registered in that target group. Nothing else is ever probed.

use super::*;
use crate::aws::ecs::{EcsDeployments, ServiceDeploymentView, ServiceRevisionView, TaskView};
use crate::event::ecs::{EcsHookInvocation, HookResponse, HookStatus, STATE_KEY};
use crate::record::EcsTaskRecord;

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
    /// Each green task's consecutive passes and consecutive failures after the grace
    /// period, by task ARN.
    pub tasks: std::collections::BTreeMap<String, (u32, u32)>,
}

/// At most this many green tasks are checked in one round.
const MAX_TASKS: usize = 100;

impl<P: Prober, A: Aws + EcsDeployments> Gate<P, A> {
    /// The function's answer to one Lambda event: an ECS lifecycle hook invocation gets
    /// the answer ECS reads ([`HookResponse`]), any other event the
    /// [`InvocationSummary`] of [`Gate::handle_invocation`].
    ///
    /// # Errors
    /// As [`Gate::handle_invocation`] and [`Gate::ecs_hook`].
    pub async fn respond(
        &self,
        event: &Value,
        deadline: Option<Instant>,
        invocation_id: Option<&str>,
    ) -> Result<Value, GateError> {
        let answer = if crate::event::ecs::is_ecs_hook(event) {
            serde_json::to_value(self.ecs_hook(event, invocation_id).await?.0)
        } else {
            serde_json::to_value(
                self.handle_invocation(event, deadline, invocation_id)
                    .await?,
            )
        };
        Ok(answer.unwrap_or_default())
    }

    /// Answers one ECS lifecycle hook invocation (`event`, already recognised by
    /// [`crate::event::ecs::is_ecs_hook`]): confirms it with ECS, runs one round of checks
    /// against the green tasks, and answers as ECS reads it. The record is emitted, and a
    /// decision event put when the answer is `SUCCEEDED` or `FAILED`.
    ///
    /// An invocation ECS does not confirm is answered `IN_PROGRESS` and nothing is probed;
    /// a deployment no longer in progress (rolling back, done) `SUCCEEDED`, which never
    /// stands in a rollback's way; AWS that cannot be read `IN_PROGRESS`, so that ECS asks
    /// again (a function error would roll the deployment back on a transient fault).
    ///
    /// # Errors
    /// [`GateError::Event`] when the invocation is malformed.
    pub async fn ecs_hook(
        &self,
        event: &Value,
        invocation_id: Option<&str>,
    ) -> Result<(HookResponse, DecisionRecord), GateError> {
        let inv = crate::event::ecs::parse(event)
            .inspect_err(|e| error!(error = %e, "rejected a malformed ECS hook invocation"))?;
        let started = epoch_millis();
        let mut record = DecisionRecord::for_ecs(&inv);
        record.invocation_id = invocation_id.map(str::to_owned);
        let response = match self.ecs_round(&inv, &mut record).await {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, deployment = %inv.deployment_arn, "AWS could not be read; ECS asks again");
                record.outcome = Outcome::Continued;
                record.reason = format!("{e}; answered IN_PROGRESS so that ECS asks again");
                self.in_progress(None)
            }
        };
        if let Some(e) = record.ecs.as_mut() {
            e.hook_status = Some(response.hook_status);
        }
        record.time_to_decision_ms = epoch_millis().saturating_sub(started);
        record.emit();
        let settings = record
            .settings
            .clone()
            .unwrap_or_else(|| self.config.clone());
        self.publish(&settings, &record, None).await;
        Ok((response, record))
    }

    fn in_progress(&self, state: Option<&EcsWaitState>) -> HookResponse {
        self.in_progress_after(self.config.interval, state)
    }

    fn in_progress_after(&self, delay: Duration, state: Option<&EcsWaitState>) -> HookResponse {
        HookResponse {
            hook_status: HookStatus::InProgress,
            call_back_delay: Some(delay.as_secs().max(1)),
            hook_details: state.map(|s| serde_json::json!({ STATE_KEY: s })),
        }
    }

    /// Confirms the invocation, then one round.
    async fn ecs_round(
        &self,
        inv: &EcsHookInvocation,
        record: &mut DecisionRecord,
    ) -> Result<HookResponse, GateError> {
        let answer = |status| HookResponse {
            hook_status: status,
            call_back_delay: None,
            hook_details: None,
        };
        let described = self
            .aws
            .describe_service_deployment(&inv.deployment_arn)
            .await?;
        let deployment = match confirm(inv, described.as_ref()) {
            Ok(d) => d,
            Err(why) => {
                record.outcome = Outcome::NotHeld;
                record.reason = format!("{why}; nothing probed, answered IN_PROGRESS");
                warn!(deployment = %inv.deployment_arn, reason = %record.reason, "refused a claimed ECS hook invocation");
                return Ok(self.in_progress(None));
            }
        };
        if deployment.status != "IN_PROGRESS" {
            record.outcome = Outcome::AlreadyDecided;
            record.reason = format!(
                "the deployment is {}: nothing to hold (a rollback is never held up); answered SUCCEEDED",
                deployment.status
            );
            return Ok(answer(HookStatus::Succeeded));
        }
        if !inv.is_served_stage() {
            record.outcome = Outcome::AlreadyDecided;
            record.reason = format!(
                "the gate checks green tasks at {}; at {} it has nothing to check: answered SUCCEEDED",
                crate::event::ecs::SERVED_STAGES.join(" and "),
                inv.lifecycle_stage
            );
            info!(deployment = %inv.deployment_arn, stage = %inv.lifecycle_stage, "an ECS lifecycle stage the gate does not check");
            return Ok(answer(HookStatus::Succeeded));
        }
        let settings = inv
            .settings
            .as_ref()
            .map(|m| Value::Object(m.clone()).to_string());
        let config = match self.config.with_metadata(settings.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                // ECS's safe side, as DefaultResult ABANDON is for Auto Scaling.
                record.outcome = Outcome::Completed;
                record.result = Some(LifecycleActionResult::Abandon);
                record.verdict = record.result;
                record.reason = format!(
                    "the hook's settings (hookDetails) are rejected: {e}; answered FAILED, ECS rolls back"
                );
                return Ok(answer(HookStatus::Failed));
            }
        };
        record.mode = Some(config.mode);
        record.settings = Some(config.clone());
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
        state.rounds = state.rounds.saturating_add(1);
        let elapsed = Duration::from_millis(now - state.started_ms);

        let revision = self
            .aws
            .describe_service_revision(&inv.target_revision_arn)
            .await?;
        let tasks = match &revision {
            Some(r) => self.green_tasks(deployment, r).await?,
            None => Vec::new(),
        };
        let ecs = record.ecs.as_mut().expect("an ECS record");
        ecs.revision_task_definition = revision.as_ref().map(|r| r.task_definition.clone());
        ecs.target_group_arn = revision.as_ref().and_then(|r| r.target_group_arn.clone());
        ecs.requested_tasks = deployment.requested_task_count;
        let verdict = self
            .ecs_checks(
                &config,
                revision.as_ref(),
                &tasks,
                elapsed,
                &mut state,
                record,
            )
            .await?;
        Ok(match verdict {
            Some((result, reason)) => {
                record.outcome = Outcome::Completed;
                record.result = Some(match config.mode {
                    Mode::Shadow => LifecycleActionResult::Continue,
                    Mode::Enforce => result,
                });
                record.verdict = Some(result);
                record.reason = reason;
                answer(match record.result {
                    Some(LifecycleActionResult::Continue) => HookStatus::Succeeded,
                    _ => HookStatus::Failed,
                })
            }
            None => {
                record.outcome = Outcome::Continued;
                self.in_progress_after(config.interval, Some(&state))
            }
        })
    }

    /// The green tasks: the service's running tasks of the revision's task definition,
    /// with a private IP that is not link-local, registered in the revision's target group
    /// (when it has one).
    async fn green_tasks(
        &self,
        deployment: &ServiceDeploymentView,
        revision: &ServiceRevisionView,
    ) -> Result<Vec<(TaskView, IpAddr)>, GateError> {
        let cluster = deployment.cluster_arn.as_str();
        let service = deployment
            .service_arn
            .rsplit('/')
            .next()
            .unwrap_or_default();
        let mut green = Vec::new();
        for task in self.aws.service_tasks(cluster, service).await? {
            let Some(ip) = task
                .private_ip
                .filter(|ip| !crate::probe::is_link_local(*ip))
            else {
                continue;
            };
            if task.last_status != "RUNNING" || task.task_definition != revision.task_definition {
                continue;
            }
            if let (Some(tg), Some(port)) = (&revision.target_group_arn, revision.container_port) {
                let health = self
                    .aws
                    .describe_target_health(tg, &ip.to_string(), port)
                    .await?;
                if health.reason.as_deref() == Some("Target.NotRegistered") {
                    continue;
                }
            }
            green.push((task, ip));
            if green.len() == MAX_TASKS {
                break;
            }
        }
        Ok(green)
    }
}

/// Whether ECS confirms the invocation: the deployment exists, for that service and green
/// revision, at that stage (when ECS says), with a Lambda hook in progress: the deployment
/// ECS showed, or why not.
fn confirm<'a>(
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
    if d.status == "IN_PROGRESS" {
        if let Some(stage) = d
            .lifecycle_stage
            .as_deref()
            .filter(|s| *s != inv.lifecycle_stage)
        {
            return Err(format!(
                "the deployment is at {stage}, not {}",
                inv.lifecycle_stage
            ));
        }
        if !d.hooks.iter().any(|(_, status)| status == "IN_PROGRESS") {
            return Err("no lifecycle hook of the deployment is in progress".into());
        }
    }
    Ok(d)
}

impl<P: Prober, A: Aws + EcsDeployments> Gate<P, A> {
    /// One round against every green task: the deep health check, the revision's target
    /// group's own check as the load balancer sends it, and the load balancer's verdict
    /// for the task in that target group. The verdict, or `None` to ask again.
    async fn ecs_checks(
        &self,
        config: &GateConfig,
        revision: Option<&ServiceRevisionView>,
        tasks: &[(TaskView, IpAddr)],
        elapsed: Duration,
        state: &mut EcsWaitState,
        record: &mut DecisionRecord,
    ) -> Result<Option<(LifecycleActionResult, String)>, GateError> {
        let out_of_time = elapsed >= config.max_wait;
        let wait_words = || format!("within {} s", whole_seconds(config.max_wait));
        let Some(revision) = revision else {
            return Ok(out_of_time.then(|| {
                (
                    LifecycleActionResult::Abandon,
                    format!("ECS does not show the green revision {}", wait_words()),
                )
            }));
        };
        let tg = match &revision.target_group_arn {
            Some(arn) if config.target_group_checks => self
                .aws
                .describe_target_groups(std::slice::from_ref(arn))
                .await?
                .into_iter()
                .next(),
            _ => None,
        };
        let requested = record.ecs.as_ref().map_or(1, |e| e.requested_tasks).max(1) as usize;
        state
            .tasks
            .retain(|arn, _| tasks.iter().any(|(t, _)| &t.arn == arn));
        if tasks.len() < requested {
            let why = format!(
                "{} of {requested} green tasks of {} are running and registered",
                tasks.len(),
                revision.task_definition
            );
            record.reason = format!("{why}; waiting");
            return Ok(out_of_time.then(|| {
                (
                    LifecycleActionResult::Abandon,
                    format!("only {why} {}", wait_words()),
                )
            }));
        }
        let policy = HealthPolicy {
            healthy_threshold: config.healthy_threshold,
            unhealthy_threshold: config.unhealthy_threshold,
            grace_period: config.grace_period,
            deadline: config.max_wait,
        };
        let mut last_failure = None;
        for (task, ip) in tasks {
            let mut checks = vec![Check {
                label: CheckLabel::DeepHealth,
                request: ProbeRequest::deep_health(config, *ip),
            }];
            let mut validation = None;
            if let (Some(tg), Some(port)) = (&tg, revision.container_port) {
                let settings = TargetGroupSettings {
                    port: Some(port),
                    ..tg.clone()
                };
                if let Ok(request) =
                    ProbeRequest::for_target_group(&settings, *ip, config.body_limit_bytes)
                {
                    checks.push(Check {
                        label: CheckLabel::TargetGroup(tg.name.clone()),
                        request: request.clone(),
                    });
                    validation = Some(Validation {
                        settings,
                        port,
                        request,
                    });
                }
            }
            let wait = Wait {
                config,
                policy,
                checks: &checks,
                validation: validation.as_ref(),
                baseline: None,
            };
            let round = self.round(&wait, &ip.to_string(), record, elapsed).await?;
            let run = state.tasks.entry(task.arn.clone()).or_default();
            let mut cause = None;
            match round {
                Round::Passed => *run = (run.0.saturating_add(1), 0),
                Round::Failed {
                    diagnosis, failure, ..
                } => {
                    let counted = u32::from(elapsed >= config.grace_period);
                    *run = (0, run.1.saturating_add(counted));
                    cause = diagnosis.as_ref().map(|d| d.code);
                    last_failure = Some((task.arn.clone(), *ip, diagnosis, failure, run.1));
                }
                Round::Undetermined => {}
                Round::ConfigurationError(why) => {
                    return Ok(Some((LifecycleActionResult::Abandon, why)));
                }
            }
            if let Some(e) = record.ecs.as_mut() {
                e.tasks.push(EcsTaskRecord {
                    arn: task.arn.clone(),
                    private_ip: ip.to_string(),
                    passes: run.0,
                    failures: run.1,
                    cause,
                });
            }
        }
        let healthy = config.healthy_threshold.max(1);
        if let Some((arn, ip, diagnosis, failure, failures)) = last_failure {
            let reason = |head: String| match &diagnosis {
                Some(c) => format!("{head}: {}. Fix: {}", c.summary, c.fix),
                None => head,
            };
            record.last_failure = Some(failure);
            if failures >= config.unhealthy_threshold.max(1) || out_of_time {
                let head = if out_of_time {
                    format!(
                        "no {healthy} consecutive passing rounds on every green task {}; green task {arn} ({ip}) fails",
                        wait_words()
                    )
                } else {
                    format!(
                        "{failures} consecutive rounds of green task {arn} ({ip}) failed after the grace period"
                    )
                };
                record.cause = diagnosis.clone();
                return Ok(Some((LifecycleActionResult::Abandon, reason(head))));
            }
            record.cause = diagnosis;
            return Ok(None);
        }
        if state.tasks.values().all(|(passes, _)| *passes >= healthy) {
            return Ok(Some((
                LifecycleActionResult::Continue,
                format!(
                    "{healthy} consecutive rounds passed on each of the {} green tasks: the deep health check{}",
                    tasks.len(),
                    match &tg {
                        Some(tg) => format!(
                            ", target group {}'s health check and the load balancer's own verdict there",
                            tg.name
                        ),
                        None => String::new(),
                    }
                ),
            )));
        }
        Ok(out_of_time.then(|| {
            (
                LifecycleActionResult::Abandon,
                format!(
                    "no {healthy} consecutive passing rounds on every green task {}",
                    wait_words()
                ),
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation() -> EcsHookInvocation {
        crate::event::ecs::parse(&serde_json::json!({
            "executionId": "e-1",
            "lifecycleStage": "POST_SCALE_UP",
            "resourceArn": "arn:aws:ecs:us-east-1:123456789012:service-deployment/shop/web/d1",
            "executionDetails": {
                "serviceArn": "arn:aws:ecs:us-east-1:123456789012:service/shop/web",
                "targetServiceRevisionArn": "arn:aws:ecs:us-east-1:123456789012:service-revision/shop/web/2"
            }
        }))
        .unwrap()
    }

    fn deployment() -> ServiceDeploymentView {
        ServiceDeploymentView {
            arn: invocation().deployment_arn,
            service_arn: invocation().service_arn,
            cluster_arn: "arn:aws:ecs:us-east-1:123456789012:cluster/shop".into(),
            status: "IN_PROGRESS".into(),
            lifecycle_stage: Some("POST_SCALE_UP".into()),
            target_revision_arn: Some(invocation().target_revision_arn),
            requested_task_count: 2,
            started_at: Some(1_796_000_000),
            hooks: vec![(
                "arn:aws:lambda:us-east-1:123456789012:function:launch-gate".into(),
                "IN_PROGRESS".into(),
            )],
        }
    }

    #[test]
    fn ecs_confirms_the_invocation_or_it_is_refused() {
        let inv = invocation();
        assert_eq!(confirm(&inv, Some(&deployment())), Ok(&deployment()));
        let refused = |d: Option<&ServiceDeploymentView>| confirm(&inv, d).unwrap_err();
        assert!(refused(None).starts_with("ECS does not know the service deployment"));
        let other_service = ServiceDeploymentView {
            service_arn: "arn:aws:ecs:us-east-1:123456789012:service/shop/admin".into(),
            ..deployment()
        };
        assert!(refused(Some(&other_service)).contains("belongs to"));
        let other_revision = ServiceDeploymentView {
            target_revision_arn: Some("arn:aws:ecs:x:1:service-revision/shop/web/1".into()),
            ..deployment()
        };
        assert!(refused(Some(&other_revision)).contains("green revision"));
        let later_stage = ServiceDeploymentView {
            lifecycle_stage: Some("POST_TEST_TRAFFIC_SHIFT".into()),
            ..deployment()
        };
        assert!(refused(Some(&later_stage)).contains("at POST_TEST_TRAFFIC_SHIFT"));
        let no_hook = ServiceDeploymentView {
            hooks: Vec::new(),
            ..deployment()
        };
        assert!(refused(Some(&no_hook)).contains("no lifecycle hook"));
        // a deployment rolling back is confirmed, and answered SUCCEEDED by the caller
        let rolling_back = ServiceDeploymentView {
            status: "ROLLBACK_IN_PROGRESS".into(),
            hooks: Vec::new(),
            ..deployment()
        };
        assert_eq!(confirm(&inv, Some(&rolling_back)), Ok(&rolling_back));
    }

    #[test]
    fn the_wait_state_round_trips_in_hook_details() {
        let mut state = EcsWaitState {
            deployment: invocation().deployment_arn,
            stage: "POST_SCALE_UP".into(),
            started_ms: 1_796_000_000_000,
            rounds: 3,
            ..EcsWaitState::default()
        };
        state.tasks.insert("arn:task/1".into(), (2, 0));
        let details = serde_json::json!({ STATE_KEY: state });
        let back: EcsWaitState = serde_json::from_value(details[STATE_KEY].clone()).unwrap();
        assert_eq!(back, state);
    }
}
