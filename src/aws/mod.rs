//! Ports to AWS, named by capability, and their SDK adapter in [`sdk`]. The gate's loop
//! depends on the traits only ([`Aws`] is all of them); tests of the loop pass
//! hand-written fakes, and the end-to-end tests pass the SDK adapter pointed at the AWS
//! emulator.

pub mod ecs;
#[cfg(test)]
pub(crate) mod fake;
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
    /// `PrivateIpAddress`, absent before the network interface is attached; for an
    /// IPv6-only instance, its `Ipv6Address`.
    pub private_ip: Option<IpAddr>,
    /// The Auto Scaling group, from the instance's `aws:autoscaling:groupName` tag.
    pub group_name: Option<String>,
    /// Until when a gate works on this instance (seconds since the Unix epoch), from its
    /// [`CLAIM_TAG`] tag.
    pub claimed_until: Option<u64>,
    /// The launch template and version it was launched from.
    pub launch_template: Option<LaunchTemplateVersion>,
    /// The gate's decision on it, from its [`DECISION_TAG`] tag.
    pub decision: Option<String>,
    /// `LaunchTime`, seconds since the Unix epoch: when EC2 launched it, the earliest a
    /// lifecycle action of its launch can have started.
    pub launched_at: Option<u64>,
}

/// A launch template version, as EC2 tags every instance launched from a launch template:
/// `aws:ec2launchtemplate:id` and `aws:ec2launchtemplate:version` (a number, never
/// `$Latest` or `$Default`). The launch-loop breaker counts abandons per group and
/// version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaunchTemplateVersion {
    /// `lt-...`.
    pub id: String,
    /// The version number, as text.
    pub version: String,
}

impl std::fmt::Display for LaunchTemplateVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} version {}", self.id, self.version)
    }
}

/// The instance tag holding the gate's decision, written once Auto Scaling accepted the
/// completion of the lifecycle action: `CONTINUE`, or `ABANDON cause=<code>`, with ` shadow-verdict=ABANDON` in
/// shadow mode. `launch-gate rollout` reads it to tell instances that passed the gate.
pub const DECISION_TAG: &str = "launch-gate:decision";

/// The Auto Scaling group tag the launch-loop breaker writes when it trips:
/// `<launch template id>:<version> <seconds since the Unix epoch> <instance id>`. It
/// makes the breaker trip once per run of abandons, and tells `launch-gate rollout`.
pub const BREAKER_TAG: &str = "launch-gate:breaker";

/// The group tag listing the newest launches the gate abandoned through an environment
/// outage (space-separated instance ids, at most 256 characters): the launch-loop breaker
/// does not count them.
pub const ENVIRONMENT_TAG: &str = "launch-gate:environment-abandons";

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

/// The lifecycle states in which a launch lifecycle hook holds an instance:
/// `Pending:Wait` (launching into the group) and `Warmed:Pending:Wait` (launching into the
/// warm pool).
pub const LAUNCH_WAIT_STATES: [&str; 2] = ["Pending:Wait", "Warmed:Pending:Wait"];

/// An instance as Auto Scaling knows it, from `DescribeAutoScalingInstances`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupMember {
    /// `AutoScalingGroupName`.
    pub group_name: String,
    /// `LifecycleState`, for example `Pending:Wait`, `Warmed:Pending:Wait`, `InService`.
    pub lifecycle_state: String,
}

impl GroupMember {
    /// True while a launch lifecycle hook holds it ([`LAUNCH_WAIT_STATES`]).
    pub fn is_held_at_launch(&self) -> bool {
        LAUNCH_WAIT_STATES.contains(&self.lifecycle_state.as_str())
    }

