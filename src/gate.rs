//! The gate's loop: resolve the instance, probe it, record heartbeats, decide, complete the
//! lifecycle action, emit the decision record. Does I/O only through its ports
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
    epoch_millis, epoch_seconds,
};

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
}

/// Values of `Lambda-Runtime-Deadline-Ms` below this (2001-09-09) cannot be an epoch
/// deadline of a current invocation.
const EPOCH_MS_FLOOR: u64 = 1_000_000_000_000;

/// The instant of a Lambda `Context.deadline`: milliseconds since the Unix epoch, as the
/// Lambda service sends it in `Lambda-Runtime-Deadline-Ms`. A value too small to be an
/// epoch time is read as milliseconds from now: cargo-lambda's local Runtime API (1.9)
/// sends the function timeout there (`600000`).
pub fn invocation_deadline(deadline_ms: u64) -> Instant {
    if deadline_ms < EPOCH_MS_FLOOR {
        return Instant::now() + Duration::from_millis(deadline_ms);
    }
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(epoch_millis()))
}

impl<P: Prober, A: Aws> Gate<P, A> {
    /// A gate with validated default settings, its prober and its AWS ports.
    pub fn new(config: GateConfig, prober: P, aws: A) -> Self {
        Self {
            config,
            prober,
            aws,
        }
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

    /// The scheduled sweep: the launches of the served groups held in `Pending:Wait` by a
    /// served hook, whose instance no gate claims (lifecycle events reach EventBridge best
    /// effort, and some are lost). Each is claimed, then gated like a delivered event,
    /// completing by instance id since its token is unknown.
    ///
    /// # Errors
    /// [`GateError::Aws`] when listing or claiming fails after retries.
    async fn sweep(&self) -> Result<Vec<LifecycleAction>, GateError> {
        let Some(groups) = &self.config.group_names else {
            warn!("the sweep needs LAUNCH_GATE_GROUP_NAMES, the groups to look at; nothing swept");
            return Ok(Vec::new());
        };
        let now = epoch_seconds();
        let mut found = Vec::new();
        for group in groups {
            let pending = self.aws.pending_instances(group).await?;
            if pending.is_empty() {
                continue;
            }
            // One DescribeInstances for the group; the first served hook takes what no
            // gate claims.
            let mut unclaimed: Vec<String> = self
                .aws
                .describe_instances(&pending)
                .await?
                .into_iter()
                .filter(|(_, info)| {
                    !info.is_gone() && info.claimed_until.is_none_or(|until| until <= now)
                })
                .map(|(id, _)| id)
                .collect();
            for hook_name in &self.config.hook_names {
                if unclaimed.is_empty() {
                    break;
                }
                let Some(hook) = self.aws.describe_lifecycle_hook(group, hook_name).await? else {
                    continue;
                };
                if hook.transition.as_deref() != Some(event::LAUNCHING) {
                    continue;
                }
                for instance_id in std::mem::take(&mut unclaimed) {
                    let instance_id = &instance_id;
                    self.aws
                        .claim(instance_id, now + hook.heartbeat_timeout.as_secs())
                        .await?;
                    info!(instance_id = %instance_id, group = %group, hook = %hook_name, "the sweep found a held launch no gate works on; gating it");
                    found.push(LifecycleAction {
                        token: None,
                        group_name: group.clone(),
                        hook_name: hook_name.clone(),
                        instance_id: instance_id.clone(),
                        transition: event::LAUNCHING.to_owned(),
                        notification_metadata: hook.notification_metadata.clone(),
                        origin: None,
                        destination: None,
                        sent_at: None,
                        delivery: event::Delivery::Sweep,
                    });
                }
            }
        }
        Ok(found)
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

    /// The launch-loop breaker after an `ABANDON`, when the invocation has the time for it.
    async fn breaker(
        &self,
        action: &LifecycleAction,
        settings: &GateConfig,
        record: &DecisionRecord,
        deadline: Option<Instant>,
    ) -> Option<breaker::BreakerRecord> {
        let count = breaker::after_abandon(
            &self.aws,
            settings,
            &action.group_name,
            &action.instance_id,
            record.launch_template.as_ref(),
        );
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let result = match left {
            Some(left) if left < BREAKER_TIME => {
                warn!(instance_id = %action.instance_id, "too little time left in the invocation for the launch-loop breaker; the next ABANDON counts again");
                return None;
            }
            Some(left) => tokio::time::timeout(left - Duration::from_secs(1), count)
                .await
                .unwrap_or_else(|_| {
                    error!(instance_id = %action.instance_id, "the launch-loop breaker ran out of invocation time; the next ABANDON counts again");
                    None
                }),
            None => count.await,
        };
        if let Some(b) = &result {
            info!(
                instance_id = %action.instance_id,
                group = %action.group_name,
                abandons = b.abandons.len(),
                threshold = b.threshold,
                tripped = b.tripped,
                action_taken = b.action_taken.as_deref().unwrap_or(""),
                error = b.error.as_deref().unwrap_or(""),
                "launch-loop breaker"
            );
        }
        result
    }

    /// Puts the decision event, and the `Rollout Halted` event when this decision tripped
    /// the breaker, on the configured bus. No event is put for a hand-over to a new
    /// invocation, nor for an action another invocation had already decided (that one
    /// published it).
    async fn publish(
        &self,
        settings: &GateConfig,
        record: &DecisionRecord,
        deadline: Option<Instant>,
    ) {
        let Some(bus) = &settings.event_bus else {
            return;
        };
        if matches!(record.outcome, Outcome::Continued | Outcome::AlreadyDecided) {
            return;
        }
        let limit = || {
            deadline.map_or(publish::PUBLISH_TIMEOUT, |d| {
                d.saturating_duration_since(Instant::now())
                    .saturating_sub(Duration::from_secs(1))
            })
        };
        let detail = publish::decision_detail(record);
        publish::publish(
            &self.aws,
            bus,
            publish::DECISION_DETAIL_TYPE,
            &detail,
            limit(),
        )
        .await;
        if let Some(b) = record.breaker.as_ref().filter(|b| b.tripped) {
            let detail = publish::halted_detail(record, b);
            publish::publish(
                &self.aws,
                bus,
                publish::HALTED_DETAIL_TYPE,
                &detail,
                limit(),
            )
            .await;
        }
    }

    /// Admits the action (Auto Scaling confirms it), then resolves, probes and decides.
    /// `start` is when this gate started; for a hand-over it is moved back to the first
    /// invocation's start, bounded by the instance's launch time.
    async fn run(
        &self,
        claimed: &LifecycleAction,
        resume: Option<&Continuation>,
        deadline: Option<Instant>,
        start: &mut Instant,
        record: &mut DecisionRecord,
    ) -> Result<(), GateError> {
        let admitted = match admission::admit(&self.aws, claimed).await? {
            Admission::Admitted(a) => a,
            Admission::Refused { outcome, reason } => {
                record.outcome = outcome;
                record.reason = reason;
                return Ok(());
            }
        };
        record.heartbeats += 1;
        let Admitted { action, hook } = *admitted;
        let action = &action;
        record.destination = action.destination;
        record.hook = Some(hook.clone());
        let config = match self
            .config
            .with_metadata(action.notification_metadata.as_deref())
        {
            Ok(c) => c,
            Err(e) => {
                record.reason = format!(
                    "the hook's settings are rejected: {e}; the lifecycle action is left to the hook's DefaultResult"
                );
                return Ok(());
            }
        };
        record.mode = Some(config.mode);
        record.settings = Some(config.clone());
        self.claim(action, &hook).await;

        if action.is_warm_pool_entry() && config.warm_pool_launch == WarmPoolLaunch::Continue {
            let reason = "a launch into the warm pool (Auto Scaling says Warmed:Pending:Wait): the instance is stopped right after, so it is gated when it leaves the pool".to_owned();
            return self
                .complete(
                    action,
                    record,
                    LifecycleActionResult::Continue,
                    LifecycleActionResult::Continue,
                    reason,
                )
                .await;
        }

        let handoff_at = deadline.map(|d| d.checked_sub(INVOCATION_RESERVE).unwrap_or(*start));
        let mut clock = Clock::new(*start, &config, &hook);
        let Some(instance) = self.resolve(action, record, &mut clock, handoff_at).await? else {
            return Ok(());
        };
        // The wait is bounded by AWS's facts: the action started when the instance
        // launched, and a hand-over's start is no earlier than that, nor later than now.
        let launched = instance
            .launched_at
            .map(|s| instant_of(s.saturating_mul(1000)));
        if let Some(c) = resume {
            let claimed_start = instant_of(c.started_at_ms).min(Instant::now());
            *start = launched.map_or(claimed_start, |l| claimed_start.max(l));
        }
        clock.bound(*start, &config, &hook, launched);
        let Some(ip) = instance.private_ip else {
            return Ok(());
        };
        let deep = ProbeRequest::deep_health(&config, ip);
        record.private_ip = Some(ip.to_string());
        record.target = Some(deep.url());
        record.host_header = Some(deep.host.clone());

        let Some(targets) = self.target_groups(action, &config, ip, record).await? else {
            return Ok(());
        };
        let mut checks = vec![Check {
            label: CheckLabel::DeepHealth,
            request: deep,
        }];
        checks.extend(targets.checks);

        let start = *start;
        let policy = HealthPolicy {
            healthy_threshold: config.healthy_threshold,
            unhealthy_threshold: config.unhealthy_threshold,
            grace_period: config.grace_period,
            deadline: clock.wait_deadline.saturating_duration_since(start),
        };
        let handoff_at = match &targets.validation {
            Some(_) => handoff_at.map(|h| h.checked_sub(VALIDATION_RESERVE).unwrap_or(start)),
            None => handoff_at,
        };
        let wait = Wait {
            action,
            config: &config,
            policy,
            start,
            handoff_at,
            checks: &checks,
            validation: targets.validation.as_ref(),
        };

        // The instance is registered in the validation target group for the wait only:
        // whatever happens next, it is deregistered before the action is completed.
        if let Some(v) = &targets.validation {
            match self
                .aws
                .register_target(&v.settings.arn, &action.instance_id, v.port)
                .await
            {
                Ok(()) => {}
                // Nothing was registered: a configuration error, not an outage to retry.
                Err(e) if e.is_access_denied() => {
                    record.reason = format!(
                        "configuration error: the function's role may not register targets in the validation target group {} ({}). Fix: name it in the template's ValidationTargetGroupArn (the role's RegisterTargets and DeregisterTargets are scoped to it), or remove validation_target_group_arn from the hook's metadata; the lifecycle action is left to the hook's DefaultResult",
                        v.settings.name,
                        e.code.as_deref().unwrap_or("AccessDenied")
                    );
                    error!(instance_id = %action.instance_id, reason = %record.reason, "validation target group out of the role's reach");
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
            if let Some(r) = record.validation.as_mut() {
                r.registered = true;
            }
        }
        let waited = self.wait(&wait, record, &mut clock).await;
        if let Some(v) = &targets.validation {
            let deregistered = self
                .aws
                .deregister_target(&v.settings.arn, &action.instance_id, v.port)
                .await;
            if let Some(r) = record.validation.as_mut() {
                r.deregistered = deregistered.is_ok();
            }
            if let Err(e) = deregistered {
                error!(instance_id = %action.instance_id, error = %e, "could not deregister the instance from the validation target group");
                if waited.is_ok() {
                    return Err(e.into());
                }
            }
        }
        let (verdict, reason) = match waited? {
            WaitEnd::Verdict(verdict, reason) => (verdict, reason),
            WaitEnd::Stopped => return Ok(()),
            WaitEnd::InvocationEnding => {
                return self.hand_over(action, record, &clock, start, &hook).await;
            }
        };
        let sent = match config.mode {
            Mode::Enforce => verdict,
            Mode::Shadow => LifecycleActionResult::Continue,
        };
        self.complete(action, record, verdict, sent, reason).await
    }

    /// Reads the group's target groups and the validation target group, once, and builds
    /// the target groups' health checks. `None` when the gate ends here (a configuration
    /// error, recorded as a hand-off, or a group that no longer exists).
    async fn target_groups(
        &self,
        action: &LifecycleAction,
        config: &GateConfig,
        ip: IpAddr,
        record: &mut DecisionRecord,
    ) -> Result<Option<Targets>, GateError> {
        let mut targets = Targets::default();
        let mut arns = Vec::new();
        if config.target_group_checks {
            let Some(group_arns) = self.aws.target_group_arns(&action.group_name).await? else {
                record.outcome = Outcome::AlreadyDecided;
                record.reason = format!("the group {} does not exist any more", action.group_name);
                return Ok(None);
            };
            if group_arns.is_empty() {
                record.target_groups_note = Some(
                    "the group has no target groups: no target-group health check to run".into(),
                );
            }
            arns = group_arns;
        } else {
            record.target_groups_note =
                Some("target-group checks are off (target_group_checks)".into());
        }
        if let Some(v) = &config.validation_target_group_arn {
            arns.retain(|a| a != v);
            arns.push(v.clone());
        }
        let settings = if arns.is_empty() {
            Vec::new()
        } else {
            self.aws.describe_target_groups(&arns).await?
        };
        for tg in settings
            .iter()
            .filter(|tg| Some(&tg.arn) != config.validation_target_group_arn.as_ref())
        {
            let mut tg_record = TargetGroupRecord::new(tg);
            match ProbeRequest::for_target_group(tg, ip, config.body_limit_bytes) {
                Ok(request) => {
                    tg_record.target = Some(request.url());
                    targets.checks.push(Check {
                        label: CheckLabel::TargetGroup(tg.name.clone()),
                        request,
                    });
                }
                Err(why) => tg_record.skipped = Some(why),
            }
            record.target_groups.push(tg_record);
        }
        if let Some(arn) = &config.validation_target_group_arn {
            let handoff = |record: &mut DecisionRecord, why: String| {
                record.reason =
                    format!("{why}; the lifecycle action is left to the hook's DefaultResult");
                error!(instance_id = %action.instance_id, reason = %record.reason, "validation target group misconfigured");
            };
            let Some(tg) = settings.iter().find(|tg| &tg.arn == arn) else {
                handoff(
                    record,
                    format!("the validation target group {arn} does not exist"),
                );
                return Ok(None);
            };
            let port = tg.port.unwrap_or(config.health_port);
            record.validation = Some(ValidationRecord::new(tg, port));
            if tg.load_balancer_arns.is_empty() {
                handoff(
                    record,
                    format!(
                        "configuration error: the validation target group {} is not used by any load balancer listener, so the load balancer never checks its targets (it would report unused / Target.NotInUse). Fix: attach it to a listener rule that no production request matches",
                        tg.name
                    ),
                );
                return Ok(None);
            }
            if !tg.health_check_enabled {
                handoff(
                    record,
                    format!(
                        "configuration error: health checks are disabled on the validation target group {}",
                        tg.name
                    ),
                );
                return Ok(None);
            }
            let request = match ProbeRequest::for_target_group(tg, ip, config.body_limit_bytes) {
                Ok(r) => r,
                Err(why) => {
                    handoff(
                        record,
                        format!("the validation target group {}: {why}", tg.name),
                    );
                    return Ok(None);
                }
            };
            targets.validation = Some(Validation {
                settings: tg.clone(),
                port,
                request,
            });
        }
        Ok(Some(targets))
    }

    /// Probes in rounds until a verdict. `None` when the gate stops without one (the
    /// action ended, a configuration error, the invocation about to end), with the record
    /// saying why.
    async fn wait(
        &self,
        w: &Wait<'_>,
        record: &mut DecisionRecord,
        clock: &mut Clock,
    ) -> Result<WaitEnd, GateError> {
        let start = w.start;
        // Only rounds probed by this invocation count: a hand-over's rounds are a claim.
        let mut samples = Vec::new();
        let mut last_failure: Option<(Option<Diagnosis>, LastFailure, Vec<String>)> = None;
        let mut next_probe = Instant::now();
        let mut last_instance_check: Option<Instant> = None;
        // The longest a round's checks take: no round starts that the hand-off would cut.
        let probe_time = w
            .checks
            .iter()
            .map(|c| c.request.timeout)
            .max()
            .unwrap_or_default();
        let verdict = loop {
            let now = Instant::now();
            if now >= clock.wait_deadline {
                break evaluate(&w.policy, &samples, now - start);
            }
            if !self.heartbeat_if_due(w.action, record, clock, now).await {
                return Ok(WaitEnd::Stopped);
            }
            if w.handoff_at.is_some_and(|h| now + probe_time >= h) {
                return Ok(WaitEnd::InvocationEnding);
            }
            if now >= next_probe {
                let round = self.round(w, record, now - start).await?;
                match round {
                    Round::Passed => samples.push(ProbeSample {
                        at: now - start,
                        passed: true,
                    }),
                    Round::Failed {
                        diagnosis,
                        failure,
                        also,
                    } => {
                        samples.push(ProbeSample {
                            at: now - start,
                            passed: false,
                        });
                        last_failure = Some((diagnosis, failure, also));
                        // A failing instance may be one that is going away: look, at most
                        // every INSTANCE_RECHECK, and stop if it is.
                        if last_instance_check.is_none_or(|t| now - t >= INSTANCE_RECHECK) {
                            last_instance_check = Some(now);
                            let info = self.aws.describe_instance(&w.action.instance_id).await?;
                            if info.as_ref().is_none_or(|i| i.is_gone()) {
                                record.outcome = Outcome::InstanceGone;
                                record.reason = format!(
                                    "the instance is {} while the gate waits: nothing to complete",
                                    info.map_or_else(
                                        || "no longer known to EC2".to_owned(),
                                        |i| i.state
                                    )
                                );
                                return Ok(WaitEnd::Stopped);
                            }
                        }
                    }
                    Round::Undetermined => {}
                    Round::ConfigurationError(why) => {
                        record.reason = format!(
                            "{why}; the lifecycle action is left to the hook's DefaultResult"
                        );
                        error!(instance_id = %w.action.instance_id, reason = %record.reason, "configuration error");
                        return Ok(WaitEnd::Stopped);
                    }
                }
                let verdict = evaluate(&w.policy, &samples, Instant::now() - start);
                if verdict != Verdict::Pending {
                    break verdict;
                }
                next_probe = (next_probe + w.config.interval).max(now);
            }
            let mut wake = next_probe
                .min(clock.wait_deadline)
                .min(clock.next_heartbeat);
            if let Some(h) = w.handoff_at {
                wake = wake.min(h.checked_sub(probe_time).unwrap_or(now));
            }
            sleep_until(wake.max(Instant::now())).await;
        };
        let (result, reason) = match verdict {
            Verdict::Continue => (
                LifecycleActionResult::Continue,
                format!(
                    "{} consecutive rounds passed: the deep health check{}",
                    w.config.healthy_threshold,
                    match (w.checks.len() - 1, w.validation) {
                        (0, None) => String::new(),
                        (n, None) => format!(
                            " and {n} target group health check{}",
                            if n == 1 { "" } else { "s" }
                        ),
                        (n, Some(v)) => format!(
                            "{} and the load balancer's own check in the validation target group {}",
                            if n == 0 {
                                String::new()
                            } else {
                                format!(
                                    ", {n} target group health check{}",
                                    if n == 1 { "" } else { "s" }
                                )
                            },
                            v.settings.name
                        ),
                    }
                ),
            ),
            Verdict::Abandon(why) => {
                let reason = match why {
                    AbandonReason::UnhealthyThreshold {
                        consecutive_failures,
                    } => {
                        format!(
                            "{consecutive_failures} consecutive rounds failed after the grace period"
                        )
                    }
                    AbandonReason::DeadlineExceeded { .. } => format!(
                        "no {} consecutive passing rounds within {} s",
                        w.config.healthy_threshold,
                        whole_seconds(clock.wait_deadline - start)
                    ),
                };
                record.abandon_reason = Some(why);
                let (cause, failure, also) =
                    last_failure.map_or((None, None, Vec::new()), |(c, f, a)| (c, Some(f), a));
                let mut reason = match &cause {
                    Some(c) => format!("{reason}: {}. Fix: {}", c.summary, c.fix),
                    None => reason,
                };
                if !also.is_empty() {
                    reason.push_str(&format!(" Also failing: {}.", also.join("; ")));
                }
                record.cause = cause;
                record.last_failure = failure;
                (LifecycleActionResult::Abandon, reason)
            }
            Verdict::Pending => unreachable!("the loop breaks only on a verdict"),
        };
        Ok(WaitEnd::Verdict(result, reason))
    }

    /// One round: every check at once, and one `DescribeTargetHealth` of the validation
    /// target group. When several fail, the cause is a target group's failure (the load
    /// balancer's view) before the deep health check's; the others are listed.
    async fn round(
        &self,
        w: &Wait<'_>,
        record: &mut DecisionRecord,
        at: Duration,
    ) -> Result<Round, GateError> {
        let outcomes = join_all(w.checks.iter().map(|c| self.prober.probe(&c.request))).await;
        // (priority, cause, failure, what failed): target groups 0, validation 1, deep 2
        let mut failures: Vec<(u8, Option<Diagnosis>, LastFailure, String)> = Vec::new();
        for (check, outcome) in w.checks.iter().zip(&outcomes) {
            record.push_probe(ProbeRecord {
                check: check.label.to_string(),
                at_ms: at.as_millis() as u64,
                status: outcome.status,
                passed: outcome.passed,
                latency_ms: outcome.latency_ms,
                error: outcome.error.clone(),
            });
            if let CheckLabel::TargetGroup(name) = &check.label
                && let Some(tg) = record.target_groups.iter_mut().find(|t| &t.name == name)
            {
                tg.observe(outcome);
            }
            if outcome.passed {
                continue;
            }
            let seen = outcome.answer();
            let (priority, diagnosis, what) = match &check.label {
                CheckLabel::DeepHealth => (
                    2,
                    diagnose(&check.request, outcome),
                    format!("the deep health check ({seen})"),
                ),
                CheckLabel::TargetGroup(name) => (
                    0,
                    diagnose_target_group(name, &check.request, outcome),
                    format!("target group {name} ({seen})"),
                ),
            };
            failures.push((priority, diagnosis, LastFailure::of(outcome), what));
        }
        if let Some(v) = w.validation {
            let health = self
                .aws
                .describe_target_health(&v.settings.arn, &w.action.instance_id, v.port)
                .await?;
            if let Some(r) = record.validation.as_mut() {
                r.observe(&health);
            }
            let verbatim = health.to_string();
            match (health.state.as_str(), health.reason.as_deref()) {
                ("healthy", _) => {}
                ("initial", _) if failures.is_empty() => return Ok(Round::Undetermined),
                ("initial", _) => {}
                // AWS's own transient fault (`unavailable` or `unhealthy` with
                // Elb.InternalError): neither a configuration error nor a failed round.
                (_, Some("Elb.InternalError")) if failures.is_empty() => {
                    warn!(instance_id = %w.action.instance_id, health = %verbatim, "the load balancer reports an internal error; the round counts neither way");
                    return Ok(Round::Undetermined);
                }
                (_, Some("Elb.InternalError")) => {}
                ("unused", Some("Target.NotInUse")) => {
                    return Ok(Round::ConfigurationError(format!(
                        "configuration error: the validation target group {} reports unused / Target.NotInUse: no listener forwards to it, or the instance's Availability Zone is not enabled on the load balancer. Fix: attach it to a listener rule and enable the Availability Zone",
                        v.settings.name
                    )));
                }
                ("unavailable", _) => {
                    return Ok(Round::ConfigurationError(format!(
                        "configuration error: the validation target group {} reports unavailable: its health checks are disabled",
                        v.settings.name
                    )));
                }
                _ => failures.push((
                    1,
                    diagnose_target_health(&v.settings.name, &health, &v.request),
                    LastFailure {
                        status: None,
                        location: None,
                        body_snippet: verbatim.clone(),
                    },
                    format!("validation target group {} ({verbatim})", v.settings.name),
                )),
            }
        }
        failures.sort_by_key(|f| f.0);
        let mut failures = failures.into_iter();
        Ok(match failures.next() {
            None => Round::Passed,
            Some((_, diagnosis, failure, _)) => Round::Failed {
                diagnosis,
                failure,
                also: failures.map(|f| f.3).collect(),
            },
        })
    }

    /// Waits for EC2 to report the instance with a private IP; the instance as EC2 then
    /// describes it (`private_ip` set). `None` when the gate ends here.
    async fn resolve(
        &self,
        action: &LifecycleAction,
        record: &mut DecisionRecord,
        clock: &mut Clock,
        handoff_at: Option<Instant>,
    ) -> Result<Option<InstanceInfo>, GateError> {
        let give_up = Instant::now() + RESOLVE_WAIT;
        loop {
            let now = Instant::now();
            if !self.heartbeat_if_due(action, record, clock, now).await {
                return Ok(None);
            }
            match self.aws.describe_instance(&action.instance_id).await? {
                Some(info) if info.is_gone() => {
                    record.outcome = Outcome::InstanceGone;
                    record.reason = format!("the instance is {}: nothing to complete", info.state);
                    return Ok(None);
                }
                Some(InstanceInfo {
                    private_ip: Some(ip),
                    ..
                }) if is_link_local(ip) => {
                    // The metadata service and other link-local services live there: never
                    // a target, whatever EC2 or an event says.
                    record.reason = format!(
                        "refusing to probe {ip}, a link-local address; the lifecycle action is left to the hook's DefaultResult"
                    );
                    error!(instance_id = %action.instance_id, %ip, "refused a link-local private IP");
                    return Ok(None);
                }
                // Running, not only addressed: EC2 gives a private IP while the instance is
                // still `pending`, and ELB refuses to register a target that is not running.
                Some(info) if info.private_ip.is_some() && info.state == "running" => {
                    record.launch_template = info.launch_template.clone();
                    return Ok(Some(info));
                }
                other => {
                    let what = match &other {
                        Some(i) if i.private_ip.is_some() => "is still pending",
                        Some(_) => "has no private IP yet",
                        None => "is not known to EC2 yet",
                    };
                    let next = Instant::now() + Duration::from_secs(2);
                    if next > give_up
                        || handoff_at.is_some_and(|h| next > h)
                        || next > clock.wait_deadline
                    {
                        record.reason = format!(
                            "the instance {what} after {} s; the lifecycle action is left to the hook's DefaultResult",
                            RESOLVE_WAIT.as_secs()
                        );
                        return Ok(None);
                    }
                    sleep_until(next).await;
                }
            }
        }
    }

    /// Records a heartbeat when one is due. False when the action has ended (the gate stops).
    async fn heartbeat_if_due(
        &self,
        action: &LifecycleAction,
        record: &mut DecisionRecord,
        clock: &mut Clock,
        now: Instant,
    ) -> bool {
        if now < clock.next_heartbeat {
            return true;
        }
        match self.aws.record_heartbeat(action).await {
            Ok(ActionAnswer::Accepted) => {
                record.heartbeats += 1;
                clock.next_heartbeat = Instant::now() + clock.heartbeat_every;
                if let Some(hook) = record.hook.clone() {
                    self.claim(action, &hook).await;
                }
                true
            }
            Ok(ActionAnswer::NoActiveAction { message, .. }) => {
                record.outcome = Outcome::AlreadyDecided;
                record.reason =
                    format!("the lifecycle action ended while the gate waited ({message})");
                false
            }
            Err(e) => {
                // The next try comes at the next probe; the heartbeat timeout leaves room for several.
                warn!(instance_id = %action.instance_id, error = %e, "heartbeat failed; will retry");
                clock.next_heartbeat = Instant::now() + Duration::from_secs(5);
                true
            }
        }
    }

    /// Hands the wait to a fresh invocation of the gate (an asynchronous `Invoke` of its
    /// own function with the state), since this one is about to end; or, when that is not
    /// possible, leaves the action to the hook's `DefaultResult`, saying so. The payload
    /// names the action and carries the start and counts for the record; the next
    /// invocation admits the action afresh and probes its own rounds.
    async fn hand_over(
        &self,
        action: &LifecycleAction,
        record: &mut DecisionRecord,
        clock: &Clock,
        start: Instant,
        hook: &HookSettings,
    ) -> Result<(), GateError> {
        let now = Instant::now();
        let mut handed = action.clone();
        handed.delivery = event::Delivery::Continuation;
        let continuation = Continuation {
            version: event::CONTINUATION_VERSION,
            action: handed,
            started_at_ms: epoch_millis()
                .saturating_sub(now.saturating_duration_since(start).as_millis() as u64),
            probe_count: record.probe_count,
            heartbeats: record.heartbeats,
            hop: record.hop + 1,
            wait_deadline_ms: None,
            next_heartbeat_ms: None,
            samples: None,
        };
        let payload = serde_json::json!({ event::CONTINUATION_KEY: continuation });
        match self.aws.continue_in_new_invocation(&payload).await {
            Ok(()) => {
                record.outcome = Outcome::Continued;
                record.reason = format!(
                    "the Lambda invocation ends before a verdict (after {} probes); the wait goes on in a new invocation (hop {}), until {} s after the gate started",
                    record.probe_count,
                    record.hop + 1,
                    whole_seconds(clock.wait_deadline.saturating_duration_since(start))
                );
                info!(instance_id = %action.instance_id, hop = record.hop + 1, "handed the wait over to a new invocation");
            }
            Err(e) => {
                record.outcome = Outcome::HandedOff;
                record.reason = format!(
                    "the Lambda invocation ends before a verdict (after {} probes) and the wait could not be handed to a new invocation ({e}); the lifecycle action is left to the hook's DefaultResult ({}) at its heartbeat timeout",
                    record.probe_count, hook.default_result
                );
                warn!(instance_id = %action.instance_id, error = %e, "handing off to the hook's DefaultResult: the invocation is about to time out");
            }
        }
        Ok(())
    }

    /// Tags the instance as worked on until the next heartbeat is overdue, so the sweep
    /// leaves it alone. A failure is logged and changes nothing else.
    async fn claim(&self, action: &LifecycleAction, hook: &HookSettings) {
        let until = epoch_seconds() + hook.heartbeat_timeout.as_secs();
        if let Err(e) = self.aws.claim(&action.instance_id, until).await {
            warn!(instance_id = %action.instance_id, error = %e, "could not tag the instance as claimed; a sweep may gate it too");
        }
    }

    async fn complete(
        &self,
        action: &LifecycleAction,
        record: &mut DecisionRecord,
        verdict: LifecycleActionResult,
        sent: LifecycleActionResult,
        reason: String,
    ) -> Result<(), GateError> {
        record.verdict = Some(verdict);
        record.result = Some(sent);
        record.reason = if verdict == sent {
            reason
        } else {
            format!(
                "shadow mode: would have sent {}: {reason}",
                verdict.as_str()
            )
        };
        let answer = self.aws.complete(action, sent).await?;
        if let ActionAnswer::NoActiveAction { message, retried } = answer {
            // Someone else ended the action; or, when the SDK retried our call, an
            // earlier attempt took effect and its answer was lost: ask Auto Scaling.
            let seen = if retried {
                self.took_effect(action, sent).await
            } else {
                None
            };
            match seen {
                Some(seen) => {
                    record.outcome = Outcome::Completed;
                    record.reason = format!(
                        "{}; AWS answered \"{}\" to a retried completion, and {seen}: the completion took effect",
                        record.reason,
                        crate::text::clip(&message, 200)
                    );
                }
                None => {
                    record.outcome = Outcome::AlreadyDecided;
                    record.reason = format!(
                        "{}; not completed: the action had already ended ({})",
                        record.reason,
                        crate::text::clip(&message, 200)
                    );
                    return Ok(());
                }
            }
        } else {
            record.outcome = Outcome::Completed;
        }
        // Only a completion Auto Scaling accepted is written on the instance, so a
        // duplicate that lost the race never overwrites the decision that stands.
        // `launch-gate rollout` reads it. A failure is logged and changes nothing else.
        let mut decision = sent.as_str().to_owned();
        if let Some(c) = &record.cause {
            decision.push_str(&format!(" cause={}", c.code));
        }
        if verdict != sent {
            decision.push_str(&format!(" shadow-verdict={}", verdict.as_str()));
        }
        if let Err(e) = self.aws.tag_decision(&action.instance_id, &decision).await {
            warn!(instance_id = %action.instance_id, error = %e, "could not tag the instance with the decision");
        }
        Ok(())
    }

    /// After `No active Lifecycle Action found` to our completion: what Auto Scaling shows
    /// when `sent` took effect, or `None`. `ABANDON` took effect when the instance's launch
    /// activity says its action with our token "was abandoned: Lifecycle Action Completed
    /// with ABANDON Result"; `CONTINUE` when the instance has gone on to `Pending:Proceed`
    /// or `InService` (by our completion, or by another invocation's identical one).
    async fn took_effect(
        &self,
        action: &LifecycleAction,
        sent: LifecycleActionResult,
    ) -> Option<String> {
        match sent {
            LifecycleActionResult::Continue => {
                let member = self
                    .aws
                    .describe_group_member(&action.instance_id)
                    .await
                    .ok()
                    .flatten()?;
                matches!(
                    member.lifecycle_state.as_str(),
                    "Pending:Proceed"
                        | "InService"
                        | "Warmed:Pending:Proceed"
                        | "Warmed:Stopped"
                        | "Warmed:Running"
                        | "Warmed:Hibernated"
                )
                .then(|| {
                    format!(
                        "Auto Scaling says the instance is {}",
                        member.lifecycle_state
                    )
                })
            }
            LifecycleActionResult::Abandon => {
                let token = action.token.as_deref()?;
                let since = epoch_seconds().saturating_sub(3600);
                let activities = self
                    .aws
                    .scaling_activities(&action.group_name, since)
                    .await
                    .ok()?;
                activities
                    .iter()
                    .find(|a| {
                        a.description.contains(&action.instance_id)
                            && a.status_message.as_deref().is_some_and(|m| {
                                m.contains(token) && m.contains(breaker::ABANDON_COMPLETED)
                            })
                    })
                    .map(|a| {
                        format!(
                            "the scaling activity {} says it was abandoned by a completion",
                            a.id
                        )
                    })
            }
        }
    }
}

/// One health check the gate runs each round.
#[derive(Debug)]
struct Check {
    label: CheckLabel,
    request: ProbeRequest,
}

/// What a check is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CheckLabel {
    /// The app's deep health endpoint, from the gate's settings.
    DeepHealth,
    /// A target group's own health check, named.
    TargetGroup(String),
}

impl std::fmt::Display for CheckLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DeepHealth => f.write_str("deep_health"),
            Self::TargetGroup(name) => write!(f, "target_group:{name}"),
        }
    }
}

