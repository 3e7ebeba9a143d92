//! The Auto Scaling lifecycle action as a hold: its heartbeat, the claim tag, the hand-over
//! to a fresh invocation, and its completion (learning what AWS did when an answer is lost).

use super::*;

/// The Auto Scaling lifecycle action as a [`Hold`]: kept alive by
/// `RecordLifecycleActionHeartbeat` every half heartbeat timeout (renewing the claim tag),
/// and its instance going away when EC2 says it is shutting down or terminated.
pub(super) struct LifecycleActionHold<'a, A> {
    pub(super) aws: &'a A,
    pub(super) action: &'a LifecycleAction,
    pub(super) hook: &'a HookSettings,
}

impl<A: Aws> Hold for LifecycleActionHold<'_, A> {
    fn subject(&self) -> &str {
        &self.action.instance_id
    }

    async fn keep_alive(
        &self,
        record: &mut DecisionRecord,
        clock: &mut Clock,
        now: Instant,
    ) -> bool {
        if now < clock.next_heartbeat {
            return true;
        }
        // After admission the action is named by group, hook and instance id, as the
        // completion is: the heartbeat keeps the probed instance's action alive whether
        // AWS would resolve a token alone or not.
        let by_instance = LifecycleAction {
            token: None,
            ..self.action.clone()
        };
        match self.aws.record_heartbeat(&by_instance).await {
            Ok(ActionAnswer::Accepted) => {
                record.heartbeats += 1;
                clock.next_heartbeat = Instant::now() + clock.heartbeat_every;
                claim(self.aws, self.action, self.hook).await;
                true
            }
            Ok(ActionAnswer::NoActiveAction { message, .. }) => {
                record.outcome = Outcome::AlreadyDecided;
                record.reason =
                    format!("the lifecycle action ended while the gate waited ({message})");
                false
            }
            Err(e) => {
                // The next try comes soon; the heartbeat timeout leaves room for several.
                warn!(instance_id = %self.action.instance_id, error = %e, "heartbeat failed; will retry");
                clock.next_heartbeat = Instant::now() + Duration::from_secs(5);
                true
            }
        }
    }

    async fn subject_gone(&self, record: &mut DecisionRecord) -> Result<bool, GateError> {
        let info = match self.aws.describe_instance(&self.action.instance_id).await {
            Ok(info) => info,
            Err(e) if e.is_access_denied() => return Err(e.into()),
            // A look that failed (throttled, slow) is not an instance gone: the rounds go
            // on, and the next look is in INSTANCE_RECHECK.
            Err(e) => {
                warn!(instance_id = %self.action.instance_id, error = %e, "could not look whether the instance is going away; the wait goes on");
                return Ok(false);
            }
        };
        if info.as_ref().is_some_and(|i| !i.is_gone()) {
            return Ok(false);
        }
        record.outcome = Outcome::InstanceGone;
        record.reason = format!(
            "the instance is {} while the gate waits: nothing to complete",
            info.map_or_else(|| "no longer known to EC2".to_owned(), |i| i.state)
        );
        Ok(true)
    }
}

/// Tags the instance as worked on until the next heartbeat is overdue, so the sweep leaves
/// it alone. A failure is logged and changes nothing else.
pub(super) async fn claim<A: Aws>(aws: &A, action: &LifecycleAction, hook: &HookSettings) {
    let until = epoch_seconds().saturating_add(hook.heartbeat_timeout.as_secs());
    if let Err(e) = aws.claim(&action.instance_id, until).await {
        warn!(instance_id = %action.instance_id, error = %e, "could not tag the instance as claimed; a sweep may gate it too");
    }
}

impl<P: Prober, A: Aws> Gate<P, A> {
    /// Hands the wait to a fresh invocation of the gate (an asynchronous `Invoke` of its
    /// own function with the state), since this one is about to end; or, when that is not
    /// possible, leaves the action to the hook's `DefaultResult`, saying so. The payload
    /// names the action and carries the start and counts for the record; the next
    /// invocation admits the action afresh and probes its own rounds.
    pub(super) async fn hand_over(
        &self,
        action: &LifecycleAction,
        record: &mut DecisionRecord,
        clock: &Clock,
        hook: &HookSettings,
    ) -> Result<(), GateError> {
        let start = clock.start;
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
                let probes = record.probe_count;
                record.hand_off(format_args!(
                    "the Lambda invocation ends before a verdict (after {probes} probes) and the wait could not be handed to a new invocation ({e})"
                ));
                record.reason.push_str(&format!(
                    " ({}) at its heartbeat timeout",
                    hook.default_result
                ));
                warn!(instance_id = %action.instance_id, error = %e, "handing off to the hook's DefaultResult: the invocation is about to time out");
            }
        }
        Ok(())
    }

    pub(super) async fn complete(
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
    pub(super) async fn took_effect(
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
