//! The ECS port over the SDK: a service deployment, its revision, the service's tasks.

use super::*;
use crate::aws::ecs::{EcsDeployments, ServiceDeploymentView, ServiceRevisionView, TaskView};

fn secs(t: Option<&aws_sdk_ecs::primitives::DateTime>) -> Option<u64> {
    t.and_then(|t| u64::try_from(t.secs()).ok())
}

impl EcsDeployments for SdkAws {
    async fn describe_service_deployment(
        &self,
        arn: &str,
    ) -> Result<Option<ServiceDeploymentView>, AwsError> {
        let out = self
            .ecs
            .describe_service_deployments()
            .service_deployment_arns(arn)
            .send()
            .await
            .map_err(|e| aws_error("DescribeServiceDeployments", e))?;
        Ok(out
            .service_deployments()
            .iter()
            .find(|d| d.service_deployment_arn() == Some(arn))
            .map(|d| ServiceDeploymentView {
                arn: arn.to_owned(),
                service_arn: d.service_arn().unwrap_or_default().to_owned(),
                cluster_arn: d.cluster_arn().unwrap_or_default().to_owned(),
                status: d
                    .status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                lifecycle_stage: d.lifecycle_stage().map(|s| s.as_str().to_owned()),
                target_revision_arn: d
                    .target_service_revision()
                    .and_then(|r| r.arn())
                    .map(str::to_owned),
                requested_task_count: d
                    .target_service_revision()
                    .map_or(0, |r| u32::try_from(r.requested_task_count()).unwrap_or(0)),
                started_at: secs(d.started_at()).or_else(|| secs(d.created_at())),
                hooks: d
                    .lifecycle_hook_details()
                    .iter()
                    .map(|h| {
                        (
                            h.target_arn().unwrap_or_default().to_owned(),
                            h.status()
                                .map(|s| s.as_str().to_owned())
                                .unwrap_or_default(),
                        )
                    })
                    .collect(),
            }))
    }

    async fn describe_service_revision(
        &self,
        arn: &str,
    ) -> Result<Option<ServiceRevisionView>, AwsError> {
        let out = self
            .ecs
            .describe_service_revisions()
            .service_revision_arns(arn)
            .send()
            .await
            .map_err(|e| aws_error("DescribeServiceRevisions", e))?;
        Ok(out
            .service_revisions()
            .iter()
            .find(|r| r.service_revision_arn() == Some(arn))
            .map(|r| {
                let balancer = r.load_balancers().first();
                let resolved = r
                    .resolved_configuration()
                    .and_then(|c| c.load_balancers().first())
                    .and_then(|l| l.target_group_arn());
                ServiceRevisionView {
                    arn: arn.to_owned(),
                    task_definition: r.task_definition().unwrap_or_default().to_owned(),
                    target_group_arn: resolved
                        .or_else(|| {
                            balancer
                                .and_then(|b| b.advanced_configuration())
                                .and_then(|a| a.alternate_target_group_arn())
                        })
                        .map(str::to_owned),
                    container_port: balancer
                        .and_then(|b| b.container_port())
                        .and_then(|p| u16::try_from(p).ok()),
                }
            }))
    }

    async fn service_tasks(&self, cluster: &str, service: &str) -> Result<Vec<TaskView>, AwsError> {
        let mut arns = Vec::new();
        let mut pages = self
            .ecs
            .list_tasks()
            .cluster(cluster)
            .service_name(service)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("ListTasks", e))?;
            arns.extend(page.task_arns().iter().cloned());
        }
        let mut tasks = Vec::new();
        for chunk in arns.chunks(100) {
            let out = self
                .ecs
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| aws_error("DescribeTasks", e))?;
            for t in out.tasks() {
                let private_ip = t
                    .attachments()
                    .iter()
                    .filter(|a| a.r#type() == Some("ElasticNetworkInterface"))
                    .flat_map(|a| a.details())
                    .find(|d| d.name() == Some("privateIPv4Address"))
                    .and_then(|d| d.value())
                    .and_then(|v| v.parse::<IpAddr>().ok());
                tasks.push(TaskView {
                    arn: t.task_arn().unwrap_or_default().to_owned(),
                    task_definition: t.task_definition_arn().unwrap_or_default().to_owned(),
                    last_status: t.last_status().unwrap_or_default().to_owned(),
                    private_ip,
                });
            }
        }
        Ok(tasks)
    }
}
