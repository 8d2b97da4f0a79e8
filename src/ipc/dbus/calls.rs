//! Method calls, answered by hand rather than by zbus's object server.
//!
//! Every answer depends on who asks: a caller sees only the providers it
//! has a role on, in `ListProviders`, `GetManagedObjects`, `Get`/`GetAll`,
//! introspection and the errors, and a provider it has no role on is
//! answered exactly like one that does not exist. zbus's object server
//! answers the standard interfaces the same way for everyone, so this
//! module routes each call itself: it identifies the caller first, then
//! asks the broker, which alone decides ([`Broker::status`],
//! [`Broker::token`], ...). Nothing here keeps provider state.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};
use zbus::message::{Flags, Header, Type};
use zbus::zvariant::{OwnedObjectPath, Value};
use zbus::{Connection, MatchRule, Message, MessageStream};

use super::caller_shares::CallerShares;
use super::introspect;
use super::methods::{INTROSPECTABLE, OBJECT_MANAGER, PROPERTIES};
use super::objects::Object;
use super::peer_table::GrantsBy;
use super::peers::{Peers, Unidentified};
use super::properties::{managed_object, shown_name, unix_secs_or_zero};
use super::signalled::Signalled;
use super::{BROKER_INTERFACE, CallsEnded, DbusError, provider_path};
use crate::broker::{Broker, BrokerError, Caller, ErrorKind, Freshness};

mod checks;
mod visible;
use checks::{check_signature, implied_interface, peer_call, refuse_set};

/// The outcome the D-Bus request counters give a call whose caller left
/// before it was identified.
const CALLER_GONE: &str = "caller_gone";

/// Calls answered at once; more are refused with `LimitsExceeded` (see
/// [`serve_calls`]).
const CONCURRENT_CALLS: usize = 256;

/// How long a call waits for the provider (`Login` for its code, a token
/// call for the refresh it needs) before it answers that the provider is
/// slow: under the 25 s most D-Bus clients wait for a reply, after which
/// they drop tokend's answer and say only "Timeout was reached" (the
/// provider's own request may take up to `http_timeout`, 30 s by default,
/// and a refresh may queue behind others first). What was asked of the
/// provider goes on; a call made again joins it.
const PROVIDER_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// How long a `Login` that joined an approved login waits for its save
/// before saying so: under [`PROVIDER_WAIT`], so that its own words, not
/// the provider's, answer a save that waits on a keyring's unlock.
const APPROVED_SAVE_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// The method calls addressed to `connection`, from now on. Made before
/// the bus name is taken: a call queued for an activated daemon is
/// delivered as soon as the name is ours, and a stream made later would
/// miss it.
pub(super) async fn incoming_calls(connection: &Connection) -> zbus::Result<MessageStream> {
    let mut rule = MatchRule::builder().msg_type(Type::MethodCall);
    if let Some(name) = connection.unique_name() {
        rule = rule.destination(name.to_owned())?;
    }
    MessageStream::for_match_rule(rule.build(), connection, None).await
}

/// Answers the method calls of `calls` until `shutdown` or the loss of the
/// connection; each call runs as its own task (tracked by `tasks`), at
/// most [`CONCURRENT_CALLS`] at once.
/// The daemon's stop, as the calls' loop sees it: when it began, and when
/// the daemon lets the bus go (see [`refuse_until_released`]).
pub(super) struct StopSignals {
    /// The stop began: calls are refused from then on.
    pub(super) begun: CancellationToken,
    /// The stop's work is done: the loop ends, and the name goes with the
    /// connection.
    pub(super) released: CancellationToken,
}

pub(super) async fn serve_calls(
    connection: Connection,
    mut calls: MessageStream,
    broker: Broker,
    peers: Peers,
    signalled: Signalled,
    stop: StopSignals,
    tasks: TaskTracker,
) -> CallsEnded {
    let StopSignals {
        begun: shutdown,
        released,
    } = stop;
    let slots = Arc::new(Semaphore::new(CONCURRENT_CALLS));
    let shares = CallerShares::default();
    // zbus hands each stream the read error once, then ends them all.
    let mut last_error = None;
    loop {
        // The stream is read on, whatever the calls in flight: it shares
        // the connection with the replies those calls wait for (the bus's
        // word on who a caller is). Waiting for a free slot before reading
        // on would stop the connection reading altogether once its queue
        // of calls is full, and the calls in flight would wait for ever
        // (a few hundred calls at once, from any local user, did that).
        let call = tokio::select! {
            call = calls.next() => call,
            () = shutdown.cancelled() => {
                refuse_until_released(&connection, &mut calls, &released).await;
                return CallsEnded::Stop;
            }
        };
        let Some(call) = call else {
            return CallsEnded::ConnectionLost(last_error);
        };
        let Ok(call) = call.map_err(|e| last_error = Some(e)) else {
            continue;
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            refuse_excess(&connection, &call, &broker).await;
            continue;
        };
        let handler = Handler {
            connection: connection.clone(),
            broker: broker.clone(),
            peers: peers.clone(),
            signalled: signalled.clone(),
            shares: shares.clone(),
        };
        tasks.spawn(async move {
            handler.answer(&call).await;
            drop(permit);
        });
    }
}

