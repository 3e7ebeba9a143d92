//! The ports of [`crate::aws`] over the AWS SDK for Rust. Does network I/O.

use std::net::IpAddr;
use std::time::Duration;

use aws_sdk_autoscaling::error::{DisplayErrorContext, ProvideErrorMetadata};

use super::{
    ActionAnswer, AwsError, HookSettings, InstanceInfo, Instances, LifecycleActionResult,
    LifecycleActions,
};
use crate::event::LifecycleAction;

/// The message prefix of AWS's answer when no lifecycle action is pending.
const NO_ACTIVE_ACTION: &str = "No active Lifecycle Action found";

fn aws_error<E>(operation: &'static str, err: E) -> AwsError
where
    E: std::error::Error + Send + Sync + 'static,
{
    AwsError {
        operation,
        message: DisplayErrorContext(&err).to_string(),
        source: Box::new(err),
    }
}

/// [`LifecycleActions`] over an Auto Scaling client.
#[derive(Debug, Clone)]
pub struct SdkLifecycleActions {
    client: aws_sdk_autoscaling::Client,
}

impl SdkLifecycleActions {
    /// Wraps a client built once at cold start.
    pub fn new(client: aws_sdk_autoscaling::Client) -> Self {
        Self { client }
    }
}

/// Maps an action call's error: "No active Lifecycle Action found" is an answer, not a failure.
fn action_answer<E>(
    operation: &'static str,
    result: Result<(), E>,
) -> Result<ActionAnswer, AwsError>
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    match result {
        Ok(()) => Ok(ActionAnswer::Accepted),
        Err(err)
            if err.code() == Some("ValidationError")
                && err.message().is_some_and(|m| m.contains(NO_ACTIVE_ACTION)) =>
        {
            Ok(ActionAnswer::NoActiveAction {
                message: err.message().unwrap_or_default().to_owned(),
            })
        }
        Err(err) => Err(aws_error(operation, err)),
    }
}

impl LifecycleActions for SdkLifecycleActions {
    async fn describe_lifecycle_hook(
        &self,
        group_name: &str,
        hook_name: &str,
    ) -> Result<Option<HookSettings>, AwsError> {
        let out = self
            .client
            .describe_lifecycle_hooks()
            .auto_scaling_group_name(group_name)
            .lifecycle_hook_names(hook_name)
            .send()
            .await
            .map_err(|e| aws_error("DescribeLifecycleHooks", e))?;
        Ok(out
            .lifecycle_hooks()
            .iter()
            .find(|h| h.lifecycle_hook_name() == Some(hook_name))
            .map(|h| {
                let heartbeat = h.heartbeat_timeout().unwrap_or(3600).max(0) as u64;
                let global = h
                    .global_timeout()
                    .map_or_else(|| (100 * heartbeat).min(172_800), |g| g.max(0) as u64);
                HookSettings {
                    heartbeat_timeout: Duration::from_secs(heartbeat),
                    global_timeout: Duration::from_secs(global),
                    default_result: h.default_result().unwrap_or("ABANDON").to_owned(),
                }
            }))
    }

    async fn record_heartbeat(&self, action: &LifecycleAction) -> Result<ActionAnswer, AwsError> {
        let result = self
            .client
            .record_lifecycle_action_heartbeat()
            .auto_scaling_group_name(&action.group_name)
            .lifecycle_hook_name(&action.hook_name)
            .lifecycle_action_token(&action.token)
            .instance_id(&action.instance_id)
            .send()
            .await
            .map(|_| ());
        action_answer("RecordLifecycleActionHeartbeat", result)
    }

    async fn complete(
        &self,
        action: &LifecycleAction,
        result: LifecycleActionResult,
    ) -> Result<ActionAnswer, AwsError> {
        let sent = self
            .client
            .complete_lifecycle_action()
            .auto_scaling_group_name(&action.group_name)
            .lifecycle_hook_name(&action.hook_name)
            .lifecycle_action_token(&action.token)
            .instance_id(&action.instance_id)
            .lifecycle_action_result(result.as_str())
            .send()
            .await
            .map(|_| ());
        action_answer("CompleteLifecycleAction", sent)
    }
}

/// [`Instances`] over an EC2 client.
#[derive(Debug, Clone)]
pub struct SdkInstances {
    client: aws_sdk_ec2::Client,
}

impl SdkInstances {
    /// Wraps a client built once at cold start.
    pub fn new(client: aws_sdk_ec2::Client) -> Self {
        Self { client }
    }
}

impl Instances for SdkInstances {
    async fn describe_instance(&self, instance_id: &str) -> Result<Option<InstanceInfo>, AwsError> {
        let out = match self
            .client
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
        {
            Ok(out) => out,
            Err(err) if err.code() == Some("InvalidInstanceID.NotFound") => return Ok(None),
            Err(err) => return Err(aws_error("DescribeInstances", err)),
        };
        let Some(instance) = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(instance_id))
        else {
            return Ok(None);
        };
        Ok(Some(InstanceInfo {
            state: instance
                .state()
                .and_then(|s| s.name())
                .map_or_else(|| "unknown".to_owned(), |n| n.as_str().to_owned()),
            private_ip: instance
                .private_ip_address()
                .and_then(|ip| ip.parse::<IpAddr>().ok()),
        }))
    }
}
