//! From a failed probe to its likely cause and the fix, in the words of the field. Pure:
//! no I/O.
//!
//! Each cause has a stable `code` (for metrics, alarms and searches), a one-line
//! `summary` of what was seen, and a `fix` sentence.

use serde::Serialize;
use serde_json::Value;

use crate::aws::TargetHealth;
use crate::probe::{ProbeError, ProbeOutcome, ProbeRequest};
use crate::text::clip;

/// The cause of a failed probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// Stable identifier, `snake_case`.
    pub code: &'static str,
    /// What was seen, one line.
    pub summary: String,
    /// What to change, one sentence.
    pub fix: String,
    /// The target group whose health check failed, when it was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_group: Option<String>,
    /// The ELB target health reason this failure is, or would be
    /// (`Target.ResponseCodeMismatch`, `Target.Timeout`, `Target.FailedHealthChecks`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elb_reason: Option<String>,
}

/// Diagnoses a failed probe. Returns `None` for a probe that passed.
pub fn diagnose(request: &ProbeRequest, outcome: &ProbeOutcome) -> Option<Diagnosis> {
    if outcome.passed {
        return None;
    }
    let url = request.url();
    let d = |code, summary: String, fix: String| {
        Some(Diagnosis {
            code,
            summary,
            fix,
            target_group: None,
            elb_reason: None,
        })
    };
    if let Some(error) = &outcome.error {
        let timeout = request.timeout.as_secs_f64();
        return match error {
            ProbeError::ConnectionRefused => d(
                "connection_refused",
                format!("GET {url}: connection refused, nothing listens on port {}", request.port),
                "Start the app server on the instance (its log says why it did not start, for example settings that raise on a missing environment variable) and bind it to 0.0.0.0 or the private IP on this port.".into(),
            ),
            ProbeError::Timeout { phase: "connect" } => d(
                "timeout",
                format!("GET {url}: no connection within {timeout} s"),
                format!("Allow the gate's (and the load balancer's) security group in the instance's security group on port {}, or check that the instance is up.", request.port),
            ),
            ProbeError::Timeout { phase } => d(
                "timeout",
                format!("GET {url}: connected, but no complete {phase} within {timeout} s"),
                "The app accepted the connection but is hung or too slow: check its workers (all busy or blocked on a dependency) and make the health endpoint answer within the timeout.".into(),
            ),
            ProbeError::ConnectionReset => d(
                "connection_reset",
                format!("GET {url}: the connection was closed before a complete response"),
                "The app server dropped the request: check its error log for a worker crash or a request rejected before it reached the app.".into(),
            ),
            ProbeError::Tls { detail } => d(
                "tls_failed",
                format!("GET {url}: the TLS handshake failed ({detail})"),
                "The port does not complete a TLS handshake, as an HTTPS health check needs: serve TLS on it, or set the health check protocol to HTTP if the app speaks plain HTTP there.".into(),
            ),
            ProbeError::MalformedResponse { detail } => d(
                "malformed_response",
                format!("GET {url}: the answer is not HTTP/1.x ({detail})"),
                "Something other than the HTTP app listens on this port (a TLS-only listener, another protocol): point the health check at the app's plain HTTP port.".into(),
            ),
            ProbeError::Network { detail } => d(
                "network_error",
                format!("GET {url}: {detail}"),
                "Check the route from the gate's subnet to the instance's subnet (route tables, network ACLs).".into(),
            ),
        };
    }
    let status = outcome.status?;
    let seen = format!("GET {url} with Host: {} answered {status}", request.host);
    if let Some(mismatch) = &outcome.body_mismatch {
        return d(
            "body_mismatch",
            format!("{seen}, a passing status, but {mismatch}{}", snippet_suffix(&outcome.body)),
            "The endpoint answers without reporting healthy: fix what its body reports, or correct the expected body (body_contains, body_json).".into(),
        );
    }
    match status {
        400 if host_is_ip(&request.host) => d(
            "host_rejected",
            format!(
                "{seen}{}: the app rejects the Host header the load balancer sends",
                if is_django_disallowed_host(outcome) { " (Django's DisallowedHost page)" } else { "" }
            ),
            format!(
                "Add the instance's private IP to the allowed hosts at start-up (Django: append it to ALLOWED_HOSTS, read from the instance metadata service with an IMDSv2 token; an IMDSv1 call fails on IMDSv2-only instances), or answer {} before host validation. Behind a proxy on the instance, pass the Host header on (nginx: proxy_set_header Host $http_host), or the app sees the upstream's name.",
                request.path
            ),
        ),
        400 => d(
            "bad_request",
            seen,
            "The app rejects the probe's request: check that the Host header override is one of the app's allowed hosts.".into(),
        ),
        301 | 302 | 303 | 307 | 308 => {
            let location = outcome.location.as_deref().unwrap_or("(no Location)");
            if location.starts_with("https:") {
                d(
                    "redirect_to_https",
                    format!("{seen}, a redirect to {location}; health checks do not follow redirects"),
                    format!(
                        "Exempt {} from the http-to-https redirect (Django: SECURE_REDIRECT_EXEMPT; nginx: a location block without the return 301), since the load balancer checks over plain HTTP.",
                        request.path
                    ),
                )
            } else {
                d(
                    "redirect",
                    format!("{seen}, a redirect to {location}; health checks do not follow redirects"),
                    "Point the health check at the final URL (a missing trailing slash is a common cause), or add the redirect status to the matcher.".into(),
                )
            }
        }
        401 | 403 => d(
            "health_endpoint_protected",
            seen,
            format!("Let {} answer without authentication, for requests from inside the VPC.", request.path),
        ),
        404 => d(
            "health_endpoint_not_found",
            seen,
            format!("Route {} in the app (or set the health path to the app's health URL).", request.path),
        ),
        500..=599 => match failing_checks(&outcome.body) {
            Some(checks) => d(
                "deep_check_failed",
                format!("{seen}: failing checks: {checks}"),
                "Make these checks pass before the instance takes traffic: apply pending migrations in the release step, and check the database settings and its reachability from the instance.".into(),
            ),
            None => d(
                "server_error",
                format!("{seen}{}", snippet_suffix(&outcome.body)),
                "The app fails while serving the health endpoint: its error log on the instance has the traceback.".into(),
            ),
        },
        _ => d(
            "status_mismatch",
            format!("{seen}, outside the matcher {}", request.matcher),
            "Make the health endpoint answer a status in the matcher, or widen the matcher.".into(),
        ),
    }
}

