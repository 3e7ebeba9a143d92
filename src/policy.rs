//! The decision rule: probe samples and the time now in, a [`Verdict`] out. Pure: no I/O,
//! no clock (time is a value, measured from the start of the gate), no tokio, AWS or HTTP.
//!
//! The rule mirrors an ELB target's health state machine, with a deadline:
//! `CONTINUE` after `healthy_threshold` consecutive passing probes; `ABANDON` after
//! `unhealthy_threshold` consecutive failures that all started after the grace period,
//! or when the deadline passes without the healthy threshold. A failure the environment
//! explains (the running release fails the same check the same way at the same moment)
//! is excused: it never counts toward `unhealthy_threshold`, so only the deadline can
//! end a wait through an outage.

use std::time::Duration;

use serde::Serialize;

/// The thresholds and times the rule applies, all measured from the start of the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Consecutive passing probes that `CONTINUE` (at least 1).
    pub healthy_threshold: u32,
    /// Consecutive failing probes, each started after `grace_period`, that `ABANDON`.
    pub unhealthy_threshold: u32,
    /// Failures of probes started before this do not count toward `unhealthy_threshold`.
    pub grace_period: Duration,
    /// When the wait ends: `ABANDON` if the healthy threshold is not met by then.
    pub deadline: Duration,
}

/// One probe's result, as the rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSample {
    /// When the probe started, from the start of the gate.
    pub at: Duration,
    /// Whether it passed (status in the matcher, and no error).
    pub passed: bool,
    /// A failure the baseline shares: the environment's, not the release's.
    pub excused: bool,
}

/// Why the rule abandons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AbandonReason {
    /// `unhealthy_threshold` consecutive failures after the grace period.
    UnhealthyThreshold {
        /// The run of failures.
        consecutive_failures: u32,
    },
    /// The deadline passed before `healthy_threshold` consecutive passes.
    DeadlineExceeded {
        /// The longest run of passes seen at the end.
        consecutive_passes: u32,
    },
}

/// What the rule says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep probing.
    Pending,
    /// Put the instance in service.
    Continue,
    /// Keep the instance out of service.
    Abandon(AbandonReason),
}

/// Applies the rule to the samples so far (in probe order) at time `now`.
///
/// The healthy threshold wins over the deadline when both hold, so a probe that passes
/// just as time runs out still counts.
pub fn evaluate(policy: &HealthPolicy, samples: &[ProbeSample], now: Duration) -> Verdict {
    let passes = samples.iter().rev().take_while(|s| s.passed).count() as u32;
    if passes >= policy.healthy_threshold.max(1) {
        return Verdict::Continue;
    }
    let failures = samples
        .iter()
        .rev()
        .take_while(|s| !s.passed && !s.excused && s.at >= policy.grace_period)
        .count() as u32;
    if failures >= policy.unhealthy_threshold.max(1) {
        return Verdict::Abandon(AbandonReason::UnhealthyThreshold {
            consecutive_failures: failures,
        });
    }
    if now >= policy.deadline {
        return Verdict::Abandon(AbandonReason::DeadlineExceeded {
            consecutive_passes: passes,
        });
    }
    Verdict::Pending
}

/// A subject's tally of rounds, for a hold that is answered once per round and called
/// back (an ECS deployment hook): what [`evaluate`] needs of the samples so far, small
/// enough to travel between invocations. [`Tally::verdict`] applies the same rule as
/// [`evaluate`] to the samples the tally stands for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Tally {
    /// Consecutive passing rounds, up to now.
    pub passes: u32,
    /// Consecutive failing rounds up to now that count toward `unhealthy_threshold`
    /// (after the grace period, not excused).
    pub failures: u32,
}

impl Tally {
    /// Adds one round's sample.
    pub fn observe(&mut self, sample: ProbeSample, policy: &HealthPolicy) {
        if sample.passed {
            self.passes = self.passes.saturating_add(1);
            self.failures = 0;
        } else {
            self.passes = 0;
            // A failure that does not count ends the run, as in `evaluate`.
            self.failures = if sample.excused || sample.at < policy.grace_period {
                0
            } else {
                self.failures.saturating_add(1)
            };
        }
    }

