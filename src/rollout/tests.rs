//! The assessment and the step's loop, on fakes and paused time.
use super::*;

fn lt(version: &str) -> LaunchTemplateVersion {
    LaunchTemplateVersion {
        id: "lt-1".into(),
        version: version.into(),
    }
}

fn instance(id: &str, version: &str, decision: Option<&str>) -> (String, InstanceInfo) {
    (
        id.into(),
        InstanceInfo {
            state: "running".into(),
            private_ip: None,
            group_name: Some("shop-web".into()),
            claimed_until: None,
            launch_template: Some(lt(version)),
            decision: decision.map(str::to_owned),
            launched_at: None,
        },
    )
}

fn snapshot() -> Snapshot {
    Snapshot {
        desired_capacity: 2,
        in_service: vec!["i-old".into(), "i-new1".into(), "i-new2".into()],
        instances: vec![
            instance("i-old", "1", Some("CONTINUE")),
            instance("i-new1", "2", Some("CONTINUE")),
            instance("i-new2", "2", Some("CONTINUE shadow-verdict=ABANDON")),
            instance("i-bad", "2", Some("ABANDON cause=host_rejected")),
        ],
        ..Snapshot::default()
    }
}

#[test]
fn only_in_service_instances_of_the_release_that_passed_count() {
    let s = snapshot();
    assert_eq!(
        assess(Some(&lt("2")), 0, None, None, &s),
        Progress::Succeeded {
            passed: 2,
            expected: 2
        }
    );
    assert_eq!(
        assess(Some(&lt("3")), 0, None, None, &s),
        Progress::Waiting {
            passed: 0,
            expected: 2
        }
    );
    assert_eq!(
        assess(Some(&lt("2")), 0, None, Some(3), &s),
        Progress::Waiting {
            passed: 2,
            expected: 3
        }
    );
}

#[test]
fn a_trip_of_the_release_halts_it() {
    let mut s = snapshot();
    s.trip = Some(Trip {
        release: Some(lt("2")),
        at: 100,
        instance_id: "i-bad".into(),
    });
    assert!(matches!(
        assess(Some(&lt("2")), 50, None, None, &s),
        Progress::Halted { .. }
    ));
    // an older trip, of a release a person has resumed since, does not
    assert!(matches!(
        assess(Some(&lt("2")), 150, None, None, &s),
        Progress::Succeeded { .. }
    ));
    s.suspended_processes.push("Launch".into());
    assert!(matches!(
        assess(Some(&lt("2")), 150, None, None, &s),
        Progress::Halted { .. }
    ));
    // another release's trip is not this one's
    assert!(matches!(
        assess(Some(&lt("3")), 50, None, None, &s),
        Progress::Waiting { .. }
    ));
}

#[test]
fn a_refresh_that_ends_otherwise_fails_the_rollout() {
    let mut s = snapshot();
    s.in_service.clear();
    s.refresh = Some(RefreshView {
        id: "r-1".into(),
        status: "RollbackSuccessful".into(),
        status_reason: Some("Rollback started by user request".into()),
        desired: Some(TemplateSpec {
            id: Some("lt-1".into()),
            name: None,
            version: Some("2".into()),
        }),
    });
    let p = assess(Some(&lt("2")), 0, Some("r-1"), None, &s);
    assert!(
        matches!(&p, Progress::Failed { reason } if reason.contains("RollbackSuccessful")),
        "{p:?}"
    );
    assert!(matches!(
        assess(Some(&lt("2")), 0, None, None, &s),
        Progress::Waiting { .. }
    ));
}

/// The group as a scripted series of looks (the last one repeats), with launch
/// template `lt-1` named by the group at version `2`.
struct FakeReads(std::sync::Mutex<Vec<GroupSnapshot>>);

impl RolloutReads for FakeReads {
    async fn rollout_snapshot(
        &self,
        _: &str,
    ) -> Result<Option<(GroupSnapshot, Option<TemplateSpec>)>, AwsError> {
        let mut looks = self.0.lock().unwrap();
        if looks.is_empty() {
            return Ok(None);
        }
        let look = if looks.len() > 1 {
            looks.remove(0)
        } else {
            looks[0].clone()
        };
        let template = TemplateSpec {
            id: Some("lt-1".into()),
            name: None,
            version: Some("2".into()),
        };
        Ok(Some((look, Some(template))))
    }

    async fn resolve_launch_template(
        &self,
        _: &TemplateSpec,
        version: Option<&str>,
    ) -> Result<Option<LaunchTemplateVersion>, AwsError> {
        Ok(Some(lt(version.unwrap_or("2"))))
    }
}

#[derive(Default)]
struct Lines(Vec<(String, String)>);

impl Report for Lines {
    fn line(&mut self, kind: &str, text: &str, _: serde_json::Value) {
        self.0.push((kind.to_owned(), text.to_owned()));
    }
}