/// Diagnoses a failed health check of target group `name`, run by the gate as the ELB
/// sends it: the cause of [`diagnose`], prefixed with the target group, and the target
/// health reason the ELB would report.
pub fn diagnose_target_group(
    name: &str,
    request: &ProbeRequest,
    outcome: &ProbeOutcome,
) -> Option<Diagnosis> {
    let mut d = diagnose(request, outcome)?;
    let reason = match &outcome.error {
        None => "Target.ResponseCodeMismatch",
        Some(ProbeError::Timeout { .. }) => "Target.Timeout",
        Some(_) => "Target.FailedHealthChecks",
    };
    d.summary = format!("target group {name}: {} ({reason})", d.summary);
    d.target_group = Some(name.to_owned());
    d.elb_reason = Some(reason.to_owned());
    Some(d)
}

/// Diagnoses the load balancer's own verdict on the instance in a validation target group
/// (`DescribeTargetHealth`). `request` is the health check as the target group sends it,
/// used to word the cause of a status the ELB names. `None` when the target is healthy or
/// still in its initial checks.
pub fn diagnose_target_health(
    name: &str,
    health: &TargetHealth,
    request: &ProbeRequest,
) -> Option<Diagnosis> {
    let reason = health.reason.as_deref().unwrap_or("");
    let description = health.description.as_deref().unwrap_or("");
    let verbatim = health.to_string();
    let with_context = |mut d: Diagnosis| {
        d.summary = format!(
            "validation target group {name} reports {verbatim}; {}",
            d.summary
        );
        d.target_group = Some(name.to_owned());
        d.elb_reason = Some(reason.to_owned());
        Some(d)
    };
    match (health.state.as_str(), reason) {
        ("healthy" | "initial", _) => None,
        ("unused", "Target.NotInUse") => with_context(Diagnosis {
            code: "validation_target_group_not_in_use",
            summary: "the target group receives no traffic from a load balancer".into(),
            fix: "Attach the validation target group to a listener rule of the load balancer (a rule no production request matches, for example on a header), and enable the instance's Availability Zone on the load balancer.".into(),
            target_group: None,
            elb_reason: None,
        }),
        (_, "Target.ResponseCodeMismatch") => {
            let status = description
                .rsplit('[')
                .next()
                .and_then(|codes| codes.trim_end_matches(']').split(',').next())
                .and_then(|c| c.trim().parse::<u16>().ok());
            let outcome = ProbeOutcome {
                status,
                passed: false,
                latency_ms: 0,
                error: None,
                location: None,
                content_type: None,
                body_mismatch: None,
                body: String::new(),
            };
            diagnose(request, &outcome).and_then(with_context)
        }
        (_, "Target.Timeout") => diagnose(
            request,
            &ProbeOutcome {
                status: None,
                passed: false,
                latency_ms: 0,
                error: Some(ProbeError::Timeout { phase: "response" }),
                location: None,
                content_type: None,
                body_mismatch: None,
                body: String::new(),
            },
        )
        .and_then(with_context),
        (_, "Target.FailedHealthChecks") => with_context(Diagnosis {
            code: "connection_failed",
            summary: "the health checker could not get an answer (connection refused or reset)".into(),
            fix: "Start the app server on the instance on the target group's health check port, and allow the load balancer's security group in the instance's.".into(),
            target_group: None,
            elb_reason: None,
        }),
        _ => with_context(Diagnosis {
            code: "validation_target_unhealthy",
            summary: "the load balancer does not report the target healthy".into(),
            fix: "Read the reason above in the Elastic Load Balancing documentation on target health status.".into(),
            target_group: None,
            elb_reason: None,
        }),
    }
}

