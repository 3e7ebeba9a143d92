//! Auto Scaling groups over the SDK: members, held instances, state, scaling activities,
//! and the breaker's actions.

use super::*;
use crate::aws::GroupInstance;

/// The group's instances in `lifecycle_state`.
pub(super) fn instances_in(
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
pub(super) fn group_state_of(group: &aws_sdk_autoscaling::types::AutoScalingGroup) -> GroupState {
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
        health_check_grace_period: group
            .health_check_grace_period()
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs),
        instances: group
            .instances()
            .iter()
            .filter_map(|i| {
                Some(GroupInstance {
                    instance_id: i.instance_id()?.to_owned(),
                    lifecycle_state: i.lifecycle_state()?.as_str().to_owned(),
                    health_status: i.health_status().unwrap_or_default().to_owned(),
                    launch_template_version: i
                        .launch_template()
                        .and_then(|t| t.version())
                        .map(str::to_owned),
                })
            })
            .collect(),
    }
}

impl SdkAws {
    pub(super) async fn describe_group(
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
    async fn group_names(&self, tag: Option<(&str, &str)>) -> Result<Vec<String>, AwsError> {
        let mut call = self.autoscaling.describe_auto_scaling_groups();
        if let Some((key, value)) = tag {
            call = call.filters(
                aws_sdk_autoscaling::types::Filter::builder()
                    .name(format!("tag:{key}"))
                    .values(value)
                    .build(),
            );
        }
        let mut pages = call.into_paginator().send();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("DescribeAutoScalingGroups", e))?;
            names.extend(
                page.auto_scaling_groups()
                    .iter()
                    .filter_map(|g| g.auto_scaling_group_name().map(str::to_owned)),
            );
        }
        Ok(names)
    }

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
            .map(|g| instances_in(&g, crate::aws::LAUNCH_WAIT_STATES[0]))
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
                            == Some(crate::aws::LAUNCH_WAIT_STATES[1])
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
        // Every target group among the traffic sources: ELB's, and VPC Lattice's, which
        // the caller names and skips (`is_elb_target_group`).
        for source in group.traffic_sources() {
            let is_target_group = matches!(source.r#type(), Some("elbv2" | "vpc-lattice"))
                || source
                    .identifier()
                    .is_some_and(|i| i.contains(":targetgroup/"));
            if let Some(arn) = source.identifier().filter(|_| is_target_group)
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
pub(super) fn refresh_answer<E>(
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
