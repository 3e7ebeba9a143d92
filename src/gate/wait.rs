//! The wait: rounds of checks until a verdict, the thresholds, the grace period and the
//! wait's end; the causes of a failed round.

use std::future::Future;

use super::*;
use crate::record::BaselineStatus;
use baseline::{BaselineSource, BaselineState};

/// What the wait needs from whatever holds the subject (an Auto Scaling lifecycle action,
/// an ECS deployment hook): keep the hold alive, and say whether the subject is going away.
/// The wait knows nothing else of it.
pub(crate) trait Hold: Send + Sync {
    /// The subject's id (an instance id): in logs, and as the target id in the
    /// validation target group.
    fn subject(&self) -> &str;

    /// Keeps the hold alive when that is due (`clock.next_heartbeat`). False when the hold
    /// has ended and the gate stops; the record says why.
    fn keep_alive(
        &self,
        record: &mut DecisionRecord,
        clock: &mut Clock,
        now: Instant,
    ) -> impl Future<Output = bool> + Send;

    /// Whether the subject is going away (nothing to decide any more); the record says
    /// why when it is.
    ///
    /// # Errors
    /// [`GateError::Aws`] when the answer cannot be read.
    fn subject_gone(
        &self,
        record: &mut DecisionRecord,
    ) -> impl Future<Output = Result<bool, GateError>> + Send;
}

