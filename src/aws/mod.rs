//! Ports to AWS, named by capability, and their SDK adapter in [`sdk`]. The gate's loop
//! depends on the traits only ([`Aws`] is all of them); tests of the loop pass
//! hand-written fakes, and the end-to-end tests pass the SDK adapter pointed at the AWS
//! emulator.

pub mod sdk;

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use crate::event::LifecycleAction;

/// `LifecycleActionResult` of `CompleteLifecycleAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LifecycleActionResult {
    /// The group registers the instance with its target groups and puts it in service.
    #[serde(rename = "CONTINUE")]
    Continue,
    /// The group terminates the instance (and launches a replacement).
    #[serde(rename = "ABANDON")]
    Abandon,
}

impl LifecycleActionResult {
    /// `CONTINUE` or `ABANDON`, as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Continue => "CONTINUE",
            Self::Abandon => "ABANDON",
        }
    }
}

/// What `DescribeInstances` says of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceInfo {
    /// `State.Name`: `pending`, `running`, `shutting-down`, `terminated`, `stopping`, `stopped`.
    pub state: String,
    /// `PrivateIpAddress`, absent before the network interface is attached.
    pub private_ip: Option<IpAddr>,
    /// The Auto Scaling group, from the instance's `aws:autoscaling:groupName` tag.
    pub group_name: Option<String>,
    /// Until when a gate works on this instance (seconds since the Unix epoch), from its
    /// [`CLAIM_TAG`] tag.
    pub claimed_until: Option<u64>,
}

/// The instance tag a gate writes while it works on the instance: the time (seconds
/// since the Unix epoch) until which it will record a heartbeat. The sweep leaves claimed
/// instances alone.
pub const CLAIM_TAG: &str = "launch-gate:claimed-until";

impl InstanceInfo {
    /// True once the instance is on its way out and no completion matters any more.
    pub fn is_gone(&self) -> bool {
        matches!(self.state.as_str(), "shutting-down" | "terminated")
    }
}

/// A lifecycle hook's timeouts, from `DescribeLifecycleHooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookSettings {
    /// `HeartbeatTimeout`: the action ends with `DefaultResult` this long after the
    /// notification or the last heartbeat (30-7200 s).
    #[serde(serialize_with = "secs")]
    pub heartbeat_timeout: Duration,
    /// `GlobalTimeout`: the longest an action can be kept, min(48 h, 100 x HeartbeatTimeout).
    #[serde(serialize_with = "secs")]
    pub global_timeout: Duration,
    /// `DefaultResult`: `CONTINUE` or `ABANDON`, applied at a timeout.
    pub default_result: String,
    /// `LifecycleTransition`.
    pub transition: Option<String>,
    /// `NotificationMetadata`, verbatim.
    #[serde(skip)]
    pub notification_metadata: Option<String>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// The answer to `CompleteLifecycleAction` or `RecordLifecycleActionHeartbeat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionAnswer {
    /// Accepted.
    Accepted,
    /// `ValidationError: No active Lifecycle Action found ...`: someone (another gate
    /// invocation, an operator, a timeout) already ended the action.
    NoActiveAction {
        /// AWS's message, verbatim.
        message: String,
    },
}

/// An AWS call that failed after the SDK's retries. The SDK error is kept as the source.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct AwsError {
    /// The API operation, for example `CompleteLifecycleAction`.
    pub operation: &'static str,
    /// The error and its causes, as the SDK renders them.
    pub message: String,
    /// The SDK error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// EC2 instances: `DescribeInstances`.
