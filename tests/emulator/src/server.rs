//! The HTTP plumbing every dialect shares: accepting connections, reading
//! requests, faults, recording, and delivering answers.
//!
//! A dialect only decides answers ([`Dialect::answer`], synchronous, under
//! the state lock). Everything that takes time (reading the body, delays,
//! hanging, streaming a fault's body) happens here, outside the lock.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::authority::Authority;
use crate::body::ReplyBody;
use crate::clock::Clock;
use crate::dialect::Dialect;
use crate::fault::{Fault, FaultPlan};
use crate::received::Received;
use crate::record::{Endpoint, RecordedRequest};
use crate::reply::{Delivery, Reply};

/// The largest request body read; OAuth requests are a few hundred bytes.
const MAX_REQUEST_BODY: usize = 64 * 1024;

/// Everything that changes while the emulator runs.
#[derive(Debug)]
pub(crate) struct State {
    /// Codes and tokens.
    pub authority: Authority,
    /// Every request, in the order answers were decided.
    pub records: Vec<RecordedRequest>,
    /// Protocol violations, each naming its request.
    pub violations: Vec<String>,
    /// Faults waiting for requests.
    pub faults: FaultPlan,
    /// While set, every request is answered 503.
    pub unavailable: bool,
}

/// What the server tasks and the handle share.
pub(crate) struct Shared {
    /// The dialect spoken.
    pub dialect: Box<dyn Dialect>,
    /// The provider's time: every request's arrival is read from it.
    pub clock: Clock,
    /// A std mutex rather than tokio's: every critical section is short and
    /// none spans an `.await`, and the handle's sync methods lock it too.
    state: Mutex<State>,
    /// Bumped after every change, so waiters wake up instead of polling.
    changed: watch::Sender<u64>,
    /// Every record, for live logs (the demo binary).
    log: broadcast::Sender<RecordedRequest>,
    token_in_flight: AtomicUsize,
    token_peak: AtomicUsize,
}

impl Shared {
    pub(crate) fn new(dialect: Box<dyn Dialect>, authority: Authority, clock: Clock) -> Self {
        Self {
            dialect,
            clock,
            state: Mutex::new(State {
                authority,
                records: Vec::new(),
                violations: Vec::new(),
                faults: FaultPlan::default(),
                unavailable: false,
            }),
            changed: watch::Sender::new(0),
            log: broadcast::Sender::new(1024),
            token_in_flight: AtomicUsize::new(0),
            token_peak: AtomicUsize::new(0),
        }
    }

    /// The state. A panic elsewhere while it was locked (a failed assertion
    /// in a test callback) does not make it unusable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes everyone waiting for a change.
    pub(crate) fn notify(&self) {
        self.changed
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    /// A receiver that sees every later change.
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// A receiver of every later record.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<RecordedRequest> {
        self.log.subscribe()
    }

    /// The most token-endpoint requests ever in flight at once.
    pub(crate) fn token_peak(&self) -> usize {
        self.token_peak.load(Ordering::SeqCst)
    }
}

