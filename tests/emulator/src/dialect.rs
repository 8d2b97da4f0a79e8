//! What an emulated dialect is: the server side every dialect implements
//! ([`Dialect`]), what its options give the shared machinery
//! ([`EmulatedDialect`]), and the macro that turns the one list of
//! dialects (`dialects/mod.rs`) into [`crate::EmulatorOptions`].

use std::time::Duration;

use crate::approval::ApprovalPaths;
use crate::authority::{Authority, Policy};
use crate::received::Received;
use crate::record::{Endpoint, Grant};
use crate::reply::Reply;

/// One provider wire dialect, server side.
pub(crate) trait Dialect: Send + Sync + 'static {
    /// Which endpoint `path` names.
    fn endpoint(&self, path: &str) -> Endpoint;

    /// The path serving `endpoint`, when the dialect has one.
    fn path(&self, endpoint: Endpoint) -> Option<String>;

    /// The grant a token-endpoint request asks for, read leniently (it is
    /// recorded even for requests a fault answers).
    fn grant(&self, request: &Received) -> Option<Grant>;

    /// Decides the answer to `request`. Runs under the state lock: no
    /// blocking, no waiting.
    fn answer(&self, request: &Received, endpoint: Endpoint, authority: &mut Authority) -> Reply;
}

/// The routes of a dialect whose device and token endpoints each live at
/// one fixed path, beside its approval pages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FixedPaths {
    /// The device authorization endpoint.
    pub device: &'static str,
    /// The token endpoint.
    pub token: &'static str,
}

impl FixedPaths {
    /// [`Dialect::endpoint`] for these paths and `approval`.
    pub(crate) fn endpoint(self, path: &str, approval: &ApprovalPaths) -> Endpoint {
        match path {
            _ if path == self.device => Endpoint::DeviceAuthorization,
            _ if path == self.token => Endpoint::Token,
            _ if approval.contains(path) => Endpoint::Approval,
            _ => Endpoint::Unknown,
        }
    }

    /// [`Dialect::path`] for these paths and `approval`.
    pub(crate) fn path(self, endpoint: Endpoint, approval: &ApprovalPaths) -> Option<String> {
        match endpoint {
            Endpoint::DeviceAuthorization => Some(self.device.into()),
            Endpoint::Token => Some(self.token.into()),
            Endpoint::Approval => Some(approval.page.clone()),
            Endpoint::Discovery | Endpoint::UserInfo | Endpoint::Unknown => None,
        }
    }
}

/// What the `tokend-emulator` program sets, whatever the dialect; each
/// dialect takes what applies to it (`EmulatedDialect::demo`).
#[derive(Debug, Clone)]
pub struct DemoSettings {
    /// The client id the emulator accepts.
    pub client_id: String,
    /// The poll interval.
    pub interval: Duration,
    /// The lifetime of access tokens.
    pub access_token_lifetime: Duration,
}

/// What the options of one emulated dialect give the shared machinery and
/// the program: one implementation per file in `dialects/`.
pub(crate) trait EmulatedDialect: Sized {
    /// The dialect's name in tokend's config (`dialect = "..."`) and in the
    /// program's `--dialect`.
    const NAME: &'static str;
    /// Its name for people, as the program announces it.
    const TITLE: &'static str;

    /// The token rules these options ask for.
    fn policy(&self) -> Policy;

    /// The dialect, server side, for a server reachable at `origin`
    /// (`http://127.0.0.1:PORT`).
    fn server(self, origin: &str) -> Box<dyn Dialect>;

    /// The options the program runs the dialect with.
    fn demo(settings: &DemoSettings) -> Self;

    /// The keys of a tokend `[providers.NAME]` table that reach an emulator
    /// with these options at `origin`, one per line.
    fn tokend_keys(&self, origin: &str) -> String;
}

/// A TOML basic string: quoted, with `"`, `\` and control characters escaped.
pub(crate) fn toml_string(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The keys of a tokend provider table for a dialect with fixed paths:
/// its name, the emulator's origin as `base_url`, and the client id.
pub(crate) fn base_url_keys(dialect: &str, origin: &str, client_id: &str) -> String {
    format!(
        "dialect = {}\nbase_url = {}\nclient_id = {}\n",
        toml_string(dialect),
        toml_string(origin.trim_end_matches('/')),
        toml_string(client_id)
    )
}

/// Turns the list of emulated dialects, `Variant(options type)` each, into
/// [`crate::EmulatorOptions`]: its variants, a `From` for each options
/// type, and the dispatch to each dialect's [`EmulatedDialect`].
macro_rules! emulated_dialects {
    ($($variant:ident($options:ty)),+ $(,)?) => {
        /// Which dialect to emulate, and how: one variant per emulated
        /// dialect, each holding that dialect's options.
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub enum EmulatorOptions {
            $(
                #[doc = concat!("Emulates the dialect of [`", stringify!($options), "`].")]
                $variant($options),
            )+
        }

        $(
            impl From<$options> for EmulatorOptions {
                fn from(options: $options) -> Self {
                    Self::$variant(options)
                }
            }
        )+

        impl EmulatorOptions {
            /// Every emulated dialect's name, as tokend's config and the
            /// program's `--dialect` spell it, in the order of the list.
            pub const NAMES: &'static [&'static str] =
                &[$(<$options as $crate::dialect::EmulatedDialect>::NAME),+];

            /// The options the program runs the dialect called `name` with
            /// (`None` for a name not in [`Self::NAMES`]).
            #[must_use]
            pub fn demo(name: &str, settings: &$crate::dialect::DemoSettings) -> Option<Self> {
                use $crate::dialect::EmulatedDialect as _;
                $(
                    if name == <$options as $crate::dialect::EmulatedDialect>::NAME {
                        return Some(Self::$variant(<$options>::demo(settings)));
                    }
                )+
                None
            }

            /// The dialect's name, one of [`Self::NAMES`].
            #[must_use]
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => <$options as $crate::dialect::EmulatedDialect>::NAME,)+
                }
            }

            /// The dialect's name for people.
            #[must_use]
            pub fn title(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => <$options as $crate::dialect::EmulatedDialect>::TITLE,)+
                }
            }

            /// A tokend `[providers.PROVIDER]` table that reaches an
            /// emulator with these options at `origin` (`http://127.0.0.1:PORT`).
            #[must_use]
            pub fn tokend_config(&self, provider: &str, origin: &str) -> String {
                use $crate::dialect::EmulatedDialect as _;
                let keys = match self {
                    $(Self::$variant(options) => options.tokend_keys(origin),)+
                };
                format!("[providers.{provider}]\n{keys}")
            }

            /// The dialect, server side, for a server at `origin`, and its
            /// token rules.
            pub(crate) fn build(
                self,
                origin: &str,
            ) -> (Box<dyn $crate::dialect::Dialect>, $crate::authority::Policy) {
                use $crate::dialect::EmulatedDialect as _;
                match self {
                    $(Self::$variant(options) => {
                        let policy = options.policy();
                        (options.server(origin), policy)
                    })+
                }
            }
        }
    };
}

pub(crate) use emulated_dialects;

#[cfg(test)]
mod tests {
    use super::toml_string;

    #[test]
    fn toml_strings_are_quoted_and_escaped() {
        assert_eq!(toml_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000A\"");
    }
}
