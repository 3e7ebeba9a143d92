//! Random bytes through everything the gate parses from outside: the Lambda event (any
//! JSON), a hook's NotificationMetadata, and a matcher. None may panic; errors are fine.
//!
//! The pure modules are compiled in directly, so the fuzz build needs no AWS SDK.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/config.rs"]
mod config;
#[allow(dead_code)]
#[path = "../../src/event.rs"]
mod event;
#[allow(dead_code)]
#[path = "../../src/expect.rs"]
mod expect;
#[allow(dead_code)]
#[path = "../../src/matcher.rs"]
mod matcher;
#[allow(dead_code)]
#[path = "../../src/text.rs"]
mod text;

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
