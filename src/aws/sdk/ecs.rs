//! The ECS port over the SDK: a service, its deployment and revision, its tasks, the
//! container instances they run on, and a target group's targets.

use super::*;
use crate::aws::ecs::{
    ConfiguredHook, DeploymentStatus, EcsDeployments, LoadBalancerEntry, PortBinding,
    ServiceDeploymentView, ServiceRevisionView, ServiceView, TargetEntry, TaskDeployment, TaskView,
};
use serde_json::Value;

fn secs(t: Option<&aws_sdk_ecs::primitives::DateTime>) -> Option<u64> {
    t.and_then(|t| u64::try_from(t.secs()).ok())
}

/// A smithy document (the SDK's type for `hookDetails`) as JSON.
fn json(doc: &aws_smithy_types::Document) -> Value {
    use aws_smithy_types::{Document, Number};
    match doc {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(n)) => Value::from(*n),
        Document::Number(Number::NegInt(n)) => Value::from(*n),
        Document::Number(Number::Float(f)) => Value::from(*f),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(a) => Value::Array(a.iter().map(json).collect()),
        Document::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), json(v))).collect()),
    }
}

fn load_balancers(entries: &[aws_sdk_ecs::types::LoadBalancer]) -> Vec<LoadBalancerEntry> {
    entries
        .iter()
        .map(|b| LoadBalancerEntry {
            target_group_arn: b.target_group_arn().map(str::to_owned),
            alternate_target_group_arn: b
                .advanced_configuration()
                .and_then(|a| a.alternate_target_group_arn())
                .map(str::to_owned),
            container_name: b.container_name().map(str::to_owned),
            container_port: b.container_port().and_then(|p| u16::try_from(p).ok()),
        })
        .collect()
}

impl EcsDeployments for SdkAws {
    async fn describe_service(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Option<ServiceView>, AwsError> {
        let out = self
            .ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .map_err(|e| aws_error("DescribeServices", e))?;
        Ok(out.services().first().map(|s| ServiceView {
            arn: s.service_arn().unwrap_or_default().to_owned(),
            hooks: s
                .deployment_configuration()
                .map(|c| c.lifecycle_hooks())
                .unwrap_or_default()
                .iter()
                .map(|h| ConfiguredHook {
                    target_arn: h.hook_target_arn().unwrap_or_default().to_owned(),
                    stages: h
                        .lifecycle_stages()
                        .iter()
                        .map(|s| s.as_str().to_owned())
                        .collect(),
                    hook_details: h.hook_details().map(json),
                    timeout_minutes: h
                        .timeout_configuration()
                        .and_then(|t| t.timeout_in_minutes())
                        .and_then(|m| u32::try_from(m).ok()),
                    timeout_action: h
                        .timeout_configuration()
                        .and_then(|t| t.action())
                        .map(|a| a.as_str().to_owned()),
                })
                .collect(),
            deployments: s
                .deployments()
                .iter()
                .map(|d| TaskDeployment {
                    id: d.id().unwrap_or_default().to_owned(),
                    status: d.status().unwrap_or_default().to_owned(),
                    task_definition: d.task_definition().unwrap_or_default().to_owned(),
                })
                .collect(),
            load_balancers: load_balancers(s.load_balancers()),
        }))
    }

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
                status: DeploymentStatus::parse(d.status().map(|s| s.as_str())),
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
            .map(|r| ServiceRevisionView {
                arn: arn.to_owned(),
                task_definition: r.task_definition().unwrap_or_default().to_owned(),
                resolved_target_group_arn: r
                    .resolved_configuration()
                    .and_then(|c| c.load_balancers().first())
                    .and_then(|l| l.target_group_arn())
                    .map(str::to_owned),
                load_balancers: load_balancers(r.load_balancers()),
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
                let bindings = t
                    .containers()
                    .iter()
                    .flat_map(|c| {
                        c.network_bindings().iter().filter_map(move |b| {
                            Some(PortBinding {
                                container_name: c.name().unwrap_or_default().to_owned(),
                                container_port: u16::try_from(b.container_port()?).ok()?,
                                host_port: u16::try_from(b.host_port()?).ok()?,
                            })
                        })
                    })
                    .collect();
                tasks.push(TaskView {
                    arn: t.task_arn().unwrap_or_default().to_owned(),
                    task_definition: t.task_definition_arn().unwrap_or_default().to_owned(),
                    last_status: t.last_status().unwrap_or_default().to_owned(),
                    started_by: t.started_by().map(str::to_owned),
                    private_ip,
                    container_instance_arn: t.container_instance_arn().map(str::to_owned),
                    bindings,
                });
            }
        }
        Ok(tasks)
    }

    async fn container_instances(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> Result<Vec<(String, String)>, AwsError> {
        let mut found = Vec::new();
        for chunk in arns.chunks(100) {
            let out = self
                .ecs
                .describe_container_instances()
                .cluster(cluster)
                .set_container_instances(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| aws_error("DescribeContainerInstances", e))?;
            found.extend(out.container_instances().iter().filter_map(|c| {
                Some((
                    c.container_instance_arn()?.to_owned(),
                    c.ec2_instance_id()?.to_owned(),
                ))
            }));
        }
        Ok(found)
    }

    async fn target_group_health(
        &self,
        target_group_arn: &str,
    ) -> Result<Vec<TargetEntry>, AwsError> {
        let out = self
            .elbv2
            .describe_target_health()
            .target_group_arn(target_group_arn)
            .send()
            .await
            .map_err(|e| aws_error("DescribeTargetHealth", e))?;
        Ok(out
            .target_health_descriptions()
            .iter()
            .filter_map(|d| {
                let target = d.target()?;
                Some(TargetEntry {
                    id: target.id()?.to_owned(),
                    port: target.port().and_then(|p| u16::try_from(p).ok()),
                    health: super::elb_events::target_health(d.target_health()),
                })
            })
            .collect())
    }
}
