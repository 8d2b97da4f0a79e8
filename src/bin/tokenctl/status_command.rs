//! `tokenctl status` and `status --check`: the statuses read from the
//! daemon one at a time and handed to the printers of `status`.

use std::io::{self, BufWriter};

use tokend::cli::TokenctlArgs as Cli;
use tokend::client::Client;
use tokend::protocol::{ProviderStatus, STATUS_STREAM_SINCE};

use crate::connect::connect_checked;
use crate::exit::{self, Failure};
use crate::{format, status};

/// Hands each status the daemon answers (of `name`, or of every provider
/// this user may see) to `each`, one at a time from a daemon that streams
/// them (protocol 2 on), out of its single answer line from an older one;
/// reads the answer to its end, so the connection can serve another
/// request. Returns what the daemon said of itself at the end.
pub(crate) fn each_status(
    client: &mut Client,
    protocol: Option<u32>,
    name: Option<&str>,
    mut each: impl FnMut(ProviderStatus) -> Result<(), Failure>,
) -> Result<status::DaemonNotes, Failure> {
    if protocol.is_some_and(|p| p >= STATUS_STREAM_SINCE) {
        let mut stream = client.status_stream(name)?;
        for provider in stream.by_ref() {
            each(provider?)?;
        }
        Ok(status::DaemonNotes {
            store: stream.store().cloned(),
            config: stream.config().cloned(),
        })
    } else {
        client.status(name)?.into_iter().try_for_each(each)?;
        Ok(status::DaemonNotes::default())
    }
}

/// `tokenctl status [NAME]`: printed as the providers arrive, one at a time,
/// from a daemon that streams them (protocol 2 on); from an older one, out
/// of its single answer line.
pub(crate) fn status(cli: &Cli, name: Option<&str>) -> Result<(), Failure> {
    let (mut client, protocol) = connect_checked(cli)?;
    let layout = match (cli.json, name) {
        (true, _) => status::Layout::Json,
        (false, None) => status::Layout::Table,
        (false, Some(_)) => status::Layout::Details,
    };
    let out = BufWriter::new(io::stdout().lock());
    let mut printer = status::Printer::new(out, layout, format::unix_now());
    let read = each_status(&mut client, protocol, name, |p| {
        printer.provider(&p).map_err(|e| Failure::output(&e))
    });
    let notes = match read {
        Ok(notes) => notes,
        Err(mut failure) => {
            // Said, as a JSON reader fails on it without saying why.
            if layout == status::Layout::Json
                && printer.printed() > 0
                && !failure.message.is_empty()
            {
                failure.message.push_str(
                    "; the JSON array on stdout is left unclosed: it is not the whole list",
                );
            }
            let _ = printer.abandon();
            return Err(failure);
        }
    };
    printer
        .finish(&notes, io::stderr().lock())
        .map_err(|e| Failure::output(&e))
}

/// `tokenctl status --check`: one line per problem on stdout, exit 1 if
/// any. Reads the statuses as `status` does, one at a time. With `--json`,
/// one object instead, once every status is read:
/// `{"ok":..,"problems":[{"provider":..|null,"problem":..}]}`.
pub(crate) fn status_check(cli: &Cli, name: Option<&str>) -> Result<(), Failure> {
    let mut out = status::CheckReport::new(BufWriter::new(io::stdout().lock()), cli.json);
    let (mut client, protocol) = match connect_checked(cli) {
        Ok(connected) => connected,
        Err(error) => {
            // A monitor reading the JSON gets its one object however the
            // check ends: tokend out of reach is the problem. (The exit
            // status stays the error's: 3 when tokend is not running.)
            if cli.json {
                let said = out
                    .problem(None, &error.to_string())
                    .and_then(|()| out.finish());
                if let Err(e) = said {
                    return Err(Failure::output(&e));
                }
            }
            return Err(error.into());
        }
    };
    // A logged-out session may only be waiting for a store that is down,
    // which the end of the answer says: those lines wait for it.
    let mut logged_out = Vec::new();
    let now = crate::format::unix_now();
    let read = each_status(&mut client, protocol, name, |p| {
        if p.state == "logged_out" {
            logged_out.push((p.name.clone(), status::problems(&p, now)));
            return Ok(());
        }
        for problem in status::problems(&p, now) {
            out.problem(Some(&p.name), &problem)
                .map_err(|e| Failure::output(&e))?;
        }
        Ok(())
    });
    let notes = match read {
        Ok(notes) => notes,
        Err(failure) => {
            // As when tokend is out of reach: the one object still comes,
            // the failure (an unknown provider, a daemon stopping
            // mid-answer) its problem, and the exit status is the failure's.
            if cli.json {
                let said = out
                    .problem(None, &failure.message)
                    .and_then(|()| out.finish());
                if let Err(e) = said {
                    return Err(Failure::output(&e));
                }
            }
            return Err(failure);
        }
    };
    // The config's standing: a refused reload, a restart waited for.
    if let Some(config) = &notes.config {
        for line in status::config_lines(config, format::unix_now()) {
            out.problem(None, line.trim_end())
                .map_err(|e| Failure::output(&e))?;
        }
    }
    // The store's state is one problem, however many sessions wait on it.
    let store_line = notes
        .store
        .as_ref()
        .and_then(|s| status::store_line(s, format::unix_now()));
    if let Some(line) = store_line {
        out.problem(None, line.trim_end())
            .map_err(|e| Failure::output(&e))?;
        if !logged_out.is_empty() {
            let note = format!(
                "{} logged-out session(s) may be waiting for the store",
                logged_out.len()
            );
            out.problem(None, &note).map_err(|e| Failure::output(&e))?;
        }
    } else {
        for (provider, problems) in logged_out {
            for problem in problems {
                out.problem(Some(&provider), &problem)
                    .map_err(|e| Failure::output(&e))?;
            }
        }
    }
    if out.finish().map_err(|e| Failure::output(&e))? {
        Ok(())
    } else {
        // The lines said it all; the exit status tells the monitor.
        Err(Failure::silent(exit::FAILURE))
    }
}
