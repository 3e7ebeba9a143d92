//! Lifecycle notifications in: the EventBridge event, the same message delivered through
//! SNS or SQS (also SNS inside SQS), and the bare Auto Scaling message of a direct
//! invocation. Pure: no I/O.
//!
//! Shapes follow
//! <https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-event-reference.html>
//! (EventBridge: `source: aws.autoscaling`, `detail-type: EC2 Instance-launch Lifecycle
//! Action`, fields in `detail`) and
//! <https://docs.aws.amazon.com/autoscaling/ec2/userguide/prepare-for-lifecycle-notifications.html>
//! (SNS/SQS: the same fields in a JSON message body, no `Origin`/`Destination`, and the
//! `autoscaling:TEST_NOTIFICATION` message sent when a hook's notification target is set).

use aws_lambda_events::event::{sns::SnsEvent, sqs::SqsEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `LifecycleTransition` of a launch lifecycle hook.
pub const LAUNCHING: &str = "autoscaling:EC2_INSTANCE_LAUNCHING";
/// `Event` of the message Auto Scaling sends when a notification target is configured.
pub const TEST_NOTIFICATION: &str = "autoscaling:TEST_NOTIFICATION";

/// How a notification reached the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// An EventBridge rule on `aws.autoscaling` events.
    EventBridge,
    /// An SNS topic subscription (`Records[].Sns.Message`).
    Sns,
    /// An SQS queue event source mapping (`Records[].body`), possibly carrying an SNS envelope.
    Sqs,
    /// The bare Auto Scaling message, invoked directly.
    Direct,
    /// Found by the scheduled sweep in `Pending:Wait` with no gate working on it.
    Sweep,
    /// Handed over by an earlier invocation of the gate whose time ran out.
    Continuation,
    /// Invoked by Amazon ECS as a blue/green deployment's Lambda lifecycle hook.
    EcsHook,
}

/// Where an instance comes from or goes to in a lifecycle transition (EventBridge only).
/// Warm pools add `WarmPool`: `EC2 -> WarmPool` launches into the pool (the instance is
/// stopped or hibernated right after), `WarmPool -> AutoScalingGroup` brings it in service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Location {
    /// A new EC2 instance.
    EC2,
    /// The Auto Scaling group itself (in service).
    AutoScalingGroup,
    /// The group's warm pool.
    WarmPool,
}

impl Location {
    fn parse(field: String, value: &str) -> Result<Self, EventError> {
        match value {
            "EC2" => Ok(Self::EC2),
            "AutoScalingGroup" => Ok(Self::AutoScalingGroup),
            "WarmPool" => Ok(Self::WarmPool),
            _ => Err(EventError::InvalidValue {
                field,
                value: value.to_owned(),
                expected: "one of EC2, AutoScalingGroup, WarmPool",
            }),
        }
    }
}

/// One pending lifecycle action of a launching instance: what `CompleteLifecycleAction`
/// and `RecordLifecycleActionHeartbeat` need, plus context for the decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleAction {
    /// `LifecycleActionToken`: identifies this action of this hook for this instance.
    /// `None` for an action found by the sweep, which completes by instance id.
    pub token: Option<String>,
    /// `AutoScalingGroupName`.
    pub group_name: String,
    /// `LifecycleHookName`.
    pub hook_name: String,
    /// `EC2InstanceId`, `i-` and 8 or 17 hexadecimal digits.
    pub instance_id: String,
    /// `LifecycleTransition`, always [`LAUNCHING`] for an action the gate works on.
    pub transition: String,
    /// `NotificationMetadata` of the hook, verbatim (the gate reads per-hook settings from it).
    pub notification_metadata: Option<String>,
    /// `Origin` (EventBridge only).
    pub origin: Option<Location>,
    /// `Destination` (EventBridge only).
    pub destination: Option<Location>,
    /// When Auto Scaling sent the notification (EventBridge `time`, SNS/SQS `Time`), RFC 3339.
    pub sent_at: Option<String>,
    /// How it reached the gate.
    pub delivery: Delivery,
}

impl LifecycleAction {
    /// True for `EC2 -> WarmPool`: the instance is launched into the warm pool and stopped
    /// right after, so its app may never run there.
    pub fn is_warm_pool_entry(&self) -> bool {
        self.destination == Some(Location::WarmPool)
    }
}

