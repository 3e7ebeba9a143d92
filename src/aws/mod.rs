//! Ports to AWS, named by capability, and their SDK adapters in [`sdk`]. The gate's loop
//! depends on the traits only; tests of the loop pass hand-written fakes, and the
//! end-to-end tests pass the SDK adapters pointed at the AWS emulator.

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
}

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
