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
            .set_lifecycle_action_token(action.token.clone())
            // With a token, the token alone names the action: the instance id of a
            // claim cannot redirect the completion. Without one (the sweep), the id.
            .set_instance_id(action.token.is_none().then(|| action.instance_id.clone()))
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
    async fn create_tag(
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
        claimed_until: tag(super::CLAIM_TAG).and_then(|v| v.parse().ok()),
        launch_template: tag("aws:ec2launchtemplate:id")
            .zip(tag("aws:ec2launchtemplate:version"))
            .map(|(id, version)| LaunchTemplateVersion { id, version }),
        decision: tag(super::DECISION_TAG),
        launched_at: instance
            .launch_time()
            .map(|t| u64::try_from(t.secs()).unwrap_or(0)),
    }
}

impl Instances for SdkAws {
    async fn claim(&self, instance_id: &str, until: u64) -> Result<(), AwsError> {
        self.create_tag(instance_id, super::CLAIM_TAG, until.to_string())
            .await
    }

    async fn tag_decision(&self, instance_id: &str, decision: &str) -> Result<(), AwsError> {
        self.create_tag(instance_id, super::DECISION_TAG, decision.to_owned())
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
    async fn describe_instances_where(
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

/// The group's instances in `lifecycle_state`.
fn instances_in(
    group: &aws_sdk_autoscaling::types::AutoScalingGroup,
    lifecycle_state: &str,
) -> Vec<String> {
    group
        .instances()
        .iter()
        .filter(|i| i.lifecycle_state().map(|s| s.as_str()) == Some(lifecycle_state))
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect()
}

/// The group's suspended processes and tags.
fn group_state_of(group: &aws_sdk_autoscaling::types::AutoScalingGroup) -> GroupState {
    GroupState {
        suspended_processes: group
            .suspended_processes()
            .iter()
            .filter_map(|p| p.process_name().map(str::to_owned))
            .collect(),
        tags: group
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
            .collect(),
    }
}

impl SdkAws {
    async fn describe_group(
        &self,
        group_name: &str,
    ) -> Result<Option<aws_sdk_autoscaling::types::AutoScalingGroup>, AwsError> {
        let out = self
            .autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(group_name)
            .send()
            .await
            .map_err(|e| aws_error("DescribeAutoScalingGroups", e))?;
        Ok(out
            .auto_scaling_groups()
            .iter()
            .find(|g| g.auto_scaling_group_name() == Some(group_name))
            .cloned())
    }
}

impl AutoScalingGroups for SdkAws {
    async fn describe_group_member(
        &self,
        instance_id: &str,
    ) -> Result<Option<GroupMember>, AwsError> {
        let out = self
            .autoscaling
            .describe_auto_scaling_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| aws_error("DescribeAutoScalingInstances", e))?;
        Ok(out
            .auto_scaling_instances()
            .iter()
            .find(|i| i.instance_id() == Some(instance_id))
            .map(|i| GroupMember {
                group_name: i.auto_scaling_group_name().unwrap_or_default().to_owned(),
                lifecycle_state: i.lifecycle_state().unwrap_or_default().to_owned(),
            }))
    }

    async fn pending_instances(&self, group_name: &str) -> Result<Vec<String>, AwsError> {
        let mut held: Vec<String> = self
            .describe_group(group_name)
            .await?
            .map(|g| instances_in(&g, super::LAUNCH_WAIT_STATES[0]))
            .unwrap_or_default();
        // Instances launching into the warm pool are listed by DescribeWarmPool only.
        let warm = self
            .autoscaling
            .describe_warm_pool()
            .auto_scaling_group_name(group_name)
            .send()
            .await;
        match warm {
            Ok(out) => held.extend(
                out.instances()
                    .iter()
                    .filter(|i| {
                        i.lifecycle_state().map(|s| s.as_str())
                            == Some(super::LAUNCH_WAIT_STATES[1])
                    })
                    .filter_map(|i| i.instance_id().map(str::to_owned)),
            ),
            // A group without a warm pool, or an emulator without warm pools.
            Err(err)
                if err
                    .code()
                    .is_some_and(|c| c.contains("NotFound") || c == "ValidationError") => {}
            Err(err) => return Err(aws_error("DescribeWarmPool", err)),
        }
        Ok(held)
    }

    async fn target_group_arns(&self, group_name: &str) -> Result<Option<Vec<String>>, AwsError> {
        let Some(group) = self.describe_group(group_name).await? else {
            return Ok(None);
        };
        let mut arns: Vec<String> = group.target_group_arns().to_vec();
        for source in group.traffic_sources() {
            let is_elbv2 = source.r#type() == Some("elbv2")
                || source
                    .identifier()
                    .is_some_and(|i| i.contains(":targetgroup/"));
            if let Some(arn) = source.identifier().filter(|_| is_elbv2)
                && !arns.iter().any(|a| a == arn)
            {
                arns.push(arn.to_owned());
            }
        }
        Ok(Some(arns))
    }

    async fn group_state(&self, group_name: &str) -> Result<Option<GroupState>, AwsError> {
        Ok(self
            .describe_group(group_name)
            .await?
            .map(|g| group_state_of(&g)))
    }

    async fn scaling_activities(
        &self,
        group_name: &str,
        since: u64,
    ) -> Result<Vec<ScalingActivity>, AwsError> {
        let secs = |t: Option<&aws_sdk_autoscaling::primitives::DateTime>| {
            t.map(|t| u64::try_from(t.secs()).unwrap_or(0))
        };
        let mut activities = Vec::new();
        let mut pages = self
            .autoscaling
            .describe_scaling_activities()
            .auto_scaling_group_name(group_name)
            .max_records(100)
            .into_paginator()
            .page_size(100)
            .send();
        let mut read = 0;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("DescribeScalingActivities", e))?;
            read += 1;
            let mut older = false;
            for a in page.activities() {
                let start_time = secs(a.start_time()).unwrap_or(0);
                if start_time < since {
                    // In-progress activities come first, whatever their age; past them the
                    // list is by start time, newest first.
                    older |= a.end_time().is_some();
                    continue;
                }
                activities.push(ScalingActivity {
                    id: a.activity_id().unwrap_or_default().to_owned(),
                    description: a.description().unwrap_or_default().to_owned(),
                    status_code: a
                        .status_code()
                        .map_or_else(String::new, |c| c.as_str().to_owned()),
                    status_message: a.status_message().map(str::to_owned),
                    start_time,
                    end_time: secs(a.end_time()),
                });
            }
            // Once a finished activity started before `since`, the rest did too.
            if older || read >= 10 {
                break;
            }
        }
        Ok(activities)
    }