pub trait Instances: Send + Sync {
    /// The instance's state and private IP; `None` when EC2 does not know the id
    /// (`InvalidInstanceID.NotFound`, which also happens for a few seconds after a
    /// launch: EC2's API is eventually consistent).
    fn describe_instance(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = Result<Option<InstanceInfo>, AwsError>> + Send;

    /// Tags the instance with [`CLAIM_TAG`] = `until` (seconds since the Unix epoch):
    /// `CreateTags`.
    fn claim(
        &self,
        instance_id: &str,
        until: u64,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// Auto Scaling lifecycle actions: `DescribeLifecycleHooks`,
/// `RecordLifecycleActionHeartbeat`, `CompleteLifecycleAction`.
pub trait LifecycleActions: Send + Sync {
    /// The hook's timeouts; `None` when the group has no hook of that name.
    fn describe_lifecycle_hook(
        &self,
        group_name: &str,
        hook_name: &str,
    ) -> impl Future<Output = Result<Option<HookSettings>, AwsError>> + Send;

    /// Restarts the action's heartbeat timer.
    fn record_heartbeat(
        &self,
        action: &LifecycleAction,
    ) -> impl Future<Output = Result<ActionAnswer, AwsError>> + Send;

    /// Completes the action with its token, group, hook and instance id.
    fn complete(
        &self,
        action: &LifecycleAction,
        result: LifecycleActionResult,
    ) -> impl Future<Output = Result<ActionAnswer, AwsError>> + Send;
}

/// A target group's settings and health check, from `DescribeTargetGroups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetGroupSettings {
    /// `TargetGroupArn`.
    pub arn: String,
    /// `TargetGroupName`.
    pub name: String,
    /// `Port`: the traffic port targets are registered on (when registered without one).
    pub port: Option<u16>,
    /// `HealthCheckProtocol`: `HTTP` or `HTTPS` for checks the gate can run (`TCP`, ... are
    /// reported and skipped).
    pub health_check_protocol: String,
    /// `HealthCheckPort`: a number, or `traffic-port` (the port the target is registered on).
    pub health_check_port: String,
    /// `HealthCheckPath`.
    pub health_check_path: String,
    /// `Matcher.HttpCode`, ELB syntax.
    pub matcher: String,
    /// `HealthCheckTimeoutSeconds`.
    #[serde(serialize_with = "secs")]
    pub health_check_timeout: Duration,
    /// `HealthyThresholdCount`.
    pub healthy_threshold: u32,
    /// `HealthCheckEnabled`.
    pub health_check_enabled: bool,
    /// `LoadBalancerArns`: empty when no listener forwards to the group.
    pub load_balancer_arns: Vec<String>,
}

impl TargetGroupSettings {
    /// The port a health check of a target registered on `traffic_port` goes to.
    pub fn health_check_port_for(&self, traffic_port: u16) -> Option<u16> {
        if self.health_check_port == "traffic-port" {
            Some(traffic_port)
        } else {
            self.health_check_port.parse().ok()
        }
    }
}

/// One target's health, from `DescribeTargetHealth`, verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetHealth {
    /// `State`: `initial`, `healthy`, `unhealthy`, `unused`, `draining`, `unavailable`.
    pub state: String,
    /// `Reason`, for example `Target.ResponseCodeMismatch`.
    pub reason: Option<String>,
    /// `Description`, for example `Health checks failed with these codes: [400]`.
    pub description: Option<String>,
}

/// Auto Scaling groups: `DescribeAutoScalingGroups`.
pub trait AutoScalingGroups: Send + Sync {
    /// The group's target groups: `TargetGroupARNs` and ELBv2 traffic sources, without
    /// duplicates. `None` when the group does not exist.
    fn target_group_arns(
        &self,
        group_name: &str,
    ) -> impl Future<Output = Result<Option<Vec<String>>, AwsError>> + Send;

    /// The group's instances in `Pending:Wait` (held by a launch lifecycle hook).
    fn pending_instances(
        &self,
        group_name: &str,
    ) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;
}

/// Elastic Load Balancing target groups: `DescribeTargetGroups`, `RegisterTargets`,
/// `DeregisterTargets`, `DescribeTargetHealth`.
pub trait TargetGroups: Send + Sync {
    /// The settings of the given target groups, in one call (at most 20 ARNs per call,
    /// as the API allows).
    fn describe_target_groups(
        &self,
        arns: &[String],
    ) -> impl Future<Output = Result<Vec<TargetGroupSettings>, AwsError>> + Send;

    /// Registers an instance on a port.
    fn register_target(
        &self,
        target_group_arn: &str,
        instance_id: &str,
        port: u16,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Deregisters an instance from a port.
    fn deregister_target(
        &self,
        target_group_arn: &str,
        instance_id: &str,
        port: u16,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// One target's health: one call, with the target filter.
    fn describe_target_health(
        &self,
        target_group_arn: &str,
        instance_id: &str,
        port: u16,
    ) -> impl Future<Output = Result<TargetHealth, AwsError>> + Send;
}

/// AWS Lambda: the gate's own function, invoked again to go on waiting.
pub trait Continuations: Send + Sync {
    /// Invokes this function asynchronously (`Invoke` with `InvocationType: Event`) with
    /// `payload`.
    fn continue_in_new_invocation(
        &self,
        payload: &serde_json::Value,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// Every port the gate uses.
pub trait Aws:
    LifecycleActions + Instances + AutoScalingGroups + TargetGroups + Continuations
{
}

impl<T: LifecycleActions + Instances + AutoScalingGroups + TargetGroups + Continuations> Aws for T {}