fn host_is_ip(host: &str) -> bool {
    let bare = host
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h);
    bare.trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok()
}

/// Django answers a disallowed host with its plain "Bad Request (400)" page when DEBUG is
/// off, and names `DisallowedHost` / "Invalid HTTP_HOST header" when DEBUG is on.
fn is_django_disallowed_host(outcome: &ProbeOutcome) -> bool {
    let b = &outcome.body;
    b.contains("DisallowedHost")
        || b.contains("Invalid HTTP_HOST header")
        || b.contains("<h1>Bad Request (400)</h1>")
}

/// The failing checks of a deep health body, `name: detail; ...`. Understands the example
/// app's `{"checks": {"name": {"status": "fail", ...}}}` and django-health-check's
/// `{"Name": "working" | "<error>"}`.
fn failing_checks(body: &str) -> Option<String> {
    let Ok(Value::Object(top)) = serde_json::from_str::<Value>(body) else {
        return None;
    };
    let ok = |s: &str| {
        matches!(
            s.to_ascii_lowercase().as_str(),
            "pass" | "ok" | "up" | "working" | "healthy"
        )
    };
    let mut failing = Vec::new();
    let mut more = 0usize;
    if let Some(Value::Object(checks)) = top.get("checks") {
        for (name, check) in checks {
            let status = check
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("fail");
            if ok(status) {
                continue;
            }
            if failing.len() == MAX_FAILING_NAMED {
                more += 1;
                continue;
            }
            let mut text = clip(name, 80);
            if let Some(n) = check.get("unapplied").and_then(Value::as_u64) {
                text.push_str(&format!(": {n} unapplied"));
            }
            if let Some(s) = check.get("http_status").and_then(Value::as_u64) {
                text.push_str(&format!(": status {s}"));
            }
            if let Some(detail) = check.get("detail").and_then(Value::as_str) {
                text.push_str(&format!(" ({})", clip(detail, 120)));
            }
            failing.push(text);
        }
    } else {
        for (name, value) in &top {
            if let Value::String(s) = value
                && !ok(s)
            {
                if failing.len() == MAX_FAILING_NAMED {
                    more += 1;
                    continue;
                }
                failing.push(format!("{}: {}", clip(name, 80), clip(s, 120)));
            }
        }
    }
    if more > 0 {
        failing.push(format!("and {more} more"));
    }
    (!failing.is_empty()).then(|| failing.join("; "))
}

