//! After a decision: the launch-loop breaker after an `ABANDON`, and the decision and
//! `Rollout Halted` events, within the invocation's time.

use super::*;

impl<P: Prober, A: Aws> Gate<P, A> {
    /// The launch-loop breaker after an `ABANDON`, when the invocation has the time for it.
    pub(super) async fn breaker(
        &self,
        action: &LifecycleAction,
        settings: &GateConfig,
        record: &DecisionRecord,
        deadline: Option<Instant>,
    ) -> Option<breaker::BreakerRecord> {
        let environment = record
            .cause
            .as_ref()
            .is_some_and(|c| c.code == baseline::ENVIRONMENT_CAUSE);
        let count = async {
            if environment {
                // The running release failed the same way: not the release's ABANDON.
                breaker::after_environment_abandon(
                    &self.aws,
                    settings,
                    &action.group_name,
                    &action.instance_id,
                )
                .await
            } else {
                breaker::after_abandon(
                    &self.aws,
                    settings,
                    &action.group_name,
                    &action.instance_id,
                    record.launch_template.as_ref(),
                )
                .await
            }
        };
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
    pub(super) async fn publish(
        &self,
        settings: &GateConfig,
        record: &DecisionRecord,
        deadline: Option<Instant>,
    ) {
        let Some(bus) = &settings.event_bus else {
            return;
        };
        // Nothing decided, or a refused claim: no event. A claim Auto Scaling does not
        // confirm (not served, not held) must not reach the bus in the claim's words.
        if matches!(
            record.outcome,
            Outcome::Continued | Outcome::AlreadyDecided | Outcome::NotServed | Outcome::NotHeld
        ) {
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
}
