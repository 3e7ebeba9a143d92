//! launch-gate: an AWS Lambda that holds a new EC2 Auto Scaling instance at its launch
//! lifecycle hook until it answers its health check the way the load balancer will ask
//! it, then completes the lifecycle action with `CONTINUE` (the group registers the
//! instance with its target groups) or `ABANDON` (the group terminates it), and says why.
//!
//! # Layout
//!
//! - [`event`]: lifecycle notifications in (EventBridge, SNS, SQS, test message) -> [`event::LifecycleAction`]. Pure.
//! - [`config`]: [`config::GateConfig`], from `LAUNCH_GATE_*` variables and per-hook `NotificationMetadata`. Pure.
//! - [`matcher`]: the ELB success-code matcher (`200`, `200,204`, `200-299`). Pure.
//! - [`expect`]: what a response body must hold (`body_contains`, `body_json`). Pure.
//! - [`policy`]: probe samples and time -> [`policy::Verdict`]. Pure.
//! - [`diagnosis`]: a failed probe -> cause code, summary and fix. Pure.
//! - [`probe`]: the HTTP probe with ELB semantics (Host, no redirects, timeout, body limit). Network I/O.
//! - [`time`]: the epoch, RFC 3339, instants of epoch times, the invocation deadline, durations.
//! - [`text`]: bounded text: what comes from an app, an event or AWS, clipped. Pure.
//! - [`admission`]: Auto Scaling asked whether it holds a claimed lifecycle action, before anything is done.
//! - [`aws`]: ports to EC2 and Auto Scaling, named by capability, and their SDK adapters.
//! - [`gate`]: the loop: resolve, probe, heartbeat, decide, complete, record.
//! - [`record`]: the decision record, one JSON line per lifecycle action.
//! - [`breaker`]: the launch-loop breaker: abandons counted per group and launch template version, and the trip.
//! - [`publish`]: decision and `Rollout Halted` events on EventBridge.
//! - [`rollout`]: the pipeline step that waits for a rollout's instances to pass the gate.
//!
//! The binaries in `src/bin/` are thin: `bootstrap` is the Lambda function.

pub mod admission;
pub mod aws;
pub mod breaker;
pub mod config;
pub mod diagnosis;
pub mod event;
pub mod expect;
pub mod gate;
pub mod matcher;
pub mod policy;
pub mod probe;
pub mod publish;
pub mod record;
pub mod rollout;
pub mod text;
pub mod time;
