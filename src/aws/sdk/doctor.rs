//! What `launch-gate doctor` reads, with read-only calls only: the group's hooks, state,
//! instances and instance refresh; with a function, its configuration, its resource
//! policy and the EventBridge rules that target it.

use super::*;
use crate::doctor::{FunctionView, HookView, NetworkView, RuleView, Setup, SgRule};

/// The launch lifecycle event EventBridge would deliver for `group` and `hook`, to test a
/// rule's pattern against (`TestEventPattern`).
fn sample_event(group: &str, hook: &str) -> String {
    serde_json::json!({
        "version": "0",
        "id": "00000000-0000-0000-0000-000000000000",
        "detail-type": "EC2 Instance-launch Lifecycle Action",
        "source": "aws.autoscaling",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "LifecycleActionToken": "00000000-0000-0000-0000-000000000000",
            "AutoScalingGroupName": group,
            "LifecycleHookName": hook,
            "EC2InstanceId": "i-0123456789abcdef0",
            "LifecycleTransition": crate::event::LAUNCHING,
            "Origin": "EC2",
            "Destination": "AutoScalingGroup",
        }
    })
    .to_string()
}

impl SdkAws {
    /// Everything the doctor judges, for `group` and (with `function`, a name or an ARN)
    /// the gate's function; `None` when the group does not exist. `hook_name` is the hook
    /// the rules' patterns are tested with; with `iam`, the function's role is simulated
    /// for the calls the gate makes (`SimulatePrincipalPolicy`).
    ///
    /// # Errors
    /// [`AwsError`] when a call fails (credentials, permissions, an unknown function).
    pub async fn doctor_setup(
        &self,
        group: &str,
        function: Option<&str>,
        hook_name: &str,
        iam: Option<&aws_sdk_iam::Client>,
    ) -> Result<Option<Setup>, AwsError> {
        let Some(g) = self.describe_group(group).await? else {
            return Ok(None);
        };
        let state = groups::group_state_of(&g);
        let hooks =
            self.autoscaling
                .describe_lifecycle_hooks()
                .auto_scaling_group_name(group)
                .send()
                .await
                .map_err(|e| aws_error("DescribeLifecycleHooks", e))?
                .lifecycle_hooks()
                .iter()
                .map(|h| {
                    let heartbeat = h.heartbeat_timeout().unwrap_or(3600).max(0) as u64;
                    HookView {
                        name: h.lifecycle_hook_name().unwrap_or_default().to_owned(),
                        notification_target: h.notification_target_arn().map(str::to_owned),
                        settings: HookSettings {
                            heartbeat_timeout: Duration::from_secs(heartbeat),
                            global_timeout: Duration::from_secs(h.global_timeout().map_or_else(
                                || (100 * heartbeat).min(172_800),
                                |t| t.max(0) as u64,
                            )),
                            default_result: h.default_result().unwrap_or("ABANDON").to_owned(),
                            transition: h.lifecycle_transition().map(str::to_owned),
                            notification_metadata: h.notification_metadata().map(str::to_owned),
                        },
                    }
                })
                .collect();
        let warm_pool = self
            .autoscaling
            .describe_warm_pool()
            .auto_scaling_group_name(group)
            .send()
            .await
            .ok()
            .is_some_and(|w| w.warm_pool_configuration().is_some());
        let refresh = self
            .autoscaling
            .describe_instance_refreshes()
            .auto_scaling_group_name(group)
            .max_records(1)
            .send()
            .await
            .map_err(|e| aws_error("DescribeInstanceRefreshes", e))?
            .instance_refreshes()
            .first()
            .map(|r| {
                (
                    RefreshView {
                        id: r.instance_refresh_id().unwrap_or_default().to_owned(),
                        status: r
                            .status()
                            .map(|s| s.as_str().to_owned())
                            .unwrap_or_default(),
                        status_reason: r.status_reason().map(str::to_owned),
                        desired: r.desired_configuration().and_then(|d| {
                            rollout::template_spec(d.launch_template(), d.mixed_instances_policy())
                        }),
                    },
                    r.preferences().and_then(|p| p.auto_rollback()),
                )
            });
        let instances = self
            .describe_instances_where("tag:aws:autoscaling:groupName", vec![group.to_owned()])
            .await?;
        let template_version =
            rollout::template_spec(g.launch_template(), g.mixed_instances_policy())
                .map(|t| t.version.unwrap_or_else(|| "$Default".into()));
        let mut setup = Setup {
            group: group.to_owned(),
            hooks,
            tags: state.tags.clone(),
            suspended: state.suspended_processes.clone(),
            breaker_tag: state.tag(crate::aws::BREAKER_TAG).map(str::to_owned),
            warm_pool,
            template_version,
            refresh,
            in_service: groups::instances_in(&g, "InService"),
            instances,
            function: None,
            rules: Vec::new(),
            network: None,
            target_group_ports: Vec::new(),
        };
        let arns = self.target_group_arns(group).await?.unwrap_or_default();
        if !arns.is_empty() {
            for tg in self.describe_target_groups(&arns).await? {
                if let Some(port) = tg.port.and_then(|p| tg.health_check_port_for(p)) {
                    setup.target_group_ports.push(port);
                }
            }
        }
        if let Some(name) = function {
            let config = self
                .lambda
                .get_function_configuration()
                .function_name(name)
                .send()
                .await
                .map_err(|e| aws_error("GetFunctionConfiguration", e))?;
            let arn = config.function_arn().unwrap_or(name).to_owned();
            let variables = config
                .environment()
                .and_then(|e| e.variables())
                .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            if let (Some(vpc), Some(instance)) = (config.vpc_config(), setup.in_service.first()) {
                setup.network = self
                    .network_view(vpc.security_group_ids(), vpc.subnet_ids(), instance)
                    .await?;
            }
            let policy = self
                .lambda
                .get_policy()
                .function_name(name)
                .send()
                .await
                .ok()
                .and_then(|p| p.policy().map(str::to_owned));
            let names = self
                .events
                .list_rule_names_by_target()
                .target_arn(&arn)
                .send()
                .await
                .map_err(|e| aws_error("ListRuleNamesByTarget", e))?
                .rule_names()
                .to_vec();
            for rule in names {
                let described = self
                    .events
                    .describe_rule()
                    .name(&rule)
                    .send()
                    .await
                    .map_err(|e| aws_error("DescribeRule", e))?;
                let matches = match described.event_pattern() {
                    Some(pattern) => self
                        .events
                        .test_event_pattern()
                        .event_pattern(pattern)
                        .event(sample_event(group, hook_name))
                        .send()
                        .await
                        .map_err(|e| aws_error("TestEventPattern", e))?
                        .result(),
                    None => false,
                };
                setup.rules.push(RuleView {
                    name: rule,
                    arn: described.arn().unwrap_or_default().to_owned(),
                    state: described
                        .state()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    matches,
                });
            }
            let event_sources = self
                .lambda
                .list_event_source_mappings()
                .function_name(name)
                .send()
                .await
                .map_err(|e| aws_error("ListEventSourceMappings", e))?
                .event_source_mappings()
                .iter()
                .filter_map(|m| {
                    Some((
                        m.event_source_arn()?.to_owned(),
                        m.state().unwrap_or_default().to_owned(),
                    ))
                })
                .collect();
            let permissions = match (iam, config.role()) {
                (Some(iam), Some(role)) => simulate(
                    iam,
                    role,
                    g.auto_scaling_group_arn().unwrap_or_default(),
                    &arn,
                )
                .await
                .ok(),
                _ => None,
            };
            setup.function = Some(FunctionView {
                arn,
                variables,
                policy,
                event_sources,
                permissions,
            });
        }
        Ok(Some(setup))
    }
}

