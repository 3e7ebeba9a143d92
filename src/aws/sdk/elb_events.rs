//! Target groups (ELBv2) and EventBridge over the SDK.

use super::*;

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
        Ok(target_health(health))
    }
}

/// ELB's answer for one target, verbatim; no answer is `unavailable`.
pub(super) fn target_health(
    health: Option<&aws_sdk_elasticloadbalancingv2::types::TargetHealth>,
) -> TargetHealth {
    TargetHealth {
        state: health
            .and_then(|h| h.state())
            .map_or_else(|| "unavailable".to_owned(), |s| s.as_str().to_owned()),
        reason: health
            .and_then(|h| h.reason())
            .map(|r| r.as_str().to_owned()),
        description: health.and_then(|h| h.description()).map(str::to_owned),
    }
}

pub(super) fn target(
    instance_id: &str,
    port: u16,
) -> aws_sdk_elasticloadbalancingv2::types::TargetDescription {
    aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
        .id(instance_id)
        .port(i32::from(port))
        .build()
}