/// Counts a token-endpoint request as in flight until dropped (answered,
/// or abandoned by the client).
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.token_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.token_peak.fetch_max(now, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.token_in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A second descriptor of a connection's socket, kept to make it close with
/// a reset: socket options are shared by every descriptor of a socket.
struct ResetSwitch(Option<OwnedFd>);

impl ResetSwitch {
    fn arm(&self) {
        if let Some(fd) = &self.0 {
            // SO_LINGER 0: close() sends RST instead of FIN.
            let _ = rustix::net::sockopt::set_socket_linger(fd, Some(Duration::ZERO));
        }
    }
}

/// Accepts connections on `listener` until `stop`; each connection runs as
/// a task on `tasks`, and is dropped mid-way (hangs included) on `stop`.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = stream else {
            // Out of descriptors or similar: do not spin on it.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Close-on-exec, as every other descriptor here: a plain dup()
        // was inherited by whatever process the test spawned meanwhile (a
        // tokend of a test running beside), which kept the socket open
        // after the reset, so the client saw neither the reset nor the
        // answer's head until that process ended.
        let switch = Arc::new(ResetSwitch(stream.as_fd().try_clone_to_owned().ok()));
        let shared = Arc::clone(&shared);
        let stop = stop.clone();
        tasks.spawn(async move {
            let service =
                service_fn(move |request| serve(Arc::clone(&shared), Arc::clone(&switch), request));
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

/// Answers one request.
async fn serve(
    shared: Arc<Shared>,
    switch: Arc<ResetSwitch>,
    request: Request<Incoming>,
) -> Result<Response<ReplyBody>, std::io::Error> {
    // Arrival, before the body is read: a slow body does not make a poll late.
    let (at, at_system) = (shared.clock.now(), shared.clock.now_system());
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let endpoint = shared.dialect.endpoint(&path);
    let _in_flight = (endpoint == Endpoint::Token).then(|| InFlight::enter(&shared));
    let (body, too_large) = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(collected) => (collected.to_bytes(), false),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => (bytes::Bytes::new(), true),
        // The client went away mid-request: nobody to answer.
        Err(e) => return Err(std::io::Error::other(e)),
    };
    let received = Received {
        method: parts.method,
        path,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        at,
        at_system,
    };
    let (reply, record) = {
        let mut state = shared.lock();
        let mut reply = if too_large {
            Reply::text(413, "request body too large\n").outcome("too_large")
        } else {
            decide(shared.dialect.as_ref(), &mut state, &received, endpoint)
        };
        let mut record = record(shared.dialect.as_ref(), &state, &received, endpoint, &reply);
        for violation in &reply.violations {
            state.violations.push(format!("{record}: {violation}"));
        }
        record.violations = std::mem::take(&mut reply.violations);
        state.records.push(record.clone());
        (reply, record)
    };
    shared.notify();
    let _ = shared.log.send(record);
    match reply.delivery {
        Delivery::Now => Ok(reply.into_response()),
        Delivery::After(pause) => {
            tokio::time::sleep(pause).await;
            Ok(reply.into_response())
        }
        Delivery::Never => std::future::pending().await,
        Delivery::Close => Err(std::io::Error::other(
            "injected fault: closed without answer",
        )),
        Delivery::NowThenReset => {
            switch.arm();
            Ok(reply.into_response())
        }
    }
}

/// The answer: 503 while unavailable, else a planned fault, else the
/// dialect's.
fn decide(
    dialect: &dyn Dialect,
    state: &mut State,
    request: &Received,
    endpoint: Endpoint,
) -> Reply {
    if state.unavailable {
        return Reply::text(503, "the provider is unavailable (emulated outage)\n")
            .header(hyper::header::RETRY_AFTER, "1")
            .outcome("unavailable");
    }
    match state.faults.take(endpoint) {
        Some(Fault::Delay(pause)) => delayed(
            dialect.answer(request, endpoint, &mut state.authority),
            pause,
        ),
        Some(Fault::LateSuccess(pause)) => {
            let reply = dialect.answer(request, endpoint, &mut state.authority);
            if !(200..300).contains(&reply.status) {
                // Only a success is delayed: the fault waits for one.
                state.faults.put_back(endpoint, Fault::LateSuccess(pause));
                return reply;
            }
            let mut reply = delayed(reply, pause);
            reply.outcome = format!("{}; {}", reply.outcome, Fault::LateSuccess(pause).label());
            reply
        }
        Some(Fault::Garbled(garble)) => {
            let mut reply = dialect.answer(request, endpoint, &mut state.authority);
            if !(200..300).contains(&reply.status) {
                // Only a success is spoiled (a pending poll passes as it
                // is): the fault waits for one.
                state.faults.put_back(endpoint, Fault::Garbled(garble));
                return reply;
            }
            if let Some(body) = reply.body.bytes() {
                reply.body = crate::body::ReplyBody::full(garble.apply(body));
            }
            reply.outcome = format!("{}; {}", reply.outcome, Fault::Garbled(garble).label());
            reply
        }
        Some(fault) => fault
            .reply_to(request)
            .unwrap_or_else(|| Reply::text(500, "unknown fault\n")),
        None => dialect.answer(request, endpoint, &mut state.authority),
    }
}

/// `reply`, delivered only after `pause` (decided now: the provider's
/// state has changed already).
fn delayed(mut reply: Reply, pause: Duration) -> Reply {
    reply.delivery = Delivery::After(pause);
    let note = format!("delayed {} ms", pause.as_millis());
    reply.detail = Some(match reply.detail.take() {
        Some(detail) => format!("{detail}; {note}"),
        None => note,
    });
    reply
}

fn record(
    dialect: &dyn Dialect,
    state: &State,
    request: &Received,
    endpoint: Endpoint,
    reply: &Reply,
) -> RecordedRequest {
    let fields = request.fields();
    RecordedRequest {
        index: state.records.len(),
        at: request.at,
        at_system: request.at_system,
        method: request.method.to_string(),
        path: request.path.clone(),
        query: request.query.clone(),
        endpoint,
        grant: (endpoint == Endpoint::Token)
            .then(|| dialect.grant(request))
            .flatten(),
        content_type: request.header("content-type").map(str::to_owned),
        auth: request.auth_seen(&fields),
        fields,
        headers: request
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect(),
        status: reply.recorded_status(),
        outcome: reply.outcome.clone(),
        detail: reply.detail.clone(),
        violations: Vec::new(),
    }
}
