//! Feeds arbitrary bytes, parsed as JSON, to both transformers, whole and
//! inside the envelope they look into. Any panic is a bug: a record that
//! cannot be transformed must come back as an error.
#![no_main]

use etl_domain::transform::{github, jira};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let mappings = jira::CustomFieldMappings {
        story_points: Some("customfield_10016".to_owned()),
    };
    let _ = jira::transform(&raw, 1, &mappings);
    let _ = github::transform(&raw, 1);
    let _ = jira::transform(&json!({"id": "1", "fields": raw.clone()}), 1, &mappings);
    let _ = github::transform(&json!({"id": 1, "state": "open", "base": raw}), 1);
});
