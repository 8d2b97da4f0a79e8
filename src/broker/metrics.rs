//! The daemon's counters, for `tokenctl metrics` and D-Bus `GetMetrics`.
//!
//! Counting must cost nothing measurable on the token path, so every count
//! is a relaxed atomic add in a fixed array: no lock, no allocation, no
//! ordering with anything else (a scrape may see one counter a request
//! ahead of another, which OpenMetrics readers accept). Only refreshes and
//! logins, which take a network round trip anyway, look their provider up
//! in a map behind a lock. What a caller may see of all this is decided
//! where the text is written ([`super::api::Broker::metrics_text`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use super::error::ErrorKind;
use crate::provider::{FailureClass, ProviderError};

/// The outcome labels counters keep, "ok" first: the names of
/// [`ErrorKind`] and the front-ends' own refusals (a request line that was
/// no request, or too long; an answer too long; a D-Bus call over the
/// limits, told `LimitsExceeded`). Front-ends count with the
/// same names they send their callers, so a code and its count agree; a
/// name not listed counts as the last, `unknown`.
pub const OUTCOMES: [&str; 16] = [
    "ok",
    "login_required",
    "unknown_provider",
    "access_denied",
    "provider_unavailable",
    "provider_error",
    "login_failed",
    "token_too_short",
    "bad_request",
    "request_too_large",
    "answer_too_large",
    "shutting_down",
    "store_error",
    "internal",
    "limits_exceeded",
    "unknown",
];

/// The counter slot of an outcome: 0 for success, else the label's place
/// in [`OUTCOMES`] (`unknown` for a label not listed).
fn outcome_index(outcome: Option<&str>) -> usize {
    let Some(label) = outcome else { return 0 };
    OUTCOMES
        .iter()
        .skip(1)
        .position(|known| *known == label)
        .map_or(OUTCOMES.len() - 1, |i| i + 1)
}

/// The label value of the outcome in slot `index`.
pub(crate) fn outcome_name(index: usize) -> &'static str {
    OUTCOMES[index]
}

/// Counter slots per request kind: one per outcome.
const OUTCOME_SLOTS: usize = OUTCOMES.len();

/// The socket ops, as counted (`invalid`: a line that was no request).
pub const SOCKET_OPS: [&str; 8] = [
    "token",
    "login",
    "status",
    "logout",
    "cancel_login",
    "version",
    "metrics",
    "invalid",
];

/// The D-Bus methods, as counted (`other`: the standard interfaces,
/// `Introspect`, `Get`, `GetManagedObjects` and the like).
pub const DBUS_METHODS: [&str; 8] = [
    "GetToken",
    "GetTokenMinValid",
    "Login",
    "Logout",
    "CancelLogin",
    "ListProviders",
    "GetMetrics",
    "other",
];

/// Requests of a front-end, by kind and outcome.
#[derive(Debug)]
pub struct RequestCounters {
    kinds: &'static [&'static str],
    counts: Box<[AtomicU64]>,
}

