//! The gate's loop: resolve the instance, probe it, record heartbeats, decide, complete the
//! lifecycle action, emit the decision record. Does I/O only through its ports
//! ([`Prober`], [`LifecycleActions`], [`Instances`]) and reads time only through
//! `tokio::time`, so tests can pause and advance the clock.
//!
//! Every path ends in a completion, or in a logged, deliberate hand-off to the hook's
//! `DefaultResult` (settings rejected, the invocation about to time out), or in the
//! knowledge that there is nothing to complete (the action already ended, the instance
//! is gone).

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use serde::Serialize;
use serde_json::Value;
use tokio::time::{Instant, sleep_until};
use tracing::{error, info, warn};

use crate::aws::{
    ActionAnswer, AwsError, HookSettings, Instances, LifecycleActionResult, LifecycleActions,
};
use crate::config::{GateConfig, Mode, WarmPoolLaunch};
use crate::diagnosis::diagnose;
use crate::event::{self, EventError, Ignored, LifecycleAction, Notification};
use crate::policy::{AbandonReason, HealthPolicy, ProbeSample, Verdict, evaluate};
use crate::probe::{ProbeOutcome, ProbeRequest, Prober};
use crate::record::{DecisionRecord, LastFailure, Outcome, ProbeRecord, body_snippet};

