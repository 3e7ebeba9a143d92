//! The breaker's counting and trips against the fake AWS.
use super::*;

fn activity(code: &str, description: &str, message: Option<&str>) -> ScalingActivity {
    ScalingActivity {
        id: "a".into(),
        description: description.into(),
        status_code: code.into(),
        status_message: message.map(str::to_owned),
        start_time: 0,
        end_time: Some(1),
    }
}

#[test]
fn abandoned_launches_are_read_from_aws_wording() {
    let message = "Instance failed to complete user's Lifecycle Action: Lifecycle Action with token e85eb647-4fe0-4909-b341-a6c42d8aba1f was abandoned: Lifecycle Action Completed with ABANDON Result";
    let cancelled = activity(
        "Cancelled",
        &format!("Launching a new EC2 instance: i-003a5b3ffe1e9358e.  Status Reason: {message}"),
        Some(message),
    );
    assert_eq!(
        abandoned_launch(&cancelled),
        Some(("i-003a5b3ffe1e9358e", Abandoned::Completed))
    );
    let timeout = "Instance failed to complete user's Lifecycle Action: Lifecycle Action with token e85eb647-4fe0-4909-b341-a6c42d8aba1f was abandoned: Heartbeat Timeout";
    let timed_out = activity(
        "Cancelled",
        &format!("Launching a new EC2 instance: i-0aa.  Status Reason: {timeout}"),
        Some(timeout),
    );
    assert_eq!(
        abandoned_launch(&timed_out),
        Some(("i-0aa", Abandoned::TimedOut))
    );
    let ok = activity(
        "Successful",
        "Launching a new EC2 instance: i-003a5b3ffe1e9358e",
        None,
    );
    assert_eq!(abandoned_launch(&ok), None);
    let spot = activity(
        "Cancelled",
        "Launching a new EC2 instance.  Status Reason: Your Spot request price ...",
        Some("Your Spot request price of 0.001 is lower than the minimum"),
    );
    assert_eq!(abandoned_launch(&spot), None);
    let termination = activity(
        "Cancelled",
        "Terminating EC2 instance: i-0123",
        Some(message),
    );
    assert_eq!(abandoned_launch(&termination), None);
    let warm = activity(
        "Cancelled",
        &format!("Launching a new EC2 instance from warm pool: i-0abc.  Status Reason: {message}"),
        Some(message),
    );
    assert_eq!(
        abandoned_launch(&warm),
        Some(("i-0abc", Abandoned::Completed))
    );
}

#[test]
fn trips_round_trip_through_the_tag() {
    let trip = Trip {
        release: Some(LaunchTemplateVersion {
            id: "lt-0abc".into(),
            version: "7".into(),
        }),
        at: 1_795_251_600,
        instance_id: "i-0123".into(),
    };
    assert_eq!(trip.value(), "lt-0abc:7 1795251600 i-0123");
    assert_eq!(Trip::parse(&trip.value()), Some(trip.clone()));
    let bare = Trip {
        release: None,
        ..trip
    };
    assert_eq!(Trip::parse(&bare.value()), Some(bare));
    for bad in [
        "",
        "lt-0abc:7",
        "lt-0abc:7 soon i-1",
        "x 1 i-1 extra",
        "lt 1 i-1",
    ] {
        assert_eq!(Trip::parse(bad), None, "{bad:?}");
    }
}

// The breaker's own counting and trips, against the fake AWS: one instance of
// launch template lt-1 version 2 abandoned now, and the fake's earlier abandons.
use crate::aws::fake::FakeAws;

const ABANDONED: &str = "i-0123456789abcdef0";

fn release() -> LaunchTemplateVersion {
    LaunchTemplateVersion {
        id: "lt-1".into(),
        version: "2".into(),
    }
}

async fn count(aws: &FakeAws, config: &GateConfig) -> BreakerRecord {
    after_abandon(aws, config, "shop-web", ABANDONED, Some(&release()))
        .await
        .unwrap()
}