impl RequestCounters {
    fn new(kinds: &'static [&'static str]) -> Self {
        Self {
            kinds,
            counts: (0..kinds.len() * OUTCOME_SLOTS)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    /// Counts a request of `kind` that ended with `outcome` (`None`: success;
    /// else a label of [`OUTCOMES`], as the front-end told its caller).
    /// An unknown kind counts as the last one (`invalid`, `other`).
    pub fn count(&self, kind: &str, outcome: Option<&str>) {
        let k = self
            .kinds
            .iter()
            .position(|known| *known == kind)
            .unwrap_or(self.kinds.len() - 1);
        self.counts[k * OUTCOME_SLOTS + outcome_index(outcome)].fetch_add(1, Ordering::Relaxed);
    }

    /// Every non-zero count: (kind, outcome, count).
    pub(crate) fn nonzero(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        self.counts.iter().enumerate().filter_map(|(i, n)| {
            let n = n.load(Ordering::Relaxed);
            (n > 0).then(|| {
                (
                    self.kinds[i / OUTCOME_SLOTS],
                    outcome_name(i % OUTCOME_SLOTS),
                    n,
                )
            })
        })
    }
}

/// Upper bounds (seconds) of the refresh latency histogram's buckets; the
/// last bucket, `+Inf`, is implied.
pub(crate) const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How a refresh ended, as counted.
pub(crate) const REFRESH_OUTCOMES: [&str; 4] = ["ok", "transient", "permanent", "login_required"];

/// One provider's refreshes and logins.
#[derive(Debug, Default)]
pub(crate) struct ProviderCounters {
    /// By [`REFRESH_OUTCOMES`].
    pub(crate) refreshes: [AtomicU64; 4],
    /// By outcome slot (see [`OUTCOMES`]).
    pub(crate) logins: [AtomicU64; OUTCOME_SLOTS],
    /// Refresh answers per latency bucket, not cumulative; the last slot is `+Inf`.
    pub(crate) latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// The sum of every refresh's latency, in microseconds.
    pub(crate) latency_sum_us: AtomicU64,
}

/// Every counter of the daemon; one per broker, shared by its sessions
/// and front-ends.
#[derive(Debug)]
pub struct Metrics {
    /// Unix socket requests.
    pub socket: RequestCounters,
    /// D-Bus method calls.
    pub dbus: RequestCounters,
    /// Failed store calls (load, save, delete, list), store-wide or not.
    store_errors: AtomicU64,
    // A std RwLock: read once per refresh or login (each a network round
    // trip), written when a provider refreshes for the first time and
    // after a reload (`retain_providers`); never held across an await and
    // never taken on the token path.
    providers: RwLock<HashMap<String, Arc<ProviderCounters>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            socket: RequestCounters::new(&SOCKET_OPS),
            dbus: RequestCounters::new(&DBUS_METHODS),
            store_errors: AtomicU64::new(0),
            providers: RwLock::default(),
        }
    }
}

