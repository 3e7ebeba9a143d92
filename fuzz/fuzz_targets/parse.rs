//! Random bytes through everything the gate parses from outside: the Lambda event (any
//! JSON), a hook's NotificationMetadata, and a matcher. None may panic; errors are fine.
//!
//! The gate's pure core, built without its `aws` feature: the fuzz build needs no AWS SDK.
#![no_main]

use launch_gate::{config, event, matcher};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = event::parse(&value);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = config::GateConfig::default().with_metadata(Some(text));
        let _ = text.parse::<matcher::Matcher>();
    }
});
