//! The network path from the gate's function to an instance: security group rules
//! evaluated both ways, as VPC security groups evaluate them.

use super::{Finding, Status, finding};

/// One rule of a security group, from `DescribeSecurityGroups` (`IpPermissions` or
/// `IpPermissionsEgress`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SgRule {
    /// `IpProtocol`: `-1` (all), `tcp`, `6`, ...
    pub protocol: String,
    /// `FromPort`, `ToPort` (absent for all protocols).
    pub ports: Option<(i32, i32)>,
    /// `IpRanges[].CidrIp` and `Ipv6Ranges[].CidrIpv6`.
    pub cidrs: Vec<String>,
    /// `UserIdGroupPairs[].GroupId`.
    pub groups: Vec<String>,
}

impl SgRule {
    fn covers(&self, port: u16) -> bool {
        let tcp = matches!(self.protocol.as_str(), "-1" | "tcp" | "6");
        tcp && self
            .ports
            .is_none_or(|(from, to)| from <= i32::from(port) && i32::from(port) <= to)
    }
}

/// The network path from the function to one in-service instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkView {
    /// The function's security groups: id, egress rules.
    pub function_groups: Vec<(String, Vec<SgRule>)>,
    /// The CIDRs of the function's subnets.
    pub function_cidrs: Vec<String>,
    /// The instance.
    pub instance_id: String,
    /// Its private IP.
    pub instance_ip: Option<std::net::IpAddr>,
    /// Its security groups: id, ingress rules.
    pub instance_groups: Vec<(String, Vec<SgRule>)>,
    /// The ports the gate probes on it: the health port and each target group's health
    /// check port.
    pub ports: Vec<u16>,
}

/// Whether `cidr` (`a.b.c.d/n` or an IPv6 CIDR) contains `ip`.
pub fn cidr_contains(cidr: &str, ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    let Some((net, len)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(len)) = (net.parse::<IpAddr>(), len.parse::<u32>()) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if len <= 128 => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// Whether `outer` contains the whole of `inner` (both CIDRs).
fn cidr_covers(outer: &str, inner: &str) -> bool {
    let (Some((net, len)), Some((_, outer_len))) = (inner.split_once('/'), outer.split_once('/'))
    else {
        return false;
    };
    let (Ok(len), Ok(outer_len)) = (len.parse::<u32>(), outer_len.parse::<u32>()) else {
        return false;
    };
    net.parse().is_ok_and(|ip| cidr_contains(outer, ip)) && outer_len <= len
}

/// Whether the function can reach the instance on each port, evaluating the security
/// groups' rules both ways (egress from the function, ingress to the instance), as VPC
/// security groups do: a rule allows a peer by CIDR or by security group.
pub fn network_finding(n: &NetworkView) -> Finding {
    let mut blocked = Vec::new();
    let function_ids: Vec<&str> = n
        .function_groups
        .iter()
        .map(|(id, _)| id.as_str())
        .collect();
    let instance_ids: Vec<&str> = n
        .instance_groups
        .iter()
        .map(|(id, _)| id.as_str())
        .collect();
    for &port in &n.ports {
        let out = n.function_groups.iter().flat_map(|(_, r)| r).any(|r| {
            r.covers(port)
                && (r.groups.iter().any(|g| instance_ids.contains(&g.as_str()))
                    || n.instance_ip
                        .is_some_and(|ip| r.cidrs.iter().any(|c| cidr_contains(c, ip))))
        });
        let inbound = n.instance_groups.iter().flat_map(|(_, r)| r).any(|r| {
            r.covers(port)
                && (r.groups.iter().any(|g| function_ids.contains(&g.as_str()))
                    || (!n.function_cidrs.is_empty()
                        && n.function_cidrs
                            .iter()
                            .all(|s| r.cidrs.iter().any(|c| cidr_covers(c, s)))))
        });
        if !out {
            blocked.push(format!(
                "{port}: the function's security groups allow no egress to it"
            ));
        }
        if !inbound {
            blocked.push(format!(
                "{port}: the instance's security groups allow no ingress from the function"
            ));
        }
    }
    let fix = match (n.instance_groups.first(), n.function_groups.first()) {
        (Some((instance, _)), Some((function, _))) => format!(
            "aws ec2 authorize-security-group-ingress --group-id {instance} --protocol tcp --port {} --source-group {function}  # and the function's egress to it",
            n.ports.first().copied().unwrap_or(80)
        ),
        _ => "allow the gate's security group on the instances' health port, both ways".into(),
    };
    finding(
        "network.reach",
        if blocked.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        },
        if blocked.is_empty() {
            format!(
                "the function reaches {} on port{} {}",
                n.instance_id,
                if n.ports.len() == 1 { "" } else { "s" },
                n.ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!("{} on port {}", n.instance_id, blocked.join("; port "))
        },
        "every probe times out: each launch is abandoned with cause timeout, healthy or not",
        fix,
    )
}