/// A notification the gate acknowledges without completing anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ignored {
    /// `autoscaling:TEST_NOTIFICATION`, sent when a hook's notification target is set.
    TestNotification {
        /// The group named in the message, if any.
        group_name: Option<String>,
    },
    /// A launch lifecycle action of a group or hook the gate does not serve
    /// (`LAUNCH_GATE_GROUP_NAMES`, `LAUNCH_GATE_HOOK_NAMES`).
    NotServed {
        /// The group.
        group_name: String,
        /// The lifecycle hook.
        hook_name: String,
        /// The instance.
        instance_id: String,
    },
    /// A lifecycle transition other than [`LAUNCHING`] (for example
    /// `autoscaling:EC2_INSTANCE_TERMINATING`), or another Auto Scaling event type.
    OtherTransition {
        /// The transition or EventBridge detail-type.
        transition: String,
        /// The instance named, if any.
        instance_id: Option<String>,
        /// The group named, if any.
        group_name: Option<String>,
    },
}

/// The key of the payload a gate hands to a fresh invocation of itself when its own
/// invocation is about to end before a verdict.
pub const CONTINUATION_KEY: &str = "launch-gate-continuation";

/// The payload version a gate writes: 2, which names the action and carries only what
/// the record shows. Version 1 (which also carried rounds and deadlines) is still read,
/// and those fields are ignored.
pub const CONTINUATION_VERSION: u32 = 2;

/// The most hand-overs a record counts: 48 h of 15-minute invocations is 192.
pub const MAX_HOPS: u32 = 200;

/// A wait handed over to a fresh invocation. Every field is a claim, as from any invoker:
/// the next gate admits the action afresh (Auto Scaling confirms the hook, the instance's
/// lifecycle state and the token), takes its settings from the hook, probes its own rounds,
/// and bounds `started_at_ms` by the instance's launch time. The counts feed the record
/// only. Times are milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Continuation {
    /// Payload version, 1 or 2.
    pub version: u32,
    /// The lifecycle action, as claimed.
    pub action: LifecycleAction,
    /// When the first invocation's gate started.
    pub started_at_ms: u64,
    /// Probes sent by the earlier invocations.
    pub probe_count: usize,
    /// Heartbeats recorded by the earlier invocations.
    pub heartbeats: u32,
    /// How many invocations handed over before this one.
    pub hop: u32,
    /// Version 1's wait deadline: read and ignored.
    #[serde(default, skip_serializing)]
    pub wait_deadline_ms: Option<Value>,
    /// Version 1's heartbeat time: read and ignored.
    #[serde(default, skip_serializing)]
    pub next_heartbeat_ms: Option<Value>,
    /// Version 1's rounds: read and ignored (only rounds probed by the gate that decides
    /// count).
    #[serde(default, skip_serializing)]
    pub samples: Option<Value>,
}

/// One notification out of an event. SNS and SQS batches carry several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// A wait handed over by an earlier invocation.
    Continuation(Box<Continuation>),
    /// The scheduled sweep (an EventBridge `Scheduled Event`): find launches held by a
    /// served hook that no gate works on, and gate them.
    Sweep,
    /// A launch lifecycle action to gate.
    Launch(LifecycleAction),
    /// Acknowledged and ignored.
    Ignored(Ignored),
}

