//! The Lambda function: reads its settings and builds its AWS clients once at cold start,
//! then gates each lifecycle notification it is invoked with, and answers each ECS
//! deployment lifecycle hook invocation as ECS reads it.

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use launch_gate::aws::sdk::SdkAws;
use launch_gate::config::GateConfig;
use launch_gate::gate::ecs::Invoked;
use launch_gate::gate::{Gate, GateError};
use launch_gate::probe::HttpProber;
use launch_gate::time::invocation_deadline;
use serde_json::Value;

/// An invocation error, reported to Lambda with a stable `errorType`.
#[derive(Debug)]
struct Failed(GateError);

impl From<Failed> for Diagnostic {
    fn from(Failed(e): Failed) -> Self {
        Diagnostic {
            error_type: e.error_type().into(),
            error_message: e.to_string(),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = GateConfig::from_env()
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let sdk = launch_gate::aws::sdk::load_config(None).await;
    let name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok();
    let aws = SdkAws::new(&sdk).with_function_name(name.clone());
    let gate = Gate::new(config, HttpProber::new(), aws);
    let gate = &gate;
    let name = &name;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = invocation_deadline(event.context.deadline);
        // Lambda gives the ARN it was invoked by; an emulated runtime may give no ARN, and
        // then the function's name stands for it.
        let arn = &event.context.invoked_function_arn;
        let function_arn = if arn.starts_with("arn:") {
            Some(arn.as_str())
        } else {
            name.as_deref()
        };
        let invoked = Invoked {
            function_arn,
            request_id: Some(&event.context.request_id),
            deadline: Some(deadline),
        };
        gate.respond(&event.payload, invoked).await.map_err(Failed)
    }))
    .await
}
