//! launch-gate: an AWS Lambda that holds a new EC2 Auto Scaling instance at its launch
//! lifecycle hook until it answers its health check the way the load balancer will ask
//! it, then completes the lifecycle action with `CONTINUE` (the group registers the
//! instance with its target groups) or `ABANDON` (the group terminates it), and says why.
//! The same checks answer an ECS blue/green deployment's lifecycle hook for its green tasks.
//!
//! # Layout
//!
//! Imports run one way: binaries -> the gate and its hold (Auto Scaling) -> the engine (the
//! wait) -> ports and the pure core.
//!
//! The pure core (no I/O, no AWS SDK; built alone without the `aws` feature, as the fuzz
//! target does):
//! - [`event`]: lifecycle notifications in (EventBridge, SNS, SQS, a hand-over, the sweep) -> claims;
//!   `event::ecs`: an ECS deployment hook's invocation in, its answer out.
//! - [`config`]: [`config::GateConfig`], from `LAUNCH_GATE_*` variables and per-hook `NotificationMetadata`.
//! - [`matcher`]: the ELB success-code matcher (`200`, `200,204`, `200-299`).
//! - [`expect`]: what a response body must hold (`body_contains`, `body_json`).
//! - [`policy`]: probe samples and time -> [`policy::Verdict`].
//! - [`text`]: bounded text: what comes from an app, an event or AWS, clipped.
//!
//! Around it (the `aws` feature, on by default):
//! - `probe`: the HTTP probe with ELB semantics (Host, no redirects, one timeout, body limit). Network I/O.
//! - `diagnosis`: a failed probe or target health -> cause code, summary and fix. Pure.
//! - `record`: the decision record and its metrics, one JSON line each. Prints.
//! - `time`: the epoch, RFC 3339, instants of epoch times, the invocation deadline, durations. Reads the clock.
//! - `aws`: ports named by capability (Auto Scaling, EC2, ELB, EventBridge, Lambda, the rollout's
//!   reads), their SDK adapter `aws::sdk`, and a test-only fake.
//! - `admission`: Auto Scaling asked whether it holds a claimed lifecycle action, before anything is done.
//! - `gate`: the gate, a folder by stage: intake (`mod`), `sweep`, `decide` (the stages of one
//!   action), `targets`, `resolve`, the engine (`wait`: rounds, thresholds, a `Hold` trait; `clock`),
//!   the Auto Scaling hold (`hold`: heartbeat, claim, hand-over, completion), `tell` (breaker, events),
//!   `baseline` (the running release beside the new one), `ecs` (the ECS deployment hook).
//! - `breaker`: the launch-loop breaker: abandons counted per group and launch template version, the trip.
//! - `publish`: decision and `Rollout Halted` events on EventBridge.
//! - `checks`: the gate's checks of one address, once, for `launch-gate probe`.
//! - `rollout`: the pipeline step: the assessment and its poll loop, over the rollout's reads.
//! - `doctor`: the setup mistakes that bypass or break the gate, judged from read-only reads. Pure.
//!
//! The binaries in `src/bin/` parse arguments and print: `bootstrap` is the Lambda
//! function, `launch-gate` the CLI (`probe`, `rollout`, `doctor`).

#[cfg(feature = "aws")]
pub mod admission;
#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod breaker;
#[cfg(feature = "aws")]
pub mod checks;
pub mod config;
#[cfg(feature = "aws")]
pub mod diagnosis;
#[cfg(feature = "aws")]
pub mod doctor;
pub mod event;
pub mod expect;
#[cfg(feature = "aws")]
pub mod gate;
pub mod matcher;
pub mod policy;
#[cfg(feature = "aws")]
pub mod probe;
#[cfg(feature = "aws")]
pub mod publish;
#[cfg(feature = "aws")]
pub mod record;
#[cfg(feature = "aws")]
pub mod rollout;
pub mod text;
#[cfg(feature = "aws")]
pub mod time;