/// A security group's rules, as the doctor evaluates them.
fn rules(permissions: &[aws_sdk_ec2::types::IpPermission]) -> Vec<SgRule> {
    permissions
        .iter()
        .map(|p| SgRule {
            protocol: p.ip_protocol().unwrap_or("-1").to_owned(),
            ports: p.from_port().zip(p.to_port()),
            cidrs: p
                .ip_ranges()
                .iter()
                .filter_map(|r| r.cidr_ip().map(str::to_owned))
                .chain(
                    p.ipv6_ranges()
                        .iter()
                        .filter_map(|r| r.cidr_ipv6().map(str::to_owned)),
                )
                .collect(),
            groups: p
                .user_id_group_pairs()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_owned))
                .collect(),
        })
        .collect()
}

impl SdkAws {
    /// The function's security groups and subnets against `instance`'s security groups:
    /// `DescribeInstances`, `DescribeSecurityGroups`, `DescribeSubnets`. `None` when the
    /// function is in no security group or EC2 does not show the instance.
    async fn network_view(
        &self,
        function_groups: &[String],
        function_subnets: &[String],
        instance: &str,
    ) -> Result<Option<NetworkView>, AwsError> {
        if function_groups.is_empty() {
            return Ok(None);
        }
        let described = self
            .ec2
            .describe_instances()
            .instance_ids(instance)
            .send()
            .await
            .map_err(|e| aws_error("DescribeInstances", e))?;
        let Some(i) = described
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .next()
        else {
            return Ok(None);
        };
        let instance_groups: Vec<String> = i
            .security_groups()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_owned))
            .collect();
        let ids: Vec<String> = function_groups
            .iter()
            .chain(&instance_groups)
            .cloned()
            .collect();
        let groups = self
            .ec2
            .describe_security_groups()
            .set_group_ids(Some(ids))
            .send()
            .await
            .map_err(|e| aws_error("DescribeSecurityGroups", e))?;
        let find = |id: &str| {
            groups
                .security_groups()
                .iter()
                .find(|g| g.group_id() == Some(id))
        };
        let cidrs = if function_subnets.is_empty() {
            Vec::new()
        } else {
            self.ec2
                .describe_subnets()
                .set_subnet_ids(Some(function_subnets.to_vec()))
                .send()
                .await
                .map_err(|e| aws_error("DescribeSubnets", e))?
                .subnets()
                .iter()
                .filter_map(|s| s.cidr_block().map(str::to_owned))
                .collect()
        };
        Ok(Some(NetworkView {
            function_groups: function_groups
                .iter()
                .map(|id| {
                    (
                        id.clone(),
                        find(id).map_or_else(Vec::new, |g| rules(g.ip_permissions_egress())),
                    )
                })
                .collect(),
            function_cidrs: cidrs,
            instance_id: instance.to_owned(),
            instance_ip: i.private_ip_address().and_then(|ip| ip.parse().ok()),
            instance_groups: instance_groups
                .iter()
                .map(|id| {
                    (
                        id.clone(),
                        find(id).map_or_else(Vec::new, |g| rules(g.ip_permissions())),
                    )
                })
                .collect(),
            ports: Vec::new(),
        }))
    }
}

