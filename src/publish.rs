//! Decision and `Rollout Halted` events on Amazon EventBridge, for pipelines and chat
//! notifications to subscribe to with a rule (`"source": ["launch-gate"]`). Publishing
//! happens after the lifecycle action is completed: a failure is logged and changes
//! nothing else.

use std::time::Duration;

use serde_json::{Value, json};
use tracing::{error, info};

use crate::aws::Events;
use crate::breaker::BreakerRecord;
use crate::record::DecisionRecord;

/// `source` of every event the gate puts.
pub const EVENT_SOURCE: &str = "launch-gate";
/// `detail-type` of a decision: the detail is the decision record.
pub const DECISION_DETAIL_TYPE: &str = "Lifecycle Action Decision";
/// `detail-type` of a breaker trip: the detail is the evidence and what was done.
pub const HALTED_DETAIL_TYPE: &str = "Rollout Halted";
/// How many of the record's probes a decision event carries (the newest): an event
/// entry is at most 256 KB.
pub const EVENT_PROBES_KEPT: usize = 20;
/// The longest the gate spends publishing one event, retries included.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// The detail of a decision event: the decision record, with its newest
/// [`EVENT_PROBES_KEPT`] probes and without the app's body excerpt (the log record keeps
/// it, masked): the event bus is readable by whoever may create a rule on it.
pub fn decision_detail(record: &DecisionRecord) -> Value {
    let mut detail = without_body(record);
    if let Some(probes) = detail.get_mut("probes").and_then(Value::as_array_mut) {
        let cut = probes.len().saturating_sub(EVENT_PROBES_KEPT);
        probes.drain(..cut);
    }
    // Under EventBridge's 256 KB entry limit, whatever the record holds.
    let fitted = crate::record::fit(detail, crate::record::MAX_DOCUMENT_BYTES);
    serde_json::from_str(&fitted).unwrap_or_else(|_| json!({}))
}

/// The record as it may leave the log: the app's body excerpt (`last_failure.body_snippet`)
/// removed. For events and for a synchronous invoker's answer.
pub fn without_body(record: &DecisionRecord) -> Value {
    let mut value = serde_json::to_value(record).unwrap_or_else(|_| json!({}));
    if let Some(failure) = value.get_mut("last_failure").and_then(Value::as_object_mut) {
        failure.remove("body_snippet");
    }
    value
}

/// The detail of a `Rollout Halted` event: the group, the release, the abandons counted,
/// what the breaker did, and the cause and fix of the `ABANDON` that tripped it.
pub fn halted_detail(record: &DecisionRecord, breaker: &BreakerRecord) -> Value {
    json!({
        "group_name": record.group_name,
        "launch_template": record.launch_template,
        "action": breaker.action,
        "action_taken": breaker.action_taken,
        "resume_command": breaker.resume_command,
        "threshold": breaker.threshold,
        "window_seconds": breaker.window_seconds,
        "counting_since": breaker.counting_since,
        "abandons": breaker.abandons,
        "tripped_by": {
            "instance_id": record.instance_id,
            "invocation_id": record.invocation_id,
            "reason": record.reason,
            "cause": record.cause,
            "last_failure": record.last_failure.as_ref().map(|f| json!({"status": f.status, "location": f.location})),
        },
    })
}

/// Puts one event on `bus`, within `limit` (at most [`PUBLISH_TIMEOUT`]). A failure or a
/// timeout is logged and changes nothing: the decision stands, and its record is written.
pub async fn publish<E: Events>(
    events: &E,
    bus: &str,
    detail_type: &str,
    detail: &Value,
    limit: Duration,
) {
    let put = events.put_event(bus, EVENT_SOURCE, detail_type, detail);
    match tokio::time::timeout(limit.min(PUBLISH_TIMEOUT), put).await {
        Ok(Ok(())) => {
            info!(bus, detail_type, "event published");
        }
        Ok(Err(e)) => {
            error!(bus, detail_type, error = %e, "could not publish the event; the decision stands");
        }
        Err(_) => {
            error!(
                bus,
                detail_type,
                timeout_ms = limit.min(PUBLISH_TIMEOUT).as_millis() as u64,
                "publishing the event timed out; the decision stands"
            );
        }
    }
}
