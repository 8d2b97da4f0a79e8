//! The metrics as OpenMetrics text, as one caller may see them.
//!
//! Need-to-know as everywhere else: a series labelled with a provider is
//! written only for providers the caller has a role on, and sessions are
//! counted only among those. The daemon-wide series (the store, requests
//! per front-end) go to callers who may see at least one provider, and to
//! the owner and root, as the store's line of `status` does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::api::Broker;
use super::metrics::{
    LATENCY_BUCKETS, ProviderCounters, REFRESH_OUTCOMES, RequestCounters, outcome_name,
};
use super::policy::Caller;
use super::report::SessionPhase;
use super::session::Session;

/// A label value as OpenMetrics quotes it: backslash, double quote and
/// newline escaped.
#[must_use]
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The text being written; `write!` to a String cannot fail.
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# TYPE {name} {kind}\n# HELP {name} {help}");
    }

    /// A sample: `labels` as (name, unescaped value) pairs.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"{}\"", escape_label_value(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

impl Broker {
    /// What `caller` may see of the daemon's metrics, as OpenMetrics text
    /// ending with `# EOF`.
    #[must_use]
    pub fn metrics_text(&self, caller: &Caller) -> String {
        let shared = &self.inner.shared;
        let visible: Vec<Arc<Session>> = self
            .sessions()
            .into_iter()
            .filter(|s| s.policy().allows(caller))
            .collect();
        let mut text = Text(String::with_capacity(2048 + 1536 * visible.len()));

        // Every phase, so that one with no session still shows as 0 (alerts
        // compare with it), in name order.
        let mut states: BTreeMap<&str, u64> =
            SessionPhase::ALL.iter().map(|p| (p.name(), 0)).collect();
        for session in &visible {
            *states.entry(session.phase().name()).or_default() += 1;
        }
        text.family(
            "tokend_sessions",
            "gauge",
            "Sessions by state, among the providers the caller may see.",
        );
        for (state, n) in &states {
            text.sample("tokend_sessions", &[("state", state)], n);
        }

        let counters: Vec<(&str, Option<Arc<ProviderCounters>>)> = visible
            .iter()
            .map(|s| (s.name.as_str(), shared.metrics.provider_counters(&s.name)))
            .collect();
        refreshes_and_logins(&mut text, &counters);
        latency(&mut text, &counters);

        let owner = caller.uid == 0 || caller.uid == shared.owner_uid;
        if owner || !visible.is_empty() {
            let store = shared.store_health.report();
            let labels = [("store", store.name)];
            text.family(
                "tokend_store_up",
                "gauge",
                "1 when the store can be used, 0 when it is down.",
            );
            text.sample("tokend_store_up", &labels, u8::from(store.is_available()));
            text.family(
                "tokend_store_errors",
                "counter",
                "Store calls (load, save, delete, list) that failed or timed out.",
            );
            text.sample(
                "tokend_store_errors_total",
                &labels,
                shared.metrics.store_errors(),
            );
            let standing = self.config_standing();
            text.family(
                "tokend_config_last_reload_successful",
                "gauge",
                "0 when the last reload was refused (the config file is invalid; the daemon runs the config it had before), else 1.",
            );
            text.sample(
                "tokend_config_last_reload_successful",
                &[],
                u8::from(standing.reload_failed_at.is_none()),
            );
            text.family(
                "tokend_config_restart_needed",
                "gauge",
                "1 when [daemon] keys changed in the config file wait for a restart, else 0.",
            );
            text.sample(
                "tokend_config_restart_needed",
                &[],
                u8::from(!standing.restart_needed.is_empty()),
            );
            requests(
                &mut text,
                "tokend_socket_requests",
                "op",
                "Unix socket requests by op and outcome.",
                &shared.metrics.socket,
            );
            requests(
                &mut text,
                "tokend_dbus_requests",
                "method",
                "D-Bus method calls by method and outcome.",
                &shared.metrics.dbus,
            );
        }
        text.0.push_str("# EOF\n");
        text.0
    }
}