    async fn tag_group(&self, group_name: &str, key: &str, value: &str) -> Result<(), AwsError> {
        self.autoscaling
            .create_or_update_tags()
            .tags(
                aws_sdk_autoscaling::types::Tag::builder()
                    .resource_id(group_name)
                    .resource_type("auto-scaling-group")
                    .key(key)
                    .value(value)
                    .propagate_at_launch(false)
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("CreateOrUpdateTags", e))
    }

    async fn suspend_launch(&self, group_name: &str) -> Result<(), AwsError> {
        self.autoscaling
            .suspend_processes()
            .auto_scaling_group_name(group_name)
            .scaling_processes("Launch")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("SuspendProcesses", e))
    }

    async fn rollback_instance_refresh(&self, group_name: &str) -> Result<RefreshAnswer, AwsError> {
        let sent = self
            .autoscaling
            .rollback_instance_refresh()
            .auto_scaling_group_name(group_name)
            .send()
            .await
            .map(|o| o.instance_refresh_id().unwrap_or_default().to_owned());
        refresh_answer("RollbackInstanceRefresh", sent)
    }

    async fn cancel_instance_refresh(&self, group_name: &str) -> Result<RefreshAnswer, AwsError> {
        let sent = self
            .autoscaling
            .cancel_instance_refresh()
            .auto_scaling_group_name(group_name)
            .send()
            .await
            .map(|o| o.instance_refresh_id().unwrap_or_default().to_owned());
        refresh_answer("CancelInstanceRefresh", sent)
    }
}

