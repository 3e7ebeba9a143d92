//! A rollout beyond one instance: a group of several instances all gated in, its played
//! fleet, the pipeline's subscriber to the gate's events, and `launch-gate rollout`.

use super::*;
use launch_gate::aws::AutoScalingGroups;
use launch_gate::breaker::launched_instance;
use std::future::Future;
use std::process::Output;

/// Polls `probe` every 500 ms until it gives a value, for at most `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub struct Rollout {
    pub world: World,
    pub events: Subscriber,
    pub fleet: Fleet,
}

impl Rollout {
    /// A group of `capacity` instances of launch template version 1 (which the group
    /// names by number), all gated in, with the gate's `config` and the fleet's `release`.
    pub async fn start(
        capacity: i32,
        config: GateConfig,
        release: impl Fn(&str, usize) -> Option<AppSetup> + Send + Sync + 'static,
    ) -> Self {
        Self::start_with(capacity, config, release, Vec::new()).await
    }

    /// [`Rollout::start`] with emulator options.
    pub async fn start_with(
        capacity: i32,
        config: GateConfig,
        release: impl Fn(&str, usize) -> Option<AppSetup> + Send + Sync + 'static,
        emulator_options: Vec<&'static str>,
    ) -> Self {
        Self::start_spec(
            WorldSpec {
                capacity,
                emulator_options,
                ..WorldSpec::default()
            },
            config,
            release,
        )
        .await
    }

    /// [`Rollout::start`] with the world as `spec` says (capacity, hook settings, emulator
    /// options).
    pub async fn start_spec(
        spec: WorldSpec,
        config: GateConfig,
        release: impl Fn(&str, usize) -> Option<AppSetup> + Send + Sync + 'static,
    ) -> Self {
        let capacity = spec.capacity;
        let world = World::build(spec).await;
        world.use_launch_template_version("1", None).await;
        let events = Subscriber::start(&world.sdk).await;
        let fleet = world.fleet(config, release);
        let r = Self {
            world,
            events,
            fleet,
        };
        let n = capacity as usize;
        eventually(
            "the first instances are in service",
            Duration::from_secs(90),
            || async { (r.in_service().await.len() >= n).then_some(()) },
        )
        .await;
        r
    }

    /// Waits (up to 120 s) until the breaker has suspended the group's launches.
    pub async fn launches_suspended(&self) {
        eventually(
            "the breaker suspends launches",
            Duration::from_secs(120),
            || async {
                self.group()
                    .await
                    .suspended_processes()
                    .iter()
                    .any(|p| p.process_name() == Some("Launch"))
                    .then_some(())
            },
        )
        .await;
    }

    /// Points the group at launch template version 2 and scales out to 4: two launches at
    /// a time on the new release.
    pub async fn scale_out_on_version_2(&self) {
        self.world.use_launch_template_version("2", Some(4)).await;
    }

    /// Points the group at launch template version `version` with `desired` instances.
    pub async fn launch(&self, version: &str, desired: i32) {
        self.world
            .use_launch_template_version(version, Some(desired))
            .await;
    }

    /// Launch template version 2 of the release.
    pub async fn new_version(&self) {
        self.world
            .ec2
            .create_launch_template_version()
            .launch_template_name("shop-web")
            .launch_template_data(
                aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                    .image_id("ami-12c6146b")
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    pub async fn group(&self) -> aws_sdk_autoscaling::types::AutoScalingGroup {
        self.fleet.check();
        self.world.describe_group().await
    }

    /// The group's in-service instances and their launch template versions.
    pub async fn in_service(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for i in self.group().await.instances() {
            if i.lifecycle_state().map(|s| s.as_str()) == Some("InService") {
                let id = i.instance_id().unwrap().to_owned();
                out.push((id.clone(), self.world.launch_template_version(&id).await));
            }
        }
        out
    }

    /// The group's launches so far (its scaling activities, read as the breaker reads
    /// them), by launch template version.
    /// Launches of `version`, from the group's scaling activities: each instance's version
    /// as the fleet saw it while it lived, else from its tags (EC2 may drop a terminated
    /// instance's tags at once, but the fleet sees every launch).
    pub async fn launches_of(&self, version: &str) -> usize {
        let activities = SdkAws::new(&self.world.sdk)
            .scaling_activities(&self.world.group, 0)
            .await
            .unwrap();
        let mut n = 0;
        for id in activities.iter().filter_map(launched_instance) {
            let v = match self.fleet.version_of(id) {
                Some(v) => v,
                None => self.world.launch_template_version(id).await,
            };
            n += usize::from(v == version);
        }
        n
    }

    pub async fn refresh(&self) -> aws_sdk_autoscaling::types::InstanceRefresh {
        self.world
            .autoscaling
            .describe_instance_refreshes()
            .auto_scaling_group_name(&self.world.group)
            .send()
            .await
            .unwrap()
            .instance_refreshes()[0]
            .clone()
    }

    pub async fn start_refresh_to_version_2(&self) {
        self.start_refresh_to("2").await;
    }

    pub async fn start_refresh_to(&self, version: &str) {
        self.world
            .autoscaling
            .start_instance_refresh()
            .auto_scaling_group_name(&self.world.group)
            .desired_configuration(
                aws_sdk_autoscaling::types::DesiredConfiguration::builder()
                    .launch_template(
                        aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                            .launch_template_name("shop-web")
                            .version(version)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    /// `launch-gate rollout --group shop-web ARGS`, started now; its output once it exits.
    pub fn rollout_cli(&self, args: &[&str]) -> tokio::task::JoinHandle<Output> {
        let child = Command::new(env!("CARGO_BIN_EXE_launch-gate"))
            .args([
                "rollout",
                "--group",
                &self.world.group,
                "--poll-interval",
                "1s",
            ])
            .args(args)
            .env("AWS_ENDPOINT_URL", &self.world.emulator.url)
            .env_remove("AWS_PROFILE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
    }

    /// The decision events received, once there are at least `n`.
    pub async fn decisions(&mut self, n: usize) -> Vec<Value> {
        for _ in 0..120 {
            let d = self.events.details("Lifecycle Action Decision").await;
            if d.len() >= n {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("fewer than {n} decision events after 60 s");
    }

    pub fn calls(&self, operation: &str) -> u64 {
        self.world.calls()[operation].as_u64().unwrap_or(0)
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