/// The most failing checks of a health body named in a cause; the rest are counted.
const MAX_FAILING_NAMED: usize = 10;

fn snippet_suffix(body: &str) -> String {
    let text: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        String::new()
    } else {
        format!(": {}", clip(&crate::text::mask_secrets(&text), 160))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn request() -> ProbeRequest {
        ProbeRequest {
            scheme: crate::probe::Scheme::Http,
            ip: "10.0.1.23".parse().unwrap(),
            port: 8000,
            path: "/health".into(),
            host: "10.0.1.23:8000".into(),
            timeout: Duration::from_secs(5),
            body_limit: 65536,
            matcher: "200".parse().unwrap(),
            user_agent: crate::probe::ELB_USER_AGENT,
            expect: Vec::new(),
        }
    }

    fn answered(status: u16, body: &str, location: Option<&str>) -> ProbeOutcome {
        ProbeOutcome {
            status: Some(status),
            passed: false,
            latency_ms: 3,
            error: None,
            location: location.map(str::to_owned),
            content_type: None,
            body_mismatch: None,
            body: body.into(),
        }
    }

    fn failed(error: ProbeError) -> ProbeOutcome {
        ProbeOutcome {
            status: None,
            error: Some(error),
            ..answered(0, "", None)
        }
    }

    fn code(outcome: &ProbeOutcome) -> &'static str {
        diagnose(&request(), outcome).unwrap().code
    }

    #[test]
    fn causes_by_what_was_seen() {
        assert_eq!(
            code(&failed(ProbeError::ConnectionRefused)),
            "connection_refused"
        );
        assert_eq!(
            code(&failed(ProbeError::Timeout { phase: "connect" })),
            "timeout"
        );
        assert_eq!(
            code(&failed(ProbeError::ConnectionReset)),
            "connection_reset"
        );
        assert_eq!(
            code(&failed(ProbeError::MalformedResponse {
                detail: "x".into()
            })),
            "malformed_response"
        );
        assert_eq!(code(&answered(400, "", None)), "host_rejected");
        assert_eq!(
            code(&answered(301, "", Some("https://shop/health"))),
            "redirect_to_https"
        );
        assert_eq!(code(&answered(302, "", Some("/health/"))), "redirect");
        assert_eq!(code(&answered(404, "", None)), "health_endpoint_not_found");
        assert_eq!(code(&answered(403, "", None)), "health_endpoint_protected");
        assert_eq!(
            code(&answered(500, "<h1>Server Error (500)</h1>", None)),
            "server_error"
        );
        assert_eq!(code(&answered(204, "", None)), "status_mismatch");
        let mut passed = answered(200, "", None);
        passed.passed = true;
        assert_eq!(diagnose(&request(), &passed), None);
    }

    #[test]
    fn a_body_that_does_not_report_healthy_is_named() {
        let mut o = answered(200, r#"{"status": "degraded"}"#, None);
        o.body_mismatch = Some("the JSON field status is \"degraded\", not \"pass\"".into());
        let d = diagnose(&request(), &o).unwrap();
        assert_eq!(d.code, "body_mismatch");
        assert!(
            d.summary
                .contains("a passing status, but the JSON field status"),
            "{}",
            d.summary
        );
    }

    #[test]
    fn a_400_with_a_name_host_is_not_the_ip_problem() {
        let mut r = request();
        r.host = "shop.example.com".into();
        assert_eq!(
            diagnose(&r, &answered(400, "", None)).unwrap().code,
            "bad_request"
        );
    }

    #[test]
    fn django_disallowed_host_is_named() {
        let d = diagnose(
            &request(),
            &answered(400, "<h1>Bad Request (400)</h1><p></p>", None),
        )
        .unwrap();
        assert!(d.summary.contains("DisallowedHost"), "{}", d.summary);
        assert!(
            d.fix.contains("ALLOWED_HOSTS") && d.fix.contains("IMDSv2"),
            "{}",
            d.fix
        );
    }

    #[test]
    fn deep_check_bodies_name_the_failing_checks() {
        let example = r#"{"status": "fail", "checks": {"database": {"status": "pass"}, "migrations": {"status": "fail", "unapplied": 1, "detail": "catalog.0002_seed_products"}, "home_page": {"status": "fail", "http_status": 500}}}"#;
        let d = diagnose(&request(), &answered(503, example, None)).unwrap();
        assert_eq!(d.code, "deep_check_failed");
        assert!(
            d.summary.contains(
                "migrations: 1 unapplied (catalog.0002_seed_products); home_page: status 500"
            ),
            "{}",
            d.summary
        );
        let health_check = r#"{"DatabaseBackend": "working", "MigrationsHealthCheck": "unavailable: 3 unapplied migrations"}"#;
        let d = diagnose(&request(), &answered(500, health_check, None)).unwrap();
        assert!(
            d.summary
                .contains("MigrationsHealthCheck: unavailable: 3 unapplied"),
            "{}",
            d.summary
        );
    }

    #[test]
    fn target_group_failures_carry_the_elb_reason() {
        let d = diagnose_target_group("web", &request(), &answered(400, "", None)).unwrap();
        assert_eq!(d.code, "host_rejected");
        assert_eq!(d.elb_reason.as_deref(), Some("Target.ResponseCodeMismatch"));
        assert!(d.summary.starts_with("target group web: "), "{}", d.summary);
        let t = diagnose_target_group(
            "web",
            &request(),
            &failed(ProbeError::Timeout { phase: "connect" }),
        )
        .unwrap();
        assert_eq!(t.elb_reason.as_deref(), Some("Target.Timeout"));
    }

    #[test]
    fn target_health_reasons_map_to_causes() {
        let health = |state: &str, reason: Option<&str>, description: Option<&str>| TargetHealth {
            state: state.into(),
            reason: reason.map(str::to_owned),
            description: description.map(str::to_owned),
        };
        let code =
            |h: TargetHealth| diagnose_target_health("validate", &h, &request()).map(|d| d.code);
        assert_eq!(code(health("healthy", None, None)), None);
        assert_eq!(
            code(health("initial", Some("Elb.InitialHealthChecking"), None)),
            None
        );
        assert_eq!(
            code(health(
                "unhealthy",
                Some("Target.ResponseCodeMismatch"),
                Some("Health checks failed with these codes: [400]")
            )),
            Some("host_rejected")
        );
        assert_eq!(
            code(health(
                "unhealthy",
                Some("Target.ResponseCodeMismatch"),
                Some("Health checks failed with these codes: [301]")
            )),
            Some("redirect")
        );
        assert_eq!(
            code(health(
                "unhealthy",
                Some("Target.Timeout"),
                Some("Request timed out")
            )),
            Some("timeout")
        );
        assert_eq!(
            code(health("unhealthy", Some("Target.FailedHealthChecks"), None)),
            Some("connection_failed")
        );
        assert_eq!(
            code(health("unused", Some("Target.NotInUse"), None)),
            Some("validation_target_group_not_in_use")
        );
        let d = diagnose_target_health(
            "validate",
            &health(
                "unhealthy",
                Some("Target.ResponseCodeMismatch"),
                Some("Health checks failed with these codes: [500]"),
            ),
            &request(),
        )
        .unwrap();
        assert!(d.summary.contains("unhealthy / Target.ResponseCodeMismatch: Health checks failed with these codes: [500]"), "{}", d.summary);
    }

    #[test]
    fn host_is_ip_understands_ports_and_ipv6() {
        assert!(host_is_ip("10.0.1.23:8000"));
        assert!(host_is_ip("10.0.1.23"));
        assert!(host_is_ip("[fd00::1]:80"));
        assert!(!host_is_ip("shop.example.com:80"));
    }
}
