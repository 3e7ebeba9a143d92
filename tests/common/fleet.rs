//! A played fleet: every held launch of the group gets its release's app and its
//! lifecycle event delivered to a gate, as the rule would.

use super::*;

/// The group's instances and EventBridge, played for a rollout: each launch the hook
/// holds boots its release (the app of its launch template version, started on its
/// private IP) and its lifecycle event is delivered to a gate, as the rule would.
pub struct Fleet {
    task: tokio::task::JoinHandle<()>,
    apps: Arc<Mutex<Vec<DjangoApp>>>,
    /// Launches the fleet could not play: an app that did not start, a gate that failed.
    failures: Arc<Mutex<Vec<String>>>,
    /// The launch template version of every launch the fleet saw, read while the instance
    /// lived (EC2 may drop a terminated instance's tags at once).
    booted: Arc<Mutex<Vec<(String, String)>>>,
}

/// What a release does when an instance boots: its app's settings, or `None` when the
/// app never starts. Given the launch template version and how many instances of that
/// version booted before.
pub type Release = Arc<dyn Fn(&str, usize) -> Option<AppSetup> + Send + Sync>;

impl World {
    /// Starts playing the fleet: gates use `config` (the function's settings).
    pub fn fleet(
        &self,
        config: GateConfig,
        release: impl Fn(&str, usize) -> Option<AppSetup> + Send + Sync + 'static,
    ) -> Fleet {
        let release: Release = Arc::new(release);
        let apps = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let url = self.emulator.url.clone();
        let sdk = self.sdk.clone();
        let port = self.port;
        let (shared_apps, shared_failures) = (apps.clone(), failures.clone());
        let booted = Arc::new(Mutex::new(Vec::new()));
        let shared_booted = booted.clone();
        let task = tokio::spawn(async move {
            let aws = SdkAws::new(&sdk);
            let mut seen: Vec<String> = Vec::new();
            loop {
                let view = url.clone();
                let actions = tokio::task::spawn_blocking(move || lifecycle_actions(&view))
                    .await
                    .unwrap();
                for action in actions {
                    let id = action["EC2InstanceId"].as_str().unwrap().to_owned();
                    if action["Pending"] != true || seen.contains(&id) {
                        continue;
                    }
                    seen.push(id.clone());
                    let info = aws.describe_instance(&id).await.unwrap().unwrap();
                    let ip = info.private_ip.unwrap();
                    let version = info
                        .launch_template
                        .map_or_else(|| "none".to_owned(), |t| t.version);
                    let nth = {
                        let mut booted = shared_booted.lock().unwrap();
                        let nth = booted.iter().filter(|(_, v)| *v == version).count();
                        booted.push((id.clone(), version.clone()));
                        nth
                    };
                    let (apps, failures) = (shared_apps.clone(), shared_failures.clone());
                    let gate = Gate::new(config.clone(), HttpProber::new(), SdkAws::new(&sdk));
                    let release = release.clone();
                    tokio::spawn(async move {
                        if let Some(setup) = release(&version, nth) {
                            let started = tokio::task::spawn_blocking(move || {
                                DjangoApp::start(ip, port, setup)
                            });
                            match started.await {
                                Ok(app) => apps.lock().unwrap().push(app),
                                Err(e) => {
                                    failures
                                        .lock()
                                        .unwrap()
                                        .push(format!("{id}: the app did not start: {e}"));
                                    return;
                                }
                            }
                        }
                        let event = sample_event("launch.json", &action);
                        if let Err(e) = gate.handle(&event, None).await {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("{id}: the gate failed: {e}"));
                        }
                    });
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        Fleet {
            task,
            apps,
            failures,
            booted,
        }
    }
}

impl Fleet {
    /// The launch template version of `instance_id`, if the fleet has seen it launch.
    pub fn version_of(&self, instance_id: &str) -> Option<String> {
        self.booted
            .lock()
            .unwrap()
            .iter()
            .find(|(id, _)| id == instance_id)
            .map(|(_, v)| v.clone())
    }

    /// Panics when the fleet stopped playing or could not play a launch, so that a test
    /// says why rather than timing out.
    pub fn check(&self) {
        let failures = self.failures.lock().unwrap();
        assert!(failures.is_empty(), "the fleet failed: {failures:#?}");
        assert!(
            !self.task.is_finished(),
            "the fleet's task died: see its panic above"
        );
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.task.abort();
        self.apps.lock().unwrap().clear();
    }
}
