//! The answer to `metrics` (protocol 3): OpenMetrics text in chunks.

use serde::{Deserialize, Serialize};

use super::ErrorBody;

/// The first version with the `metrics` op.
pub const METRICS_SINCE: u32 = 3;

/// The most OpenMetrics text one `metrics` answer line carries (before JSON
/// escaping): far below what any client reads in a line, whatever the
/// number of providers.
pub const METRICS_CHUNK: usize = 64 * 1024;

/// A line of the answer to `metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum MetricsEvent {
    /// The next part of the text: whole lines, newlines included.
    Text {
        /// OpenMetrics text.
        text: String,
    },
    /// The end of the answer.
    Done {
        /// Whether the text is complete.
        ok: bool,
        /// Why not, when `ok` is false.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ErrorBody>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_lines_are_tagged_events() {
        let text = MetricsEvent::Text {
            text: "# EOF\n".into(),
        };
        assert_eq!(
            serde_json::to_string(&text).unwrap(),
            r##"{"event":"text","text":"# EOF\n"}"##
        );
        let done: MetricsEvent = serde_json::from_str(r#"{"event":"done","ok":true}"#).unwrap();
        assert_eq!(
            done,
            MetricsEvent::Done {
                ok: true,
                error: None
            }
        );
        assert_eq!(
            crate::protocol::parse_request(br#"{"op":"metrics"}"#),
            Ok(crate::protocol::Request::Metrics)
        );
    }
}