/// The target groups' checks and the validation target group of one gate.
#[derive(Debug, Default)]
struct Targets {
    checks: Vec<Check>,
    validation: Option<Validation>,
}

/// The validation target group: where the instance is registered, and its health check
/// as the load balancer sends it (to word causes).
#[derive(Debug)]
struct Validation {
    settings: TargetGroupSettings,
    port: u16,
    request: ProbeRequest,
}

/// How the waiting loop ended.
enum WaitEnd {
    /// A verdict, and why.
    Verdict(LifecycleActionResult, String),
    /// Stopped without one; the record says why.
    Stopped,
    /// The invocation is about to end before a verdict.
    InvocationEnding,
}

/// What the waiting loop works with.
struct Wait<'a> {
    action: &'a LifecycleAction,
    config: &'a GateConfig,
    policy: HealthPolicy,
    start: Instant,
    handoff_at: Option<Instant>,
    checks: &'a [Check],
    validation: Option<&'a Validation>,
}

/// The result of one round of checks.
enum Round {
    /// Every check passed, and the load balancer reports the validation target healthy.
    Passed,
    /// A check failed: the cause of the failure that explains most, and what else failed.
    Failed {
        diagnosis: Option<Diagnosis>,
        failure: LastFailure,
        also: Vec<String>,
    },
    /// The checks passed and the load balancer is still in its initial checks: the
    /// round counts neither way.
    Undetermined,
    /// The validation target group cannot give a verdict as configured.
    ConfigurationError(String),
}

