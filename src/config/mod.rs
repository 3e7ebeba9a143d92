//! `GateConfig`: the gate's settings. Defaults come from `LAUNCH_GATE_*` environment
//! variables, read and validated once at cold start; a lifecycle hook's
//! `NotificationMetadata` may hold a JSON object overriding them for that hook's group.
//! Pure apart from [`GateConfig::from_env`], which reads the process environment.
//!
//! Every setting is listed once, in [`SETTINGS`], with its environment variable, its
//! metadata key, its unit and its default; the README's table is that list.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::matcher::Matcher;

mod table;
pub use table::{SETTINGS, Setting};

/// Whether a verdict is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Complete the lifecycle action with the verdict.
    Enforce,
    /// Always complete with `CONTINUE`; record the verdict the gate would have given.
    Shadow,
}

impl Mode {
    /// `enforce` or `shadow`, as the settings spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Shadow => "shadow",
        }
    }
}

/// What to do with a launch into a warm pool (`Origin: EC2`, `Destination: WarmPool`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarmPoolLaunch {
    /// `CONTINUE` at once: the instance is stopped right after, its app may never run
    /// there; it is gated when it leaves the pool (`WarmPool -> AutoScalingGroup`).
    Continue,
    /// Probe it like any launch (for warm pools in the `Running` state).
    Gate,
}

/// What the launch-loop breaker does when it trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerAction {
    /// No breaker: abandons are not counted.
    Off,
    /// `RollbackInstanceRefresh` when an instance refresh is in progress
    /// (`CancelInstanceRefresh` when it cannot be rolled back).
    Rollback,
    /// `SuspendProcesses` `Launch` on the group, until a person resumes it.
    Suspend,
}

/// The gate's settings for one lifecycle action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateConfig {
    /// Path of the app's deep health endpoint, starting with `/` (may carry a query).
    pub health_path: String,
    /// TCP port of the health endpoint on the instance's private IP.
    pub health_port: u16,
    /// Status codes that pass, ELB syntax.
    pub matcher: Matcher,
    /// Consecutive passing probes needed to `CONTINUE`.
    pub healthy_threshold: u32,
    /// Consecutive failing probes, after the grace period, that `ABANDON` early.
    pub unhealthy_threshold: u32,
    /// Time between the starts of two probes.
    #[serde(serialize_with = "secs", rename = "interval_seconds")]
    pub interval: Duration,
    /// Time allowed for one probe: connect, request, status and body.
    #[serde(serialize_with = "secs", rename = "probe_timeout_seconds")]
    pub probe_timeout: Duration,
    /// Time after the gate starts during which failures do not count toward the
    /// unhealthy threshold (the app is still booting).
    #[serde(serialize_with = "secs", rename = "grace_period_seconds")]
    pub grace_period: Duration,
    /// `grace_period_seconds` is `auto` (the default): the grace period is at least the
    /// group's `HealthCheckGracePeriod` ([`GateConfig::with_group_grace`]), so an
    /// instance the group itself would still let boot is not abandoned early.
    #[serde(skip)]
    pub grace_period_auto: bool,
    /// Longest the gate waits for the healthy threshold before `ABANDON`.
    #[serde(serialize_with = "secs", rename = "max_wait_seconds")]
    pub max_wait: Duration,
    /// Enforce or shadow.
    pub mode: Mode,
    /// `Host` header to send instead of the ELB's `<private-ip>:<port>`.
    pub host_header: Option<String>,
    /// Launches into a warm pool.
    pub warm_pool_launch: WarmPoolLaunch,
    /// Most bytes of a response body read (and kept for the decision record).
    pub body_limit_bytes: usize,
    /// Whether each of the group's target groups' health checks is run by the gate too.
    pub target_group_checks: bool,
    /// Whether a failing round is compared with a baseline: the same check, at the same
    /// moment, against an `InService` instance of the running release. When the baseline
    /// fails it the same way, the environment is blamed, not the release.
    pub baseline: bool,
    /// Text the deep health body must contain, besides a matching status.
    pub body_contains: Option<String>,
    /// `path=value`: a field the deep health body's JSON must hold, besides a matching status.
    pub body_json: Option<String>,
    /// The Auto Scaling groups the gate serves by name. With no names, prefixes or tag,
    /// every group the rule delivers is served; otherwise a notification for another group
    /// is acknowledged and ignored.
    pub group_names: Option<Vec<String>>,
    /// Groups served by name prefix (`shop-web-` serves `shop-web-7f3a`): blue-green with a
    /// new group per release.
    pub group_name_prefixes: Vec<String>,
    /// Groups served by a tag, `key=value` (for example `launch-gate=on`), as
    /// `DescribeAutoScalingGroups` shows it.
    pub group_tag: Option<String>,
    /// The launch lifecycle hooks the gate serves, on every path (events, hand-overs, the
    /// sweep). Another launch hook on a served group is never completed.
    pub hook_names: Vec<String>,
    /// The ECS services whose blue/green deployment lifecycle hooks the gate answers, as
    /// `cluster/service` (`cluster/*`: every service of the cluster). None by default: an
    /// ECS hook invocation for a service not listed is refused before anything is read
    /// or probed.
    pub ecs_services: Vec<String>,
    /// A target group attached to a listener that no production request reaches: the gate
    /// registers the instance there and waits for the load balancer's own verdict.
    pub validation_target_group_arn: Option<String>,
    /// The EventBridge bus (name or ARN) decision and `Rollout Halted` events go to;
    /// `None` publishes nothing.
    pub event_bus: Option<String>,
    /// What the launch-loop breaker does when it trips.
    pub breaker_action: BreakerAction,
    /// `ABANDON`s of one group and launch template version, within the window, that trip
    /// the breaker.
    pub breaker_abandons: u32,
    /// The breaker's window.
    #[serde(serialize_with = "secs", rename = "breaker_window_seconds")]
    pub breaker_window: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            health_path: "/health".into(),
            health_port: 80,
            matcher: Matcher::default(),
            healthy_threshold: 3,
            unhealthy_threshold: 3,
            interval: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(5),
            grace_period: Duration::from_secs(120),
            grace_period_auto: true,
            max_wait: Duration::from_secs(600),
            mode: Mode::Enforce,
            host_header: None,
            warm_pool_launch: WarmPoolLaunch::Continue,
            body_limit_bytes: 64 * 1024,
            target_group_checks: true,
            baseline: true,
            validation_target_group_arn: None,
            body_contains: None,
            body_json: None,
            group_names: None,
            group_name_prefixes: Vec::new(),
            group_tag: None,
            hook_names: vec!["launch-gate".to_owned()],
            ecs_services: Vec::new(),
            event_bus: Some("default".to_owned()),
            breaker_action: BreakerAction::Suspend,
            breaker_abandons: 3,
            breaker_window: Duration::from_secs(1800),
        }
    }
}

