//! The loop against hand-written fakes, on tokio's paused clock: the thresholds, the
//! deadline and the heartbeat cadence are checked in virtual time, without waiting.
use super::*;
use crate::aws::fake::FakeAws;
use crate::probe::ProbeError;
use crate::probe::ProbeOutcome;
use std::sync::Mutex;

struct FakeProber(Mutex<Vec<bool>>);

impl Prober for FakeProber {
    async fn probe(&self, _: &ProbeRequest) -> ProbeOutcome {
        let mut script = self.0.lock().unwrap();
        let passed = if script.len() > 1 {
            script.remove(0)
        } else {
            script[0]
        };
        ProbeOutcome {
            status: passed.then_some(200),
            passed,
            latency_ms: 1,
            error: (!passed).then_some(ProbeError::ConnectionRefused),
            body_mismatch: None,
            location: None,
            content_type: None,
            body: String::new(),
        }
    }
}

fn action() -> LifecycleAction {
    let event: Value = serde_json::from_str(include_str!("../../events/launch.json")).unwrap();
    match event::parse(&event).unwrap().remove(0) {
        Notification::Launch(mut a) => {
            a.sent_at = None;
            a.notification_metadata = None;
            a
        }
        other => panic!("{other:?}"),
    }
}

fn config() -> GateConfig {
    GateConfig {
        healthy_threshold: 2,
        unhealthy_threshold: 2,
        interval: Duration::from_secs(5),
        probe_timeout: Duration::from_secs(2),
        grace_period: Duration::from_secs(20),
        max_wait: Duration::from_secs(120),
        ..GateConfig::default()
    }
}

async fn run(script: &[bool], config: GateConfig, aws: FakeAws) -> (DecisionRecord, Vec<String>) {
    let gate = Gate::new(config, FakeProber(Mutex::new(script.to_vec())), aws);
    let record = gate.gate(&action(), None).await.unwrap();
    let calls = gate.aws.calls.lock().unwrap().clone();
    (record, calls)
}

#[tokio::test(start_paused = true)]
async fn healthy_continues_after_the_threshold() {
    let (r, calls) = run(&[false, true, true], config(), FakeAws::default()).await;
    assert_eq!(r.outcome, Outcome::Completed);
    assert_eq!(r.result, Some(LifecycleActionResult::Continue));
    assert_eq!(r.probe_count, 3);
    assert_eq!(r.time_to_decision_ms, 10_000);
    // admission's heartbeat proves the action live; the tag follows the completion
    assert_eq!(calls, ["heartbeat", "CONTINUE", "tag CONTINUE"]);
}

