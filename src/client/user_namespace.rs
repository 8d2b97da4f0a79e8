//! A client that is root only inside a user namespace: rootless podman and
//! buildah run their credential helpers so (their user is uid 0 in the
//! namespace they make). Its daemon is its user's, outside: looked for as
//! root's, at the system socket, `docker-credential-tokend` told the person
//! to start the system service.

/// The uid outside the namespace that this process's uid 0 is, when this
/// process is root of a user namespace that maps 0 to another uid; `None`
/// when not root, or root of the machine (the initial namespace's map is
/// `0 0 4294967295`, and a rootful container's maps 0 to 0 too).
#[must_use]
pub fn outer_uid_of_root() -> Option<u32> {
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    let map = std::fs::read_to_string("/proc/self/uid_map").ok()?;
    outer_uid_in_map(&map)
}

/// The outside uid that uid 0 maps to in `map` (`/proc/self/uid_map`'s
/// lines: inside, outside, count), when it is not 0.
#[must_use]
pub fn outer_uid_in_map(map: &str) -> Option<u32> {
    map.lines().find_map(|line| {
        let mut fields = line.split_whitespace().map(str::parse::<u32>);
        match (fields.next(), fields.next(), fields.next()) {
            (Some(Ok(0)), Some(Ok(outside)), Some(Ok(count))) if count > 0 && outside != 0 => {
                Some(outside)
            }
            _ => None,
        }
    })
}

/// The uid the kernel shows for a uid this namespace does not map
/// (`/proc/sys/kernel/overflowuid`, 65534 unless changed).
#[must_use]
pub fn overflow_uid() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/overflowuid")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(65_534)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_of_a_namespace_is_the_user_it_maps_to() {
        // Rootless podman: 0 is the user, the rest a subordinate range.
        assert_eq!(
            outer_uid_in_map(
                "         0       1000          1\n         1     100000      65536\n"
            ),
            Some(1000)
        );
        // The machine's own map, and a rootful container's: root.
        assert_eq!(outer_uid_in_map("         0          0 4294967295\n"), None);
        assert_eq!(outer_uid_in_map("0 0 65536\n"), None);
        // Uid 0 not mapped at all, or nonsense.
        assert_eq!(outer_uid_in_map("1 1000 1\n"), None);
        assert_eq!(outer_uid_in_map(""), None);
        assert_eq!(outer_uid_in_map("0 x 1\n"), None);
    }
}