/// Maps an instance refresh call's error: no refresh in progress, or one that cannot be
/// rolled back, are answers, not failures.
fn refresh_answer<E>(
    operation: &'static str,
    result: Result<String, E>,
) -> Result<RefreshAnswer, AwsError>
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    match result {
        Ok(id) => Ok(RefreshAnswer::Accepted(id)),
        Err(err) => {
            let message = err.message().unwrap_or_default().to_owned();
            match err.code() {
                Some("ActiveInstanceRefreshNotFound") => Ok(RefreshAnswer::NotFound(message)),
                Some("IrreversibleInstanceRefresh") => Ok(RefreshAnswer::Irreversible(message)),
                _ => Err(aws_error(operation, err)),
            }
        }
    }
}

impl Events for SdkAws {
    async fn put_event(
        &self,
        bus: &str,
        source: &str,
        detail_type: &str,
        detail: &serde_json::Value,
    ) -> Result<(), AwsError> {
        let out = self
            .events
            .put_events()
            .entries(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name(bus)
                    .source(source)
                    .detail_type(detail_type)
                    .detail(detail.to_string())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws_error("PutEvents", e))?;
        if out.failed_entry_count() > 0 {
            let entry = out.entries().first();
            let why = format!(
                "{}: {}",
                entry.and_then(|e| e.error_code()).unwrap_or("unknown"),
                entry
                    .and_then(|e| e.error_message())
                    .unwrap_or("no message")
            );
            return Err(AwsError::local(
                "PutEvents",
                format!("the event was rejected: {why}"),
            ));
        }
        Ok(())
    }
}

impl TargetGroups for SdkAws {
    async fn describe_target_groups(
        &self,
        arns: &[String],
    ) -> Result<Vec<TargetGroupSettings>, AwsError> {
        let mut settings = Vec::new();
        for chunk in arns.chunks(20) {
            let out = self
                .elbv2
                .describe_target_groups()
                .set_target_group_arns(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| aws_error("DescribeTargetGroups", e))?;
            for tg in out.target_groups() {
                settings.push(TargetGroupSettings {
                    arn: tg.target_group_arn().unwrap_or_default().to_owned(),
                    name: tg.target_group_name().unwrap_or_default().to_owned(),
                    port: tg.port().and_then(|p| u16::try_from(p).ok()),
                    health_check_protocol: tg
                        .health_check_protocol()
                        .map_or_else(|| "HTTP".to_owned(), |p| p.as_str().to_owned()),
                    health_check_port: tg.health_check_port().unwrap_or("traffic-port").to_owned(),
                    health_check_path: tg.health_check_path().unwrap_or("/").to_owned(),
                    matcher: tg
                        .matcher()
                        .and_then(|m| m.http_code())
                        .unwrap_or("200")
                        .to_owned(),
                    health_check_timeout: Duration::from_secs(
                        tg.health_check_timeout_seconds().unwrap_or(5).max(1) as u64,
                    ),
                    healthy_threshold: tg.healthy_threshold_count().unwrap_or(5).max(1) as u32,
                    health_check_enabled: tg.health_check_enabled().unwrap_or(true),
                    load_balancer_arns: tg.load_balancer_arns().to_vec(),
                });
            }
        }
        Ok(settings)
    }

    async fn register_target(
        &self,
        target_group_arn: &str,
        instance_id: &str,
        port: u16,
    ) -> Result<(), AwsError> {
        self.elbv2
            .register_targets()
            .target_group_arn(target_group_arn)
            .targets(target(instance_id, port))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("RegisterTargets", e))
    }

    async fn deregister_target(
        &self,
        target_group_arn: &str,
        instance_id: &str,
        port: u16,
    ) -> Result<(), AwsError> {
        self.elbv2
            .deregister_targets()
            .target_group_arn(target_group_arn)
            .targets(target(instance_id, port))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("DeregisterTargets", e))
    }

    async fn describe_target_health(
        &self,
        target_group_arn: &str,
        instance_id: &str,
        port: u16,
    ) -> Result<TargetHealth, AwsError> {
        let out = self
            .elbv2
            .describe_target_health()
            .target_group_arn(target_group_arn)
            .targets(target(instance_id, port))
            .send()
            .await
            .map_err(|e| aws_error("DescribeTargetHealth", e))?;
        let health = out
            .target_health_descriptions()
            .iter()
            .find(|d| d.target().and_then(|t| t.id()) == Some(instance_id))
            .and_then(|d| d.target_health());
        Ok(TargetHealth {
            state: health
                .and_then(|h| h.state())
                .map_or_else(|| "unavailable".to_owned(), |s| s.as_str().to_owned()),
            reason: health
                .and_then(|h| h.reason())
                .map(|r| r.as_str().to_owned()),
            description: health.and_then(|h| h.description()).map(str::to_owned),
        })
    }
}