/// The times that bound one gate.
#[derive(Debug)]
struct Clock {
    /// When the gate stops waiting for the healthy threshold.
    wait_deadline: Instant,
    /// When the next heartbeat is due.
    next_heartbeat: Instant,
    /// Time between heartbeats: half the heartbeat timeout.
    heartbeat_every: Duration,
}

impl Clock {
    /// The clock of a gate that starts at `start`, just after admission recorded a
    /// heartbeat: the next one is due in half the heartbeat timeout, and the wait ends
    /// `max_wait` after `start` until [`Clock::bound`] knows more.
    fn new(start: Instant, config: &GateConfig, hook: &HookSettings) -> Self {
        let heartbeat_every = hook.heartbeat_timeout / 2;
        Self {
            wait_deadline: start + config.max_wait,
            next_heartbeat: Instant::now() + heartbeat_every,
            heartbeat_every,
        }
    }

    /// Bounds the wait with AWS's facts: it ends `max_wait` after `start`, and before the
    /// hook's global timeout (counted from `launched`, the instance's launch time, when
    /// EC2 tells it) less [`INVOCATION_RESERVE`]. Whatever `start` a hand-over claims, the
    /// wait leaves room for the thresholds' rounds probed from now
    /// ([`fresh_rounds_time`]), within the global timeout.
    fn bound(
        &mut self,
        start: Instant,
        config: &GateConfig,
        hook: &HookSettings,
        launched: Option<Instant>,
    ) {
        let now = Instant::now();
        let global_end =
            launched.unwrap_or(now) + hook.global_timeout.saturating_sub(INVOCATION_RESERVE);
        self.wait_deadline = (start + config.max_wait)
            .max(now + fresh_rounds_time(config))
            .min(global_end);
    }
}