/// Why an event is not a lifecycle notification the gate can act on. The message names
/// the field, as a path into the event (`detail.EC2InstanceId`, `Records[0].body`).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EventError {
    /// The top-level value is not an object of a known shape.
    #[error(
        "the event is not an Auto Scaling lifecycle notification: expected an EventBridge event (detail-type), an SNS or SQS batch (Records) or an Auto Scaling message (LifecycleTransition or Event); {found}"
    )]
    UnknownShape {
        /// What was found instead.
        found: String,
    },
    /// An EventBridge event from another source than `aws.autoscaling`.
    #[error(
        "the EventBridge event comes from source {source_name:?}, not aws.autoscaling: check the rule's event pattern"
    )]
    UnexpectedSource {
        /// The `source` seen.
        source_name: String,
    },
    /// A required field is absent or null.
    #[error("{field} is missing")]
    MissingField {
        /// Path of the field.
        field: String,
    },
    /// A field has the wrong JSON type.
    #[error("{field} must be {expected}, found {found}")]
    WrongType {
        /// Path of the field.
        field: String,
        /// The expected type.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A field has a value outside its domain.
    #[error("{field} is {value:?}, expected {expected}")]
    InvalidValue {
        /// Path of the field.
        field: String,
        /// The value seen (truncated to 100 characters).
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// A message body that must be JSON is not.
    #[error("{field} is not a JSON object: {reason}")]
    InvalidJson {
        /// Path of the field.
        field: String,
        /// The parser's message.
        reason: String,
    },
    /// An SNS or SQS envelope that does not match the service's event shape.
    #[error("{kind} event is malformed: {reason}")]
    Envelope {
        /// `SNS` or `SQS`.
        kind: &'static str,
        /// The deserializer's message, naming the field.
        reason: String,
    },
    /// An SNS or SQS event without records.
    #[error("the {kind} event has no records")]
    NoRecords {
        /// `SNS` or `SQS`.
        kind: &'static str,
    },
}

/// Parses a Lambda event into its notifications.
///
/// Accepts: an EventBridge event (`source: aws.autoscaling`); an SNS event; an SQS event
/// whose bodies are Auto Scaling messages or SNS envelopes of them; a bare Auto Scaling
/// message. A launch lifecycle action needs `LifecycleActionToken`,
/// `AutoScalingGroupName`, `LifecycleHookName`, `EC2InstanceId` and
/// `LifecycleTransition`; `NotificationMetadata`, `Origin` and `Destination` are optional.
///
/// # Errors
/// [`EventError`] naming the first missing or bad field; nothing of a batch is returned
/// when one record is malformed, so nothing is completed on a partial reading.
pub fn parse(event: &Value) -> Result<Vec<Notification>, EventError> {
    let Some(object) = event.as_object() else {
        return Err(EventError::UnknownShape {
            found: format!("a JSON {}", type_name(event)),
        });
    };
    if let Some(c) = object.get(CONTINUATION_KEY) {
        let c: Continuation =
            serde_json::from_value(c.clone()).map_err(|e| EventError::Envelope {
                kind: "continuation",
                reason: e.to_string(),
            })?;
        if let Some((field, expected)) = unbounded(&c.action) {
            return Err(EventError::InvalidValue {
                field: format!("{CONTINUATION_KEY}.action.{field}"),
                value: "(not shown)".into(),
                expected,
            });
        }
        if !(1..=CONTINUATION_VERSION).contains(&c.version)
            || !is_instance_id(&c.action.instance_id)
        {
            return Err(EventError::Envelope {
                kind: "continuation",
                reason: format!(
                    "version {} for instance {:?} is not one this gate reads",
                    c.version, c.action.instance_id
                ),
            });
        }
        return Ok(vec![Notification::Continuation(Box::new(c))]);
    }
    if object.contains_key("detail-type") {
        return parse_eventbridge(object).map(|n| vec![n]);
    }
    if let Some(records) = object.get("Records") {
        return parse_records(event, records);
    }
    if object.contains_key("LifecycleTransition") || object.contains_key("Event") {
        return parse_message(object, "", Delivery::Direct, None).map(|n| vec![n]);
    }
    let mut keys: Vec<&str> = object.keys().map(String::as_str).take(8).collect();
    keys.sort_unstable();
    Err(EventError::UnknownShape {
        found: if keys.is_empty() {
            "found an empty object".to_owned()
        } else {
            format!("found the keys {}", keys.join(", "))
        },
    })
}

fn parse_eventbridge(event: &Map<String, Value>) -> Result<Notification, EventError> {
    let source = required_str(event, "", "source")?;
    if source == "aws.events"
        && event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
    {
        return Ok(Notification::Sweep);
    }
    if source != "aws.autoscaling" {
        return Err(EventError::UnexpectedSource {
            source_name: truncate(source),
        });
    }
    let detail_type = required_str(event, "", "detail-type")?;
    let detail = match event.get("detail") {
        None | Some(Value::Null) => {
            return Err(EventError::MissingField {
                field: "detail".into(),
            });
        }
        Some(Value::Object(detail)) => detail,
        Some(other) => {
            return Err(EventError::WrongType {
                field: "detail".into(),
                expected: "an object",
                found: type_name(other),
            });
        }
    };
    if !detail_type.ends_with("Lifecycle Action") {
        return Ok(Notification::Ignored(Ignored::OtherTransition {
            transition: detail_type.to_owned(),
            instance_id: optional_str(detail, "detail.", "EC2InstanceId")?.map(str::to_owned),
            group_name: optional_str(detail, "detail.", "AutoScalingGroupName")?.map(str::to_owned),
        }));
    }
    let sent_at = optional_str(event, "", "time")?.map(str::to_owned);
    parse_message(detail, "detail.", Delivery::EventBridge, sent_at)
}

fn parse_records(event: &Value, records: &Value) -> Result<Vec<Notification>, EventError> {
    let Some(list) = records.as_array() else {
        return Err(EventError::WrongType {
            field: "Records".into(),
            expected: "an array",
            found: type_name(records),
        });
    };
    let first = list.first().and_then(Value::as_object);
    let is_sns = first.is_some_and(|r| r.contains_key("Sns"));
    let is_sqs = first.is_some_and(|r| r.contains_key("body"));
    if is_sns {
        let sns: SnsEvent =
            serde_json::from_value(event.clone()).map_err(|e| EventError::Envelope {
                kind: "SNS",
                reason: e.to_string(),
            })?;
        return sns
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let field = format!("Records[{i}].Sns.Message");
                let message = json_object(&r.sns.message, &field)?;
                parse_message(&message, &prefix(&field), Delivery::Sns, None)
            })
            .collect();
    }
    if is_sqs {
        let sqs: SqsEvent =
            serde_json::from_value(event.clone()).map_err(|e| EventError::Envelope {
                kind: "SQS",
                reason: e.to_string(),
            })?;
        return sqs
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let field = format!("Records[{i}].body");
                let body = r.body.as_deref().ok_or_else(|| EventError::MissingField {
                    field: field.clone(),
                })?;
                let message = json_object(body, &field)?;
                // SNS -> SQS without raw message delivery wraps the message once more.
                if message.get("Type").and_then(Value::as_str) == Some("Notification") {
                    let inner_field = format!("{field}.Message");
                    let inner = required_str(&message, &prefix(&field), "Message")?;
                    let inner = json_object(inner, &inner_field)?;
                    return parse_message(&inner, &prefix(&inner_field), Delivery::Sqs, None);
                }
                parse_message(&message, &prefix(&field), Delivery::Sqs, None)
            })
            .collect();
    }
    if list.is_empty() {
        return Err(EventError::NoRecords { kind: "SNS or SQS" });
    }
    Err(EventError::UnknownShape {
        found: "Records[0] is neither an SNS record (Sns) nor an SQS record (body)".into(),
    })
}

