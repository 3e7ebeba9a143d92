//! The invocation of an Amazon ECS deployment lifecycle hook, and the answer ECS reads.
//! Pure: no I/O.
//!
//! Shapes follow "Lambda hooks for Amazon ECS service deployments"
//! (<https://docs.aws.amazon.com/AmazonECS/latest/developerguide/lambda-lifecycle-hooks.html>):
//! ECS invokes the function with `executionId`, `lifecycleStage`, `resourceArn` (the
//! service deployment), `executionDetails` (`serviceArn`, `targetServiceRevisionArn` and
//! the traffic weights) and `hookDetails`; the function answers `hookStatus`
//! (`SUCCEEDED`, `FAILED` or `IN_PROGRESS`), with `callBackDelay` (seconds, default 30)
//! and `hookDetails`, which ECS merges and passes back on its next invocation. A missing
//! `hookStatus` or a function error rolls the deployment back. Every field is a claim
//! until `DescribeServiceDeployments` confirms it.

use serde::Serialize;
use serde_json::{Map, Value};

use super::EventError;

/// The stages at which the gate checks the green tasks: after they started
/// (`POST_SCALE_UP`, no traffic yet) and after test traffic reached them
/// (`POST_TEST_TRAFFIC_SHIFT`). Other stages are answered `SUCCEEDED`.
pub const SERVED_STAGES: [&str; 2] = ["POST_SCALE_UP", "POST_TEST_TRAFFIC_SHIFT"];

/// The key of the gate's own state in `hookDetails`, beside the settings.
pub const STATE_KEY: &str = "launch_gate_state";

/// One ECS lifecycle hook invocation, as claimed.
#[derive(Debug, Clone, PartialEq)]
pub struct EcsHookInvocation {
    /// `executionId`.
    pub execution_id: String,
    /// `lifecycleStage`, for example `POST_SCALE_UP`.
    pub lifecycle_stage: String,
    /// `resourceArn`: the service deployment
    /// (`arn:aws:ecs:<region>:<account>:service-deployment/<cluster>/<service>/<id>`).
    pub deployment_arn: String,
    /// `executionDetails.serviceArn`.
    pub service_arn: String,
    /// `executionDetails.targetServiceRevisionArn`: the green revision.
    pub target_revision_arn: String,
    /// `hookDetails` without the gate's state: the hook's settings, as
    /// `NotificationMetadata` is for a lifecycle hook.
    pub settings: Option<Map<String, Value>>,
    /// The gate's state from an earlier `IN_PROGRESS` answer (a claim).
    pub state: Option<Value>,
}

impl EcsHookInvocation {
    /// Whether the gate checks the green tasks at this stage ([`SERVED_STAGES`]).
    pub fn is_served_stage(&self) -> bool {
        SERVED_STAGES.contains(&self.lifecycle_stage.as_str())
    }

    /// The cluster and service names, from the deployment's ARN.
    pub fn cluster_and_service(&self) -> Option<(&str, &str)> {
        let path = self.deployment_arn.split_once(":service-deployment/")?.1;
        let mut parts = path.split('/');
        Some((parts.next()?, parts.next()?))
    }
}

/// Whether `event` has the shape of an ECS lifecycle hook invocation: a `lifecycleStage`
/// and a `resourceArn` (ECS's, not an Auto Scaling message's).
pub fn is_ecs_hook(event: &Value) -> bool {
    event.get("lifecycleStage").is_some() && event.get("resourceArn").is_some()
}

/// Reads an ECS lifecycle hook invocation. The current documented shape nests the service
/// and revision in `executionDetails`; an earlier one put them at the top level, which is
/// read too.
///
/// # Errors
/// [`EventError`] naming the field that is missing or of the wrong type, or an ARN that
/// is not the kind it must be.
pub fn parse(event: &Value) -> Result<EcsHookInvocation, EventError> {
    let text = |v: &Value, path: &str| -> Result<String, EventError> {
        match v {
            Value::String(s) if !s.is_empty() && s.len() <= 2048 => Ok(s.clone()),
            Value::String(s) => Err(EventError::InvalidValue {
                field: path.into(),
                value: super::truncate(s),
                expected: "1-2048 characters",
            }),
            Value::Null => Err(EventError::MissingField { field: path.into() }),
            other => Err(EventError::WrongType {
                field: path.into(),
                expected: "a string",
                found: super::type_name(other),
            }),
        }
    };
    let field = |name: &str| text(event.get(name).unwrap_or(&Value::Null), name);
    let details = event.get("executionDetails").filter(|d| !d.is_null());
    let detail = |name: &str| match details {
        Some(d) => text(
            d.get(name).unwrap_or(&Value::Null),
            &format!("executionDetails.{name}"),
        ),
        None => field(name),
    };
    let deployment_arn = field("resourceArn")?;
    let service_arn = detail("serviceArn")?;
    let target_revision_arn = detail("targetServiceRevisionArn")?;
    for (path, arn, kind) in [
        (
            "resourceArn",
            &deployment_arn,
            "an ECS service deployment ARN (:service-deployment/)",
        ),
        (
            "executionDetails.serviceArn",
            &service_arn,
            "an ECS service ARN (:service/)",
        ),
        (
            "executionDetails.targetServiceRevisionArn",
            &target_revision_arn,
            "an ECS service revision ARN (:service-revision/)",
        ),
    ] {
        let marker = kind
            .rsplit_once('(')
            .map_or("", |(_, m)| m.trim_end_matches(')'));
        if !arn.starts_with("arn:aws") || !arn.contains(marker) {
            return Err(EventError::InvalidValue {
                field: path.into(),
                value: super::truncate(arn),
                expected: kind,
            });
        }
    }
    let (settings, state) = match event.get("hookDetails") {
        None | Some(Value::Null) => (None, None),
        Some(Value::Object(map)) => {
            let mut settings = map.clone();
            let state = settings.remove(STATE_KEY);
            ((!settings.is_empty()).then_some(settings), state)
        }
        // CloudFormation takes hookDetails as a JSON string; ECS passes the object.
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(mut settings)) => {
                let state = settings.remove(STATE_KEY);
                ((!settings.is_empty()).then_some(settings), state)
            }
            _ => {
                return Err(EventError::InvalidValue {
                    field: "hookDetails".into(),
                    value: super::truncate(s),
                    expected: "a JSON object (as a string)",
                });
            }
        },
        Some(other) => {
            return Err(EventError::WrongType {
                field: "hookDetails".into(),
                expected: "an object",
                found: super::type_name(other),
            });
        }
    };
    Ok(EcsHookInvocation {
        execution_id: field("executionId")?,
        lifecycle_stage: field("lifecycleStage")?,
        deployment_arn,
        service_arn,
        target_revision_arn,
        settings,
        state,
    })
}