impl<P: Prober, A: Aws> Gate<P, A> {
    /// Probes in rounds until a verdict, keeping `hold` alive. Without a verdict, the
    /// wait ends [`WaitEnd::Stopped`] (the hold ended, the subject went away; the record
    /// says why), [`WaitEnd::ConfigurationError`], or [`WaitEnd::InvocationEnding`].
    ///
    /// # Errors
    /// [`GateError::Aws`] when a call the rounds depend on fails after retries.
    pub(super) async fn wait(
        &self,
        w: &Wait<'_>,
        hold: &impl Hold,
        record: &mut DecisionRecord,
        clock: &mut Clock,
    ) -> Result<WaitEnd, GateError> {
        let start = clock.start;
        // Only rounds probed by this invocation count: a hand-over's rounds are a claim.
        let mut samples = Vec::new();
        let mut baseline = BaselineState::default();
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
            if !hold.keep_alive(record, clock, now).await {
                return Ok(WaitEnd::Stopped);
            }
            // A round that fails past the grace period sends its check to the baseline too
            // (and reads the group and its instances the first time): no round starts
            // that such extra work would carry past the hand-over.
            let round_time = probe_time
                + match &w.baseline {
                    Some(_) if now - start >= w.policy.grace_period => {
                        probe_time + baseline.reads_still_due()
                    }
                    _ => Duration::ZERO,
                };
            if clock.handoff_at.is_some_and(|h| now + round_time >= h) {
                return Ok(WaitEnd::InvocationEnding);
            }
            if now >= next_probe {
                let round = self.round(w, hold.subject(), record, now - start).await?;
                match round {
                    Round::Passed => samples.push(ProbeSample {
                        at: now - start,
                        passed: true,
                        excused: false,
                    }),
                    Round::Failed {
                        diagnosis,
                        failure,
                        also,
                        check,
                    } => {
                        // Past the grace period, the running release gets the same check:
                        // a failure it shares is the environment's, and is excused.
                        let excused = match (&w.baseline, check, &diagnosis) {
                            (Some(source), Some(i), Some(d))
                                if now - start >= w.policy.grace_period =>
                            {
                                self.against_baseline(
                                    source,
                                    &mut baseline,
                                    &w.checks[i],
                                    d,
                                    w.config,
                                    record,
                                )
                                .await?
                            }
                            _ => {
                                baseline.environment = None;
                                false
                            }
                        };
                        samples.push(ProbeSample {
                            at: now - start,
                            passed: false,
                            excused,
                        });
                        last_failure = Some((diagnosis, failure, also));
                        // A failing subject may be one that is going away: look, at most
                        // every INSTANCE_RECHECK, and stop if it is.
                        if last_instance_check.is_none_or(|t| now - t >= INSTANCE_RECHECK) {
                            last_instance_check = Some(now);
                            if hold.subject_gone(record).await? {
                                return Ok(WaitEnd::Stopped);
                            }
                        }
                    }
                    Round::Undetermined => {}
                    Round::ConfigurationError(why) => {
                        error!(subject = %hold.subject(), reason = %why, "configuration error");
                        return Ok(WaitEnd::ConfigurationError(why));
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
            if let Some(h) = clock.handoff_at {
                wake = wake.min(h.checked_sub(round_time).unwrap_or(now));
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
                // The last failing round was the environment's: say so, and the breaker
                // leaves this ABANDON out.
                let cause = match (cause, &baseline.environment) {
                    (Some(c), Some(who)) => Some(baseline::environment_cause(&c, who)),
                    (cause, _) => cause,
                };
                let mut reason = match &cause {
                    Some(c) => format!("{reason}: {}. Fix: {}", c.summary, c.fix),
                    None => reason,
                };
                if !also.is_empty() {
                    reason.push_str(&format!(" Also failing: {}.", also.join("; ")));
                }
                if let Some(b) = record
                    .baseline
                    .as_ref()
                    .filter(|b| b.status == BaselineStatus::Passed)
                {
                    reason.push_str(&format!(" Baseline: {}.", b.note));
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
    pub(super) async fn round(
        &self,
        w: &Wait<'_>,
        subject: &str,
        record: &mut DecisionRecord,
        at: Duration,
    ) -> Result<Round, GateError> {
        let outcomes = join_all(w.checks.iter().map(|c| self.prober.probe(&c.request))).await;
        // Priority: target groups 0, validation 1, deep 2.
        let mut failures: Vec<(u8, Failing)> = Vec::new();
        for (i, (check, outcome)) in w.checks.iter().zip(&outcomes).enumerate() {
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
            failures.push((
                priority,
                Failing {
                    diagnosis,
                    failure: LastFailure::of(outcome),
                    what,
                    check: Some(i),
                },
            ));
        }
        if let Some(v) = w.validation {
            let health = self
                .aws
                .describe_target_health(&v.settings.arn, subject, v.port)
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
                    warn!(subject = %subject, health = %verbatim, "the load balancer reports an internal error; the round counts neither way");
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
                    Failing {
                        diagnosis: diagnose_target_health(&v.settings.name, &health, &v.request),
                        failure: LastFailure {
                            status: None,
                            location: None,
                            body_snippet: verbatim.clone(),
                        },
                        what: format!("validation target group {} ({verbatim})", v.settings.name),
                        check: None,
                    },
                )),
            }
        }
        failures.sort_by_key(|f| f.0);
        let mut failures = failures.into_iter();
        Ok(match failures.next() {
            None => Round::Passed,
            Some((_, first)) => Round::Failed {
                diagnosis: first.diagnosis,
                failure: first.failure,
                also: failures.map(|(_, f)| f.what).collect(),
                check: first.check,
            },
        })
    }
}

/// One failed check of a round.
struct Failing {
    diagnosis: Option<Diagnosis>,
    failure: LastFailure,
    /// What failed, for the reason's "Also failing".
    what: String,
    /// Its index in the wait's checks (`None`: the validation target group).
    check: Option<usize>,
}

/// How the waiting loop ended.
pub(super) enum WaitEnd {
    /// A verdict, and why.
    Verdict(LifecycleActionResult, String),
    /// Stopped without one; the record says why.
    Stopped,
    /// The checks cannot give a verdict as configured (the validation target group); why.
    ConfigurationError(String),
    /// The invocation is about to end before a verdict.
    InvocationEnding,
}

/// What the waiting loop works with.
pub(super) struct Wait<'a> {
    pub(super) config: &'a GateConfig,
    pub(super) policy: HealthPolicy,
    pub(super) checks: &'a [Check],
    pub(super) validation: Option<&'a Validation>,
    /// Where the baseline comes from; `None` with `baseline: off`.
    pub(super) baseline: Option<BaselineSource>,
}

/// The result of one round of checks.
pub(super) enum Round {
    /// Every check passed, and the load balancer reports the validation target healthy.
    Passed,
    /// A check failed: the cause of the failure that explains most, and what else failed.
    Failed {
        diagnosis: Option<Diagnosis>,
        failure: LastFailure,
        also: Vec<String>,
        /// The index in the wait's checks of the failure told (`None`: the validation
        /// target group, which a baseline cannot be given).
        check: Option<usize>,
    },
    /// The checks passed and the load balancer is still in its initial checks: the
    /// round counts neither way.
    Undetermined,
    /// The validation target group cannot give a verdict as configured.
    ConfigurationError(String),
}