/// Parses the Auto Scaling message (EventBridge `detail`, or an SNS/SQS body).
fn parse_message(
    m: &Map<String, Value>,
    at: &str,
    delivery: Delivery,
    sent_at: Option<String>,
) -> Result<Notification, EventError> {
    if let Some(event) = optional_str(m, at, "Event")? {
        if event == TEST_NOTIFICATION {
            return Ok(Notification::Ignored(Ignored::TestNotification {
                group_name: optional_str(m, at, "AutoScalingGroupName")?.map(str::to_owned),
            }));
        }
        if !m.contains_key("LifecycleTransition") {
            return Ok(Notification::Ignored(Ignored::OtherTransition {
                transition: truncate(event),
                instance_id: optional_str(m, at, "EC2InstanceId")?.map(str::to_owned),
                group_name: optional_str(m, at, "AutoScalingGroupName")?.map(str::to_owned),
            }));
        }
    }
    let transition = required_str(m, at, "LifecycleTransition")?;
    if transition != LAUNCHING {
        return Ok(Notification::Ignored(Ignored::OtherTransition {
            transition: truncate(transition),
            instance_id: optional_str(m, at, "EC2InstanceId")?.map(str::to_owned),
            group_name: optional_str(m, at, "AutoScalingGroupName")?.map(str::to_owned),
        }));
    }
    let instance_id = required_str(m, at, "EC2InstanceId")?;
    if !is_instance_id(instance_id) {
        return Err(EventError::InvalidValue {
            field: format!("{at}EC2InstanceId"),
            value: truncate(instance_id),
            expected: "an EC2 instance id: i- and 8 or 17 hexadecimal digits",
        });
    }
    let token = required_str(m, at, "LifecycleActionToken")?;
    if token.len() > 36 * 2
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(EventError::InvalidValue {
            field: format!("{at}LifecycleActionToken"),
            // Tokens authorise completions: never more than their start in a message.
            value: format!("{}…", token.chars().take(8).collect::<String>()),
            expected: "a lifecycle action token (a UUID)",
        });
    }
    let group_name = name(m, at, "AutoScalingGroupName")?;
    let hook_name = name(m, at, "LifecycleHookName")?;
    let origin = optional_str(m, at, "Origin")?
        .map(|v| Location::parse(format!("{at}Origin"), v))
        .transpose()?;
    let destination = optional_str(m, at, "Destination")?
        .map(|v| Location::parse(format!("{at}Destination"), v))
        .transpose()?;
    let sent_at = match sent_at {
        Some(t) => Some(t),
        None => optional_str(m, at, "Time")?.map(str::to_owned),
    };
    Ok(Notification::Launch(LifecycleAction {
        token: Some(token.to_owned()),
        group_name,
        hook_name,
        instance_id: instance_id.to_owned(),
        transition: transition.to_owned(),
        notification_metadata: optional_str(m, at, "NotificationMetadata")?.map(str::to_owned),
        origin,
        destination,
        sent_at,
        delivery,
    }))
}

