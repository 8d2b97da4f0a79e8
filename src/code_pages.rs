//! Lets go of the daemon's code pages once a burst of one-off work is over
//! (start-up, a reload, a login), so that an idle `tokend` keeps resident
//! only the code it runs while idle; and of the heap's free pages
//! ([`release_free_heap`]).
//!
//! Why: almost all of an idle daemon's resident memory is file-backed
//! pages of its own executable and of the shared libraries (libc, libm,
//! the loader). Start-up runs a lot of code exactly once (argument
//! parsing, the config reader and its checks, the TLS set-up, the store's
//! opening, the restore of every session), and the kernel maps code in
//! 64 KiB windows around each page touched ("fault-around"), so the
//! executable stays mostly resident (3.9 of its 7 MB with two sessions)
//! and so do 2 MB of the libraries. Little of it is needed again until the
//! next reload: an idle daemon waits in `epoll_wait`.
//!
//! How: `madvise(MADV_DONTNEED)` on the read-only, private file mappings.
//! For a private file mapping whose pages were never written, that only
//! removes them from this process's page tables; the next access maps the
//! same page again from the page cache (a minor fault, no disk read while
//! the page is cached). Nothing is lost, and the kernel may now reclaim
//! pages that no process maps. A library's pages stay in the page cache
//! for every other process that maps them; they only stop counting in
//! tokend's RSS. Mappings holding any anonymous (copied-on-write) page are
//! skipped: those pages differ from the file (the relocated
//! `.data.rel.ro`, or a debugger's breakpoints) and `MADV_DONTNEED` would
//! throw the difference away; so are mappings that are or may be made
//! writable, and device, locked and huge-page mappings.

use std::io;

/// What [`release_code_pages`] let go of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Released {
    /// Mappings of the executable released.
    pub mappings: usize,
    /// Their resident size before, in KiB.
    pub resident_kib: u64,
}

/// One mapping of `/proc/self/smaps` that may be released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Releasable {
    start: usize,
    end: usize,
    resident_kib: u64,
}

/// Releases the resident pages of this process's executable and shared
/// libraries (see the module documentation). Returns what was released; a
/// mapping that `madvise` refuses is left as it was, and the others are
/// released all the same.
///
/// # Errors
/// `/proc/self/smaps` cannot be read.
pub fn release_code_pages() -> io::Result<Released> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut released = Released::default();
    for mapping in releasable(&smaps) {
        if mapping.resident_kib == 0
            || drop_resident_pages(mapping.start, mapping.end - mapping.start).is_err()
        {
            continue;
        }
        released.mappings += 1;
        released.resident_kib += mapping.resident_kib;
    }
    Ok(released)
}

/// `madvise(MADV_DONTNEED)` on `len` bytes at `start`.
#[allow(unsafe_code)]
fn drop_resident_pages(start: usize, len: usize) -> io::Result<()> {
    // SAFETY: the range is a whole mapping of a file (our executable or a
    // shared library) that is private, not writable and holds no anonymous
    // page (checked by
    // `releasable` from smaps; without write permission none can appear
    // since). MADV_DONTNEED on such a mapping only unmaps pages that are
    // identical to the file: every later access maps the same bytes again,
    // so no Rust reference or code pointer into it sees a change. Address
    // arithmetic only, no pointer is dereferenced here.
    unsafe {
        rustix::mm::madvise(
            start as *mut std::ffi::c_void,
            len,
            rustix::mm::Advice::LinuxDontNeed,
        )
    }
    .map_err(io::Error::from)
}

/// The mappings in `smaps` of files (an inode, not anonymous memory) that
/// are private, not writable, and hold no anonymous page.
fn releasable(smaps: &str) -> Vec<Releasable> {
    let mut found = Vec::new();
    let mut current: Option<Releasable> = None;
    let mut anonymous_kib = 0;
    let mut finish = |mapping: Option<Releasable>, anonymous_kib: u64| {
        if let Some(mapping) = mapping
            && anonymous_kib == 0
        {
            found.push(mapping);
        }
    };
    for line in smaps.lines() {
        if let Some(header) = mapping_header(line) {
            finish(current.take(), anonymous_kib);
            anonymous_kib = 0;
            current = header
                .filter(|h| h.inode != 0 && !h.writable && h.private)
                .map(|h| Releasable {
                    start: h.start,
                    end: h.end,
                    resident_kib: 0,
                });
            continue;
        }
        let Some(mapping) = current.as_mut() else {
            continue;
        };
        if let Some(kib) = field_kib(line, "Rss:") {
            mapping.resident_kib = kib;
        } else if let Some(kib) = field_kib(line, "Anonymous:") {
            anonymous_kib = kib;
        } else if line.starts_with("VmFlags:")
            && line
                .split_whitespace()
                .any(|f| matches!(f, "wr" | "pf" | "io" | "lo" | "ht"))
        {
            // Writable (or made so by mprotect since the header was
            // written), a device's memory (pfn, I/O), locked or huge
            // pages: never dropped.
            current = None;
        }
    }
    finish(current, anonymous_kib);
    found
}