/// Whether the gate serves a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving<'a> {
    /// By its name or a prefix (or every group is served).
    Yes,
    /// Only if `DescribeAutoScalingGroups` shows it with this tag.
    IfTagged {
        /// The tag's key.
        key: &'a str,
        /// The tag's value.
        value: &'a str,
    },
    /// Not served.
    No,
}

/// Settings a hook's metadata cannot override: whom the gate serves, where its events go,
/// and the breaker's action (the function's IAM policy is made for it).
const ENV_ONLY: &[&str] = &[
    "group_names",
    "group_name_prefixes",
    "group_tag",
    "hook_names",
    "ecs_services",
    "event_bus",
    "breaker_action",
];

/// A setting that is not valid. The message names the variable or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// An environment variable with a bad value.
    #[error("environment variable {env}={value:?} is invalid: {why}")]
    Env {
        /// The variable.
        env: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        why: String,
    },
    /// A `NotificationMetadata` key with a bad value.
    #[error("NotificationMetadata key {key:?} is invalid: {why}")]
    Metadata {
        /// The key.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// A `NotificationMetadata` key the gate does not know.
    #[error("NotificationMetadata key {key:?} is unknown; the keys are: {known}")]
    UnknownKey {
        /// The key.
        key: String,
        /// The known keys, comma-separated.
        known: String,
    },
    /// `NotificationMetadata` that is not a JSON object.
    #[error("NotificationMetadata must be a JSON object of launch-gate settings: {why}")]
    MetadataNotObject {
        /// What is wrong.
        why: String,
    },
    /// Settings that are each valid but not together.
    #[error("{0}")]
    Inconsistent(String),
}