/// The calls the gate makes, by the resource IAM authorizes them on: the group, every
/// resource (describe calls), an instance, the function itself.
fn gate_calls(group_arn: &str, function_arn: &str) -> Vec<(Vec<&'static str>, String)> {
    let (region, account) = {
        let parts: Vec<&str> = group_arn.split(':').collect();
        (
            parts.get(3).copied().unwrap_or("us-east-1").to_owned(),
            parts.get(4).copied().unwrap_or("000000000000").to_owned(),
        )
    };
    vec![
        (
            vec![
                "autoscaling:CompleteLifecycleAction",
                "autoscaling:RecordLifecycleActionHeartbeat",
            ],
            group_arn.to_owned(),
        ),
        (
            vec![
                "autoscaling:DescribeLifecycleHooks",
                "autoscaling:DescribeAutoScalingGroups",
                "autoscaling:DescribeAutoScalingInstances",
                "ec2:DescribeInstances",
                "elasticloadbalancing:DescribeTargetGroups",
            ],
            "*".to_owned(),
        ),
        (
            vec!["ec2:CreateTags"],
            format!("arn:aws:ec2:{region}:{account}:instance/i-0123456789abcdef0"),
        ),
        (vec!["lambda:InvokeFunction"], function_arn.to_owned()),
    ]
}

/// `SimulatePrincipalPolicy` of `role` for the gate's calls: action, resource, decision.
async fn simulate(
    iam: &aws_sdk_iam::Client,
    role: &str,
    group_arn: &str,
    function_arn: &str,
) -> Result<Vec<(String, String, String)>, AwsError> {
    let mut out = Vec::new();
    for (actions, resource) in gate_calls(group_arn, function_arn) {
        let answer = iam
            .simulate_principal_policy()
            .policy_source_arn(role)
            .set_action_names(Some(actions.iter().map(|a| (*a).to_owned()).collect()))
            .resource_arns(&resource)
            .send()
            .await
            .map_err(|e| aws_error("SimulatePrincipalPolicy", e))?;
        for r in answer.evaluation_results() {
            out.push((
                r.eval_action_name().to_owned(),
                r.eval_resource_name().unwrap_or(&resource).to_owned(),
                r.eval_decision().as_str().to_owned(),
            ));
        }
    }
    Ok(out)
}
