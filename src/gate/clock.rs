//! The times that bound one gate: the start, the wait's end and the heartbeats.

use super::*;

/// The times that bound one gate.
#[derive(Debug)]
pub(super) struct Clock {
    /// When the gate stops waiting for the healthy threshold.
    pub(super) wait_deadline: Instant,
    /// When the next heartbeat is due.
    pub(super) next_heartbeat: Instant,
    /// Time between heartbeats: half the heartbeat timeout.
    pub(super) heartbeat_every: Duration,
}

impl Clock {
    /// The clock of a gate that starts at `start`, just after admission recorded a
    /// heartbeat: the next one is due in half the heartbeat timeout, and the wait ends
    /// `max_wait` after `start` until [`Clock::bound`] knows more.
    pub(super) fn new(start: Instant, config: &GateConfig, hook: &HookSettings) -> Self {
        let heartbeat_every = hook.heartbeat_timeout / 2;
        Self {
            wait_deadline: start + config.max_wait,
            next_heartbeat: Instant::now() + heartbeat_every,
            heartbeat_every,
        }
    }

    /// Bounds the wait with AWS's facts: it ends `max_wait` after `start`, and before the
    /// hook's global timeout (counted from `launched`, the instance's launch time, when
    /// EC2 tells it) less [`INVOCATION_RESERVE`]. Whatever `start` a hand-over claims, the
    /// wait leaves room for the thresholds' rounds probed from now
    /// ([`fresh_rounds_time`]), within the global timeout.
    pub(super) fn bound(
        &mut self,
        start: Instant,
        config: &GateConfig,
        hook: &HookSettings,
        launched: Option<Instant>,
    ) {
        let now = Instant::now();
        let global_end =
            launched.unwrap_or(now) + hook.global_timeout.saturating_sub(INVOCATION_RESERVE);
        self.wait_deadline = (start + config.max_wait)
            .max(now + fresh_rounds_time(config))
            .min(global_end);
    }
}

/// The least time a wait leaves for rounds probed from now: enough for the larger
/// threshold of consecutive rounds, each an interval apart, and the last round's probe.
pub(super) fn fresh_rounds_time(config: &GateConfig) -> Duration {
    let rounds = config.healthy_threshold.max(config.unhealthy_threshold);
    config.interval * rounds.saturating_sub(1) + config.probe_timeout + Duration::from_millis(500)
}

/// Seconds, rounded to the nearest: times carried across invocations in milliseconds
/// lose a little, and "within 19 s" for a 20 s wait would mislead.
pub(super) fn whole_seconds(d: Duration) -> u64 {
    (d.as_millis() as u64 + 500) / 1000
}
