//! The ports of [`crate::aws`] over the AWS SDK for Rust: one [`SdkAws`] holding the Auto
//! Scaling, EC2 and ELBv2 clients, built once at cold start. Does network I/O.

use std::net::IpAddr;
use std::time::Duration;

use aws_sdk_autoscaling::error::{DisplayErrorContext, ProvideErrorMetadata};

use super::{
    ActionAnswer, AutoScalingGroups, AwsError, Continuations, Events, GroupMember, GroupSnapshot,
    GroupState, HookSettings, InstanceInfo, Instances, LaunchTemplateVersion,
    LifecycleActionResult, LifecycleActions, RefreshAnswer, RefreshView, RolloutReads,
    ScalingActivity, TargetGroupSettings, TargetGroups, TargetHealth, TemplateSpec,
};
use crate::event::LifecycleAction;

/// The message prefix of AWS's answer when no lifecycle action is pending.
const NO_ACTIVE_ACTION: &str = "No active Lifecycle Action found";

fn aws_error<E>(operation: &'static str, err: E) -> AwsError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    AwsError {
        operation,
        message: DisplayErrorContext(&err).to_string(),
        code: err.code().map(str::to_owned),
        source: Box::new(err),
    }
}

/// The gate's SDK retry policy: adaptive mode (exponential backoff with jitter, and
/// client-side rate limiting once AWS throttles), 6 attempts, backoff from 0.5 s up to
/// 20 s. Throttling and 5xx answers are retried; a call that still fails is an
/// [`AwsError`], never a verdict. ELB and EC2 describe calls are throttled per account
/// (token buckets of 40-50, refilled at 10/s).
pub fn retry_config() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::adaptive()
        .with_max_attempts(6)
        .with_initial_backoff(Duration::from_millis(500))
        .with_max_backoff(Duration::from_secs(20))
}

/// The longest one attempt of an AWS call may take (connect, send, answer).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(4);

/// The longest an AWS call may take, its retries and their backoff included. The gate
/// keeps at least this much of its invocation for the completion
/// (`gate::INVOCATION_RESERVE`), so a completion under retries is not cut off by Lambda.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(8);

/// The gate's SDK timeouts: [`ATTEMPT_TIMEOUT`] per attempt, [`OPERATION_TIMEOUT`] per
/// call, 2 s to connect. A call that runs out is an [`AwsError`], never a verdict.
pub fn timeout_config() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// The SDK configuration of the gate: the default chain (credentials, region,
/// `AWS_ENDPOINT_URL`) with [`retry_config`] and [`timeout_config`], in `region` when one
/// is given.
pub async fn load_config(region: Option<String>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config());
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r));
    }
    loader.load().await
}

/// Every port of [`crate::aws`] over the SDK's clients.
#[derive(Debug, Clone)]
pub struct SdkAws {
    autoscaling: aws_sdk_autoscaling::Client,
    ec2: aws_sdk_ec2::Client,
    elbv2: aws_sdk_elasticloadbalancingv2::Client,
    lambda: aws_sdk_lambda::Client,
    events: aws_sdk_eventbridge::Client,
    ecs: aws_sdk_ecs::Client,
    function_name: Option<String>,
}

impl SdkAws {
    /// Builds the clients from one SDK configuration (endpoint, credentials,
    /// region, retries).
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            autoscaling: aws_sdk_autoscaling::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(config),
            lambda: aws_sdk_lambda::Client::new(config),
            events: aws_sdk_eventbridge::Client::new(config),
            ecs: aws_sdk_ecs::Client::new(config),
            function_name: None,
        }
    }

    /// The gate's own function, invoked again when a wait outlasts an invocation. In
    /// Lambda it is `AWS_LAMBDA_FUNCTION_NAME`; without it, waits are handed off to the
    /// hook's `DefaultResult` instead.
    pub fn with_function_name(mut self, name: Option<String>) -> Self {
        self.function_name = name.filter(|n| !n.is_empty());
        self
    }
}

impl Continuations for SdkAws {
    async fn continue_in_new_invocation(
        &self,
        payload: &serde_json::Value,
    ) -> Result<(), AwsError> {
        let Some(name) = &self.function_name else {
            return Err(AwsError::local(
                "Invoke",
                "the function's own name is unknown (AWS_LAMBDA_FUNCTION_NAME is not set)",
            ));
        };
        self.lambda
            .invoke()
            .function_name(name)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload.to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("Invoke", e))
    }
}

/// Counts the attempts the SDK makes of one call (its retries happen inside `send`).
#[derive(Debug, Clone, Default)]
struct AttemptCounter(std::sync::Arc<std::sync::atomic::AtomicU32>);

impl AttemptCounter {
    fn retried(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed) > 1
    }
}

impl aws_sdk_autoscaling::config::Intercept for AttemptCounter {
    fn name(&self) -> &'static str {
        "launch-gate.AttemptCounter"
    }

    fn read_before_attempt(
        &self,
        _: &aws_sdk_autoscaling::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_autoscaling::config::RuntimeComponents,
        _: &mut aws_sdk_autoscaling::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// Maps an action call's error: "No active Lifecycle Action found" is an answer, not a failure.
fn action_answer<E>(
    operation: &'static str,
    result: Result<(), E>,
    attempts: &AttemptCounter,
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
                retried: attempts.retried(),
            })
        }
        Err(err) => Err(aws_error(operation, err)),
    }
}

