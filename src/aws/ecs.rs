//! The ECS port: what the gate reads of a service deployment, its green revision and its
//! tasks. Every answer is ECS's, never the invocation's.

use std::future::Future;
use std::net::IpAddr;

use serde::Serialize;

use super::AwsError;

/// A service deployment, as `DescribeServiceDeployments` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceDeploymentView {
    /// `serviceDeploymentArn`.
    pub arn: String,
    /// `serviceArn`.
    pub service_arn: String,
    /// `clusterArn`.
    pub cluster_arn: String,
    /// `status`: `IN_PROGRESS`, `SUCCESSFUL`, `ROLLBACK_IN_PROGRESS`, ...
    pub status: String,
    /// `lifecycleStage`, when ECS gives it.
    pub lifecycle_stage: Option<String>,
    /// `targetServiceRevision.arn`: the green revision.
    pub target_revision_arn: Option<String>,
    /// `targetServiceRevision.requestedTaskCount`.
    pub requested_task_count: u32,
    /// `startedAt` (or `createdAt`), seconds since the Unix epoch.
    pub started_at: Option<u64>,
    /// `lifecycleHookDetails`: each Lambda hook's target and status.
    pub hooks: Vec<(String, String)>,
}

/// The green revision, as `DescribeServiceRevisions` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceRevisionView {
    /// `serviceRevisionArn`.
    pub arn: String,
    /// `taskDefinition`: its tasks run this task definition.
    pub task_definition: String,
    /// The target group the revision's tasks are registered in: its
    /// `resolvedConfiguration.loadBalancers[].targetGroupArn`, else the load balancer's
    /// `advancedConfiguration.alternateTargetGroupArn`.
    pub target_group_arn: Option<String>,
    /// `loadBalancers[].containerPort`: the port the tasks are registered on.
    pub container_port: Option<u16>,
}

/// A task of the service, as `DescribeTasks` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskView {
    /// `taskArn`.
    pub arn: String,
    /// `taskDefinitionArn`.
    pub task_definition: String,
    /// `lastStatus`: `RUNNING`, `PENDING`, `STOPPED`, ...
    pub last_status: String,
    /// The `privateIPv4Address` of its ENI attachment (awsvpc).
    pub private_ip: Option<IpAddr>,
}

/// ECS: `DescribeServiceDeployments`, `DescribeServiceRevisions`, `ListTasks`,
/// `DescribeTasks`.
pub trait EcsDeployments: Send + Sync {
    /// The deployment `arn`; `None` when ECS does not know it.
    fn describe_service_deployment(
        &self,
        arn: &str,
    ) -> impl Future<Output = Result<Option<ServiceDeploymentView>, AwsError>> + Send;

    /// The revision `arn`; `None` when ECS does not know it.
    fn describe_service_revision(
        &self,
        arn: &str,
    ) -> impl Future<Output = Result<Option<ServiceRevisionView>, AwsError>> + Send;

    /// The service's tasks in `cluster` (`ListTasks` with `serviceName`, every page, then
    /// `DescribeTasks` 100 at a time).
    fn service_tasks(
        &self,
        cluster: &str,
        service: &str,
    ) -> impl Future<Output = Result<Vec<TaskView>, AwsError>> + Send;
}
