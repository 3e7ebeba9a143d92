//! The scheduled sweep: held launches whose event was lost, found in Auto Scaling and
//! claimed, to be gated by instance id.

use super::*;

impl<P: Prober, A: Aws> Gate<P, A> {
    /// The scheduled sweep: the launches of the served groups held in `Pending:Wait` by a
    /// served hook, whose instance no gate claims (lifecycle events reach EventBridge best
    /// effort, and some are lost). Each is claimed, then gated like a delivered event,
    /// completing by instance id since its token is unknown.
    ///
    /// # Errors
    /// [`GateError::Aws`] when listing or claiming fails after retries.
    pub(super) async fn sweep(&self) -> Result<Vec<LifecycleAction>, GateError> {
        let groups = self.served_groups().await?;
        if groups.is_empty() {
            warn!(
                "the sweep needs the groups to look at: LAUNCH_GATE_GROUP_NAMES, LAUNCH_GATE_GROUP_NAME_PREFIXES or LAUNCH_GATE_GROUP_TAG; nothing swept"
            );
            return Ok(Vec::new());
        }
        let now = epoch_seconds();
        let mut found = Vec::new();
        for group in &groups {
            let pending = self.aws.pending_instances(group).await?;
            if pending.is_empty() {
                continue;
            }
            // One DescribeInstances for the group; the first served hook takes what no
            // gate claims.
            let mut unclaimed: Vec<String> = self
                .aws
                .describe_instances(&pending)
                .await?
                .into_iter()
                .filter(|(_, info)| {
                    !info.is_gone() && info.claimed_until.is_none_or(|until| until <= now)
                })
                .map(|(id, _)| id)
                .collect();
            for hook_name in &self.config.hook_names {
                if unclaimed.is_empty() {
                    break;
                }
                let Some(hook) = self.aws.describe_lifecycle_hook(group, hook_name).await? else {
                    continue;
                };
                if hook.transition.as_deref() != Some(event::LAUNCHING) {
                    continue;
                }
                for instance_id in std::mem::take(&mut unclaimed) {
                    let instance_id = &instance_id;
                    self.aws
                        .claim(instance_id, now + hook.heartbeat_timeout.as_secs())
                        .await?;
                    info!(instance_id = %instance_id, group = %group, hook = %hook_name, "the sweep found a held launch no gate works on; gating it");
                    found.push(LifecycleAction {
                        token: None,
                        group_name: group.clone(),
                        hook_name: hook_name.clone(),
                        instance_id: instance_id.clone(),
                        transition: event::LAUNCHING.to_owned(),
                        notification_metadata: hook.notification_metadata.clone(),
                        origin: None,
                        destination: None,
                        sent_at: None,
                        delivery: event::Delivery::Sweep,
                    });
                }
            }
        }
        Ok(found)
    }

    /// The groups the gate serves, as Auto Scaling lists them now: the names, the groups
    /// whose name starts with a prefix, and the groups with the tag (a group created after
    /// the gate was deployed included). Empty when none of the three is set.
    async fn served_groups(&self) -> Result<Vec<String>, GateError> {
        let c = &self.config;
        let mut groups = c.group_names.clone().unwrap_or_default();
        if !c.group_name_prefixes.is_empty() {
            groups.extend(self.aws.group_names(None).await?.into_iter().filter(|g| {
                c.group_name_prefixes
                    .iter()
                    .any(|p| g.starts_with(p.as_str()))
            }));
        }
        if let Some(tag) = c.group_tag_pair() {
            groups.extend(self.aws.group_names(Some(tag)).await?);
        }
        groups.sort();
        groups.dedup();
        Ok(groups)
    }
}