fn target(
    instance_id: &str,
    port: u16,
) -> aws_sdk_elasticloadbalancingv2::types::TargetDescription {
    aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
        .id(instance_id)
        .port(i32::from(port))
        .build()
}

/// The launch template of a group or a desired configuration: its `LaunchTemplate`, or its
/// `MixedInstancesPolicy`'s.
fn template_spec(
    launch_template: Option<&aws_sdk_autoscaling::types::LaunchTemplateSpecification>,
    mixed: Option<&aws_sdk_autoscaling::types::MixedInstancesPolicy>,
) -> Option<TemplateSpec> {
    let s = launch_template.or_else(|| {
        mixed
            .and_then(|m| m.launch_template())
            .and_then(|l| l.launch_template_specification())
    })?;
    Some(TemplateSpec {
        id: s.launch_template_id().map(str::to_owned),
        name: s.launch_template_name().map(str::to_owned),
        version: s.version().map(str::to_owned),
    })
}

/// Reads for `launch-gate rollout`: `DescribeAutoScalingGroups`,
/// `DescribeInstanceRefreshes` (the newest), `DescribeInstances` of the instances tagged
/// with the group's name, `DescribeLaunchTemplates`.
impl RolloutReads for SdkAws {
    async fn rollout_snapshot(
        &self,
        group_name: &str,
    ) -> Result<Option<(GroupSnapshot, Option<TemplateSpec>)>, AwsError> {
        let Some(group) = self.describe_group(group_name).await? else {
            return Ok(None);
        };
        let template = template_spec(group.launch_template(), group.mixed_instances_policy());
        let refreshes = self
            .autoscaling
            .describe_instance_refreshes()
            .auto_scaling_group_name(group_name)
            .max_records(1)
            .send()
            .await
            .map_err(|e| aws_error("DescribeInstanceRefreshes", e))?;
        let refresh = refreshes.instance_refreshes().first().map(|r| RefreshView {
            id: r.instance_refresh_id().unwrap_or_default().to_owned(),
            status: r
                .status()
                .map_or_else(String::new, |s| s.as_str().to_owned()),
            status_reason: r.status_reason().map(str::to_owned),
            desired: r
                .desired_configuration()
                .and_then(|d| template_spec(d.launch_template(), d.mixed_instances_policy())),
        });
        let instances = self
            .describe_instances_where("tag:aws:autoscaling:groupName", vec![group_name.to_owned()])
            .await?;
        let state = group_state_of(&group);
        let snapshot = GroupSnapshot {
            desired_capacity: group
                .desired_capacity()
                .map_or(0, |d| u32::try_from(d).unwrap_or(0)),
            in_service: instances_in(&group, "InService"),
            breaker_tag: state.tag(super::BREAKER_TAG).map(str::to_owned),
            suspended_processes: state.suspended_processes,
            refresh,
            instances,
        };
        Ok(Some((snapshot, template)))
    }

    async fn resolve_launch_template(
        &self,
        template: &TemplateSpec,
        version: Option<&str>,
    ) -> Result<Option<LaunchTemplateVersion>, AwsError> {
        let mut call = self.ec2.describe_launch_templates();
        call = match (&template.id, &template.name) {
            (Some(id), _) => call.launch_template_ids(id),
            (None, Some(name)) => call.launch_template_names(name),
            (None, None) => return Ok(None),
        };
        let out = call
            .send()
            .await
            .map_err(|e| aws_error("DescribeLaunchTemplates", e))?;
        let Some(t) = out.launch_templates().first() else {
            return Ok(None);
        };
        let number = match version.unwrap_or("$Default") {
            "$Latest" => t.latest_version_number().map(|n| n.to_string()),
            "$Default" => t.default_version_number().map(|n| n.to_string()),
            n => Some(n.to_owned()),
        };
        Ok(t.launch_template_id()
            .zip(number)
            .map(|(id, version)| LaunchTemplateVersion {
                id: id.to_owned(),
                version,
            }))
    }
}