/// The stop began: until the daemon lets the bus go (`released`, once
/// the work in flight is done or cut off), each new call is told
/// `ShuttingDown` at once. The name stays taken meanwhile: let go at the
/// stop's start, a call got the bus's `ServiceUnknown` (or, with the
/// activation files, had the bus ask systemd to start tokend again while
/// it was stopping), and unread, a call waited for the stop's whole grace
/// and then got the bus's `NoReply`.
async fn refuse_until_released(
    connection: &Connection,
    calls: &mut MessageStream,
    released: &CancellationToken,
) {
    loop {
        let call = tokio::select! {
            biased;
            () = released.cancelled() => return,
            call = calls.next() => call,
        };
        let Some(Ok(call)) = call else { return };
        let header = call.header();
        if header.primary().flags().contains(Flags::NoReplyExpected) {
            continue;
        }
        let error = DbusError::ShuttingDown("tokend is stopping; try again once it is back".into());
        if let Err(e) = connection.reply_dbus_error(&header, error).await {
            debug!("could not refuse a D-Bus call during the stop: {e}");
        }
    }
}

/// The `outcome` of a call refused as over the limits (all slots, or the
/// caller's share, taken).
const LIMITS_EXCEEDED: &str = "limits_exceeded";

/// The `method` label of a call: its member for tokend's own interface (or
/// none named), `other` for the standard ones.
fn method_label<'h>(header: &'h Header<'_>) -> &'h str {
    let member = header.member().map_or("", |m| m.as_str());
    let ours = header
        .interface()
        .is_none_or(|i| i.as_str() == BROKER_INTERFACE);
    if ours { member } else { "other" }
}

/// Answers a call that finds every slot taken: `LimitsExceeded`, at once,
/// so that its caller may try again instead of waiting in a queue.
async fn refuse_excess(connection: &Connection, call: &Message, broker: &Broker) {
    let header = call.header();
    broker
        .metrics()
        .dbus
        .count(method_label(&header), Some(LIMITS_EXCEEDED));
    if header.primary().flags().contains(Flags::NoReplyExpected) {
        return;
    }
    let error = zbus::fdo::Error::LimitsExceeded(format!(
        "tokend is answering {CONCURRENT_CALLS} calls already; try again shortly"
    ));
    if let Err(e) = connection.reply_dbus_error(&header, error).await {
        debug!("could not refuse a D-Bus call: {e}");
    }
}

/// What a call needs to be answered.
struct Handler {
    connection: Connection,
    broker: Broker,
    peers: Peers,
    /// What `PropertiesChanged` said last, for which a call that reads
    /// properties counts (see [`Signalled::reading`]).
    signalled: Signalled,
    /// What each user other than the daemon's has in progress.
    shares: CallerShares,
}

/// An answer: a body to return, or an error.
type Answer = Result<Reply, Refusal>;

