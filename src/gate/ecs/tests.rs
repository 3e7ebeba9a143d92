//! The ECS hold's pure parts: the confirmation and the wait's state.

use super::*;

fn invocation() -> EcsHookInvocation {
    crate::event::ecs::parse(&serde_json::json!({
        "executionId": "e-1",
        "lifecycleStage": "POST_SCALE_UP",
        "resourceArn": "arn:aws:ecs:us-east-1:123456789012:service-deployment/shop/web/d1",
        "executionDetails": {
            "serviceArn": "arn:aws:ecs:us-east-1:123456789012:service/shop/web",
            "targetServiceRevisionArn": "arn:aws:ecs:us-east-1:123456789012:service-revision/shop/web/2"
        }
    }))
    .unwrap()
}

fn deployment() -> ServiceDeploymentView {
    ServiceDeploymentView {
        arn: invocation().deployment_arn,
        service_arn: invocation().service_arn,
        cluster_arn: "arn:aws:ecs:us-east-1:123456789012:cluster/shop".into(),
        status: DeploymentStatus::InProgress,
        lifecycle_stage: Some("POST_SCALE_UP".into()),
        target_revision_arn: Some(invocation().target_revision_arn),
        requested_task_count: 2,
        started_at: Some(1_796_000_000),
        hooks: Vec::new(),
    }
}

#[test]
fn ecs_confirms_the_deployment_or_it_is_refused() {
    let inv = invocation();
    // No lifecycleHookDetails: AWS does not document that a Lambda hook is listed there.
    assert_eq!(
        confirm_deployment(&inv, Some(&deployment())),
        Ok(&deployment())
    );
    let refused = |d: Option<&ServiceDeploymentView>| confirm_deployment(&inv, d).unwrap_err();
    assert!(refused(None).starts_with("ECS does not know the service deployment"));
    let other_service = ServiceDeploymentView {
        service_arn: "arn:aws:ecs:us-east-1:123456789012:service/shop/admin".into(),
        ..deployment()
    };
    assert!(refused(Some(&other_service)).contains("belongs to"));
    let other_revision = ServiceDeploymentView {
        target_revision_arn: Some("arn:aws:ecs:x:1:service-revision/shop/web/1".into()),
        ..deployment()
    };
    assert!(refused(Some(&other_revision)).contains("green revision"));
    let later_stage = ServiceDeploymentView {
        lifecycle_stage: Some("POST_TEST_TRAFFIC_SHIFT".into()),
        ..deployment()
    };
    assert!(refused(Some(&later_stage)).contains("at POST_TEST_TRAFFIC_SHIFT"));
    // a deployment rolling back is confirmed, and answered SUCCEEDED by the caller
    let rolling_back = ServiceDeploymentView {
        status: DeploymentStatus::RollingBack("ROLLBACK_IN_PROGRESS".into()),
        lifecycle_stage: Some("TEST_TRAFFIC_SHIFT".into()),
        ..deployment()
    };
    assert_eq!(
        confirm_deployment(&inv, Some(&rolling_back)),
        Ok(&rolling_back)
    );
}

#[test]
fn the_wait_state_round_trips_in_hook_details() {
    let mut state = EcsWaitState {
        deployment: invocation().deployment_arn,
        stage: "POST_SCALE_UP".into(),
        started_ms: 1_796_000_000_000,
        rounds: 3,
        ..EcsWaitState::default()
    };
    state.tasks.insert(
        "arn:task/1".into(),
        Tally {
            passes: 2,
            failures: 0,
        },
    );
    let details = serde_json::json!({ STATE_KEY: state });
    let back: EcsWaitState = serde_json::from_value(details[STATE_KEY].clone()).unwrap();
    assert_eq!(back, state);
}

#[test]
fn a_rejected_host_is_fixed_where_the_task_gets_its_ip() {
    let d = || Diagnosis {
        code: "host_rejected",
        summary: "answered 400".into(),
        fix: "instance metadata".into(),
        target_group: None,
        elb_reason: None,
    };
    let awsvpc = round::for_network_mode(d(), NetworkMode::Awsvpc);
    assert!(
        awsvpc.fix.contains("ECS_CONTAINER_METADATA_URI_V4"),
        "{}",
        awsvpc.fix
    );
    let bridge = round::for_network_mode(d(), NetworkMode::HostPort);
    assert!(
        bridge.fix.contains("container instance's private IP"),
        "{}",
        bridge.fix
    );
}