fn refreshes_and_logins(text: &mut Text, counters: &[(&str, Option<Arc<ProviderCounters>>)]) {
    text.family(
        "tokend_refreshes",
        "counter",
        "Refresh requests by provider and outcome.",
    );
    for (name, c) in counters {
        for (i, outcome) in REFRESH_OUTCOMES.iter().enumerate() {
            let n = c
                .as_ref()
                .map_or(0, |c| c.refreshes[i].load(Ordering::Relaxed));
            text.sample(
                "tokend_refreshes_total",
                &[("provider", name), ("outcome", outcome)],
                n,
            );
        }
    }
    text.family(
        "tokend_logins",
        "counter",
        "Device logins by provider and outcome (ok or the error code).",
    );
    for (name, c) in counters {
        let ok = c
            .as_ref()
            .map_or(0, |c| c.logins[0].load(Ordering::Relaxed));
        text.sample(
            "tokend_logins_total",
            &[("provider", name), ("outcome", "ok")],
            ok,
        );
        let Some(c) = c else { continue };
        for (i, n) in c.logins.iter().enumerate().skip(1) {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                text.sample(
                    "tokend_logins_total",
                    &[("provider", name), ("outcome", outcome_name(i))],
                    n,
                );
            }
        }
    }
}

fn latency(text: &mut Text, counters: &[(&str, Option<Arc<ProviderCounters>>)]) {
    const NAME: &str = "tokend_refresh_duration_seconds";
    text.family(
        NAME,
        "histogram",
        "Time from a refresh request to the provider's answer.",
    );
    let _ = writeln!(text.0, "# UNIT {NAME} seconds");
    for (name, c) in counters {
        let mut cumulative = 0;
        for (i, le) in LATENCY_BUCKETS
            .iter()
            .map(|b| format!("{b:?}"))
            .chain(["+Inf".to_owned()])
            .enumerate()
        {
            cumulative += c
                .as_ref()
                .map_or(0, |c| c.latency[i].load(Ordering::Relaxed));
            text.sample(
                &format!("{NAME}_bucket"),
                &[("provider", name), ("le", &le)],
                cumulative,
            );
        }
        let sum_us = c
            .as_ref()
            .map_or(0, |c| c.latency_sum_us.load(Ordering::Relaxed));
        // Microseconds as exact decimal seconds, not through a float.
        let sum = format!("{}.{:06}", sum_us / 1_000_000, sum_us % 1_000_000);
        text.sample(&format!("{NAME}_sum"), &[("provider", name)], sum);
        text.sample(&format!("{NAME}_count"), &[("provider", name)], cumulative);
    }
}

fn requests(
    text: &mut Text,
    family: &str,
    kind_label: &str,
    help: &str,
    counters: &RequestCounters,
) {
    text.family(family, "counter", help);
    let sample = format!("{family}_total");
    for (kind, outcome, n) in counters.nonzero() {
        text.sample(&sample, &[(kind_label, kind), ("outcome", outcome)], n);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use super::{ProviderCounters, Text, escape_label_value, latency};

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("two\nlines"), "two\\nlines");
        assert_eq!(escape_label_value("plain-name"), "plain-name");
    }

    /// The histogram's `_sum` is the microseconds summed, as decimal
    /// seconds with all six places: 1,530 µs is `0.001530`. Without the
    /// padding it read `0.1530`, a hundred times the time spent.
    #[test]
    fn latency_sum_is_seconds_with_six_decimal_places() {
        let counters = ProviderCounters::default();
        counters.latency_sum_us.store(1_530, Ordering::Relaxed);
        let mut text = Text(String::new());
        latency(&mut text, &[("x", Some(Arc::new(counters)))]);
        assert!(
            text.0
                .lines()
                .any(|l| l == r#"tokend_refresh_duration_seconds_sum{provider="x"} 0.001530"#),
            "{}",
            text.0
        );
    }
}