/// Time kept back from the invocation's deadline for the completion call and the record.
pub const INVOCATION_RESERVE: Duration = Duration::from_secs(10);
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
pub struct Gate<P, L, I> {
    config: GateConfig,
    prober: P,
    lifecycle: L,
    instances: I,
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
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

impl<P: Prober, L: LifecycleActions, I: Instances> Gate<P, L, I> {
    /// A gate with validated default settings and its ports.
    pub fn new(config: GateConfig, prober: P, lifecycle: L, instances: I) -> Self {
        Self {
            config,
            prober,
            lifecycle,
            instances,
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
        let notifications = event::parse(event)
            .inspect_err(|e| error!(error = %e, "rejected a malformed event; nothing completed"))?;
        let mut ignored = Vec::new();
        let mut actions = Vec::new();
        for n in notifications {
            match n {
                Notification::Launch(a) => actions.push(a),
                Notification::Ignored(i) => {
                    info!(notification = ?i, "acknowledged a notification that is not a launch lifecycle action; nothing to do");
                    ignored.push(i);
                }
            }
        }
        let results = join_all(actions.iter().map(|a| self.gate(a, deadline))).await;
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
        let start = Instant::now();
        let mut record = DecisionRecord::new(action);
        let result = self.run(action, deadline, start, &mut record).await;
        record.time_to_decision_ms = start.elapsed().as_millis() as u64;
        if let Err(e) = &result {
            record.outcome = Outcome::HandedOff;
            record.reason = format!(
                "{e}; the lifecycle action was not completed, the invocation fails so that Lambda retries it"
            );
            error!(instance_id = %action.instance_id, group = %action.group_name, error = %e, "AWS call failed");
        }
        log_decision(&record);
        record.emit();
        result.map(|()| record)
    }

    async fn run(
        &self,
        action: &LifecycleAction,
        deadline: Option<Instant>,
        start: Instant,
        record: &mut DecisionRecord,
    ) -> Result<(), GateError> {
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

        if action.is_warm_pool_entry() && config.warm_pool_launch == WarmPoolLaunch::Continue {
            let reason = "a launch into the warm pool: the instance is stopped right after, so it is gated when it leaves the pool".to_owned();
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

        let Some(hook) = self
            .lifecycle
            .describe_lifecycle_hook(&action.group_name, &action.hook_name)
            .await?
        else {
            record.reason = format!(
                "the group {} has no lifecycle hook {}: no lifecycle action can be pending",
                action.group_name, action.hook_name
            );
            record.outcome = Outcome::AlreadyDecided;
            return Ok(());
        };
        record.hook = Some(hook.clone());

        let handoff_at = deadline.map(|d| d.checked_sub(INVOCATION_RESERVE).unwrap_or(start));
        let age = action_age(action.sent_at.as_deref()).min(hook.heartbeat_timeout);
        let mut clock = Clock::new(start, &config, &hook, age);

        let ip = match self.resolve(action, record, &mut clock, handoff_at).await? {
            Some(ip) => ip,
            None => return Ok(()),
        };
        let request = ProbeRequest {
            ip,
            port: config.health_port,
            path: config.health_path.clone(),
            host: config.host_for(ip),
            timeout: config.probe_timeout,
            body_limit: config.body_limit_bytes,
            matcher: config.matcher.clone(),
        };
        record.private_ip = Some(ip.to_string());
        record.target = Some(request.url());
        record.host_header = Some(request.host.clone());

        let policy = HealthPolicy {
            healthy_threshold: config.healthy_threshold,
            unhealthy_threshold: config.unhealthy_threshold,
            grace_period: config.grace_period,
            deadline: clock.wait_deadline - start,
        };
        let mut samples = Vec::new();
        let mut last_failure: Option<ProbeOutcome> = None;
        let mut next_probe = Instant::now();
        let verdict = loop {
            let now = Instant::now();
            if now >= clock.wait_deadline {
                break evaluate(&policy, &samples, now - start);
            }
            if !self.heartbeat_if_due(action, record, &mut clock, now).await {
                return Ok(());
            }
            if handoff_at.is_some_and(|h| now + config.probe_timeout >= h) {
                record.reason = format!(
                    "the Lambda invocation ends before a verdict (after {} probes); the lifecycle action is left to the hook's DefaultResult ({}) at its heartbeat timeout",
                    record.probe_count, hook.default_result
                );
                warn!(instance_id = %action.instance_id, "handing off to the hook's DefaultResult: the invocation is about to time out");
                return Ok(());
            }
            if now >= next_probe {
                let outcome = self.prober.probe(&request).await;
                let sample = ProbeSample {
                    at: now - start,
                    passed: outcome.passed,
                };
                samples.push(sample);
                record.push_probe(ProbeRecord {
                    at_ms: sample.at.as_millis() as u64,
                    status: outcome.status,
                    passed: outcome.passed,
                    latency_ms: outcome.latency_ms,
                    error: outcome.error.clone(),
                });
                if !outcome.passed {
                    last_failure = Some(outcome);
                }
                let verdict = evaluate(&policy, &samples, Instant::now() - start);
                if verdict != Verdict::Pending {
                    break verdict;
                }
                next_probe = (next_probe + config.interval).max(now);
            }
            let mut wake = next_probe
                .min(clock.wait_deadline)
                .min(clock.next_heartbeat);
            if let Some(h) = handoff_at {
                wake = wake.min(h.checked_sub(config.probe_timeout).unwrap_or(now));
            }
            sleep_until(wake.max(Instant::now())).await;
        };

        let (verdict, reason) = match verdict {
            Verdict::Continue => (
                LifecycleActionResult::Continue,
                format!(
                    "{} consecutive probes of {} passed",
                    config.healthy_threshold,
                    request.url()
                ),
            ),
            Verdict::Abandon(why) => {
                let cause = last_failure.as_ref().and_then(|o| diagnose(&request, o));
                let reason = match (why, &cause) {
                    (
                        AbandonReason::UnhealthyThreshold {
                            consecutive_failures,
                        },
                        _,
                    ) => {
                        format!(
                            "{consecutive_failures} consecutive probes failed after the grace period"
                        )
                    }
                    (AbandonReason::DeadlineExceeded { .. }, _) => format!(
                        "no {} consecutive passing probes within {} s",
                        config.healthy_threshold,
                        (clock.wait_deadline - start).as_secs()
                    ),
                };
                let reason = match &cause {
                    Some(c) => format!("{reason}: {}. Fix: {}", c.summary, c.fix),
                    None => reason,
                };
                record.abandon_reason = Some(why);
                record.cause = cause;
                record.last_failure = last_failure.as_ref().map(|o| LastFailure {
                    status: o.status,
                    location: o.location.clone(),
                    body_snippet: body_snippet(&o.body),
                });
                (LifecycleActionResult::Abandon, reason)
            }
            Verdict::Pending => unreachable!("the loop breaks only on a verdict"),
        };
        let sent = match config.mode {
            Mode::Enforce => verdict,
            Mode::Shadow => LifecycleActionResult::Continue,
        };
        self.complete(action, record, verdict, sent, reason).await
    }

    /// Waits for EC2 to report the instance with a private IP. `None` when the gate ends here.
    async fn resolve(
        &self,
        action: &LifecycleAction,
        record: &mut DecisionRecord,
        clock: &mut Clock,
        handoff_at: Option<Instant>,
    ) -> Result<Option<IpAddr>, GateError> {
        let give_up = Instant::now() + RESOLVE_WAIT;
        loop {
            let now = Instant::now();
            if !self.heartbeat_if_due(action, record, clock, now).await {
                return Ok(None);
            }
            match self
                .instances
                .describe_instance(&action.instance_id)
                .await?
            {
                Some(info) if info.is_gone() => {
                    record.outcome = Outcome::InstanceGone;
                    record.reason = format!("the instance is {}: nothing to complete", info.state);
                    return Ok(None);
                }
                Some(info) if info.private_ip.is_some() => return Ok(info.private_ip),
                other => {
                    let what = if other.is_some() {
                        "has no private IP yet"
                    } else {
                        "is not known to EC2 yet"
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
        match self.lifecycle.record_heartbeat(action).await {
            Ok(ActionAnswer::Accepted) => {
                record.heartbeats += 1;
                clock.next_heartbeat = Instant::now() + clock.heartbeat_every;
                true
            }
            Ok(ActionAnswer::NoActiveAction { message }) => {
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
        match self.lifecycle.complete(action, sent).await? {
            ActionAnswer::Accepted => record.outcome = Outcome::Completed,
            ActionAnswer::NoActiveAction { message } => {
                record.outcome = Outcome::AlreadyDecided;
                record.reason = format!(
                    "{}; not completed: the action had already ended ({message})",
                    record.reason
                );
            }
        }
        Ok(())
    }
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
    /// `age` is how long the action has been pending when the gate starts: its heartbeat
    /// timer and global timeout started then.
    fn new(start: Instant, config: &GateConfig, hook: &HookSettings, age: Duration) -> Self {
        let heartbeat_every = hook.heartbeat_timeout / 2;
        let global_left = hook
            .global_timeout
            .saturating_sub(age)
            .saturating_sub(INVOCATION_RESERVE);
        Self {
            wait_deadline: start + config.max_wait.min(global_left),
            next_heartbeat: start + heartbeat_every.saturating_sub(age),
            heartbeat_every,
        }
    }
}

/// How long ago Auto Scaling sent the notification (zero when unknown or in the future).
fn action_age(sent_at: Option<&str>) -> Duration {
    use aws_sdk_autoscaling::primitives::{DateTime, DateTimeFormat};
    sent_at
        .and_then(|t| DateTime::from_str(t, DateTimeFormat::DateTime).ok())
        .and_then(|t| SystemTime::try_from(t).ok())
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
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
    use crate::aws::InstanceInfo;
    use crate::probe::ProbeError;
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
                location: None,
                content_type: None,
                body: String::new(),
            }
        }
    }

    #[derive(Default)]
    struct FakeAws {
        calls: Mutex<Vec<String>>,
        decided: Mutex<bool>,
    }

    /// An instance in the given state, with a private IP.
    struct FakeInstance(&'static str);

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
                });
            }
            *decided = true;
            Ok(ActionAnswer::Accepted)
        }
    }

    impl Instances for FakeInstance {
        async fn describe_instance(&self, _: &str) -> Result<Option<InstanceInfo>, AwsError> {
            Ok(Some(InstanceInfo {
                state: self.0.into(),
                private_ip: Some("10.0.1.23".parse().unwrap()),
            }))
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
        let gate = Gate::new(
            config,
            FakeProber(Mutex::new(script.to_vec())),
            aws,
            FakeInstance("pending"),
        );
        let record = gate.gate(&action(), None).await.unwrap();
        let calls = gate.lifecycle.calls.lock().unwrap().clone();
        (record, calls)
    }

    #[tokio::test(start_paused = true)]
    async fn healthy_continues_after_the_threshold() {
        let (r, calls) = run(&[false, true, true], config(), FakeAws::default()).await;
        assert_eq!(r.outcome, Outcome::Completed);
        assert_eq!(r.result, Some(LifecycleActionResult::Continue));
        assert_eq!(r.probe_count, 3);
        assert_eq!(r.time_to_decision_ms, 10_000);
        assert_eq!(calls, ["CONTINUE"]);
    }

    #[tokio::test(start_paused = true)]
    async fn failing_after_grace_abandons_early_with_a_cause() {
        let (r, calls) = run(&[false], config(), FakeAws::default()).await;
        assert_eq!(r.result, Some(LifecycleActionResult::Abandon));
        // probes at 0,5,10,15 are in the grace period; 20 and 25 count
        assert_eq!(r.probe_count, 6);
        assert_eq!(r.cause.as_ref().unwrap().code, "connection_refused");
        assert!(
            r.reason.contains("2 consecutive probes failed"),
            "{}",
            r.reason
        );
        assert_eq!(calls, ["ABANDON"]);
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
        // heartbeat timeout 60 s: a heartbeat every 30 s
        assert_eq!(r.heartbeats, 3);
        assert_eq!(calls.last().unwrap(), "ABANDON");
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
        assert_eq!(calls, ["CONTINUE"]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_invocation_deadline_hands_off_without_completing() {
        let gate = Gate::new(
            config(),
            FakeProber(Mutex::new(vec![false])),
            FakeAws::default(),
            FakeInstance("pending"),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let r = gate.gate(&action(), Some(deadline)).await.unwrap();
        assert_eq!(r.outcome, Outcome::HandedOff);
        assert!(r.reason.contains("DefaultResult (ABANDON)"), "{}", r.reason);
        assert!(gate.lifecycle.calls.lock().unwrap().is_empty());
        assert!(Instant::now() <= deadline - INVOCATION_RESERVE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_terminated_instance_ends_the_gate() {
        let gate = Gate::new(
            config(),
            FakeProber(Mutex::new(vec![true])),
            FakeAws::default(),
            FakeInstance("terminated"),
        );
        let r = gate.gate(&action(), None).await.unwrap();
        assert_eq!(r.outcome, Outcome::InstanceGone);
        assert!(gate.lifecycle.calls.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn bad_metadata_hands_off() {
        let gate = Gate::new(
            config(),
            FakeProber(Mutex::new(vec![true])),
            FakeAws::default(),
            FakeInstance("pending"),
        );
        let mut a = action();
        a.notification_metadata = Some(r#"{"port": 8000}"#.into());
        let r = gate.gate(&a, None).await.unwrap();
        assert_eq!(r.outcome, Outcome::HandedOff);
        assert!(r.reason.contains("key \"port\" is unknown"), "{}", r.reason);
        assert!(gate.lifecycle.calls.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_completion_is_already_decided() {
        let aws = FakeAws::default();
        *aws.decided.lock().unwrap() = true;
        let (r, _) = run(&[true], config(), aws).await;
        assert_eq!(r.outcome, Outcome::AlreadyDecided);
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_are_read_as_epoch_or_as_a_duration() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
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
            FakeAws::default(),
            FakeInstance("pending"),
        );
        let mut a = action();
        a.destination = Some(crate::event::Location::WarmPool);
        let r = gate.gate(&a, None).await.unwrap();
        assert_eq!(r.result, Some(LifecycleActionResult::Continue));
        assert_eq!(r.probe_count, 0);
    }
}