    /// True when it is launching into the warm pool (`Warmed:Pending:Wait`).
    pub fn is_warm_pool_entry(&self) -> bool {
        self.lifecycle_state.starts_with("Warmed:")
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
        /// The SDK had sent this call before (a retry after a timeout or a 5xx): an
        /// earlier attempt may have taken effect, its answer lost.
        retried: bool,
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
    /// AWS's error code, when AWS answered one (`AccessDenied`, `Throttling`, ...).
    pub code: Option<String>,
    /// The SDK error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl AwsError {
    /// An error that is not an answer from AWS (a missing setting, a rejected entry).
    pub fn local(operation: &'static str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            operation,
            code: None,
            source: Box::new(std::io::Error::other(message.clone())),
            message,
        }
    }

    /// True when AWS refused the call for want of permission (`AccessDenied`,
    /// `AccessDeniedException`, `UnauthorizedOperation`).
    pub fn is_access_denied(&self) -> bool {
        self.code
            .as_deref()
            .is_some_and(|c| c.starts_with("AccessDenied") || c == "UnauthorizedOperation")
    }
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

    /// Tags the instance with [`DECISION_TAG`] = `decision`: `CreateTags`.
    fn tag_decision(
        &self,
        instance_id: &str,
        decision: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// The instances among `instance_ids` EC2 still knows (terminated instances stay
    /// visible for about an hour), in one `DescribeInstances` with an `instance-id`
    /// filter, so that unknown ids are left out rather than failing the call.
    fn describe_instances(
        &self,
        instance_ids: &[String],
    ) -> impl Future<Output = Result<Vec<(String, InstanceInfo)>, AwsError>> + Send;
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

    /// Restarts the action's heartbeat timer, naming the action by its token (when it has
    /// one) and its instance id both: at admission, an accepted heartbeat proves the
    /// token live for that instance where AWS checks the two together. Once admitted, the
    /// gate names the action without its token, by instance id, as it completes it.
    fn record_heartbeat(
        &self,
        action: &LifecycleAction,
    ) -> impl Future<Output = Result<ActionAnswer, AwsError>> + Send;

    /// Completes the action by group, hook and instance id, never by the claim's token:
    /// the instance decided is always the one probed, whether AWS resolves a token alone
    /// or checks it against the instance id (it does not document which).
    fn complete(
        &self,
        action: &LifecycleAction,
        result: LifecycleActionResult,
    ) -> impl Future<Output = Result<ActionAnswer, AwsError>> + Send;
}

/// Whether `arn` is an Elastic Load Balancing target group
/// (`arn:<partition>:elasticloadbalancing:...:targetgroup/...`), whose health check the
/// gate can run; a VPC Lattice target group (`arn:<partition>:vpc-lattice:...`) is not.
pub fn is_elb_target_group(arn: &str) -> bool {
    arn.split(':').nth(2) == Some("elasticloadbalancing") && arn.contains(":targetgroup/")
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

impl std::fmt::Display for TargetHealth {
    /// `State / Reason: Description`, verbatim.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} / {}: {}",
            self.state,
            self.reason.as_deref().unwrap_or(""),
            self.description.as_deref().unwrap_or("")
        )
    }
}

/// Auto Scaling groups: `DescribeAutoScalingGroups`.
pub trait AutoScalingGroups: Send + Sync {
    /// The group's target groups: `TargetGroupARNs` and ELBv2 traffic sources, without
    /// duplicates. `None` when the group does not exist.
    fn target_group_arns(
        &self,
        group_name: &str,
    ) -> impl Future<Output = Result<Option<Vec<String>>, AwsError>> + Send;

