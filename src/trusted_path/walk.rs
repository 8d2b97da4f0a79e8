//! Following a path as the kernel does, one name at a time, to check every
//! directory a lookup of it passes through: the ones above the path as
//! written, and, past each symbolic link, the ones above its target. A
//! config at `conf/config.toml`, a link to `../ww/c.toml`, is only as safe
//! as `ww`: whoever may write there (mode 0777, not sticky) can put a file
//! of their own in place of `c.toml`, and the link leads tokend to it.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Component, Path, PathBuf};

use super::{Owners, UntrustedPath, check_one};

/// The most symbolic links followed on one path: Linux's own limit, past
/// which its lookup fails (`ELOOP`), and so would tokend's open.
const MAX_LINKS: usize = 40;

/// A symbolic link followed on the way to a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkHop {
    /// The link, as reached (its directories resolved).
    pub link: PathBuf,
    /// What it points to, as written in it.
    pub target: PathBuf,
}

/// Where a path led: the path it resolves to, as far as it exists, and
/// the links followed on the way.
pub(super) struct Resolved {
    /// The last existing step: the file or directory the path names, or
    /// the deepest directory of it that exists.
    pub path: PathBuf,
    /// Whether `path` is all of the path (nothing was missing).
    pub complete: bool,
    /// The symbolic links followed, in order.
    pub hops: Vec<LinkHop>,
}

/// Follows `path` name by name from `/` (a relative one from the working
/// directory), checking each directory a name is looked up in, and the
/// owner of each symbolic link followed (one in a sticky directory, such
/// as `/tmp`, may be replaced by its owner). Stops where the path does
/// not exist (what is missing will be made by the trusted user) or cannot
/// be followed (not a directory, too many links: the open that follows
/// fails on its own).
///
/// # Errors
/// The first directory, or link, on the way that breaks the rule, with
/// the links followed to reach it.
pub(super) fn walk(path: &Path, trusted: Owners) -> Result<Resolved, UntrustedPath> {
    let mut steps: VecDeque<Step> = VecDeque::new();
    if path.is_relative() {
        // The kernel's working directory has no links in it: its own
        // directories are checked on the way down from `/`.
        let Ok(cwd) = std::env::current_dir() else {
            return Ok(Resolved {
                path: path.to_owned(),
                complete: false,
                hops: Vec::new(),
            });
        };
        steps.extend(Step::of(&cwd));
    }
    steps.extend(Step::of(path));
    let mut current = PathBuf::from("/");
    let mut hops = Vec::new();
    let mut checked: Vec<PathBuf> = Vec::new();
    let stop = |path: PathBuf, hops: Vec<LinkHop>| -> Result<Resolved, UntrustedPath> {
        Ok(Resolved {
            path,
            complete: false,
            hops,
        })
    };
    while let Some(step) = steps.pop_front() {
        let name = match step {
            Step::Root => {
                current = PathBuf::from("/");
                continue;
            }
            // From the directory reached, links resolved: where the
            // kernel's `..` goes.
            Step::Parent => {
                current.pop();
                continue;
            }
            Step::Name(name) => name,
        };
        check_directory(&current, trusted, &hops, &mut checked)?;
        let entry = current.join(&name);
        let Ok(meta) = std::fs::symlink_metadata(&entry) else {
            return stop(current, hops);
        };
        if meta.file_type().is_symlink() {
            if !trusted.trusts(meta.uid()) {
                return Err(UntrustedPath {
                    path: entry,
                    owner: meta.uid(),
                    mode: meta.mode() & 0o7777,
                    why: "belongs to another user",
                    via: hops,
                });
            }
            let Ok(target) = std::fs::read_link(&entry) else {
                return stop(current, hops);
            };
            if hops.len() == MAX_LINKS {
                return stop(entry, hops);
            }
            for step in Step::of(&target).into_iter().rev() {
                steps.push_front(step);
            }
            hops.push(LinkHop {
                link: entry,
                target,
            });
            continue;
        }
        if steps.is_empty() {
            return Ok(Resolved {
                path: entry,
                complete: true,
                hops,
            });
        }
        if !meta.is_dir() {
            return stop(entry, hops);
        }
        current = entry;
    }
    // The path ended in a directory reached by `/` or `..`.
    Ok(Resolved {
        path: current,
        complete: true,
        hops,
    })
}

/// One step of a path's lookup.
enum Step {
    /// Back to `/` (an absolute path, or link target).
    Root,
    /// `..`.
    Parent,
    /// An entry of the directory reached.
    Name(OsString),
}

impl Step {
    /// The steps of `path` (`.` takes none).
    fn of(path: &Path) -> Vec<Self> {
        path.components()
            .filter_map(|part| match part {
                Component::RootDir | Component::Prefix(_) => Some(Self::Root),
                Component::CurDir => None,
                Component::ParentDir => Some(Self::Parent),
                Component::Normal(name) => Some(Self::Name(name.to_owned())),
            })
            .collect()
    }
}

/// Checks the directory `dir` (once per walk) by [`check_one`]'s rule.
fn check_directory(
    dir: &Path,
    trusted: Owners,
    hops: &[LinkHop],
    checked: &mut Vec<PathBuf>,
) -> Result<(), UntrustedPath> {
    if checked.iter().any(|done| done == dir) {
        return Ok(());
    }
    if let Ok(meta) = std::fs::metadata(dir) {
        check_one(dir, meta.uid(), meta.gid(), meta.mode(), trusted).map_err(|e| {
            UntrustedPath {
                via: hops.to_vec(),
                ..e
            }
        })?;
    }
    checked.push(dir.to_owned());
    Ok(())
}