impl GateConfig {
    /// Reads every `LAUNCH_GATE_*` variable of [`SETTINGS`] from the process environment
    /// over the defaults.
    ///
    /// # Errors
    /// [`ConfigError::Env`] naming the first bad variable, or
    /// [`ConfigError::Inconsistent`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`GateConfig::from_env`] over any variable lookup (tests pass a map).
    ///
    /// # Errors
    /// As [`GateConfig::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        for setting in SETTINGS {
            if let Some(value) = lookup(setting.env) {
                config
                    .set(setting.key, value.trim())
                    .map_err(|why| ConfigError::Env {
                        env: setting.env,
                        value,
                        why,
                    })?;
            }
        }
        config.check()?;
        Ok(config)
    }

    /// This configuration with a hook's `NotificationMetadata` applied. Empty or absent
    /// metadata changes nothing. Values may be JSON strings or numbers (`"health_port": 8000`
    /// or `"8000"`).
    ///
    /// # Errors
    /// [`ConfigError::MetadataNotObject`], [`ConfigError::UnknownKey`],
    /// [`ConfigError::Metadata`] naming the key, or [`ConfigError::Inconsistent`].
    pub fn with_metadata(&self, metadata: Option<&str>) -> Result<Self, ConfigError> {
        let Some(text) = metadata.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(self.clone());
        };
        let object = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(o)) => o,
            Ok(_) => {
                return Err(ConfigError::MetadataNotObject {
                    why: "it is JSON, but not an object".into(),
                });
            }
            Err(e) => return Err(ConfigError::MetadataNotObject { why: e.to_string() }),
        };
        let mut config = self.clone();
        for (key, value) in &object {
            if ENV_ONLY.contains(&key.as_str()) {
                return Err(ConfigError::Metadata {
                    key: key.clone(),
                    why: "it is set on the function, not per hook".into(),
                });
            }
            if !SETTINGS.iter().any(|s| s.key == key) {
                return Err(ConfigError::UnknownKey {
                    key: key.clone(),
                    known: SETTINGS
                        .iter()
                        .map(|s| s.key)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => continue,
                other => {
                    return Err(ConfigError::Metadata {
                        key: key.clone(),
                        why: format!("expected a string, a number or a boolean, found {other}"),
                    });
                }
            };
            config
                .set(key, text.trim())
                .map_err(|why| ConfigError::Metadata {
                    key: key.clone(),
                    why,
                })?;
        }
        config.check()?;
        Ok(config)
    }

    /// Sets one setting from text. The error says what is wrong, without the key.
    fn set(&mut self, key: &str, v: &str) -> Result<(), String> {
        match key {
            "health_path" => {
                if !v.starts_with('/') {
                    return Err("must start with /".into());
                }
                if v.len() > 1024 || !v.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(
                        "must be at most 1024 printable ASCII characters (percent-encode the rest)"
                            .into(),
                    );
                }
                v.parse::<http::uri::PathAndQuery>()
                    .map_err(|e| format!("not a valid path: {e}"))?;
                self.health_path = v.to_owned();
            }
            "health_port" => self.health_port = int(v, 1, 65535)? as u16,
            "matcher" => {
                self.matcher = v
                    .parse()
                    .map_err(|e: crate::matcher::MatcherError| e.to_string())?
            }
            "healthy_threshold" => self.healthy_threshold = int(v, 1, 10)? as u32,
            "unhealthy_threshold" => self.unhealthy_threshold = int(v, 1, 10)? as u32,
            "interval_seconds" => self.interval = Duration::from_secs(int(v, 1, 300)?),
            "probe_timeout_seconds" => self.probe_timeout = Duration::from_secs(int(v, 1, 120)?),
            "grace_period_seconds" if v == "auto" => {
                self.grace_period = Self::default().grace_period;
                self.grace_period_auto = true;
            }
            "grace_period_seconds" => {
                self.grace_period =
                    Duration::from_secs(int(v, 0, 7200).map_err(|e| format!("{e}, or auto"))?);
                self.grace_period_auto = false;
            }
            "max_wait_seconds" => self.max_wait = Duration::from_secs(int(v, 1, 172_800)?),
            "mode" => {
                self.mode = match v {
                    "enforce" => Mode::Enforce,
                    "shadow" => Mode::Shadow,
                    _ => return Err("expected enforce or shadow".into()),
                }
            }
            "host_header" => {
                if v.is_empty() || v.len() > 255 || !v.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err("expected host[:port], 1-255 printable ASCII characters".into());
                }
                self.host_header = Some(v.to_owned());
            }
            "warm_pool_launch" => {
                self.warm_pool_launch = match v {
                    "continue" => WarmPoolLaunch::Continue,
                    "gate" => WarmPoolLaunch::Gate,
                    _ => return Err("expected continue or gate".into()),
                }
            }
            "body_limit_bytes" => self.body_limit_bytes = int(v, 0, 1_048_576)? as usize,
            "body_contains" => {
                if v.len() > 1024 {
                    return Err("must be at most 1024 bytes".into());
                }
                self.body_contains = (!v.is_empty()).then(|| v.to_owned());
            }
            "body_json" => {
                if v.is_empty() {
                    self.body_json = None;
                } else {
                    crate::expect::BodyExpectation::json_field(v)?;
                    self.body_json = Some(v.to_owned());
                }
            }
            "group_names" => {
                let names = comma_names(v)?;
                self.group_names = (!names.is_empty()).then_some(names);
            }
            "group_name_prefixes" => self.group_name_prefixes = comma_names(v)?,
            "group_tag" => {
                if v.is_empty() {
                    self.group_tag = None;
                } else {
                    match v.split_once('=') {
                        Some((key, value))
                            if !key.trim().is_empty() && key.len() <= 128 && value.len() <= 256 =>
                        {
                            self.group_tag = Some(format!("{}={}", key.trim(), value.trim()));
                        }
                        _ => return Err("expected key=value, for example launch-gate=on".into()),
                    }
                }
            }
            "hook_names" => {
                let names = comma_names(v)?;
                if names.is_empty() {
                    return Err("expected at least one hook name".into());
                }
                self.hook_names = names;
            }
            "ecs_services" => {
                let names = comma_names(v)?;
                if let Some(bad) = names.iter().find(|n| {
                    !matches!(n.split_once('/'), Some((c, s)) if !c.is_empty() && !s.is_empty() && !s.contains('/'))
                }) {
                    return Err(format!(
                        "{bad:?} is not cluster/service (or cluster/* for every service of the cluster)"
                    ));
                }
                self.ecs_services = names;
            }
            "baseline" => {
                self.baseline = match v {
                    "on" | "true" => true,
                    "off" | "false" => false,
                    _ => return Err("expected on or off".into()),
                }
            }
            "target_group_checks" => {
                self.target_group_checks = match v {
                    "on" | "true" => true,
                    "off" | "false" => false,
                    _ => return Err("expected on or off".into()),
                }
            }
            "validation_target_group_arn" => {
                if v.is_empty() {
                    self.validation_target_group_arn = None;
                } else if v.starts_with("arn:") && v.contains(":targetgroup/") && v.len() <= 2048 {
                    self.validation_target_group_arn = Some(v.to_owned());
                } else {
                    return Err("expected a target group ARN (arn:aws:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<id>)".into());
                }
            }
            "event_bus" => {
                self.event_bus = match v {
                    "off" | "" => None,
                    _ if event_bus_ok(v) => Some(v.to_owned()),
                    _ => {
                        return Err("expected off, an event bus name (1-256 of A-Z a-z 0-9 . _ - /) or an event bus ARN (arn:aws:events:<region>:<account>:event-bus/<name>)".into());
                    }
                }
            }
            "breaker_action" => {
                self.breaker_action = match v {
                    "off" => BreakerAction::Off,
                    "rollback" => BreakerAction::Rollback,
                    "suspend" => BreakerAction::Suspend,
                    _ => return Err("expected off, rollback or suspend".into()),
                }
            }
            "breaker_abandons" => self.breaker_abandons = int(v, 1, 100)? as u32,
            "breaker_window_seconds" => {
                self.breaker_window = Duration::from_secs(int(v, 60, 3600)?)
            }
            _ => return Err("unknown setting".into()),
        }
        Ok(())
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.probe_timeout > self.interval {
            return Err(ConfigError::Inconsistent(format!(
                "probe_timeout_seconds ({}) must be at most interval_seconds ({}), as for an ELB health check",
                self.probe_timeout.as_secs(),
                self.interval.as_secs()
            )));
        }
        Ok(())
    }

    /// The settings with an `auto` grace period raised to the group's
    /// `HealthCheckGracePeriod` (seconds, from `DescribeAutoScalingGroups`), capped at the
    /// setting's 7200 s. An explicit `grace_period_seconds` is kept as set.
    pub fn with_group_grace(mut self, group_grace: Option<Duration>) -> Self {
        if let (true, Some(g)) = (self.grace_period_auto, group_grace) {
            self.grace_period = self.grace_period.max(g.min(Duration::from_secs(7200)));
        }
        self
    }

    /// Whether the gate serves `group_name`, as far as the name tells: by name or prefix,
    /// or every group when neither nor a tag is set. With [`GateConfig::group_tag`], a
    /// group that no name or prefix serves is served if it carries the tag:
    /// [`Serving::IfTagged`].
    pub fn serving(&self, group_name: &str) -> Serving<'_> {
        let by_name = self
            .group_names
            .as_ref()
            .is_some_and(|names| names.iter().any(|n| n == group_name))
            || self
                .group_name_prefixes
                .iter()
                .any(|p| group_name.starts_with(p.as_str()));
        let any_rule = self.group_names.is_some()
            || !self.group_name_prefixes.is_empty()
            || self.group_tag.is_some();
        match self.group_tag_pair() {
            _ if by_name || !any_rule => Serving::Yes,
            Some((key, value)) => Serving::IfTagged { key, value },
            None => Serving::No,
        }
    }

    /// Whether the gate serves `group_name` by its name alone (see [`GateConfig::serving`]).
    pub fn serves(&self, group_name: &str) -> bool {
        self.serving(group_name) == Serving::Yes
    }

    /// Whether the gate may serve the lifecycle hook `hook_name` of `group_name`: the hook
    /// is one of `hook_names`, and the group is served (or may be, by its tag). Another
    /// launch hook on the same group (CodeDeploy's, a bootstrap hook) belongs to someone else.
    pub fn serves_hook(&self, group_name: &str, hook_name: &str) -> bool {
        self.serving(group_name) != Serving::No && self.hook_names.iter().any(|h| h == hook_name)
    }

    /// Whether the gate answers the deployment lifecycle hooks of the ECS service
    /// `service` in `cluster` (names, as in their ARNs): listed in `ecs_services` by name
    /// or by `cluster/*`.
    pub fn serves_ecs_service(&self, cluster: &str, service: &str) -> bool {
        self.ecs_services.iter().any(|entry| {
            entry
                .split_once('/')
                .is_some_and(|(c, s)| c == cluster && (s == "*" || s == service))
        })
    }

    /// The serving tag's key and value.
    pub fn group_tag_pair(&self) -> Option<(&str, &str)> {
        self.group_tag.as_deref().and_then(|t| t.split_once('='))
    }

    /// The deep probe's conditions on the body: `body_contains` and `body_json`.
    pub fn body_expectations(&self) -> Vec<crate::expect::BodyExpectation> {
        let mut expect = Vec::new();
        if let Some(text) = &self.body_contains {
            expect.push(crate::expect::BodyExpectation::Contains(text.clone()));
        }
        if let Some(field) = self
            .body_json
            .as_deref()
            .and_then(|f| crate::expect::BodyExpectation::json_field(f).ok())
        {
            expect.push(field);
        }
        expect
    }

    /// The `Host` header for a probe of `ip`: the override, else `<ip>:<port>` as the ELB
    /// health checker sends it.
    pub fn host_for(&self, ip: std::net::IpAddr) -> String {
        self.host_header
            .clone()
            // `[addr]:port` for IPv6, as a Host header writes it.
            .unwrap_or_else(|| std::net::SocketAddr::new(ip, self.health_port).to_string())
    }
}

/// An EventBridge bus name, or an event bus ARN.
fn event_bus_ok(v: &str) -> bool {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 256
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_/".contains(&b))
    };
    match v.strip_prefix("arn:") {
        Some(rest) => {
            v.len() <= 1600
                && rest.contains(":events:")
                && rest
                    .split_once(":event-bus/")
                    .is_some_and(|(_, name)| name_ok(name))
        }
        None => name_ok(v),
    }
}

/// Comma-separated Auto Scaling names (groups, hooks): 1-255 characters each.
fn comma_names(v: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    if names.iter().any(|n| n.len() > 255) {
        return Err("a name is longer than 255 characters".into());
    }
    Ok(names)
}

fn int(v: &str, min: u64, max: u64) -> Result<u64, String> {
    let n: u64 = v
        .parse()
        .map_err(|_| format!("expected a whole number from {min} to {max}"))?;
    if n < min || n > max {
        return Err(format!("{n} is outside {min}-{max}"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