    /// The instance's group and lifecycle state: `DescribeAutoScalingInstances`. `None`
    /// when it is a member of no group (or Auto Scaling does not know it).
    fn describe_group_member(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = Result<Option<GroupMember>, AwsError>> + Send;

    /// The names of the groups, every one or those with the tag `(key, value)`:
    /// `DescribeAutoScalingGroups` (a `tag:<key>` filter), every page.
    fn group_names(
        &self,
        tag: Option<(&str, &str)>,
    ) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;

    /// The group's instances held by a launch lifecycle hook: `Pending:Wait`, and
    /// `Warmed:Pending:Wait` in its warm pool.
    fn pending_instances(
        &self,
        group_name: &str,
    ) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;

    /// The group's suspended processes and tags; `None` when the group does not exist.
    fn group_state(
        &self,
        group_name: &str,
    ) -> impl Future<Output = Result<Option<GroupState>, AwsError>> + Send;

    /// The group's scaling activities that started at or after `since` (seconds since the
    /// Unix epoch), newest first: `DescribeScalingActivities`, 100 a page, at most 10 pages.
    fn scaling_activities(
        &self,
        group_name: &str,
        since: u64,
    ) -> impl Future<Output = Result<Vec<ScalingActivity>, AwsError>> + Send;

    /// Sets a tag on the group, not propagated to instances: `CreateOrUpdateTags`.
    fn tag_group(
        &self,
        group_name: &str,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Suspends the `Launch` process: `SuspendProcesses`. The group launches nothing until
    /// `ResumeProcesses`.
    fn suspend_launch(&self, group_name: &str)
    -> impl Future<Output = Result<(), AwsError>> + Send;

    /// `RollbackInstanceRefresh`.
    fn rollback_instance_refresh(
        &self,
        group_name: &str,
    ) -> impl Future<Output = Result<RefreshAnswer, AwsError>> + Send;

    /// `CancelInstanceRefresh`.
    fn cancel_instance_refresh(
        &self,
        group_name: &str,
    ) -> impl Future<Output = Result<RefreshAnswer, AwsError>> + Send;
}

/// What `DescribeAutoScalingGroups` says of a group, for the breaker and the grace period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupState {
    /// `SuspendedProcesses[].ProcessName`.
    pub suspended_processes: Vec<String>,
    /// `Tags`, key and value.
    pub tags: Vec<(String, String)>,
    /// `HealthCheckGracePeriod`: how long the group waits before it checks a new
    /// instance's health (whole seconds).
    pub health_check_grace_period: Option<Duration>,
    /// `Instances`: the group's members as Auto Scaling lists them.
    pub instances: Vec<GroupInstance>,
}

/// One member of a group, from `DescribeAutoScalingGroups`' `Instances`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupInstance {
    /// `InstanceId`.
    pub instance_id: String,
    /// `LifecycleState`: `InService`, `Standby`, `Terminating`, `Pending:Wait`, ...
    pub lifecycle_state: String,
    /// `HealthStatus`: `Healthy` or `Unhealthy`.
    pub health_status: String,
    /// `LaunchTemplate.Version` it was launched from, when a launch template was used.
    pub launch_template_version: Option<String>,
}

impl GroupState {
    /// The value of the tag `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One scaling activity of a group, from `DescribeScalingActivities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalingActivity {
    /// `ActivityId`.
    pub id: String,
    /// `Description`, for example `Launching a new EC2 instance: i-0abc...`.
    pub description: String,
    /// `StatusCode`: `MidLifecycleAction`, `Successful`, `Cancelled`, `Failed`, ...
    pub status_code: String,
    /// `StatusMessage`.
    pub status_message: Option<String>,
    /// `StartTime`, seconds since the Unix epoch.
    pub start_time: u64,
    /// `EndTime`, seconds since the Unix epoch.
    pub end_time: Option<u64>,
}

/// The answer to `RollbackInstanceRefresh` or `CancelInstanceRefresh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshAnswer {
    /// Accepted: the refresh's `InstanceRefreshId`.
    Accepted(String),
    /// `ActiveInstanceRefreshNotFound`: no instance refresh is in progress.
    NotFound(String),
    /// `IrreversibleInstanceRefresh`: a rollback is not possible (no desired
    /// configuration, `$Latest` or `$Default`, an AMI from a Systems Manager parameter).
    Irreversible(String),
}

