//! `tokenctl metrics --json`: the daemon's OpenMetrics text as JSON.
//!
//! The daemon sends OpenMetrics text (what scrapers read); a script that
//! wants one number should not have to parse it. Each sample line becomes
//! `{"name":..,"labels":{..},"value":..}`, in the text's order; the
//! `# TYPE`/`# HELP`/`# EOF` lines are left out. A value JSON cannot hold
//! (`NaN`, `+Inf`) is `null`. The text is the daemon's own, whose label
//! values are escaped as `escape_label_value` writes them; a line this
//! reader cannot split is kept whole under `"unparsed"` rather than dropped.

use serde_json::{Map, Value, json};

/// The samples of `text`, one JSON object each.
pub fn samples(text: &str) -> Value {
    Value::Array(
        text.lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| sample(line).unwrap_or_else(|| json!({ "unparsed": line })))
            .collect(),
    )
}

/// One sample line: `name{label="value",...} number`, or `name number`.
fn sample(line: &str) -> Option<Value> {
    let (series, value) = line.rsplit_once(' ')?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, labels(rest.strip_suffix('}')?)?),
        None => (series, Map::new()),
    };
    if name.is_empty() {
        return None;
    }
    let value = value
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, |n| {
            // Counts print as integers, as in the text.
            match value.parse::<u64>() {
                Ok(whole) => Value::from(whole),
                Err(_) => Value::Number(n),
            }
        });
    Some(json!({ "name": name, "labels": labels, "value": value }))
}

/// `label="value",...` with OpenMetrics' escapes (`\\`, `\"`, `\n`) undone.
fn labels(mut rest: &str) -> Option<Map<String, Value>> {
    let mut labels = Map::new();
    while !rest.is_empty() {
        let (label, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(label.to_owned(), Value::String(value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Some(labels)
}

#[cfg(test)]
mod tests {
    use super::samples;
    use serde_json::json;
    use tokend::broker::escape_label_value;

    #[test]
    fn samples_keep_names_labels_and_values() {
        let text = "# TYPE tokend_sessions gauge\n# HELP tokend_sessions Sessions by state.\n\
                    tokend_sessions{state=\"active\"} 2\n\
                    tokend_refresh_duration_seconds_bucket{provider=\"gh\",le=\"+Inf\"} 7\n\
                    tokend_refresh_duration_seconds_sum{provider=\"gh\"} 0.25\n\
                    tokend_store_available 1\n# EOF\n";
        assert_eq!(
            samples(text),
            json!([
                {"name": "tokend_sessions", "labels": {"state": "active"}, "value": 2},
                {"name": "tokend_refresh_duration_seconds_bucket",
                 "labels": {"provider": "gh", "le": "+Inf"}, "value": 7},
                {"name": "tokend_refresh_duration_seconds_sum",
                 "labels": {"provider": "gh"}, "value": 0.25},
                {"name": "tokend_store_available", "labels": {}, "value": 1},
            ])
        );
    }

    /// A provider name with every character the text escapes comes back
    /// as it was, and one with `} ` or `,` in it does not split the line.
    #[test]
    fn escaped_label_values_come_back_whole() {
        for name in ["a\\b\"c", "two\nlines", "x} 3", "p,q=\"r\""] {
            let text = format!(
                "tokend_refreshes_total{{provider=\"{}\",outcome=\"ok\"}} 5\n",
                escape_label_value(name)
            );
            assert_eq!(
                samples(&text),
                json!([{"name": "tokend_refreshes_total",
                        "labels": {"provider": name, "outcome": "ok"}, "value": 5}]),
                "{name:?}"
            );
        }
    }

    #[test]
    fn what_cannot_be_read_is_kept_not_dropped() {
        assert_eq!(
            samples("broken{x=\"1\" 2\nnan_value NaN\n"),
            json!([{"unparsed": "broken{x=\"1\" 2"},
                   {"name": "nan_value", "labels": {}, "value": null}])
        );
    }
}