/// `hookStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HookStatus {
    /// The deployment continues to the next stage.
    Succeeded,
    /// ECS rolls the deployment back.
    Failed,
    /// ECS invokes the function again after `callBackDelay`.
    InProgress,
}

/// The answer ECS reads from the function.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookResponse {
    /// What ECS does next.
    pub hook_status: HookStatus,
    /// With `IN_PROGRESS`: seconds until ECS invokes the function again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_back_delay: Option<u64>,
    /// Passed back on the next invocation (the gate keeps its state under [`STATE_KEY`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_details: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn documented() -> Value {
        json!({
            "executionId": "e8d5a28f-eb01-4f3c-9454-a30ba6dc54bc",
            "lifecycleStage": "POST_SCALE_UP",
            "resourceArn": "arn:aws:ecs:us-west-2:123456789012:service-deployment/my-cluster/my-service/EZe5RNVLH6PPzHXINuP28",
            "executionDetails": {
                "serviceArn": "arn:aws:ecs:us-west-2:123456789012:service/my-cluster/my-service",
                "targetServiceRevisionArn": "arn:aws:ecs:us-west-2:123456789012:service-revision/my-cluster/my-service/9313423515462893900",
                "testTrafficWeights": {},
                "productionTrafficWeights": {}
            },
            "hookDetails": {"health_port": 8000, "launch_gate_state": {"passes": 1}}
        })
    }

    #[test]
    fn the_documented_invocation_is_read() {
        let e = documented();
        assert!(is_ecs_hook(&e));
        let i = parse(&e).unwrap();
        assert_eq!(i.lifecycle_stage, "POST_SCALE_UP");
        assert!(i.is_served_stage());
        assert_eq!(i.cluster_and_service(), Some(("my-cluster", "my-service")));
        assert_eq!(i.settings.unwrap()["health_port"], 8000);
        assert_eq!(i.state.unwrap()["passes"], 1);
    }

    #[test]
    fn the_sample_event_is_read() {
        let e: Value = serde_json::from_str(include_str!("../../events/ecs-hook.json")).unwrap();
        assert!(is_ecs_hook(&e));
        let i = parse(&e).unwrap();
        assert_eq!(i.cluster_and_service(), Some(("shop", "web")));
        assert!(i.is_served_stage());
    }

    #[test]
    fn the_earlier_flat_shape_and_a_string_hook_details_are_read() {
        let mut e = documented();
        let details = e["executionDetails"].take();
        for key in ["serviceArn", "targetServiceRevisionArn"] {
            e[key] = details[key].clone();
        }
        e.as_object_mut().unwrap().remove("executionDetails");
        e["hookDetails"] = json!(r#"{"health_port": 8000}"#);
        let i = parse(&e).unwrap();
        assert!(i.target_revision_arn.contains(":service-revision/"));
        assert!(i.state.is_none());
    }

    #[test]
    fn bad_invocations_name_the_field() {
        let mut e = documented();
        e["executionDetails"]["targetServiceRevisionArn"] = json!("arn:aws:ecs:x:1:service/c/s");
        assert!(
            parse(&e)
                .unwrap_err()
                .to_string()
                .contains("executionDetails.targetServiceRevisionArn")
        );
        let mut e = documented();
        e["hookDetails"] = json!([1]);
        assert!(parse(&e).unwrap_err().to_string().contains("hookDetails"));
        let mut e = documented();
        e.as_object_mut().unwrap().remove("executionId");
        assert!(parse(&e).unwrap_err().to_string().contains("executionId"));
        assert!(!is_ecs_hook(&json!({"LifecycleTransition": "x"})));
    }

    #[test]
    fn the_answer_is_in_ecs_words() {
        let r = HookResponse {
            hook_status: HookStatus::InProgress,
            call_back_delay: Some(5),
            hook_details: Some(json!({"launch_gate_state": {}})),
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"hookStatus": "IN_PROGRESS", "callBackDelay": 5, "hookDetails": {"launch_gate_state": {}}})
        );
    }
}