fn request() -> RolloutRequest {
    RolloutRequest {
        group: "shop-web".into(),
        expect: None,
        timeout: Duration::from_secs(60),
        launch_template_version: None,
        poll_interval: Duration::from_secs(5),
    }
}

fn look(in_service: &[&str], instances: Vec<(String, InstanceInfo)>) -> GroupSnapshot {
    GroupSnapshot {
        desired_capacity: 2,
        in_service: in_service.iter().map(|s| (*s).to_owned()).collect(),
        instances,
        ..GroupSnapshot::default()
    }
}

// Paused time: the polls run in virtual time, without waiting.
#[tokio::test(start_paused = true)]
async fn the_step_reports_each_decision_once_and_succeeds() {
    let reads = FakeReads(std::sync::Mutex::new(vec![
        look(&[], vec![instance("i-1", "2", Some("CONTINUE"))]),
        look(
            &["i-1"],
            vec![
                instance("i-1", "2", Some("CONTINUE")),
                instance("i-bad", "2", Some("ABANDON cause=host_rejected")),
            ],
        ),
        look(
            &["i-1", "i-2"],
            vec![
                instance("i-1", "2", Some("CONTINUE")),
                instance("i-2", "2", Some("CONTINUE")),
                instance("i-old", "1", Some("CONTINUE")),
            ],
        ),
    ]));
    let mut lines = Lines::default();

    let end = run(&reads, &request(), &mut lines).await.unwrap();

    assert_eq!(end, RolloutEnd::Succeeded, "{:?}", lines.0);
    let decisions: Vec<&str> = lines
        .0
        .iter()
        .filter(|(k, _)| k == "decision")
        .map(|(_, t)| t.as_str())
        .collect();
    assert_eq!(
        decisions,
        [
            "i-1 CONTINUE",
            "i-bad ABANDON cause=host_rejected",
            "i-2 CONTINUE"
        ]
    );
    let (kind, text) = lines.0.last().unwrap();
    assert_eq!(kind, "end");
    assert!(text.starts_with("rollout succeeded: 2 of 2"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_trip_of_the_release_halts_the_step() {
    let mut halted = look(&[], vec![]);
    halted.breaker_tag = Some(format!("lt-1:2 {} i-bad", crate::time::epoch_seconds()));
    halted.suspended_processes = vec!["Launch".into()];
    let reads = FakeReads(std::sync::Mutex::new(vec![look(&[], vec![]), halted]));
    let mut lines = Lines::default();

    assert_eq!(
        run(&reads, &request(), &mut lines).await.unwrap(),
        RolloutEnd::Failed
    );
    let (_, text) = lines.0.last().unwrap();
    assert!(
        text.starts_with("rollout halted: the launch-loop breaker tripped"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_step_that_never_gets_there_times_out() {
    let reads = FakeReads(std::sync::Mutex::new(vec![look(&[], vec![])]));
    let mut lines = Lines::default();

    assert_eq!(
        run(&reads, &request(), &mut lines).await.unwrap(),
        RolloutEnd::Failed
    );
    let (_, text) = lines.0.last().unwrap();
    assert!(text.starts_with("rollout timed out after 60 s"), "{text}");
}

#[tokio::test]
async fn an_unknown_group_is_a_usage_error() {
    let reads = FakeReads(std::sync::Mutex::new(Vec::new()));
    let err = run(&reads, &request(), &mut Lines::default())
        .await
        .unwrap_err();
    assert!(matches!(err, RolloutError::Usage(_)), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn an_outage_is_not_a_failed_release() {
    // A launch of the release abandoned through an outage (its decision tag), another
    // only listed on the group (EC2 dropped its tags): the step times out with its own end.
    let mut outage = look(
        &[],
        vec![instance(
            "i-env1",
            "2",
            Some("ABANDON cause=environment_unhealthy"),
        )],
    );
    outage.environment_tag = Some(format!(
        "t={} i-env1 i-env2",
        crate::time::epoch_seconds() + 1
    ));
    let reads = FakeReads(std::sync::Mutex::new(vec![look(&[], vec![]), outage]));
    let mut lines = Lines::default();

    assert_eq!(
        run(&reads, &request(), &mut lines).await.unwrap(),
        RolloutEnd::EnvironmentFailed
    );
    let warnings = lines.0.iter().filter(|(k, _)| k == "warning").count();
    assert_eq!(warnings, 1, "{:?}", lines.0);
    let (_, text) = lines.0.last().unwrap();
    assert!(
        text.contains("through an environment outage, not a failed release")
            && text.contains("2 launches of the release were abandoned"),
        "{text}"
    );
    assert!(environment_abandoned(Some(
        "ABANDON cause=environment_unhealthy"
    )));
    assert!(!environment_abandoned(Some("ABANDON cause=host_rejected")));
    assert!(!environment_abandoned(Some(
        "CONTINUE cause=environment_unhealthy"
    )));
}