/// A mapping's header line, parsed.
struct Header {
    start: usize,
    end: usize,
    writable: bool,
    private: bool,
    inode: u64,
}

/// `Some(None)` for a header line that does not parse (a mapping to skip),
/// `None` for a line that is not a header (header lines start with the
/// address range, field lines with a name and a colon).
#[allow(clippy::option_option)]
fn mapping_header(line: &str) -> Option<Option<Header>> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let (start, end) = range.split_once('-')?;
    let (Ok(start), Ok(end)) = (
        usize::from_str_radix(start, 16),
        usize::from_str_radix(end, 16),
    ) else {
        return None;
    };
    let mut parse = || {
        let perms = fields.next()?.as_bytes();
        let _offset = fields.next()?;
        let _device = fields.next()?;
        let inode = fields.next()?.parse().ok()?;
        Some(Header {
            start,
            end,
            writable: perms.get(1) == Some(&b'w'),
            private: perms.get(3) == Some(&b'p'),
            inode,
        })
    };
    Some(parse())
}

/// The value in KiB of a `Name:  123 kB` line.
fn field_kib(line: &str, name: &str) -> Option<u64> {
    let rest = line.strip_prefix(name)?;
    rest.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// Returns the heap's free pages to the kernel (`malloc_trim(0)`): after a
/// burst of one-off work, as [`release_code_pages`], and when the
/// last connection served on a thread of its own ends. Why: glibc gives a
/// thread that allocates while another holds the main arena an arena of
/// its own, and keeps every arena's free pages after the work (and the
/// thread) is gone. The blocking pool's threads that read and write the
/// store, resolve names or serve busy clients leave such pages behind.
#[allow(unsafe_code)]
pub fn release_free_heap() {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: malloc_trim(3) takes a size and touches only the
        // allocator's own free lists; it is thread-safe and has no
        // precondition on the caller.
        unsafe extern "C" {
            safe fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
5581a0000000-5581a0100000 r--p 00000000 fe:01 4242 /usr/bin/tokend
Size:               1024 kB
Rss:                 300 kB
Anonymous:             0 kB
VmFlags: rd mr mw me dw sd
5581a0100000-5581a0700000 r-xp 00100000 fe:01 4242 /usr/bin/tokend
Size:               6144 kB
Rss:                3900 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me dw sd
5581a0700000-5581a0710000 r--p 00700000 fe:01 4242 /usr/bin/tokend
Size:                 64 kB
Rss:                  64 kB
Anonymous:            64 kB
VmFlags: rd mr mw me dw ac sd
5581a0710000-5581a0711000 rw-p 00710000 fe:01 4242 /usr/bin/tokend
Size:                  4 kB
Rss:                   4 kB
Anonymous:             4 kB
VmFlags: rd wr mr mw me dw ac sd
7f0000000000-7f0000100000 r-xp 00000000 fe:01 777 /usr/lib/x86_64-linux-gnu/libc.so.6
Size:               1024 kB
Rss:                1000 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me sd
7f0000200000-7f0000300000 rw-p 00000000 00:00 0 [heap]
Size:               1024 kB
Rss:                 400 kB
Anonymous:           400 kB
VmFlags: rd wr mr mw me ac sd
";

    #[test]
    fn only_clean_read_only_file_mappings() {
        let found = releasable(SMAPS);
        assert_eq!(
            found,
            vec![
                Releasable {
                    start: 0x5581_a000_0000,
                    end: 0x5581_a010_0000,
                    resident_kib: 300
                },
                Releasable {
                    start: 0x5581_a010_0000,
                    end: 0x5581_a070_0000,
                    resident_kib: 3900
                },
                Releasable {
                    start: 0x7f00_0000_0000,
                    end: 0x7f00_0010_0000,
                    resident_kib: 1000
                },
            ],
            "the relocated r--p mapping (anonymous pages), the rw-p one and \
             the heap must be left alone"
        );
    }

    #[test]
    fn device_locked_and_huge_page_mappings_are_skipped() {
        for flags in ["rd mr pf io", "rd ex mr lo", "rd mr ht"] {
            let smaps = format!(
                "1000-2000 r--p 00000000 00:05 12 /dev/thing\nRss:                   4 kB\nAnonymous:             0 kB\nVmFlags: {flags}\n"
            );
            assert!(releasable(&smaps).is_empty(), "{flags}");
        }
    }

    #[test]
    fn a_mapping_that_may_become_writable_is_skipped() {
        let smaps = "\
1000-2000 r-xp 00000000 fe:01 9 /x
Rss:                   4 kB
Anonymous:             0 kB
VmFlags: rd wr ex mr
";
        assert!(releasable(smaps).is_empty());
    }

    #[test]
    fn releasing_our_own_pages_keeps_the_process_working() {
        // The test binary's own code and libc's: released, then run again
        // (this assertion, the formatting machinery) from the page cache.
        let released = release_code_pages().expect("release");
        assert!(released.mappings > 0, "{released:?}");
        let again = release_code_pages().expect("release again");
        assert!(
            again.resident_kib < released.resident_kib || released.resident_kib < 64,
            "{again:?} after {released:?}"
        );
        assert_eq!(format!("{}", 6 * 7), "42");
    }
}
