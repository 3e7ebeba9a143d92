use super::*;
use std::collections::HashMap;

fn from(vars: &[(&str, &str)]) -> Result<GateConfig, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    GateConfig::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn defaults_hold_without_variables() {
    assert_eq!(from(&[]).unwrap(), GateConfig::default());
}

#[test]
fn every_setting_is_read_from_its_variable() {
    let c = from(&[
        ("LAUNCH_GATE_HEALTH_PATH", "/healthz?deep=1"),
        ("LAUNCH_GATE_HEALTH_PORT", "8000"),
        ("LAUNCH_GATE_MATCHER", "200-299"),
        ("LAUNCH_GATE_HEALTHY_THRESHOLD", "2"),
        ("LAUNCH_GATE_UNHEALTHY_THRESHOLD", "4"),
        ("LAUNCH_GATE_INTERVAL_SECONDS", "10"),
        ("LAUNCH_GATE_PROBE_TIMEOUT_SECONDS", "3"),
        ("LAUNCH_GATE_GRACE_PERIOD_SECONDS", "0"),
        ("LAUNCH_GATE_MAX_WAIT_SECONDS", "900"),
        ("LAUNCH_GATE_MODE", "shadow"),
        ("LAUNCH_GATE_HOST_HEADER", "shop.example.com"),
        ("LAUNCH_GATE_WARM_POOL_LAUNCH", "gate"),
        ("LAUNCH_GATE_BODY_LIMIT_BYTES", "1024"),
        ("LAUNCH_GATE_TARGET_GROUP_CHECKS", "off"),
        ("LAUNCH_GATE_VALIDATION_TARGET_GROUP_ARN", "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/validate/0123456789abcdef"),
    ])
    .unwrap();
    assert_eq!(c.health_path, "/healthz?deep=1");
    assert_eq!(c.health_port, 8000);
    assert!(c.matcher.matches(204));
    assert_eq!((c.healthy_threshold, c.unhealthy_threshold), (2, 4));
    assert_eq!(c.interval, Duration::from_secs(10));
    assert_eq!(c.probe_timeout, Duration::from_secs(3));
    assert_eq!(c.grace_period, Duration::ZERO);
    assert_eq!(c.max_wait, Duration::from_secs(900));
    assert_eq!(c.mode, Mode::Shadow);
    assert_eq!(c.host_header.as_deref(), Some("shop.example.com"));
    assert_eq!(c.warm_pool_launch, WarmPoolLaunch::Gate);
    assert_eq!(c.body_limit_bytes, 1024);
    assert!(!c.target_group_checks);
    assert!(
        c.validation_target_group_arn
            .as_deref()
            .unwrap()
            .ends_with("targetgroup/validate/0123456789abcdef")
    );
}

#[test]
fn a_bad_variable_is_named() {
    for (var, value, why) in [
        ("LAUNCH_GATE_HEALTH_PORT", "0", "0 is outside 1-65535"),
        ("LAUNCH_GATE_HEALTH_PORT", "http", "whole number"),
        ("LAUNCH_GATE_HEALTH_PATH", "health", "must start with /"),
        ("LAUNCH_GATE_HEALTH_PATH", "/he alth", "printable ASCII"),
        ("LAUNCH_GATE_MATCHER", "2xx", "not a status code"),
        ("LAUNCH_GATE_MODE", "dry-run", "enforce or shadow"),
        ("LAUNCH_GATE_HEALTHY_THRESHOLD", "11", "outside 1-10"),
        ("LAUNCH_GATE_WARM_POOL_LAUNCH", "skip", "continue or gate"),
    ] {
        let e = from(&[(var, value)]).unwrap_err().to_string();
        assert!(e.contains(var) && e.contains(why), "{e}");
    }
}

#[test]
fn timeout_longer_than_interval_is_rejected() {
    let e = from(&[("LAUNCH_GATE_INTERVAL_SECONDS", "2")]).unwrap_err();
    assert!(
        e.to_string()
            .contains("probe_timeout_seconds (5) must be at most interval_seconds (2)")
    );
}

