//! The reads of `launch-gate rollout` over the SDK.

use super::groups::{group_state_of, instances_in};
use super::*;

/// The launch template of a group or a desired configuration: its `LaunchTemplate`, or its
/// `MixedInstancesPolicy`'s.
pub(super) fn template_spec(
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
            breaker_tag: state.tag(crate::aws::BREAKER_TAG).map(str::to_owned),
            environment_tag: state.tag(crate::aws::ENVIRONMENT_TAG).map(str::to_owned),
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