/// Group and hook names: 1-255 characters, no control characters (AWS's XmlStringMaxLen255).
fn name(m: &Map<String, Value>, at: &str, key: &str) -> Result<String, EventError> {
    let value = required_str(m, at, key)?;
    if value.is_empty() || value.chars().count() > 255 || value.chars().any(char::is_control) {
        return Err(EventError::InvalidValue {
            field: format!("{at}{key}"),
            value: truncate(value),
            expected: "1 to 255 characters without control characters",
        });
    }
    Ok(value.to_owned())
}

/// The first field of a hand-over's action outside the bounds an event's is held to, and
/// what it must be: a hand-over is a claim like any event, and nothing unbounded reaches a
/// record or an event through it.
fn unbounded(a: &LifecycleAction) -> Option<(&'static str, &'static str)> {
    let name_ok =
        |v: &str| !v.is_empty() && v.chars().count() <= 255 && !v.chars().any(char::is_control);
    if a.transition != LAUNCHING {
        return Some(("transition", "autoscaling:EC2_INSTANCE_LAUNCHING"));
    }
    if !name_ok(&a.group_name) {
        return Some((
            "group_name",
            "1 to 255 characters without control characters",
        ));
    }
    if !name_ok(&a.hook_name) {
        return Some((
            "hook_name",
            "1 to 255 characters without control characters",
        ));
    }
    if a.token
        .as_deref()
        .is_some_and(|t| t.len() > 72 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        return Some(("token", "a lifecycle action token (a UUID)"));
    }
    // NotificationMetadata is at most 1023 characters (PutLifecycleHook); the hand-over's
    // copy is never read, only bounded.
    if a.notification_metadata
        .as_deref()
        .is_some_and(|m| m.chars().count() > 1023)
    {
        return Some(("notification_metadata", "at most 1023 characters"));
    }
    if a.sent_at.as_deref().is_some_and(|t| t.len() > 64) {
        return Some(("sent_at", "an RFC 3339 time"));
    }
    None
}

fn is_instance_id(id: &str) -> bool {
    id.strip_prefix("i-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

fn required_str<'a>(m: &'a Map<String, Value>, at: &str, key: &str) -> Result<&'a str, EventError> {
    optional_str(m, at, key)?.ok_or_else(|| EventError::MissingField {
        field: format!("{at}{key}"),
    })
}

fn optional_str<'a>(
    m: &'a Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<Option<&'a str>, EventError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(EventError::WrongType {
            field: format!("{at}{key}"),
            expected: "a string",
            found: type_name(other),
        }),
    }
}

fn json_object(text: &str, field: &str) -> Result<Map<String, Value>, EventError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(EventError::InvalidJson {
            field: field.to_owned(),
            reason: format!("it is a JSON {}", type_name(&other)),
        }),
        Err(e) => Err(EventError::InvalidJson {
            field: field.to_owned(),
            reason: e.to_string(),
        }),
    }
}

fn prefix(field: &str) -> String {
    format!("{field}.")
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn truncate(s: &str) -> String {
    crate::text::clip(s, 100)
}

pub mod ecs;

#[cfg(test)]
mod tests;
