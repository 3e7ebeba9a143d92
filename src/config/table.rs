//! The settings' table: each setting's variable, key, unit and range, default and meaning,
//! as docs/settings.md gives them (a test checks the page and the ranges against the parser).

/// One setting: its environment variable, its `NotificationMetadata` key, unit and default.
#[derive(Debug)]
pub struct Setting {
    /// Key in the hook's `NotificationMetadata` JSON object.
    pub key: &'static str,
    /// Environment variable of the function.
    pub env: &'static str,
    /// Unit or accepted values.
    pub unit: &'static str,
    /// Default, as written in the variable.
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
}

/// Every setting, in the order of docs/settings.md.
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "health_path",
        env: "LAUNCH_GATE_HEALTH_PATH",
        unit: "path",
        default: "/health",
        doc: "the app's deep health endpoint",
    },
    Setting {
        key: "health_port",
        env: "LAUNCH_GATE_HEALTH_PORT",
        unit: "port 1-65535",
        default: "80",
        doc: "port of the health endpoint on the instance's private IP",
    },
    Setting {
        key: "matcher",
        env: "LAUNCH_GATE_MATCHER",
        unit: "ELB codes",
        default: "200",
        doc: "status codes that pass: 200, 200,204, 200-299",
    },
    Setting {
        key: "healthy_threshold",
        env: "LAUNCH_GATE_HEALTHY_THRESHOLD",
        unit: "probes 1-10",
        default: "3",
        doc: "consecutive passes that CONTINUE",
    },
    Setting {
        key: "unhealthy_threshold",
        env: "LAUNCH_GATE_UNHEALTHY_THRESHOLD",
        unit: "probes 1-10",
        default: "3",
        doc: "consecutive failures after the grace period that ABANDON",
    },
    Setting {
        key: "interval_seconds",
        env: "LAUNCH_GATE_INTERVAL_SECONDS",
        unit: "seconds 1-300",
        default: "5",
        doc: "time between probe starts",
    },
    Setting {
        key: "probe_timeout_seconds",
        env: "LAUNCH_GATE_PROBE_TIMEOUT_SECONDS",
        unit: "seconds 1-120, at most the interval",
        default: "5",
        doc: "time allowed for one probe",
    },
    Setting {
        key: "grace_period_seconds",
        env: "LAUNCH_GATE_GRACE_PERIOD_SECONDS",
        unit: "`auto`, or seconds 0-7200",
        default: "auto",
        doc: "start-up time during which failures do not ABANDON early; `auto` is 120 s or the group's `HealthCheckGracePeriod`, whichever is longer",
    },
    Setting {
        key: "max_wait_seconds",
        env: "LAUNCH_GATE_MAX_WAIT_SECONDS",
        unit: "seconds 1-172800",
        default: "600",
        doc: "longest wait for the healthy threshold before ABANDON",
    },
    Setting {
        key: "mode",
        env: "LAUNCH_GATE_MODE",
        unit: "enforce | shadow",
        default: "enforce",
        doc: "shadow always CONTINUEs and records the verdict it would have given",
    },
    Setting {
        key: "host_header",
        env: "LAUNCH_GATE_HOST_HEADER",
        unit: "host[:port]",
        default: "(the ELB's <private-ip>:<port>)",
        doc: "Host header sent with each probe",
    },
    Setting {
        key: "warm_pool_launch",
        env: "LAUNCH_GATE_WARM_POOL_LAUNCH",
        unit: "continue | gate",
        default: "continue",
        doc: "launches into a warm pool: CONTINUE at once, or probe",
    },
    Setting {
        key: "body_limit_bytes",
        env: "LAUNCH_GATE_BODY_LIMIT_BYTES",
        unit: "bytes 0-1048576",
        default: "65536",
        doc: "most bytes of a response body read",
    },
    Setting {
        key: "body_contains",
        env: "LAUNCH_GATE_BODY_CONTAINS",
        unit: "text",
        default: "(none)",
        doc: "text the deep health body must contain, besides a matching status",
    },
    Setting {
        key: "body_json",
        env: "LAUNCH_GATE_BODY_JSON",
        unit: "path=value",
        default: "(none)",
        doc: "a field of the deep health body's JSON, such as status=pass, besides a matching status",
    },
    Setting {
        key: "group_names",
        env: "LAUNCH_GATE_GROUP_NAMES",
        unit: "names, comma-separated; function only",
        default: "(every group)",
        doc: "the Auto Scaling groups served by name; with no names, prefixes or tag every group is served, otherwise notifications for others are ignored",
    },
    Setting {
        key: "group_name_prefixes",
        env: "LAUNCH_GATE_GROUP_NAME_PREFIXES",
        unit: "prefixes, comma-separated; function only",
        default: "(none)",
        doc: "groups served by name prefix: a new group per release (blue-green) is served without a redeploy",
    },
    Setting {
        key: "group_tag",
        env: "LAUNCH_GATE_GROUP_TAG",
        unit: "key=value; function only",
        default: "(none)",
        doc: "groups served by a tag, for example launch-gate=on",
    },
    Setting {
        key: "hook_names",
        env: "LAUNCH_GATE_HOOK_NAMES",
        unit: "names, comma-separated; function only",
        default: "launch-gate",
        doc: "the launch lifecycle hooks served, on every path: events, hand-overs, the sweep",
    },
    Setting {
        key: "ecs_services",
        env: "LAUNCH_GATE_ECS_SERVICES",
        unit: "cluster/service, comma-separated; function only",
        default: "(none)",
        doc: "the ECS services whose blue/green deployment lifecycle hooks are answered; cluster/* serves every service of a cluster",
    },
    Setting {
        key: "target_group_checks",
        env: "LAUNCH_GATE_TARGET_GROUP_CHECKS",
        unit: "on | off",
        default: "on",
        doc: "also run each of the group's target groups' health checks, as the ELB sends them",
    },
    Setting {
        key: "baseline",
        env: "LAUNCH_GATE_BASELINE",
        unit: "on | off",
        default: "on",
        doc: "compare a failing round with an InService instance of the running release: when it fails the same way, the environment is blamed, not the release",
    },
    Setting {
        key: "validation_target_group_arn",
        env: "LAUNCH_GATE_VALIDATION_TARGET_GROUP_ARN",
        unit: "target group ARN",
        default: "(none)",
        doc: "register the instance in this target group and wait for the load balancer's verdict",
    },
    Setting {
        key: "event_bus",
        env: "LAUNCH_GATE_EVENT_BUS",
        unit: "bus name or ARN, or off; function only",
        default: "default",
        doc: "the EventBridge bus of the decision and Rollout Halted events",
    },
    Setting {
        key: "breaker_action",
        env: "LAUNCH_GATE_BREAKER_ACTION",
        unit: "off | rollback | suspend; function only",
        default: "suspend",
        doc: "what the launch-loop breaker does when it trips",
    },
    Setting {
        key: "breaker_abandons",
        env: "LAUNCH_GATE_BREAKER_ABANDONS",
        unit: "ABANDONs 1-100",
        default: "3",
        doc: "ABANDONs of one group and launch template version, within the window, that trip the breaker",
    },
    Setting {
        key: "breaker_window_seconds",
        env: "LAUNCH_GATE_BREAKER_WINDOW_SECONDS",
        unit: "seconds 60-3600",
        default: "1800",
        doc: "the breaker's window (EC2 shows terminated instances for about an hour, and may drop their tags sooner)",
    },
];