#[tokio::test(start_paused = true)]
async fn failing_after_grace_abandons_early_with_a_cause() {
    let (r, calls) = run(&[false], config(), FakeAws::default()).await;
    assert_eq!(r.result, Some(LifecycleActionResult::Abandon));
    // probes at 0,5,10,15 are in the grace period; 20 and 25 count
    assert_eq!(r.probe_count, 6);
    assert_eq!(r.cause.as_ref().unwrap().code, "connection_refused");
    assert!(
        r.reason.contains("2 consecutive rounds failed"),
        "{}",
        r.reason
    );
    assert_eq!(
        calls,
        [
            "heartbeat",
            "ABANDON",
            "tag ABANDON cause=connection_refused"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn flapping_abandons_at_the_deadline_with_heartbeats_on_the_way() {
    let mut c = config();
    c.unhealthy_threshold = 5;
    let script: Vec<bool> = (0..100).map(|i| i % 2 == 0).collect();
    let (r, calls) = run(&script, c, FakeAws::default()).await;
    assert_eq!(r.result, Some(LifecycleActionResult::Abandon));
    assert!(matches!(
        r.abandon_reason,
        Some(AbandonReason::DeadlineExceeded { .. })
    ));
    assert_eq!(r.time_to_decision_ms, 120_000);
    // heartbeat timeout 60 s: admission's, then one every 30 s
    assert_eq!(r.heartbeats, 4);
    assert_eq!(calls[calls.len() - 2], "ABANDON");
}

#[tokio::test(start_paused = true)]
async fn shadow_mode_continues_and_keeps_the_verdict() {
    let mut c = config();
    c.mode = Mode::Shadow;
    let (r, calls) = run(&[false], c, FakeAws::default()).await;
    assert_eq!(r.verdict, Some(LifecycleActionResult::Abandon));
    assert_eq!(r.result, Some(LifecycleActionResult::Continue));
    assert!(
        r.reason.starts_with("shadow mode: would have sent ABANDON"),
        "{}",
        r.reason
    );
    // the instance's decision tag keeps the verdict; the breaker counts no ABANDON
    assert_eq!(
        calls,
        [
            "heartbeat",
            "CONTINUE",
            "tag CONTINUE cause=connection_refused shadow-verdict=ABANDON",
        ]
    );
    assert!(r.breaker.is_none());
}

#[tokio::test(start_paused = true)]
async fn an_invocation_deadline_hands_off_without_completing() {
    let gate = Gate::new(
        config(),
        FakeProber(Mutex::new(vec![false])),
        FakeAws::default(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let r = gate.gate(&action(), Some(deadline)).await.unwrap();
    assert_eq!(r.outcome, Outcome::HandedOff);
    assert!(r.reason.contains("DefaultResult (ABANDON)"), "{}", r.reason);
    assert_eq!(*gate.aws.calls.lock().unwrap(), ["heartbeat"]);
    assert!(Instant::now() <= deadline - INVOCATION_RESERVE);
}

#[tokio::test(start_paused = true)]
async fn a_terminated_instance_ends_the_gate() {
    let gate = Gate::new(
        config(),
        FakeProber(Mutex::new(vec![true])),
        FakeAws {
            state: "terminated",
            ..FakeAws::default()
        },
    );
    let r = gate.gate(&action(), None).await.unwrap();
    assert_eq!(r.outcome, Outcome::InstanceGone);
    assert_eq!(*gate.aws.calls.lock().unwrap(), ["heartbeat"]);
}

#[tokio::test(start_paused = true)]
async fn a_link_local_address_is_never_probed() {
    let aws = FakeAws {
        ip: "169.254.169.254",
        ..FakeAws::default()
    };
    let (r, calls) = run(&[true], config(), aws).await;
    assert_eq!(r.outcome, Outcome::HandedOff);
    assert!(r.reason.contains("link-local"), "{}", r.reason);
    assert_eq!(r.probe_count, 0);
    assert_eq!(calls, ["heartbeat"]);
}

#[tokio::test(start_paused = true)]
async fn bad_metadata_hands_off() {
    // The hook's own metadata counts, as DescribeLifecycleHooks returns it.
    let gate = Gate::new(
        config(),
        FakeProber(Mutex::new(vec![true])),
        FakeAws {
            hook_metadata: Some(r#"{"port": 8000}"#),
            ..FakeAws::default()
        },
    );
    let r = gate.gate(&action(), None).await.unwrap();
    assert_eq!(r.outcome, Outcome::HandedOff);
    assert!(r.reason.contains("key \"port\" is unknown"), "{}", r.reason);
    assert_eq!(*gate.aws.calls.lock().unwrap(), ["heartbeat"]);
}

#[tokio::test(start_paused = true)]
async fn a_second_completion_is_already_decided() {
    let aws = FakeAws::default();
    *aws.decided.lock().unwrap() = true;
    let (r, _) = run(&[true], config(), aws).await;
    assert_eq!(r.outcome, Outcome::AlreadyDecided);
}

#[test]
fn the_reserve_holds_a_whole_completion_under_retries() {
    use crate::aws::sdk::OPERATION_TIMEOUT;
    assert!(INVOCATION_RESERVE >= OPERATION_TIMEOUT + Duration::from_secs(2));
    assert!(VALIDATION_RESERVE >= OPERATION_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn warm_pool_entry_continues_at_once() {
    let gate = Gate::new(
        config(),
        FakeProber(Mutex::new(vec![false])),
        FakeAws {
            lifecycle_state: "Warmed:Pending:Wait",
            ..FakeAws::default()
        },
    );
    let r = gate.gate(&action(), None).await.unwrap();
    assert_eq!(r.result, Some(LifecycleActionResult::Continue));
    assert_eq!(r.probe_count, 0);
    assert_eq!(r.destination, Some(crate::event::Location::WarmPool));
}

fn events(gate: &Gate<FakeProber, FakeAws>) -> Vec<String> {
    gate.aws
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|(t, _)| t.clone())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_third_abandon_of_a_release_suspends_launches_once() {
    let aws = FakeAws {
        abandoned: vec!["i-0aaa", "i-0bbb"],
        ..FakeAws::default()
    };
    let gate = Gate::new(config(), FakeProber(Mutex::new(vec![false])), aws);
    let r = gate.gate(&action(), None).await.unwrap();
    assert_eq!(r.result, Some(LifecycleActionResult::Abandon));
    let b = r.breaker.as_ref().unwrap();
    assert!(b.tripped, "{b:?}");
    assert_eq!(b.abandons.len(), 3);
    assert_eq!(
        b.abandons.last().unwrap().instance_id,
        "i-0123456789abcdef0"
    );
    assert!(
        b.action_taken
            .as_deref()
            .unwrap()
            .contains("suspended the group's Launch process")
    );
    assert!(
        b.resume_command
            .as_deref()
            .unwrap()
            .contains("resume-processes")
    );
    assert_eq!(
        gate.aws.calls.lock().unwrap().clone(),
        [
            "heartbeat",
            "ABANDON",
            "tag ABANDON cause=connection_refused",
            "SuspendProcesses"
        ]
    );
    assert_eq!(
        events(&gate),
        ["Lifecycle Action Decision", "Rollout Halted"]
    );
    let halted = gate.aws.events.lock().unwrap()[1].1.clone();
    assert_eq!(halted["launch_template"]["version"], "2");
    assert_eq!(halted["abandons"].as_array().unwrap().len(), 3);
    assert_eq!(halted["tripped_by"]["cause"]["code"], "connection_refused");

    // The next ABANDON of the same release counts from the trip: no second trip.
    *gate.aws.decided.lock().unwrap() = false;
    let r = gate.gate(&action(), None).await.unwrap();
    let b = r.breaker.as_ref().unwrap();
    assert!(!b.tripped);
    assert_eq!(b.abandons.len(), 1);
    assert_eq!(
        gate.aws
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == "SuspendProcesses")
            .count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn events_that_cannot_be_published_change_nothing() {
    let aws = FakeAws {
        events_fail: true,
        ..FakeAws::default()
    };
    let (r, calls) = run(&[true], config(), aws).await;
    assert_eq!(r.outcome, Outcome::Completed);
    assert_eq!(r.result, Some(LifecycleActionResult::Continue));
    assert_eq!(calls, ["heartbeat", "CONTINUE", "tag CONTINUE"]);
}

#[tokio::test(start_paused = true)]
async fn a_continue_is_one_decision_event_and_no_breaker() {
    let gate = Gate::new(
        config(),
        FakeProber(Mutex::new(vec![true])),
        FakeAws::default(),
    );
    let r = gate.gate(&action(), None).await.unwrap();
    assert!(r.breaker.is_none());
    assert_eq!(events(&gate), ["Lifecycle Action Decision"]);
    let detail = gate.aws.events.lock().unwrap()[0].1.clone();
    assert_eq!(detail["result"], "CONTINUE");
    assert_eq!(detail["launch_template"]["id"], "lt-1");
    assert!(detail["time_to_decision_ms"].is_u64());
}

#[tokio::test(start_paused = true)]
async fn an_auto_grace_period_is_no_shorter_than_the_groups() {
    // The group waits 40 s before its own health checks: so does an `auto` grace period
    // (20 s here), and an explicit one is kept as set.
    let aws = FakeAws::default();
    *aws.group_grace.lock().unwrap() = Some(Duration::from_secs(40));
    let (r, _) = run(&[false], config(), aws).await;
    assert_eq!(r.result, Some(LifecycleActionResult::Abandon));
    // probes at 0..35 are in the grace period; 40 and 45 count
    assert_eq!(r.probe_count, 10);
    assert_eq!(r.settings.unwrap().grace_period, Duration::from_secs(40));

    let aws = FakeAws::default();
    *aws.group_grace.lock().unwrap() = Some(Duration::from_secs(40));
    let explicit = GateConfig {
        grace_period_auto: false,
        ..config()
    };
    let (r, _) = run(&[false], explicit, aws).await;
    assert_eq!(r.probe_count, 6);
}

/// Scripts the subject (10.0.1.23) and the baseline (any other address) apart; a failure
/// is a refused connection on either.
struct TwoProber {
    subject: Mutex<Vec<bool>>,
    baseline: Mutex<Vec<bool>>,
}

impl TwoProber {
    fn new(subject: &[bool], baseline: &[bool]) -> Self {
        Self {
            subject: Mutex::new(subject.to_vec()),
            baseline: Mutex::new(baseline.to_vec()),
        }
    }
}

impl Prober for TwoProber {
    async fn probe(&self, request: &ProbeRequest) -> ProbeOutcome {
        let script = if request.ip.to_string() == "10.0.1.23" {
            &self.subject
        } else {
            &self.baseline
        };
        let passed = {
            let mut s = script.lock().unwrap();
            if s.len() > 1 { s.remove(0) } else { s[0] }
        };
        FakeProber(Mutex::new(vec![passed])).probe(request).await
    }
}

/// A group with the subject and one InService instance of the previous release.
fn with_baseline() -> FakeAws {
    let aws = FakeAws::default();
    *aws.group_instances.lock().unwrap() = vec![crate::aws::GroupInstance {
        instance_id: "i-0old".into(),
        lifecycle_state: "InService".into(),
        health_status: "Healthy".into(),
        launch_template_version: Some("1".into()),
    }];
    aws
}

async fn run_two(
    subject: &[bool],
    baseline: &[bool],
    aws: FakeAws,
) -> (DecisionRecord, Vec<(String, Value)>) {
    let gate = Gate::new(config(), TwoProber::new(subject, baseline), aws);
    let record = gate.gate(&action(), None).await.unwrap();
    let events = gate.aws.events.lock().unwrap().clone();
    (record, events)
}

#[tokio::test(start_paused = true)]
async fn an_outage_the_running_release_shares_is_waited_out_and_not_counted() {
    let (r, events) = run_two(&[false], &[false], with_baseline()).await;
    assert_eq!(r.result, Some(LifecycleActionResult::Abandon));
    // no early ABANDON: the wait's end (max_wait 120 s) decides
    assert!(matches!(
        r.abandon_reason,
        Some(AbandonReason::DeadlineExceeded { .. })
    ));
    assert_eq!(r.time_to_decision_ms, 120_000);
    let cause = r.cause.as_ref().unwrap();
    assert_eq!(cause.code, "environment_unhealthy");
    assert!(
        cause.summary.contains(
            "the running release (launch template version 1, i-0old) fails the same check the same way"
        ),
        "{}",
        cause.summary
    );
    let b = r.baseline.as_ref().unwrap();
    assert_eq!(b.status, crate::record::BaselineStatus::Failed);
    assert_eq!(b.private_ip.as_deref(), Some("10.0.1.50"));
    assert_eq!(b.comparisons, b.environment_rounds);
    // rounds at 20..115 s are past the grace period: each compared once
    assert_eq!(b.comparisons, 20);
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["Environment Unhealthy", "Lifecycle Action Decision"]
    );
    let breaker = r.breaker.as_ref().unwrap();
    assert_eq!(breaker.environment, ["i-0123456789abcdef0"]);
    assert!(breaker.abandons.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_release_the_running_one_passes_beside_is_blamed_early() {
    let (r, events) = run_two(&[false], &[true], with_baseline()).await;
    assert_eq!(r.result, Some(LifecycleActionResult::Abandon));
    assert_eq!(r.probe_count, 6);
    assert_eq!(r.cause.as_ref().unwrap().code, "connection_refused");
    assert!(
        r.reason.contains(
            "Baseline: the running release (launch template version 1, i-0old) passes the same check (deep_health); the new release fails it."
        ),
        "{}",
        r.reason
    );
    assert_eq!(
        r.baseline.as_ref().unwrap().status,
        crate::record::BaselineStatus::Passed
    );
    assert!(events.iter().all(|(k, _)| k != "Environment Unhealthy"));
    assert_eq!(r.breaker.as_ref().unwrap().abandons.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn when_the_environment_recovers_the_release_is_continued() {
    // Both fail until t=40 s, then both pass.
    let failing = [false; 9];
    let subject: Vec<bool> = failing.iter().copied().chain([true]).collect();
    let baseline: Vec<bool> = [false, false, false, false, false, true].to_vec();
    let (r, events) = run_two(&subject, &baseline, with_baseline()).await;
    assert_eq!(
        r.result,
        Some(LifecycleActionResult::Continue),
        "{}",
        r.reason
    );
    assert_eq!(
        events
            .iter()
            .filter(|(k, _)| k == "Environment Unhealthy")
            .count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_baseline_the_release_is_judged_alone() {
    let (r, _) = run_two(&[false], &[true], FakeAws::default()).await;
    assert_eq!(r.result, Some(LifecycleActionResult::Abandon));
    assert_eq!(r.probe_count, 6);
    let b = r.baseline.as_ref().unwrap();
    assert_eq!(b.status, crate::record::BaselineStatus::None);
    assert!(
        b.note
            .starts_with("no baseline: the group shop-web has no other InService instance"),
        "{}",
        b.note
    );

    let off = GateConfig {
        baseline: false,
        ..config()
    };
    let gate = Gate::new(off, TwoProber::new(&[false], &[false]), with_baseline());
    let r = gate.gate(&action(), None).await.unwrap();
    assert_eq!(r.probe_count, 6);
    assert!(r.baseline.is_none());
}

/// Every probe runs to its timeout and fails: the subject and the baseline alike.
struct SlowProber;

impl Prober for SlowProber {
    async fn probe(&self, request: &ProbeRequest) -> ProbeOutcome {
        tokio::time::sleep(request.timeout).await;
        FakeProber(Mutex::new(vec![false])).probe(request).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_rounds_baseline_work_never_outlasts_the_hand_over() {
    // The hand-over is due 23 s in. The round at 20 s (past the grace period) takes its
    // 2 s timeout, then its baseline probe 2 s more, after the baseline's first reads: the
    // gate must not start it, or the invocation is killed before it hands over.
    let gate = Gate::new(config(), SlowProber, with_baseline());
    let deadline = Instant::now() + Duration::from_secs(23) + INVOCATION_RESERVE;
    let r = gate.gate(&action(), Some(deadline)).await.unwrap();
    assert_eq!(r.outcome, Outcome::HandedOff, "{}", r.reason);
    assert!(
        Instant::now() <= deadline - INVOCATION_RESERVE,
        "the gate worked past its hand-over: {:?} late",
        Instant::now() - (deadline - INVOCATION_RESERVE)
    );
}
