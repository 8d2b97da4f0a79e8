//! A daemon caught while it reads its config: the config's path is a FIFO
//! the test holds, so `tokend` is known to be in its first step (reading
//! the file, before anything else it sets up) until the test lets the
//! config through. No sleeping: the FIFO's open is the rendezvous.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::time::{Duration, Instant};

use super::daemon::{Daemon, DaemonOptions};

/// How long `tokend` may take to open its config before the test fails.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// The writing end of the FIFO a spawned `tokend` is reading its config
/// from, and the text it will be given.
pub struct HeldConfig {
    writer: std::fs::File,
    text: String,
}

impl HeldConfig {
    /// Spawns `tokend` with `providers` and `options`, its config at a
    /// FIFO, and returns once it has opened the FIFO to read it: it then
    /// waits in that read until [`Self::release`]. The path holds a
    /// regular file with the same text from here on (the FIFO stays open
    /// in `tokend`), so that a later read of the config, a reload's, finds
    /// a file as usual.
    pub fn spawn(providers: &str, options: DaemonOptions) -> (Daemon, Self) {
        let mut daemon = Daemon::prepare_with(providers, options);
        let text = std::fs::read_to_string(&daemon.config).unwrap();
        std::fs::remove_file(&daemon.config).unwrap();
        super::process::make_fifo(&daemon.config);
        daemon.spawn_prepared();
        let writer = open_once_read(&mut daemon);
        let regular = daemon.config.with_extension("regular");
        std::fs::write(&regular, &text).unwrap();
        std::fs::rename(&regular, &daemon.config).unwrap();
        (daemon, Self { writer, text })
    }

    /// Gives `tokend` its config and closes the FIFO: its read ends.
    pub fn release(mut self) {
        // A `tokend` that died meanwhile closed its end (EPIPE): the
        // test's wait for it says how it ended.
        let _ = self.writer.write_all(self.text.as_bytes());
    }
}

/// The FIFO at the daemon's config path opened for writing, once `tokend`
/// has opened it for reading. A non-blocking open for writing fails
/// (ENXIO) until there is a reader; a blocking one would wait for ever
/// for a `tokend` that died first.
fn open_once_read(daemon: &mut Daemon) -> std::fs::File {
    let nonblocking = rustix::fs::OFlags::NONBLOCK.bits();
    let deadline = Instant::now() + OPEN_TIMEOUT;
    loop {
        let attempt = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(i32::try_from(nonblocking).unwrap())
            .open(&daemon.config);
        match attempt {
            // A reader is there. Kept open (the reader would read the end
            // of the file if no writer were left), made blocking for the
            // write of the whole text.
            Ok(writer) => {
                rustix::fs::fcntl_setfl(&writer, rustix::fs::OFlags::empty()).unwrap();
                return writer;
            }
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error()) => {}
            Err(e) => panic!("open the FIFO {}: {e}", daemon.config.display()),
        }
        if let Some(status) = daemon.exited() {
            panic!(
                "tokend exited ({status}) before reading its config; log:\n{}",
                daemon.log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "tokend did not open its config within {OPEN_TIMEOUT:?}; log:\n{}",
            daemon.log()
        );
        // The process is being exec'd and set up: there is no event to
        // wait on before its open, so look again shortly (bounded above).
        std::thread::sleep(Duration::from_millis(1));
    }
}
