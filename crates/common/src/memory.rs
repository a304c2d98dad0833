//! Giving back memory the process needed only to start.

/// Drops the executable's code pages from this process once start-up is done; returns how many
/// bytes of mappings were released.
///
/// Starting touches code all over the binary (configuration, routers, metric registries, the
/// log's replay), and the kernel maps a file's pages in 64 KiB around each fault: ~10 MB of a
/// 24 MB text segment stayed resident although an idle server runs a small part of it.
/// `MADV_DONTNEED` on the executable's read-only mappings takes them out of the page tables (the
/// pages stay in the page cache); what runs afterwards comes back as minor faults. Only
/// mappings with no private page are released — no relocated (RELRO) page, no debugger
/// breakpoint — so each page is exactly the file's bytes and dropping it loses nothing.
#[cfg(target_os = "linux")]
pub fn release_startup_code() -> usize {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return 0;
    };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let exe = exe.to_string_lossy();
    let mut released = 0;
    for (range, copied) in read_only_mappings(&smaps, &exe) {
        if copied {
            continue;
        }
        let len = range.end - range.start;
        // SAFETY: the range is a whole private, read-only mapping of the executable file with
        // no private (written) page: every page is the file's, so discarding them only makes
        // the next access fault the same bytes back in from the page cache.
        let rc =
            unsafe { libc::madvise(range.start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        if rc == 0 {
            released += len;
        }
    }
    released
}

#[cfg(not(target_os = "linux"))]
pub fn release_startup_code() -> usize {
    0
}

/// The private read-only mappings of `exe` in `smaps`, each with whether any of its pages is a
/// private copy (in memory or swapped out).
#[cfg(any(target_os = "linux", test))]
fn read_only_mappings(smaps: &str, exe: &str) -> Vec<(std::ops::Range<usize>, bool)> {
    let mut out: Vec<(std::ops::Range<usize>, bool)> = Vec::new();
    let mut current = false;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        if let Some((lo, hi)) = first.split_once('-')
            && let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        {
            let perms = words.next().unwrap_or("");
            let path = words.nth(3).unwrap_or("");
            current = path == exe
                && words.next().is_none()
                && perms.starts_with('r')
                && !perms.contains('w')
                && perms.ends_with('p');
            if current {
                out.push((lo..hi, false));
            }
            continue;
        }
        if !current {
            continue;
        }
        let kb = |w: Option<&str>| w.and_then(|v| v.parse::<u64>().ok()).unwrap_or(1);
        // A written page of a private file mapping is an anonymous copy (relocations, a
        // debugger's breakpoints). Dirty page-cache pages (a binary just written) are still
        // the file's bytes.
        if matches!(first, "Anonymous:" | "Swap:")
            && kb(words.next()) != 0
            && let Some(last) = out.last_mut()
        {
            last.1 = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unwritten_read_only_mappings_of_the_executable() {
        let smaps = "\
55d0-55e0 r--p 00000000 08:01 42 /usr/bin/vivace
Rss:                 100 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55e0-55f0 r-xp 00010000 08:01 42 /usr/bin/vivace
Shared_Dirty:        804 kB
Private_Dirty:        64 kB
Anonymous:             0 kB
55f0-5600 r--p 00020000 08:01 42 /usr/bin/vivace
Private_Dirty:        12 kB
Anonymous:            12 kB
Swap:                  0 kB
5600-5610 rw-p 00030000 08:01 42 /usr/bin/vivace
Private_Dirty:         0 kB
7f00-7f10 r-xp 00000000 08:01 43 /usr/lib/libc.so.6
Private_Dirty:         0 kB
7f20-7f30 r-xp 00000000 08:01 44 /usr/bin/vivace (deleted)
Private_Dirty:         0 kB
";
        let got = read_only_mappings(smaps, "/usr/bin/vivace");
        assert_eq!(
            got,
            vec![
                (0x55d0..0x55e0, false),
                (0x55e0..0x55f0, false),
                (0x55f0..0x5600, true)
            ]
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn releasing_keeps_the_process_running() {
        let released = release_startup_code();
        assert!(released > 0);
        // Code runs (and faults back in) as before.
        assert_eq!(format!("{}", 6 * 7), "42");
    }
}