impl LifecycleActions for SdkAws {
    async fn describe_lifecycle_hook(
        &self,
        group_name: &str,
        hook_name: &str,
    ) -> Result<Option<HookSettings>, AwsError> {
        let out = self
            .autoscaling
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
                    transition: h.lifecycle_transition().map(str::to_owned),
                    notification_metadata: h.notification_metadata().map(str::to_owned),
                }
            }))
    }

    async fn record_heartbeat(&self, action: &LifecycleAction) -> Result<ActionAnswer, AwsError> {
        let result = self
            .autoscaling
            .record_lifecycle_action_heartbeat()
            .auto_scaling_group_name(&action.group_name)
            .lifecycle_hook_name(&action.hook_name)
            .set_lifecycle_action_token(action.token.clone())
            .instance_id(&action.instance_id)
            .send()
            .await
            .map(|_| ());
        action_answer(
            "RecordLifecycleActionHeartbeat",
            result,
            &AttemptCounter::default(),
        )
    }

    async fn complete(
        &self,
        action: &LifecycleAction,
        result: LifecycleActionResult,
    ) -> Result<ActionAnswer, AwsError> {
        let attempts = AttemptCounter::default();
        let sent = self
            .autoscaling
            .complete_lifecycle_action()
            .auto_scaling_group_name(&action.group_name)
            .lifecycle_hook_name(&action.hook_name)
            // The group, hook and instance id name exactly one lifecycle action: the one
            // of the instance that was probed (admission proved it held). The claim's
            // token is never sent: AWS does not document that it checks a token against
            // the instance id beside it, and resolved by the token alone, a token of
            // another held instance would decide that instance on this one's health.
            .instance_id(&action.instance_id)
            .lifecycle_action_result(result.as_str())
            .customize()
            .interceptor(attempts.clone())
            .send()
            .await
            .map(|_| ());
        action_answer("CompleteLifecycleAction", sent, &attempts)
    }
}

impl SdkAws {
    pub(super) async fn create_tag(
        &self,
        instance_id: &str,
        key: &str,
        value: String,
    ) -> Result<(), AwsError> {
        self.ec2
            .create_tags()
            .resources(instance_id)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("CreateTags", e))
    }
}

/// What the gate reads of a `DescribeInstances` instance.
fn instance_info(instance: &aws_sdk_ec2::types::Instance) -> InstanceInfo {
    let tag = |key: &str| {
        instance
            .tags()
            .iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value())
            .map(str::to_owned)
    };
    InstanceInfo {
        state: instance
            .state()
            .and_then(|s| s.name())
            .map_or_else(|| "unknown".to_owned(), |n| n.as_str().to_owned()),
        // An IPv6-only instance (an IPv6-only subnet) has no private IPv4 address.
        private_ip: instance
            .private_ip_address()
            .or(instance.ipv6_address())
            .and_then(|ip| ip.parse::<IpAddr>().ok()),
        group_name: tag("aws:autoscaling:groupName"),
        claimed_until: tag(crate::aws::CLAIM_TAG).and_then(|v| v.parse().ok()),
        launch_template: tag("aws:ec2launchtemplate:id")
            .zip(tag("aws:ec2launchtemplate:version"))
            .map(|(id, version)| LaunchTemplateVersion { id, version }),
        decision: tag(crate::aws::DECISION_TAG),
        launched_at: instance
            .launch_time()
            .map(|t| u64::try_from(t.secs()).unwrap_or(0)),
    }
}

impl Instances for SdkAws {
    async fn claim(&self, instance_id: &str, until: u64) -> Result<(), AwsError> {
        self.create_tag(instance_id, crate::aws::CLAIM_TAG, until.to_string())
            .await
    }

    async fn tag_decision(&self, instance_id: &str, decision: &str) -> Result<(), AwsError> {
        self.create_tag(instance_id, crate::aws::DECISION_TAG, decision.to_owned())
            .await
    }

    async fn describe_instance(&self, instance_id: &str) -> Result<Option<InstanceInfo>, AwsError> {
        let out = match self
            .ec2
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
        {
            Ok(out) => out,
            Err(err) if err.code() == Some("InvalidInstanceID.NotFound") => return Ok(None),
            Err(err) => return Err(aws_error("DescribeInstances", err)),
        };
        Ok(out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(instance_id))
            .map(instance_info))
    }

    async fn describe_instances(
        &self,
        instance_ids: &[String],
    ) -> Result<Vec<(String, InstanceInfo)>, AwsError> {
        let mut found = Vec::new();
        // A filter takes at most 200 values.
        for chunk in instance_ids.chunks(200) {
            found.extend(
                self.describe_instances_where("instance-id", chunk.to_vec())
                    .await?,
            );
        }
        Ok(found)
    }
}

impl SdkAws {
    /// Every instance a `DescribeInstances` filter `name` = `values` matches, all pages.
    pub(super) async fn describe_instances_where(
        &self,
        name: &str,
        values: Vec<String>,
    ) -> Result<Vec<(String, InstanceInfo)>, AwsError> {
        let mut found = Vec::new();
        let mut pages = self
            .ec2
            .describe_instances()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name(name)
                    .set_values(Some(values))
                    .build(),
            )
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("DescribeInstances", e))?;
            for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                if let Some(id) = instance.instance_id() {
                    found.push((id.to_owned(), instance_info(instance)));
                }
            }
        }
        Ok(found)
    }
}

mod doctor;
mod ecs;
mod elb_events;
mod groups;
mod rollout;