impl Metrics {
    fn provider(&self, name: &str) -> Arc<ProviderCounters> {
        if let Some(found) = self
            .providers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return Arc::clone(found);
        }
        Arc::clone(
            self.providers
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(name.to_owned())
                .or_default(),
        )
    }

    /// The counters of `name`, if it ever refreshed or logged in.
    pub(crate) fn provider_counters(&self, name: &str) -> Option<Arc<ProviderCounters>> {
        self.providers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Forgets the counters of every provider `keep` says no to: after a
    /// reload, the providers the new config no longer has. The text shows
    /// only configured providers anyway, but a daemon whose config is
    /// generated would otherwise keep counters for every name it ever had;
    /// and a provider added back later starts from zero, as after a
    /// restart, rather than with an old provider's counts.
    pub(crate) fn retain_providers(&self, keep: impl Fn(&str) -> bool) {
        let mut providers = self
            .providers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // No holder needs keeping: a clone lives only for the few atomic
        // adds of one count, which may then land on counters nobody reads
        // (the provider is gone). A retired session's login that ends after
        // this puts its name back; the next reload drops it again.
        providers.retain(|name, _| keep(name));
        // The table would otherwise stay as large as its largest config.
        providers.shrink_to_fit();
    }

    /// Runs `refresh` (a provider's refresh request) and counts its
    /// outcome and latency for `provider`.
    pub(crate) async fn refresh<T>(
        &self,
        provider: &str,
        refresh: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        let started = Instant::now();
        let result = refresh.await;
        let elapsed = started.elapsed();
        let counters = self.provider(provider);
        let outcome = match result.as_ref().map_err(ProviderError::class) {
            Ok(_) => 0,
            Err(FailureClass::Transient) => 1,
            // Counted as what it is taken for while the session lasts.
            Err(FailureClass::Permanent | FailureClass::PerhapsRevoked) => 2,
            Err(FailureClass::GrantRevoked) => 3,
        };
        counters.refreshes[outcome].fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(LATENCY_BUCKETS.len());
        counters.latency[bucket].fetch_add(1, Ordering::Relaxed);
        counters.latency_sum_us.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        result
    }

    /// Counts a finished device login of `provider` (`None`: it succeeded).
    pub(crate) fn login_finished(&self, provider: &str, outcome: Option<ErrorKind>) {
        self.provider(provider).logins[outcome_index(outcome.map(ErrorKind::name))]
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed store call.
    pub(crate) fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Failed store calls so far.
    pub(crate) fn store_errors(&self) -> u64 {
        self.store_errors.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_kind_has_its_own_slot() {
        let mut slots: Vec<usize> = ErrorKind::ALL
            .iter()
            .map(|kind| outcome_index(Some(kind.name())))
            .collect();
        for (kind, slot) in ErrorKind::ALL.iter().zip(&slots) {
            assert_eq!(outcome_name(*slot), kind.name(), "{kind:?} has no slot");
        }
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), ErrorKind::ALL.len());
        assert_eq!(outcome_name(outcome_index(None)), "ok");
        assert_eq!(
            outcome_name(outcome_index(Some("from-a-newer-daemon"))),
            "unknown"
        );
    }

    #[test]
    fn requests_are_counted_by_kind_and_outcome() {
        let m = Metrics::default();
        m.socket.count("token", None);
        m.socket.count("token", None);
        m.socket.count("token", Some("unknown_provider"));
        m.socket.count("no-such-op", Some("bad_request"));
        let mut seen: Vec<_> = m.socket.nonzero().collect();
        seen.sort_unstable();
        assert_eq!(
            seen,
            [
                ("invalid", "bad_request", 1),
                ("token", "ok", 2),
                ("token", "unknown_provider", 1)
            ]
        );
    }

    #[tokio::test]
    async fn a_refresh_lands_in_its_outcome_and_latency_bucket() {
        let m = Metrics::default();
        let ok: Result<u8, ProviderError> = m.refresh("gh", async { Ok(1) }).await;
        assert!(ok.is_ok());
        let c = m.provider_counters("gh").expect("counted");
        assert_eq!(c.refreshes[0].load(Ordering::Relaxed), 1);
        let buckets: u64 = c.latency.iter().map(|b| b.load(Ordering::Relaxed)).sum();
        assert_eq!(buckets, 1);
        assert_eq!(
            c.latency[0].load(Ordering::Relaxed),
            1,
            "an instant answer is in the first bucket"
        );
        assert!(m.provider_counters("other").is_none());
    }

    /// Each failing refresh lands in its outcome's series: a refused
    /// grant in `login_required`, the one an alert for "someone must log
    /// in again" watches.
    #[tokio::test]
    async fn a_failing_refresh_lands_in_its_outcome() {
        let m = Metrics::default();
        let failures = [
            (
                ProviderError::Unreachable {
                    endpoint: "https://idp.example/token".into(),
                    reason: "refused".into(),
                },
                "transient",
            ),
            (
                ProviderError::Rejected {
                    endpoint: "https://idp.example/token".into(),
                    status: 400,
                    error: "invalid_client".into(),
                    detail: None,
                },
                "permanent",
            ),
            (
                ProviderError::GrantRevoked {
                    error: "invalid_grant".into(),
                    detail: None,
                },
                "login_required",
            ),
        ];
        for (failure, outcome) in failures {
            let name = format!("p-{outcome}");
            let failed: Result<u8, ProviderError> = m.refresh(&name, async { Err(failure) }).await;
            assert!(failed.is_err());
            let c = m.provider_counters(&name).expect("counted");
            let counted: Vec<&str> = REFRESH_OUTCOMES
                .iter()
                .zip(&c.refreshes)
                .filter(|(_, n)| n.load(Ordering::Relaxed) == 1)
                .map(|(name, _)| *name)
                .collect();
            assert_eq!(counted, [outcome]);
        }
    }

    #[test]
    fn retaining_providers_forgets_the_others_counters() {
        let m = Metrics::default();
        for name in ["a", "b", "c"] {
            m.login_finished(name, None);
        }
        let held = m.provider_counters("b").expect("counted");
        m.retain_providers(|name| name == "c");
        assert!(m.provider_counters("a").is_none());
        assert!(m.provider_counters("b").is_none(), "even while held");
        drop(held);
        let c = m.provider_counters("c").expect("kept");
        assert_eq!(c.logins[0].load(Ordering::Relaxed), 1);
        // A name that comes back starts from zero.
        m.login_finished("a", Some(ErrorKind::LoginFailed));
        let a = m.provider_counters("a").expect("counted again");
        assert_eq!(a.logins[0].load(Ordering::Relaxed), 0);
    }
}