#[test]
fn metadata_overrides_per_hook() {
    let base = GateConfig::default();
    let c = base
        .with_metadata(Some(r#"{"health_port": 8000, "matcher": "200,204", "mode": "shadow", "grace_period_seconds": "30"}"#))
        .unwrap();
    assert_eq!(c.health_port, 8000);
    assert!(c.matcher.matches(204));
    assert_eq!(c.mode, Mode::Shadow);
    assert_eq!(c.grace_period, Duration::from_secs(30));
    assert_eq!(base.with_metadata(None).unwrap(), base);
    assert_eq!(base.with_metadata(Some("  ")).unwrap(), base);
}

#[test]
fn bad_metadata_is_named() {
    let base = GateConfig::default();
    for (metadata, expected) in [
        (r#"{"helth_port": 8000}"#, "key \"helth_port\" is unknown"),
        (
            r#"{"health_port": 70000}"#,
            "key \"health_port\" is invalid: 70000 is outside 1-65535",
        ),
        (
            r#"{"health_port": [8000]}"#,
            "expected a string, a number or a boolean",
        ),
        (
            r#"{"validation_target_group_arn": "web"}"#,
            "expected a target group ARN",
        ),
        (r#"{"target_group_checks": "maybe"}"#, "expected on or off"),
        (r#"{"body_json": "status"}"#, "expected path=value"),
        (
            r#"{"group_names": "web"}"#,
            "set on the function, not per hook",
        ),
        (r#"{"health_port": 8.5}"#, "whole number"),
        ("port=8000", "must be a JSON object"),
        ("[1]", "not an object"),
    ] {
        let e = base.with_metadata(Some(metadata)).unwrap_err().to_string();
        assert!(e.contains(expected), "{metadata}: {e}");
    }
}

#[test]
fn event_bus_and_breaker_settings() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        GateConfig::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    };
    let c = env(&[
        (
            "LAUNCH_GATE_EVENT_BUS",
            "arn:aws:events:eu-west-1:123456789012:event-bus/deploys",
        ),
        ("LAUNCH_GATE_BREAKER_ACTION", "rollback"),
        ("LAUNCH_GATE_BREAKER_WINDOW_SECONDS", "900"),
    ])
    .unwrap();
    assert_eq!(
        c.event_bus.as_deref(),
        Some("arn:aws:events:eu-west-1:123456789012:event-bus/deploys")
    );
    assert_eq!(c.breaker_action, BreakerAction::Rollback);
    assert_eq!(c.breaker_window, Duration::from_secs(900));
    assert_eq!(
        env(&[("LAUNCH_GATE_EVENT_BUS", "off")]).unwrap().event_bus,
        None
    );
    for (name, value) in [
        ("LAUNCH_GATE_EVENT_BUS", "my bus"),
        ("LAUNCH_GATE_EVENT_BUS", "arn:aws:sns:eu-west-1:1:topic"),
        ("LAUNCH_GATE_BREAKER_ACTION", "terminate"),
        ("LAUNCH_GATE_BREAKER_ABANDONS", "0"),
        ("LAUNCH_GATE_BREAKER_WINDOW_SECONDS", "7200"),
    ] {
        let pairs: &'static [(&'static str, &'static str)] =
            Box::leak(vec![(name, value)].into_boxed_slice());
        let e = env(pairs).unwrap_err().to_string();
        assert!(e.contains(name), "{e}");
    }
    // per hook: the threshold and window, never where events go or what a trip does
    let d = GateConfig::default();
    assert_eq!(
        d.with_metadata(Some(r#"{"breaker_abandons": 5}"#))
            .unwrap()
            .breaker_abandons,
        5
    );
    for key in ["event_bus", "breaker_action"] {
        let e = d
            .with_metadata(Some(&format!(r#"{{"{key}": "off"}}"#)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("set on the function"), "{e}");
    }
}

#[test]
fn the_settings_page_lists_every_setting() {
    let readme = include_str!("../../docs/settings.md");
    for s in SETTINGS {
        let default = if s.default.starts_with('(') {
            s.default.to_owned()
        } else {
            format!("`{}`", s.default)
        };
        let row = format!(
            "| `{}` | `{}` | {} | {} | {} |",
            s.env,
            s.key,
            default,
            s.unit.replace('|', "\\|"),
            s.doc
        );
        assert!(
            readme.contains(&row),
            "docs/settings.md lacks the row\n{row}"
        );
    }
}

#[test]
fn the_documented_ranges_are_the_ones_enforced() {
    // Each range the settings page gives ("seconds 1-300") is what the gate accepts:
    // both ends pass, one step beyond either fails, through the function's variables.
    let mut checked = 0;
    for s in SETTINGS {
        let Some((low, high)) = s
            .unit
            .split([' ', ','])
            .find_map(|w| w.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        else {
            continue;
        };
        let parse = |v: u64| {
            GateConfig::from_lookup(|k| {
                if k == s.env {
                    return Some(v.to_string());
                }
                // keep the probe timeout within the interval whatever is tried
                match (s.key, k) {
                    ("interval_seconds", "LAUNCH_GATE_PROBE_TIMEOUT_SECONDS") => Some("1".into()),
                    ("probe_timeout_seconds", "LAUNCH_GATE_INTERVAL_SECONDS") => Some("300".into()),
                    _ => None,
                }
            })
        };
        for ok in [low, high] {
            assert!(parse(ok).is_ok(), "{} = {ok}: {:?}", s.env, parse(ok).err());
        }
        if low > 0 {
            assert!(
                parse(low - 1).is_err(),
                "{} = {} is accepted",
                s.env,
                low - 1
            );
        }
        assert!(
            parse(high + 1).is_err(),
            "{} = {} is accepted",
            s.env,
            high + 1
        );
        checked += 1;
    }
    assert!(checked >= 9, "{checked} ranges checked");
}

#[test]
fn the_sam_template_sets_only_known_variables() {
    let template = include_str!("../../template.yaml");
    let mut seen = 0;
    for (i, _) in template.match_indices("LAUNCH_GATE_") {
        let name: String = template[i..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        assert!(
            SETTINGS.iter().any(|s| s.env == name),
            "template.yaml sets {name}, which the gate does not read"
        );
        seen += 1;
    }
    assert!(seen >= 10, "the template passes the health settings");
}

#[test]
fn defaults_match_the_settings_table() {
    let mut from_table = GateConfig::default();
    for s in SETTINGS.iter().filter(|s| !s.default.starts_with('(')) {
        from_table.set(s.key, s.default).unwrap();
    }
    assert_eq!(from_table, GateConfig::default());
}

#[test]
fn host_header_follows_the_elb() {
    let mut c = GateConfig {
        health_port: 8000,
        ..GateConfig::default()
    };
    let ip = "10.0.1.23".parse().unwrap();
    assert_eq!(c.host_for(ip), "10.0.1.23:8000");
    c.host_header = Some("shop.example.com".into());
    assert_eq!(c.host_for(ip), "shop.example.com");
}

#[test]
fn groups_are_served_by_name_prefix_or_tag() {
    let all = GateConfig::default();
    assert_eq!(all.serving("anything"), Serving::Yes);
    let c = GateConfig::from_lookup(|k| match k {
        "LAUNCH_GATE_GROUP_NAMES" => Some("shop-web".into()),
        "LAUNCH_GATE_GROUP_NAME_PREFIXES" => Some("shop-web-, checkout-".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(c.serving("shop-web"), Serving::Yes);
    assert_eq!(c.serving("shop-web-7f3a"), Serving::Yes);
    assert_eq!(c.serving("checkout-blue"), Serving::Yes);
    assert_eq!(c.serving("billing-web"), Serving::No);
    assert!(!c.serves_hook("billing-web", "launch-gate"));
    let tagged = GateConfig::from_lookup(|k| {
        (k == "LAUNCH_GATE_GROUP_TAG").then(|| "launch-gate = on".into())
    })
    .unwrap();
    assert_eq!(
        tagged.serving("billing-web"),
        Serving::IfTagged {
            key: "launch-gate",
            value: "on"
        }
    );
    assert!(tagged.serves_hook("billing-web", "launch-gate"));
    assert!(!tagged.serves_hook("billing-web", "codedeploy"));
    for bad in ["on", "=on"] {
        let e = GateConfig::from_lookup(|k| (k == "LAUNCH_GATE_GROUP_TAG").then(|| bad.into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("key=value"), "{bad}: {e}");
    }
}

#[test]
fn the_grace_period_is_auto_unless_set() {
    let auto = GateConfig::from_lookup(|_| None).unwrap();
    assert!(auto.grace_period_auto);
    assert_eq!(auto.grace_period, Duration::from_secs(120));
    let group = |s| Some(Duration::from_secs(s));
    assert_eq!(
        auto.clone().with_group_grace(group(300)).grace_period,
        Duration::from_secs(300)
    );
    // never below the default, never beyond the setting's range
    assert_eq!(
        auto.clone().with_group_grace(group(0)).grace_period,
        Duration::from_secs(120)
    );
    assert_eq!(
        auto.with_group_grace(group(86_400)).grace_period,
        Duration::from_secs(7200)
    );
    let set = GateConfig::from_lookup(|k| {
        (k == "LAUNCH_GATE_GRACE_PERIOD_SECONDS").then(|| "30".to_owned())
    })
    .unwrap();
    assert!(!set.grace_period_auto);
    assert_eq!(
        set.with_group_grace(group(300)).grace_period,
        Duration::from_secs(30)
    );
    let metadata = GateConfig::default()
        .with_metadata(Some(r#"{"grace_period_seconds": "auto"}"#))
        .unwrap();
    assert!(metadata.grace_period_auto);
    let err = GateConfig::default()
        .with_metadata(Some(r#"{"grace_period_seconds": "soon"}"#))
        .unwrap_err()
        .to_string();
    assert!(err.contains("or auto"), "{err}");
}