    /// The rule's verdict at `now` for the samples this tally stands for.
    pub fn verdict(&self, policy: &HealthPolicy, now: Duration) -> Verdict {
        let sample = |passed| ProbeSample {
            at: policy.grace_period,
            passed,
            excused: false,
        };
        let samples: Vec<ProbeSample> = if self.passes > 0 {
            vec![sample(true); self.passes.min(policy.healthy_threshold.max(1)) as usize]
        } else {
            vec![sample(false); self.failures.min(policy.unhealthy_threshold.max(1)) as usize]
        };
        match evaluate(policy, &samples, now) {
            // The run's true length, not the capped one used to evaluate it.
            Verdict::Abandon(AbandonReason::UnhealthyThreshold { .. }) => {
                Verdict::Abandon(AbandonReason::UnhealthyThreshold {
                    consecutive_failures: self.failures,
                })
            }
            Verdict::Abandon(AbandonReason::DeadlineExceeded { .. }) => {
                Verdict::Abandon(AbandonReason::DeadlineExceeded {
                    consecutive_passes: self.passes,
                })
            }
            v => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: HealthPolicy = HealthPolicy {
        healthy_threshold: 3,
        unhealthy_threshold: 2,
        grace_period: Duration::from_secs(10),
        deadline: Duration::from_secs(60),
    };

    /// Samples from a pattern: one character a probe, five seconds apart from t=0;
    /// `+` passed, `-` failed, `e` failed the same way on the baseline (excused).
    fn samples(pattern: &str) -> Vec<ProbeSample> {
        pattern
            .chars()
            .enumerate()
            .map(|(i, c)| ProbeSample {
                at: Duration::from_secs(5 * i as u64),
                passed: c == '+',
                excused: c == 'e',
            })
            .collect()
    }

    #[test]
    fn table() {
        use AbandonReason::*;
        use Verdict::*;
        let s = Duration::from_secs;
        let table: &[(&str, u64, Verdict)] = &[
            ("", 0, Pending),
            ("+", 0, Pending),
            ("++", 5, Pending),
            ("+++", 10, Continue),
            ("-+++", 15, Continue),
            ("++-++", 20, Pending),
            // failures inside the grace period (t=0 and t=5) never abandon early
            ("--", 5, Pending),
            // t=10 is the first probe after the grace period; two failures from there
            ("---", 10, Pending),
            (
                "----",
                15,
                Abandon(UnhealthyThreshold {
                    consecutive_failures: 2,
                }),
            ),
            (
                "--+--",
                20,
                Abandon(UnhealthyThreshold {
                    consecutive_failures: 2,
                }),
            ),
            ("---+-", 20, Pending),
            // the deadline
            ("-+-+-+", 59, Pending),
            (
                "-+-+-+",
                60,
                Abandon(DeadlineExceeded {
                    consecutive_passes: 1,
                }),
            ),
            (
                "-+-+-",
                60,
                Abandon(DeadlineExceeded {
                    consecutive_passes: 0,
                }),
            ),
            (
                "-+-++",
                60,
                Abandon(DeadlineExceeded {
                    consecutive_passes: 2,
                }),
            ),
            // the healthy threshold wins at the deadline
            ("-+++", 60, Continue),
            // failures the environment explains never abandon early, only the deadline
            ("--eeeeee", 35, Pending),
            (
                "--eeeeee",
                60,
                Abandon(DeadlineExceeded {
                    consecutive_passes: 0,
                }),
            ),
            // the environment recovers and the release passes
            ("--eee+++", 35, Continue),
            // it recovers and the release still fails: its own failures count again
            (
                "--eee+--",
                35,
                Abandon(UnhealthyThreshold {
                    consecutive_failures: 2,
                }),
            ),
            ("--ee-e-", 30, Pending),
        ];
        for (pattern, now, expected) in table {
            assert_eq!(
                evaluate(&POLICY, &samples(pattern), s(*now)),
                *expected,
                "{pattern} at {now}s"
            );
        }
    }

    #[test]
    fn zero_thresholds_behave_as_one() {
        let p = HealthPolicy {
            healthy_threshold: 0,
            unhealthy_threshold: 0,
            grace_period: Duration::ZERO,
            deadline: Duration::from_secs(60),
        };
        assert_eq!(evaluate(&p, &[], Duration::ZERO), Verdict::Pending);
        assert_eq!(
            evaluate(&p, &samples("+"), Duration::ZERO),
            Verdict::Continue
        );
        assert!(matches!(
            evaluate(&p, &samples("-"), Duration::ZERO),
            Verdict::Abandon(_)
        ));
    }

    #[test]
    fn a_tally_gives_the_verdict_of_the_samples_it_stands_for() {
        // Every pattern of the table, observed one sample at a time: the tally's verdict
        // is evaluate's at every step.
        for pattern in [
            "", "+", "+++", "-+++", "----", "--+--", "---+-", "e-e-", "-e--", "++-++",
        ] {
            let all = samples(pattern);
            let mut tally = Tally::default();
            for (i, s) in all.iter().enumerate() {
                tally.observe(*s, &POLICY);
                for now in [s.at, Duration::from_secs(60)] {
                    let want = evaluate(&POLICY, &all[..=i], now);
                    let got = tally.verdict(&POLICY, now);
                    let same = match (want, got) {
                        (Verdict::Abandon(_), Verdict::Abandon(_)) => true,
                        (a, b) => a == b,
                    };
                    assert!(same, "{pattern} at {i}, {now:?}: {want:?} != {got:?}");
                }
            }
        }
    }
}