/// Amazon EventBridge: `PutEvents`.
pub trait Events: Send + Sync {
    /// Puts one event on `bus` (a name or an ARN) with `Source` `source`, `DetailType`
    /// `detail_type` and `Detail` `detail` (a JSON object, at most 256 KB with the rest).
    /// A rejected entry (`FailedEntryCount` 1) is an error.
    fn put_event(
        &self,
        bus: &str,
        source: &str,
        detail_type: &str,
        detail: &serde_json::Value,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
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
    LifecycleActions + Instances + AutoScalingGroups + TargetGroups + Continuations + Events
{
}

impl<T> Aws for T where
    T: LifecycleActions + Instances + AutoScalingGroups + TargetGroups + Continuations + Events
{
}

/// A launch template as a group or an instance refresh names it: `LaunchTemplate`, or a
/// `MixedInstancesPolicy`'s `LaunchTemplateSpecification`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TemplateSpec {
    /// `LaunchTemplateId`.
    pub id: Option<String>,
    /// `LaunchTemplateName`.
    pub name: Option<String>,
    /// `Version`: a number, `$Latest` or `$Default` (absent means `$Default`).
    pub version: Option<String>,
}

/// One instance refresh, from `DescribeInstanceRefreshes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefreshView {
    /// `InstanceRefreshId`.
    pub id: String,
    /// `Status`: `Pending`, `InProgress`, `Successful`, `Failed`, `Cancelling`,
    /// `Cancelled`, `RollbackInProgress`, `RollbackFailed`, `RollbackSuccessful`, `Baking`.
    pub status: String,
    /// `StatusReason`.
    pub status_reason: Option<String>,
    /// The launch template of its `DesiredConfiguration`, as given when it was started.
    pub desired: Option<TemplateSpec>,
}

impl RefreshView {
    /// Whether it still works toward its desired configuration.
    pub fn is_rolling_out(&self) -> bool {
        matches!(self.status.as_str(), "Pending" | "InProgress" | "Baking")
    }
}

/// What `launch-gate rollout` reads of a group at each poll, as AWS shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSnapshot {
    /// `DesiredCapacity`.
    pub desired_capacity: u32,
    /// The group's instances that are `InService`.
    pub in_service: Vec<String>,
    /// `SuspendedProcesses`.
    pub suspended_processes: Vec<String>,
    /// The group's [`BREAKER_TAG`] tag, verbatim.
    pub breaker_tag: Option<String>,
    /// The group's [`ENVIRONMENT_TAG`] tag, verbatim.
    pub environment_tag: Option<String>,
    /// The newest instance refresh.
    pub refresh: Option<RefreshView>,
    /// Every instance EC2 shows with the group's `aws:autoscaling:groupName` tag
    /// (terminated ones for about an hour, while their tags last).
    pub instances: Vec<(String, InstanceInfo)>,
}

/// The reads of `launch-gate rollout`: `DescribeAutoScalingGroups`,
/// `DescribeInstanceRefreshes`, `DescribeInstances`, `DescribeLaunchTemplates`.
pub trait RolloutReads: Send + Sync {
    /// The group's state and the launch template it names; `None` when the group does
    /// not exist.
    fn rollout_snapshot(
        &self,
        group_name: &str,
    ) -> impl Future<Output = Result<Option<(GroupSnapshot, Option<TemplateSpec>)>, AwsError>> + Send;

    /// The numbered version `version` (`$Latest`, `$Default`, absent, or a number) of
    /// `template`; `None` when EC2 does not know the template.
    fn resolve_launch_template(
        &self,
        template: &TemplateSpec,
        version: Option<&str>,
    ) -> impl Future<Output = Result<Option<LaunchTemplateVersion>, AwsError>> + Send;
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_elastic_load_balancing_target_groups_are_checked() {
        assert!(super::is_elb_target_group(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"
        ));
        assert!(super::is_elb_target_group(
            "arn:aws-cn:elasticloadbalancing:cn-north-1:123456789012:targetgroup/web/01"
        ));
        assert!(!super::is_elb_target_group(
            "arn:aws:vpc-lattice:us-east-1:123456789012:targetgroup/tg-0123456789abcdef0"
        ));
        assert!(!super::is_elb_target_group("web"));
    }
}