#[tokio::test]
async fn below_the_threshold_nothing_trips() {
    let aws = FakeAws {
        abandoned: vec!["i-0aaa"],
        ..FakeAws::default()
    };
    let b = count(&aws, &GateConfig::default()).await;
    assert!(!b.tripped);
    assert_eq!(b.abandons.len(), 2);
    assert!(aws.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_third_abandon_suspends_launches_and_then_records_the_trip() {
    let aws = FakeAws {
        abandoned: vec!["i-0aaa", "i-0bbb"],
        ..FakeAws::default()
    };
    let b = count(&aws, &GateConfig::default()).await;
    assert!(b.tripped, "{b:?}");
    assert_eq!(b.abandons.last().unwrap().instance_id, ABANDONED);
    assert_eq!(*aws.calls.lock().unwrap(), ["SuspendProcesses"]);
    let tags = aws.group_tags.lock().unwrap().clone();
    assert_eq!(tags.len(), 1);
    assert!(tags[0].1.starts_with("lt-1:2 "), "{tags:?}");
    // the next abandon of the release counts from the trip
    let again = count(&aws, &GateConfig::default()).await;
    assert!(!again.tripped);
    assert_eq!(again.abandons.len(), 1);
}

#[tokio::test]
async fn rollback_that_is_not_possible_cancels_and_says_why() {
    let aws = FakeAws {
        abandoned: vec!["i-0aaa", "i-0bbb"],
        ..FakeAws::default()
    };
    let config = GateConfig {
        breaker_action: BreakerAction::Rollback,
        ..GateConfig::default()
    };
    let taken = count(&aws, &config).await.action_taken.unwrap();
    assert!(
        taken.contains("cannot be rolled back (no desired configuration)"),
        "{taken}"
    );
    assert!(
        taken.contains("cancelled instead (instance refresh refresh-1)"),
        "{taken}"
    );
    assert_eq!(
        *aws.calls.lock().unwrap(),
        ["RollbackInstanceRefresh", "CancelInstanceRefresh"]
    );
}

#[tokio::test]
async fn a_trip_whose_action_fails_records_nothing() {
    let aws = FakeAws {
        abandoned: vec!["i-0aaa", "i-0bbb"],
        suspend_fails: true,
        ..FakeAws::default()
    };
    let b = count(&aws, &GateConfig::default()).await;
    assert!(!b.tripped);
    assert!(
        b.error.as_deref().unwrap().contains("AccessDenied"),
        "{b:?}"
    );
    // the trip is recorded only after its action: the next ABANDON counts every
    // abandon again
    assert!(aws.group_tags.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_breaker_off_counts_nothing() {
    let config = GateConfig {
        breaker_action: BreakerAction::Off,
        ..GateConfig::default()
    };
    assert!(
        after_abandon(&FakeAws::default(), &config, "shop-web", ABANDONED, None)
            .await
            .is_none()
    );
}

#[tokio::test]
async fn abandons_through_an_environment_outage_are_not_counted() {
    // Two earlier abandons, both through an outage the running release shared: the third
    // ABANDON, the release's own, does not trip.
    let aws = FakeAws {
        abandoned: vec!["i-0aaa", "i-0bbb"],
        ..FakeAws::default()
    };
    let config = GateConfig::default();
    for id in ["i-0aaa", "i-0bbb"] {
        let b = after_environment_abandon(&aws, &config, "shop-web", id)
            .await
            .unwrap();
        assert_eq!(b.environment, [id]);
        assert!(b.abandons.is_empty() && !b.tripped);
    }
    let tags = aws.group_tags.lock().unwrap().clone();
    assert_eq!(tags.len(), 1);
    assert_eq!(tags[0].0, ENVIRONMENT_TAG);
    assert!(tags[0].1.ends_with(" i-0aaa i-0bbb"), "{}", tags[0].1);
    assert!(environment_tag_time(&tags[0].1).is_some_and(|t| t + 60 > epoch_seconds()));
    let b = count(&aws, &config).await;
    assert!(!b.tripped, "{b:?}");
    assert_eq!(b.environment, ["i-0aaa", "i-0bbb"]);
    assert_eq!(b.abandons.len(), 1);
}

#[test]
fn the_environment_tag_keeps_the_newest_ids_within_256_characters() {
    let mut value = String::new();
    for n in 0..30 {
        value = environment_tag_with(&value, &format!("i-{n:017x}"), 1_795_251_600 + n);
        assert!(value.len() <= 256, "{}", value.len());
    }
    assert!(value.ends_with(&format!("i-{:017x}", 29)));
    assert_eq!(environment_ids(&value).count(), 12);
    assert_eq!(environment_tag_time(&value), Some(1_795_251_629));
    assert_eq!(environment_tag_with("t=5 i-1 i-2", "i-1", 9), "t=9 i-2 i-1");
}

#[tokio::test]
async fn a_throttled_read_of_the_versions_still_trips() {
    // Many launches end at once and DescribeInstances is throttled: the other abandons'
    // versions are unknown, counted toward this one, and the threshold still trips.
    let aws = FakeAws {
        abandoned: vec!["i-0aaa", "i-0bbb"],
        describe_fails: true,
        ..FakeAws::default()
    };
    let b = count(&aws, &GateConfig::default()).await;
    assert!(b.tripped, "{b:?}");
    assert_eq!(b.unknown_version, ["i-0aaa", "i-0bbb"]);
    assert!(
        b.note
            .as_deref()
            .unwrap_or("")
            .contains("could not be read")
    );
}

#[tokio::test]
async fn a_gate_that_counts_the_threshold_trips_even_when_another_abandon_reached_it() {
    // Two gates abandon at once. This gate's abandon is visible and ended first; the other
    // gate's ended a few seconds later, and that gate, counting before this one's end was
    // visible, saw only two. Deferring to it would leave the loop running until a later
    // launch: this gate trips.
    let aws = FakeAws {
        abandoned: vec!["i-0aaa", ABANDONED, "i-0zzz"],
        abandoned_ago: 5,
        ..FakeAws::default()
    };
    let b = count(&aws, &GateConfig::default()).await;
    assert_eq!(b.abandons.len(), 3, "{b:?}");
    assert_eq!(b.abandons.last().unwrap().instance_id, "i-0zzz");
    assert!(b.tripped, "{b:?}");
    assert_eq!(*aws.calls.lock().unwrap(), ["SuspendProcesses"]);
    // the other gate, counting now, finds the trip recorded and does not act again
    let other = after_abandon(
        &aws,
        &GateConfig::default(),
        "shop-web",
        "i-0zzz",
        Some(&release()),
    )
    .await
    .unwrap();
    assert!(!other.tripped, "{other:?}");
    assert_eq!(*aws.calls.lock().unwrap(), ["SuspendProcesses"]);
}