/// The least time a wait leaves for rounds probed from now: enough for the larger
/// threshold of consecutive rounds, each an interval apart, and the last round's probe.
fn fresh_rounds_time(config: &GateConfig) -> Duration {
    let rounds = config.healthy_threshold.max(config.unhealthy_threshold);
    config.interval * rounds.saturating_sub(1) + config.probe_timeout + Duration::from_millis(500)
}

/// Seconds, rounded to the nearest: times carried across invocations in milliseconds
/// lose a little, and "within 19 s" for a 20 s wait would mislead.
fn whole_seconds(d: Duration) -> u64 {
    (d.as_millis() as u64 + 500) / 1000
}

/// 169.254.0.0/16 and fe80::/10.
fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// The instant of a time given in milliseconds since the Unix epoch.
fn instant_of(epoch_ms: u64) -> Instant {
    let now = Instant::now();
    let now_ms = epoch_millis();
    if epoch_ms >= now_ms {
        now + Duration::from_millis(epoch_ms - now_ms)
    } else {
        now.checked_sub(Duration::from_millis(now_ms - epoch_ms))
            .unwrap_or(now)
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

#[cfg(test)]
mod tests {
    //! The loop against hand-written fakes, on tokio's paused clock: the thresholds, the
    //! deadline and the heartbeat cadence are checked in virtual time, without waiting.
    use super::*;
    use crate::aws::{
        AutoScalingGroups, InstanceInfo, Instances, LifecycleActions, TargetGroups, TargetHealth,
    };
    use crate::probe::ProbeError;
    use crate::probe::ProbeOutcome;
    use std::sync::Mutex;

    struct FakeProber(Mutex<Vec<bool>>);

    impl Prober for FakeProber {
        async fn probe(&self, _: &ProbeRequest) -> ProbeOutcome {
            let mut script = self.0.lock().unwrap();
            let passed = if script.len() > 1 {
                script.remove(0)
            } else {
                script[0]
            };
            ProbeOutcome {
                status: passed.then_some(200),
                passed,
                latency_ms: 1,
                error: (!passed).then_some(ProbeError::ConnectionRefused),
                body_mismatch: None,
                location: None,
                content_type: None,
                body: String::new(),
            }
        }
    }

    /// Auto Scaling and EC2: one instance in `state` with a private IP, launched from
    /// `lt-1` version 2, in a group without target groups whose scaling activities show
    /// the `abandoned` launches (of the same version); records heartbeats, completions,
    /// breaker actions and events.
    struct FakeAws {
        calls: Mutex<Vec<String>>,
        decided: Mutex<bool>,
        state: &'static str,
        ip: &'static str,
        abandoned: Vec<&'static str>,
        group_tags: Mutex<Vec<(String, String)>>,
        events: Mutex<Vec<(String, Value)>>,
        events_fail: bool,
        suspend_fails: bool,
        /// The hook's `NotificationMetadata`.
        hook_metadata: Option<&'static str>,
        /// The instance's lifecycle state, as `DescribeAutoScalingInstances` says.
        lifecycle_state: &'static str,
    }

    impl Default for FakeAws {
        fn default() -> Self {
            Self {
                calls: Mutex::default(),
                decided: Mutex::default(),
                state: "running",
                ip: "10.0.1.23",
                abandoned: Vec::new(),
                group_tags: Mutex::default(),
                events: Mutex::default(),
                events_fail: false,
                suspend_fails: false,
                hook_metadata: None,
                lifecycle_state: "Pending:Wait",
            }
        }
    }

    impl FakeAws {
        fn called(&self, operation: &str) {
            self.calls.lock().unwrap().push(operation.to_owned());
        }
    }

    fn release() -> Option<crate::aws::LaunchTemplateVersion> {
        Some(crate::aws::LaunchTemplateVersion {
            id: "lt-1".into(),
            version: "2".into(),
        })
    }

    fn info(state: &str, ip: &str) -> InstanceInfo {
        InstanceInfo {
            state: state.into(),
            private_ip: Some(ip.parse().unwrap()),
            group_name: Some("shop-web".into()),
            claimed_until: None,
            launch_template: release(),
            decision: None,
            launched_at: None,
        }
    }

    impl crate::aws::Events for FakeAws {
        async fn put_event(
            &self,
            _: &str,
            _: &str,
            detail_type: &str,
            detail: &Value,
        ) -> Result<(), AwsError> {
            if self.events_fail {
                return Err(AwsError::local("PutEvents", "InternalFailure"));
            }
            self.events
                .lock()
                .unwrap()
                .push((detail_type.to_owned(), detail.clone()));
            Ok(())
        }
    }

    impl LifecycleActions for FakeAws {
        async fn describe_lifecycle_hook(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Option<HookSettings>, AwsError> {
            Ok(Some(HookSettings {
                heartbeat_timeout: Duration::from_secs(60),
                global_timeout: Duration::from_secs(6000),
                default_result: "ABANDON".into(),
                transition: Some(event::LAUNCHING.into()),
                notification_metadata: self.hook_metadata.map(str::to_owned),
            }))
        }
        async fn record_heartbeat(&self, _: &LifecycleAction) -> Result<ActionAnswer, AwsError> {
            self.calls.lock().unwrap().push("heartbeat".into());
            Ok(ActionAnswer::Accepted)
        }
        async fn complete(
            &self,
            _: &LifecycleAction,
            r: LifecycleActionResult,
        ) -> Result<ActionAnswer, AwsError> {
            self.calls.lock().unwrap().push(r.as_str().into());
            let mut decided = self.decided.lock().unwrap();
            if *decided {
                return Ok(ActionAnswer::NoActiveAction {
                    message: "No active Lifecycle Action found".into(),
                    retried: false,
                });
            }
            *decided = true;
            Ok(ActionAnswer::Accepted)
        }
    }

    impl AutoScalingGroups for FakeAws {
        async fn describe_group_member(
            &self,
            _: &str,
        ) -> Result<Option<crate::aws::GroupMember>, AwsError> {
            Ok(Some(crate::aws::GroupMember {
                group_name: "shop-web".into(),
                lifecycle_state: self.lifecycle_state.into(),
            }))
        }
        async fn pending_instances(&self, _: &str) -> Result<Vec<String>, AwsError> {
            Ok(Vec::new())
        }
        async fn target_group_arns(&self, _: &str) -> Result<Option<Vec<String>>, AwsError> {
            Ok(Some(Vec::new()))
        }
        async fn group_state(&self, _: &str) -> Result<Option<crate::aws::GroupState>, AwsError> {
            Ok(Some(crate::aws::GroupState {
                suspended_processes: Vec::new(),
                tags: self.group_tags.lock().unwrap().clone(),
            }))
        }
        async fn scaling_activities(
            &self,
            _: &str,
            _: u64,
        ) -> Result<Vec<crate::aws::ScalingActivity>, AwsError> {
            let now = epoch_seconds();
            Ok(self
                .abandoned
                .iter()
                .map(|id| crate::aws::ScalingActivity {
                    id: format!("activity-{id}"),
                    description: format!("Launching a new EC2 instance: {id}.  Status Reason: Instance failed to complete user's Lifecycle Action: Lifecycle Action with token t was abandoned: Lifecycle Action Completed with ABANDON Result"),
                    status_code: "Cancelled".into(),
                    status_message: Some("Instance failed to complete user's Lifecycle Action: Lifecycle Action with token t was abandoned: Lifecycle Action Completed with ABANDON Result".into()),
                    start_time: now - 120,
                    end_time: Some(now - 60),
                })
                .collect())
        }
        async fn tag_group(&self, _: &str, key: &str, value: &str) -> Result<(), AwsError> {
            let mut tags = self.group_tags.lock().unwrap();
            tags.retain(|(k, _)| k != key);
            tags.push((key.to_owned(), value.to_owned()));
            Ok(())
        }
        async fn suspend_launch(&self, _: &str) -> Result<(), AwsError> {
            self.called("SuspendProcesses");
            if self.suspend_fails {
                return Err(AwsError::local("SuspendProcesses", "AccessDenied"));
            }
            Ok(())
        }
        async fn rollback_instance_refresh(
            &self,
            _: &str,
        ) -> Result<crate::aws::RefreshAnswer, AwsError> {
            self.called("RollbackInstanceRefresh");
            Ok(crate::aws::RefreshAnswer::Irreversible(
                "no desired configuration".into(),
            ))
        }
        async fn cancel_instance_refresh(
            &self,
            _: &str,
        ) -> Result<crate::aws::RefreshAnswer, AwsError> {
            self.called("CancelInstanceRefresh");
            Ok(crate::aws::RefreshAnswer::Accepted("refresh-1".into()))
        }
    }

    impl TargetGroups for FakeAws {
        async fn describe_target_groups(
            &self,
            _: &[String],
        ) -> Result<Vec<TargetGroupSettings>, AwsError> {
            Ok(Vec::new())
        }
        async fn register_target(&self, _: &str, _: &str, _: u16) -> Result<(), AwsError> {
            unreachable!("no validation target group in these tests")
        }
        async fn deregister_target(&self, _: &str, _: &str, _: u16) -> Result<(), AwsError> {
            unreachable!("no validation target group in these tests")
        }
        async fn describe_target_health(
            &self,
            _: &str,
            _: &str,
            _: u16,
        ) -> Result<TargetHealth, AwsError> {
            unreachable!("no validation target group in these tests")
        }
    }

    impl crate::aws::Continuations for FakeAws {
        async fn continue_in_new_invocation(&self, _: &Value) -> Result<(), AwsError> {
            Err(AwsError::local("Invoke", "no function in these tests"))
        }
    }

    impl Instances for FakeAws {
        async fn claim(&self, _: &str, _: u64) -> Result<(), AwsError> {
            Ok(())
        }
        async fn describe_instance(&self, _: &str) -> Result<Option<InstanceInfo>, AwsError> {
            Ok(Some(info(self.state, self.ip)))
        }
        async fn tag_decision(&self, _: &str, decision: &str) -> Result<(), AwsError> {
            self.calls.lock().unwrap().push(format!("tag {decision}"));
            Ok(())
        }
        async fn describe_instances(
            &self,
            ids: &[String],
        ) -> Result<Vec<(String, InstanceInfo)>, AwsError> {
            Ok(ids
                .iter()
                .map(|id| (id.clone(), info("terminated", "10.0.1.9")))
                .collect())
        }
    }

    fn action() -> LifecycleAction {
        let event: Value = serde_json::from_str(include_str!("../events/launch.json")).unwrap();
        match event::parse(&event).unwrap().remove(0) {
            Notification::Launch(mut a) => {
                a.sent_at = None;
                a.notification_metadata = None;
                a
            }
            other => panic!("{other:?}"),
        }
    }

    fn config() -> GateConfig {
        GateConfig {
            healthy_threshold: 2,
            unhealthy_threshold: 2,
            interval: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(2),
            grace_period: Duration::from_secs(20),
            max_wait: Duration::from_secs(120),
            ..GateConfig::default()
        }
    }

    async fn run(
        script: &[bool],
        config: GateConfig,
        aws: FakeAws,
    ) -> (DecisionRecord, Vec<String>) {
        let gate = Gate::new(config, FakeProber(Mutex::new(script.to_vec())), aws);
        let record = gate.gate(&action(), None).await.unwrap();
        let calls = gate.aws.calls.lock().unwrap().clone();
        (record, calls)
    }

    #[tokio::test(start_paused = true)]
    async fn healthy_continues_after_the_threshold() {
        let (r, calls) = run(&[false, true, true], config(), FakeAws::default()).await;
        assert_eq!(r.outcome, Outcome::Completed);
        assert_eq!(r.result, Some(LifecycleActionResult::Continue));
        assert_eq!(r.probe_count, 3);
        assert_eq!(r.time_to_decision_ms, 10_000);
        // admission's heartbeat proves the action live; the tag follows the completion
        assert_eq!(calls, ["heartbeat", "CONTINUE", "tag CONTINUE"]);
    }

    #[tokio::test(start_paused = true)]
    async fn failing_after_grace_abandons_early_with_a_cause() {
        let (r, calls) = run(&[false], config(), FakeAws::default()).await;
        assert_eq!(r.result, Some(LifecycleActionResult::Abandon));
        // probes at 0,5,10,15 are in the grace period; 20 and 25 count
        assert_eq!(r.probe_count, 6);
        assert_eq!(r.cause.as_ref().unwrap().code, "connection_refused");
        assert!(
            r.reason.contains("2 consecutive rounds failed"),
            "{}",
            r.reason
        );
        assert_eq!(
            calls,
            [
                "heartbeat",
                "ABANDON",
                "tag ABANDON cause=connection_refused"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn flapping_abandons_at_the_deadline_with_heartbeats_on_the_way() {
        let mut c = config();
        c.unhealthy_threshold = 5;
        let script: Vec<bool> = (0..100).map(|i| i % 2 == 0).collect();
        let (r, calls) = run(&script, c, FakeAws::default()).await;
        assert_eq!(r.result, Some(LifecycleActionResult::Abandon));
        assert!(matches!(
            r.abandon_reason,
            Some(AbandonReason::DeadlineExceeded { .. })
        ));
        assert_eq!(r.time_to_decision_ms, 120_000);
        // heartbeat timeout 60 s: admission's, then one every 30 s
        assert_eq!(r.heartbeats, 4);
        assert_eq!(calls[calls.len() - 2], "ABANDON");
    }

    #[tokio::test(start_paused = true)]
    async fn shadow_mode_continues_and_keeps_the_verdict() {
        let mut c = config();
        c.mode = Mode::Shadow;
        let (r, calls) = run(&[false], c, FakeAws::default()).await;
        assert_eq!(r.verdict, Some(LifecycleActionResult::Abandon));
        assert_eq!(r.result, Some(LifecycleActionResult::Continue));
        assert!(
            r.reason.starts_with("shadow mode: would have sent ABANDON"),
            "{}",
            r.reason
        );
        // the instance's decision tag keeps the verdict; the breaker counts no ABANDON
        assert_eq!(
            calls,
            [
                "heartbeat",
                "CONTINUE",
                "tag CONTINUE cause=connection_refused shadow-verdict=ABANDON",
            ]
        );
        assert!(r.breaker.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn an_invocation_deadline_hands_off_without_completing() {
        let gate = Gate::new(
            config(),
            FakeProber(Mutex::new(vec![false])),
            FakeAws::default(),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let r = gate.gate(&action(), Some(deadline)).await.unwrap();
        assert_eq!(r.outcome, Outcome::HandedOff);
        assert!(r.reason.contains("DefaultResult (ABANDON)"), "{}", r.reason);
        assert_eq!(*gate.aws.calls.lock().unwrap(), ["heartbeat"]);
        assert!(Instant::now() <= deadline - INVOCATION_RESERVE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_terminated_instance_ends_the_gate() {
        let gate = Gate::new(
            config(),
            FakeProber(Mutex::new(vec![true])),
            FakeAws {
                state: "terminated",
                ..FakeAws::default()
            },
        );
        let r = gate.gate(&action(), None).await.unwrap();
        assert_eq!(r.outcome, Outcome::InstanceGone);
        assert_eq!(*gate.aws.calls.lock().unwrap(), ["heartbeat"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_link_local_address_is_never_probed() {
        let aws = FakeAws {
            ip: "169.254.169.254",
            ..FakeAws::default()
        };
        let (r, calls) = run(&[true], config(), aws).await;
        assert_eq!(r.outcome, Outcome::HandedOff);
        assert!(r.reason.contains("link-local"), "{}", r.reason);
        assert_eq!(r.probe_count, 0);
        assert_eq!(calls, ["heartbeat"]);
    }

    #[tokio::test(start_paused = true)]
    async fn bad_metadata_hands_off() {
        // The hook's own metadata counts, as DescribeLifecycleHooks returns it.
        let gate = Gate::new(
            config(),
            FakeProber(Mutex::new(vec![true])),
            FakeAws {
                hook_metadata: Some(r#"{"port": 8000}"#),
                ..FakeAws::default()
            },
        );
        let r = gate.gate(&action(), None).await.unwrap();
        assert_eq!(r.outcome, Outcome::HandedOff);
        assert!(r.reason.contains("key \"port\" is unknown"), "{}", r.reason);
        assert_eq!(*gate.aws.calls.lock().unwrap(), ["heartbeat"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_completion_is_already_decided() {
        let aws = FakeAws::default();
        *aws.decided.lock().unwrap() = true;
        let (r, _) = run(&[true], config(), aws).await;
        assert_eq!(r.outcome, Outcome::AlreadyDecided);
    }

    #[test]
    fn the_reserve_holds_a_whole_completion_under_retries() {
        use crate::aws::sdk::OPERATION_TIMEOUT;
        assert!(INVOCATION_RESERVE >= OPERATION_TIMEOUT + Duration::from_secs(2));
        assert!(VALIDATION_RESERVE >= OPERATION_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_are_read_as_epoch_or_as_a_duration() {
        let now_ms = epoch_millis();
        let epoch = invocation_deadline(now_ms + 900_000) - Instant::now();
        assert!(
            epoch > Duration::from_secs(899) && epoch <= Duration::from_secs(900),
            "{epoch:?}"
        );
        assert_eq!(
            invocation_deadline(600_000) - Instant::now(),
            Duration::from_secs(600)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn warm_pool_entry_continues_at_once() {
        let gate = Gate::new(
            config(),
            FakeProber(Mutex::new(vec![false])),
            FakeAws {
                lifecycle_state: "Warmed:Pending:Wait",
                ..FakeAws::default()
            },
        );
        let r = gate.gate(&action(), None).await.unwrap();
        assert_eq!(r.result, Some(LifecycleActionResult::Continue));
        assert_eq!(r.probe_count, 0);
        assert_eq!(r.destination, Some(crate::event::Location::WarmPool));
    }

    fn events(gate: &Gate<FakeProber, FakeAws>) -> Vec<String> {
        gate.aws
            .events
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn the_third_abandon_of_a_release_suspends_launches_once() {
        let aws = FakeAws {
            abandoned: vec!["i-0aaa", "i-0bbb"],
            ..FakeAws::default()
        };
        let gate = Gate::new(config(), FakeProber(Mutex::new(vec![false])), aws);
        let r = gate.gate(&action(), None).await.unwrap();
        assert_eq!(r.result, Some(LifecycleActionResult::Abandon));
        let b = r.breaker.as_ref().unwrap();
        assert!(b.tripped, "{b:?}");
        assert_eq!(b.abandons.len(), 3);
        assert_eq!(
            b.abandons.last().unwrap().instance_id,
            "i-0123456789abcdef0"
        );
        assert!(
            b.action_taken
                .as_deref()
                .unwrap()
                .contains("suspended the group's Launch process")
        );
        assert!(
            b.resume_command
                .as_deref()
                .unwrap()
                .contains("resume-processes")
        );
        assert_eq!(
            gate.aws.calls.lock().unwrap().clone(),
            [
                "heartbeat",
                "ABANDON",
                "tag ABANDON cause=connection_refused",
                "SuspendProcesses"
            ]
        );
        assert_eq!(
            events(&gate),
            ["Lifecycle Action Decision", "Rollout Halted"]
        );
        let halted = gate.aws.events.lock().unwrap()[1].1.clone();
        assert_eq!(halted["launch_template"]["version"], "2");
        assert_eq!(halted["abandons"].as_array().unwrap().len(), 3);
        assert_eq!(halted["tripped_by"]["cause"]["code"], "connection_refused");

        // The next ABANDON of the same release counts from the trip: no second trip.
        *gate.aws.decided.lock().unwrap() = false;
        let r = gate.gate(&action(), None).await.unwrap();
        let b = r.breaker.as_ref().unwrap();
        assert!(!b.tripped);
        assert_eq!(b.abandons.len(), 1);
        assert_eq!(
            gate.aws
                .calls
                .lock()
                .unwrap()
                .iter()
                .filter(|c| *c == "SuspendProcesses")
                .count(),
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn below_the_threshold_nothing_trips() {
        let aws = FakeAws {
            abandoned: vec!["i-0aaa"],
            ..FakeAws::default()
        };
        let gate = Gate::new(config(), FakeProber(Mutex::new(vec![false])), aws);
        let r = gate.gate(&action(), None).await.unwrap();
        let b = r.breaker.as_ref().unwrap();
        assert!(!b.tripped);
        assert_eq!(b.abandons.len(), 2);
        assert_eq!(events(&gate), ["Lifecycle Action Decision"]);
    }

    #[tokio::test(start_paused = true)]
    async fn rollback_that_is_not_possible_cancels_and_says_why() {
        let aws = FakeAws {
            abandoned: vec!["i-0aaa", "i-0bbb"],
            ..FakeAws::default()
        };
        let config = GateConfig {
            breaker_action: crate::config::BreakerAction::Rollback,
            ..config()
        };
        let gate = Gate::new(config, FakeProber(Mutex::new(vec![false])), aws);
        let r = gate.gate(&action(), None).await.unwrap();
        let taken = r.breaker.unwrap().action_taken.unwrap();
        assert!(
            taken.contains("cannot be rolled back (no desired configuration)"),
            "{taken}"
        );
        assert!(
            taken.contains("cancelled instead (instance refresh refresh-1)"),
            "{taken}"
        );
        let calls = gate.aws.calls.lock().unwrap().clone();
        assert_eq!(
            calls[3..],
            ["RollbackInstanceRefresh", "CancelInstanceRefresh"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn events_that_cannot_be_published_change_nothing() {
        let aws = FakeAws {
            events_fail: true,
            ..FakeAws::default()
        };
        let (r, calls) = run(&[true], config(), aws).await;
        assert_eq!(r.outcome, Outcome::Completed);
        assert_eq!(r.result, Some(LifecycleActionResult::Continue));
        assert_eq!(calls, ["heartbeat", "CONTINUE", "tag CONTINUE"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_continue_is_one_decision_event_and_no_breaker() {
        let gate = Gate::new(
            config(),
            FakeProber(Mutex::new(vec![true])),
            FakeAws::default(),
        );
        let r = gate.gate(&action(), None).await.unwrap();
        assert!(r.breaker.is_none());
        assert_eq!(events(&gate), ["Lifecycle Action Decision"]);
        let detail = gate.aws.events.lock().unwrap()[0].1.clone();
        assert_eq!(detail["result"], "CONTINUE");
        assert_eq!(detail["launch_template"]["id"], "lt-1");
        assert!(detail["time_to_decision_ms"].is_u64());
    }

    #[tokio::test(start_paused = true)]
    async fn a_trip_whose_action_fails_records_nothing() {
        let aws = FakeAws {
            abandoned: vec!["i-0aaa", "i-0bbb"],
            suspend_fails: true,
            ..FakeAws::default()
        };
        let gate = Gate::new(config(), FakeProber(Mutex::new(vec![false])), aws);
        let r = gate.gate(&action(), None).await.unwrap();
        assert_eq!(r.outcome, Outcome::Completed);
        assert_eq!(r.result, Some(LifecycleActionResult::Abandon));
        let b = r.breaker.unwrap();
        assert!(!b.tripped);
        assert!(
            b.error.as_deref().unwrap().contains("AccessDenied"),
            "{b:?}"
        );
        // the trip is recorded only after its action: the next ABANDON counts every
        // abandon again
        assert!(gate.aws.group_tags.lock().unwrap().is_empty());
        assert_eq!(events(&gate), ["Lifecycle Action Decision"]);
    }
}
