//! The times that bound one gate: the start, the wait's end and the heartbeats.

use super::*;

/// The times that bound one gate: when it started, when it must hand over before its
/// invocation ends, when the wait ends, and when the next heartbeat is due.
#[derive(Debug)]
pub(super) struct Clock {
    /// When the gate started; for a hand-over, the first invocation's start, once
    /// [`Clock::bound`] has checked it against the instance's launch time.
    pub(super) start: Instant,
    /// When the gate must stop and hand over, keeping back the time to complete:
    /// [`INVOCATION_RESERVE`] before the invocation's deadline (more with
    /// [`Clock::reserve`]). `None` outside Lambda.
    pub(super) handoff_at: Option<Instant>,
    /// When the gate stops waiting for the healthy threshold.
    pub(super) wait_deadline: Instant,
    /// When the next heartbeat is due.
    pub(super) next_heartbeat: Instant,
    /// Time between heartbeats: half the heartbeat timeout.
    pub(super) heartbeat_every: Duration,
}

impl Clock {
    /// The clock of a gate that starts at `start` in an invocation that ends at
    /// `deadline`, just after admission recorded a heartbeat: the next one is due in half
    /// the heartbeat timeout, and the wait ends `max_wait` after `start` until
    /// [`Clock::bound`] knows more.
    pub(super) fn new(
        start: Instant,
        deadline: Option<Instant>,
        config: &GateConfig,
        hook: &HookSettings,
    ) -> Self {
        let heartbeat_every = hook.heartbeat_timeout / 2;
        Self {
            start,
            handoff_at: deadline.map(|d| d.checked_sub(INVOCATION_RESERVE).unwrap_or(start)),
            wait_deadline: start + config.max_wait,
            next_heartbeat: Instant::now() + heartbeat_every,
            heartbeat_every,
        }
    }

    /// Bounds the wait with AWS's facts. `launched` is the instance's launch time, when
    /// EC2 tells it; `claimed_start` a hand-over's start (milliseconds since the Unix
    /// epoch), which moves the start back, but never before the launch nor after now. The
    /// wait ends `max_wait` after the start, and before the hook's global timeout counted
    /// from the launch, less [`INVOCATION_RESERVE`]. Whatever start is claimed, the wait
    /// leaves room for the thresholds' rounds probed from now ([`fresh_rounds_time`]),
    /// within the global timeout.
    pub(super) fn bound(
        &mut self,
        launched: Option<Instant>,
        claimed_start: Option<u64>,
        config: &GateConfig,
        hook: &HookSettings,
    ) {
        let now = Instant::now();
        if let Some(ms) = claimed_start {
            let claimed = instant_of(ms).min(now);
            self.start = launched.map_or(claimed, |l| claimed.max(l));
        }
        let global_end =
            launched.unwrap_or(now) + hook.global_timeout.saturating_sub(INVOCATION_RESERVE);
        self.wait_deadline = (self.start + config.max_wait)
            .max(now + fresh_rounds_time(config))
            .min(global_end);
    }

    /// Keeps `extra` more back from the invocation's deadline (a deregistration before
    /// the completion).
    pub(super) fn reserve(&mut self, extra: Duration) {
        self.handoff_at = self
            .handoff_at
            .map(|h| h.checked_sub(extra).unwrap_or(self.start));
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
