//! The AWS emulator: moto in server mode with the project's extension, on a free
//! loopback port, and its control surface.

use super::*;

/// moto in server mode with the project's extension.
pub struct Emulator {
    child: Child,
    pub url: String,
}

impl Emulator {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// The emulator with more options (`--throttle`).
    pub fn start_with(options: &[&str]) -> Self {
        let mut child = Command::new(python())
            .arg(repo().join("emulator/launch_gate_emulator.py"))
            .args(["--host", "127.0.0.1", "--port", "0"])
            // ELB's health checks every half second, so target health settles fast
            .args(["--elb-interval", "0.5", "--elb-timeout", "1"])
            // As in EC2: a new instance has its private IP while still `pending`.
            .args(["--pending-seconds", "1"])
            .args(options)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the AWS emulator");
        let line = first_line(&mut child, Duration::from_secs(60));
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("http://127."))
            .unwrap_or_else(|| panic!("the emulator did not start: {line:?}"))
            .to_owned();
        Self { child, url }
    }

    /// SDK configuration for the emulator: its endpoint, dummy credentials, a fixed region.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            // The gate's own retry policy, with short backoffs so fault tests stay fast.
            .retry_config(
                launch_gate::aws::sdk::retry_config()
                    .with_initial_backoff(Duration::from_millis(20))
                    .with_max_backoff(Duration::from_millis(200)),
            )
            .timeout_config(launch_gate::aws::sdk::timeout_config())
            .load()
            .await
    }

    /// Every lifecycle action the emulator has held, pending and ended.
    pub fn lifecycle_actions(&self) -> Vec<Value> {
        lifecycle_actions(&self.url)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
