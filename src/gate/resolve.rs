//! The instance as EC2 describes it: running, with a private IP that is never link-local.

use super::*;
use crate::probe::is_never_probed;

impl<P: Prober, A: Aws> Gate<P, A> {
    /// Waits for EC2 to report the instance with a private IP; the instance as EC2 then
    /// describes it (`private_ip` set). `None` when the gate ends here.
    pub(super) async fn resolve(
        &self,
        hold: &LifecycleActionHold<'_, A>,
        record: &mut DecisionRecord,
        clock: &mut Clock,
    ) -> Result<Option<InstanceInfo>, GateError> {
        let action = hold.action;
        let give_up = Instant::now() + RESOLVE_WAIT;
        loop {
            let now = Instant::now();
            if !hold.keep_alive(record, clock, now).await {
                return Ok(None);
            }
            // Throttled or slow (many launches at once): asked again within RESOLVE_WAIT,
            // as an instance EC2 does not know yet. A permission error is final.
            let described = match self.aws.describe_instance(&action.instance_id).await {
                Ok(d) => Ok(d),
                Err(e) if e.is_access_denied() => return Err(e.into()),
                Err(e) => Err(e),
            };
            let described = match described {
                Ok(d) => d,
                Err(e) => {
                    let next = Instant::now() + Duration::from_secs(2);
                    if next > give_up || next > clock.wait_deadline {
                        return Err(e.into());
                    }
                    warn!(instance_id = %action.instance_id, error = %e, "DescribeInstances failed; asking again");
                    sleep_until(next).await;
                    continue;
                }
            };
            match described {
                Some(info) if info.is_gone() => {
                    record.outcome = Outcome::InstanceGone;
                    record.reason = format!("the instance is {}: nothing to complete", info.state);
                    return Ok(None);
                }
                Some(InstanceInfo {
                    private_ip: Some(ip),
                    ..
                }) if is_never_probed(ip) => {
                    // The metadata service and other host services live there: never a
                    // target, whatever EC2 or an event says.
                    record.hand_off(format_args!(
                        "refusing to probe {ip}: a link-local, metadata, unspecified, broadcast, multicast or IPv4-mapped address is never a target"
                    ));
                    error!(instance_id = %action.instance_id, %ip, "refused a private IP that is never probed");
                    return Ok(None);
                }
                // Running, not only addressed: EC2 gives a private IP while the instance is
                // still `pending`, and ELB refuses to register a target that is not running.
                Some(info) if info.private_ip.is_some() && info.state == "running" => {
                    record.launch_template = info.launch_template.clone();
                    return Ok(Some(info));
                }
                other => {
                    let what = match &other {
                        Some(i) if i.private_ip.is_some() => "is still pending",
                        Some(_) => "has no private IP yet",
                        None => "is not known to EC2 yet",
                    };
                    let next = Instant::now() + Duration::from_secs(2);
                    if next > give_up
                        || clock.handoff_at.is_some_and(|h| next > h)
                        || next > clock.wait_deadline
                    {
                        record.hand_off(format_args!(
                            "the instance {what} after {} s",
                            RESOLVE_WAIT.as_secs()
                        ));
                        return Ok(None);
                    }
                    sleep_until(next).await;
                }
            }
        }
    }
}
