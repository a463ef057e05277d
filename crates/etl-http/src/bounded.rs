//! List answers bounded in bytes (SPEC §5, `ETL_MAX_RESPONSE_BYTES`): items
//! are written while the answer stays within the bound, so a page ends
//! early (fewer than `limit` items, at least one) when the next item would
//! pass it; the client goes on with `after_id` from the last item it got.

use actix_web::HttpResponse;
use serde::Serialize;

use crate::error::ApiError;

/// The default `ETL_MAX_RESPONSE_BYTES`: 32 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// A JSON array being written, at most `max_bytes` long (but for a first
/// item larger than that alone).
struct BoundedArray {
    body: String,
    max_bytes: usize,
    items: usize,
}

impl BoundedArray {
    fn new(max_bytes: usize) -> Self {
        Self {
            body: String::from("["),
            max_bytes,
            items: 0,
        }
    }

    /// Appends one item's JSON text; `false` (and nothing appended) when it
    /// would pass the bound.
    fn push(&mut self, item: &str) -> bool {
        let grown = self.body.len() + usize::from(self.items > 0) + item.len() + 1;
        if self.items > 0 && grown > self.max_bytes {
            return false;
        }
        if self.items > 0 {
            self.body.push(',');
        }
        self.body.push_str(item);
        self.items += 1;
        true
    }

    fn into_response(mut self) -> HttpResponse {
        self.body.push(']');
        HttpResponse::Ok()
            .content_type("application/json")
            .body(self.body)
    }
}

/// 200 with the items, serialised one by one, while they fit.
pub fn json_list<T: Serialize>(
    items: impl IntoIterator<Item = T>,
    max_bytes: usize,
) -> Result<HttpResponse, ApiError> {
    let mut array = BoundedArray::new(max_bytes);
    for item in items {
        let text = serde_json::to_string(&item).map_err(ApiError::internal)?;
        if !array.push(&text) {
            break;
        }
    }
    Ok(array.into_response())
}

/// 200 with items that are JSON text already (stored rows), while they fit.
pub fn text_list<'a>(items: impl IntoIterator<Item = &'a str>, max_bytes: usize) -> HttpResponse {
    let mut array = BoundedArray::new(max_bytes);
    for item in items {
        if !array.push(item) {
            break;
        }
    }
    array.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(items: &[&str], max_bytes: usize) -> String {
        let mut array = BoundedArray::new(max_bytes);
        for item in items {
            if !array.push(item) {
                break;
            }
        }
        array.body.push(']');
        array.body
    }

    #[test]
    fn an_array_stops_before_the_item_that_would_pass_the_bound() {
        let items = ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"];
        assert_eq!(written(&items, 1000), r#"[{"a":1},{"b":2},{"c":3}]"#);
        // `[{"a":1},{"b":2}]` is 17 bytes.
        assert_eq!(written(&items, 17), r#"[{"a":1},{"b":2}]"#);
        assert_eq!(written(&items, 16), r#"[{"a":1}]"#);
        // One item always goes, however large.
        assert_eq!(written(&items, 1), r#"[{"a":1}]"#);
        assert_eq!(written(&[], 1), "[]");
    }
}