/// A successful answer's body.
enum Reply {
    Empty,
    Flag(bool),
    Text(String),
    Token(String, i64),
    Prompt(String, String, String, u32),
    Names(Vec<String>),
    Value(Value<'static>),
    Properties(HashMap<&'static str, Value<'static>>),
    Objects(HashMap<OwnedObjectPath, HashMap<&'static str, HashMap<&'static str, Value<'static>>>>),
}

/// An error answer.
enum Refusal {
    /// tokend's own errors (`org.tokend.Error.*`).
    Tokend(DbusError),
    /// The standard ones (`org.freedesktop.DBus.Error.*`).
    Standard(zbus::fdo::Error),
    /// None: the caller left before it could be told who it is, and
    /// nothing it asked is done (see [`Handler::caller_gone`]).
    CallerGone,
}

impl From<Unidentified> for Refusal {
    fn from(error: Unidentified) -> Self {
        match error {
            Unidentified::Gone => Self::CallerGone,
            Unidentified::Refused(error) => Self::Tokend(error),
        }
    }
}

impl From<DbusError> for Refusal {
    fn from(error: DbusError) -> Self {
        Self::Tokend(error)
    }
}

impl From<BrokerError> for Refusal {
    fn from(error: BrokerError) -> Self {
        Self::Tokend(error.into())
    }
}

impl Handler {
    async fn answer(&self, call: &Message) {
        let header = call.header();
        // A call that may answer a provider's properties: until its answer
        // is sent, and after, no PropertiesChanged is left out for
        // repeating the last one (see `signalled`).
        let object = header.path().and_then(|path| Object::at(path.as_str()));
        let member = header.member().map(zbus::names::MemberName::as_str);
        let _reading = match (object, member) {
            (Some(Object::Provider(_)), _) | (Some(Object::Broker), Some("GetManagedObjects")) => {
                Some(self.signalled.reading())
            }
            _ => None,
        };
        let answer = self.route(call, &header).await;
        self.count(&header, &answer);
        if matches!(answer, Err(Refusal::CallerGone)) {
            Self::caller_gone(call, &header);
            return;
        }
        if header.primary().flags().contains(Flags::NoReplyExpected) {
            // Nothing is sent; a token's copy is wiped all the same.
            if let Ok(Reply::Token(token, _)) = answer {
                zeroize::Zeroize::zeroize(&mut { token });
            }
            return;
        }
        let sent = match answer {
            Ok(reply) => self.send_reply(&header, reply).await,
            Err(Refusal::Tokend(error)) => self.connection.reply_dbus_error(&header, error).await,
            Err(Refusal::Standard(error)) => self.connection.reply_dbus_error(&header, error).await,
            Err(Refusal::CallerGone) => return,
        };
        if let Err(e) = sent {
            debug!("could not answer a D-Bus call: {e}");
        }
    }

    /// Adds the call to the D-Bus request counters: tokend's methods by
    /// name, every standard one as `other`.
    fn count(&self, header: &Header<'_>, answer: &Answer) {
        let outcome = match answer {
            Ok(_) => None,
            Err(Refusal::Tokend(error)) => Some(error.outcome()),
            // A user's share of the calls in progress taken: no mistake.
            Err(Refusal::Standard(zbus::fdo::Error::LimitsExceeded(_))) => Some(LIMITS_EXCEEDED),
            // Unknown objects, properties and arguments: the caller's mistake.
            Err(Refusal::Standard(_)) => Some(ErrorKind::InvalidArgument.name()),
            Err(Refusal::CallerGone) => Some(CALLER_GONE),
        };
        self.broker
            .metrics()
            .dbus
            .count(method_label(header), outcome);
    }

    /// Says that a call was dropped because its caller left the bus before
    /// the bus was asked who it was: tokend cannot tell whether it may do
    /// what was asked, so it does nothing. A call that would have changed
    /// a session (a fire-and-forget `dbus-send … Logout`, which exits as
    /// soon as the call is sent) is a warning: whoever sent it believes
    /// the session ended. A read is no news.
    fn caller_gone(call: &Message, header: &Header<'_>) {
        let member = header.member().map_or("", |m| m.as_str());
        let sender = header.sender().map_or("", |s| s.as_str());
        if matches!(member, "Login" | "Logout" | "CancelLogin") {
            let provider = call
                .body()
                .deserialize::<&str>()
                .map_or_else(|_| "?".to_owned(), shown_name);
            warn!(
                event = "dbus_caller_gone",
                "a D-Bus {member} of `{provider}` was not carried out: its caller {sender} left the bus before tokend could ask the bus who it was; a caller must stay connected until the reply (`dbus-send --print-reply`, `busctl call`)"
            );
        } else {
            debug!(
                "a D-Bus {member} call dropped: its caller {sender} left the bus before it was identified"
            );
        }
    }

    async fn send_reply(&self, header: &Header<'_>, reply: Reply) -> zbus::Result<()> {
        let c = &self.connection;
        match reply {
            Reply::Empty => c.reply(header, &()).await,
            Reply::Flag(flag) => c.reply(header, &flag).await,
            Reply::Text(text) => c.reply(header, &text).await,
            Reply::Token(token, expires) => {
                // The token is in the message only; the copy is wiped below.
                let result = c.reply(header, &(&token, expires)).await;
                zeroize::Zeroize::zeroize(&mut { token });
                result
            }
            Reply::Prompt(code, uri, complete, expires) => {
                c.reply(header, &(code, uri, complete, expires)).await
            }
            Reply::Names(names) => c.reply(header, &names).await,
            Reply::Value(value) => c.reply(header, &value).await,
            Reply::Properties(properties) => c.reply(header, &properties).await,
            Reply::Objects(objects) => c.reply(header, &objects).await,
        }
    }

    /// What the config grants by besides uids: what of a caller is read.
    fn grants_by(&self) -> GrantsBy {
        GrantsBy {
            units: self.broker.grants_units(),
            groups: self.broker.grants_groups(),
        }
    }

    async fn route(&self, call: &Message, header: &Header<'_>) -> Answer {
        let (Some(path), Some(member)) = (header.path(), header.member()) else {
            return Err(Refusal::Standard(zbus::fdo::Error::InvalidArgs(
                "a method call needs a path and a member".into(),
            )));
        };
        let interface = header.interface().map(zbus::names::InterfaceName::as_str);
        let member = member.as_str();
        // Who asks comes first: every answer below depends on it.
        let caller = self
            .peers
            .caller(&self.connection, header, self.grants_by())
            .await?;
        // Held until the answer is made: a user's calls that wait long
        // take at most its share of the slots.
        let _share = self.shares.claim(&caller).map_err(Refusal::Standard)?;
        if let Some(answer) = peer_call(call, interface, member) {
            return answer;
        }
        let unknown_object = || {
            Refusal::Standard(zbus::fdo::Error::UnknownObject(format!(
                "no object at {}",
                path.as_str()
            )))
        };
        let object = Object::at(path.as_str()).ok_or_else(unknown_object)?;
        // A provider the caller may not see is no object at all.
        let provider = match object {
            Object::Provider(element) => Some(
                self.visible_provider(&caller, element)
                    .ok_or_else(unknown_object)?,
            ),
            _ => None,
        };
        let body = call.body();
        let signature = body.signature().to_string_no_parens();
        let interface = interface.unwrap_or_else(|| implied_interface(object, member));
        check_signature(object, interface, member, &signature)?;
        let bad_body = |e: zbus::Error| {
            Refusal::Standard(zbus::fdo::Error::InvalidArgs(format!(
                "{interface}.{member}: {e}"
            )))
        };
        match (interface, member) {
            (INTROSPECTABLE, "Introspect") => {
                Ok(Reply::Text(introspect::xml(&self.node(object, &caller))))
            }
            (PROPERTIES, "Get") => {
                let (iface, name) = body.deserialize::<(&str, &str)>().map_err(bad_body)?;
                self.properties(&caller, object, provider.as_ref(), iface)?
                    .into_iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| Reply::Value(value))
                    .ok_or_else(|| {
                        Refusal::Standard(zbus::fdo::Error::UnknownProperty(format!(
                            "{} has no property {}",
                            shown_name(iface),
                            shown_name(name)
                        )))
                    })
            }
            (PROPERTIES, "GetAll") => {
                let iface = body.deserialize::<&str>().map_err(bad_body)?;
                let all = self.properties(&caller, object, provider.as_ref(), iface)?;
                Ok(Reply::Properties(all.into_iter().collect()))
            }
            (PROPERTIES, "Set") => {
                let (iface, name, _) = body
                    .deserialize::<(&str, &str, zbus::zvariant::Value<'_>)>()
                    .map_err(bad_body)?;
                let properties = self.properties(&caller, object, provider.as_ref(), iface)?;
                Err(refuse_set(&properties, iface, name))
            }
            (OBJECT_MANAGER, "GetManagedObjects") => self.managed_objects(&caller),
            (BROKER_INTERFACE, "GetToken") => {
                let provider = body.deserialize::<&str>().map_err(bad_body)?;
                self.token(&caller, provider, Freshness::Default).await
            }
            (BROKER_INTERFACE, "GetTokenMinValid") => {
                let (provider, min_valid) = body.deserialize::<(&str, u32)>().map_err(bad_body)?;
                let want = Freshness::AtLeast(Duration::from_secs(u64::from(min_valid)));
                self.token(&caller, provider, want).await
            }
            (BROKER_INTERFACE, "Login") => {
                let provider = body.deserialize::<&str>().map_err(bad_body)?;
                self.login(&caller, provider).await
            }
            (BROKER_INTERFACE, "Logout") => {
                let provider = body.deserialize::<&str>().map_err(bad_body)?;
                self.broker.logout(&caller, provider).await?;
                Ok(Reply::Empty)
            }
            (BROKER_INTERFACE, "CancelLogin") => {
                let provider = body.deserialize::<&str>().map_err(bad_body)?;
                Ok(Reply::Flag(self.broker.cancel_login(&caller, provider)?))
            }
            (BROKER_INTERFACE, "ListProviders") => {
                Ok(Reply::Names(self.broker.provider_names(&caller)))
            }
            (BROKER_INTERFACE, "GetMetrics") => Ok(Reply::Text(self.broker.metrics_text(&caller))),
            _ => unreachable!("check_signature accepts only the methods above"),
        }
    }

    /// Every provider object `caller` may see, with its properties.
    fn managed_objects(&self, caller: &Caller) -> Answer {
        Ok(Reply::Objects(
            self.broker
                .status(caller, None)?
                .into_iter()
                .map(|status| (provider_path(&status.name), managed_object(&status)))
                .collect(),
        ))
    }

    /// Starts or joins the login and answers its prompt, once the provider
    /// has given its code, or that it has not within [`PROVIDER_WAIT`].
    async fn login(&self, caller: &Caller, provider: &str) -> Answer {
        let prompt = tokio::time::timeout(PROVIDER_WAIT, self.login_prompt(caller, provider))
            .await
            .map_err(|_| {
                DbusError::ProviderUnavailable(format!(
                    "provider `{provider}` has not answered the login's first request \
                     within {} s; the login goes on: its code comes as the LoginPrompt \
                     signal, or call Login again to join it",
                    PROVIDER_WAIT.as_secs()
                ))
            })??;
        Ok(Reply::Prompt(
            prompt.user_code,
            prompt.verification_uri,
            prompt.verification_uri_complete.unwrap_or_default(),
            u32::try_from(prompt.expires_in.as_secs()).unwrap_or(u32::MAX),
        ))
    }

    /// The prompt of the login `caller` starts or joins. One joined after
    /// its approval, while its tokens are saved, has no code left to show
    /// (it answered `LoginFailed` "finished before its prompt could be
    /// shown" while it was logging in): once it ends, the login after it
    /// gives the code, as a call a moment later would have started.
    async fn login_prompt(
        &self,
        caller: &Caller,
        provider: &str,
    ) -> Result<crate::broker::DevicePrompt, DbusError> {
        let mut watch = self.broker.login(caller, provider).await?;
        info!(
            provider = %provider,
            uid = caller.uid,
            event = "login_requested",
            via = "dbus",
            "login requested"
        );
        if let Some(prompt) = watch.prompt().await? {
            return Ok(prompt);
        }
        // However it ends, the login after it gives the code; within the
        // call's own bound, and said as what it is (the store's save, not
        // the provider, is waited for).
        if tokio::time::timeout(APPROVED_SAVE_WAIT, watch.outcome())
            .await
            .is_err()
        {
            return Err(DbusError::ProviderUnavailable(format!(
                "provider `{provider}`: a login was just approved and its tokens are still being \
                 saved (the store has not answered within {} s); its LoginFinished signal says \
                 when they are, and Login then starts another if one is wanted",
                APPROVED_SAVE_WAIT.as_secs()
            )));
        }
        let mut watch = self.broker.login(caller, provider).await?;
        watch.prompt().await?.ok_or_else(|| {
            DbusError::LoginFailed(format!(
                "provider `{provider}`: another login was approved while this call waited for \
                 the one before it; the session is logged in"
            ))
        })
    }

    /// A token, or that it is not ready within [`PROVIDER_WAIT`]: the
    /// refresh it waits for (in a task of its own) or the store goes on.
    async fn token(&self, caller: &Caller, provider: &str, want: Freshness) -> Answer {
        // The broker checks the bounds: one rule for both front-ends.
        let token = tokio::time::timeout(PROVIDER_WAIT, self.broker.token(caller, provider, want))
            .await
            .map_err(|_| {
                DbusError::ProviderUnavailable(format!(
                    "the token of provider `{provider}` is not ready within {} s (its refresh, \
                     or the store, is still being waited for); that goes on: call again to get \
                     the token",
                    PROVIDER_WAIT.as_secs()
                ))
            })??;
        debug!(provider, uid = caller.uid, "token handed out over D-Bus");
        Ok(Reply::Token(
            token.secret.expose().to_owned(),
            unix_secs_or_zero(token.expires_at),
        ))
    }
}
