//! Allocator tuning for a datapath that allocates and frees 64 KiB buffers all the time.

/// Keeps freed heap memory instead of returning it to the kernel at once. glibc gives back the top of
/// the heap whenever more than 128 KiB is free there, so a steady stream of 64 KiB super-packets made
/// the kernel unmap and fault in (and zero) the same pages over and over: about 8 % of the CPU of a
/// busy node. With a 4 MiB threshold the pages stay mapped; the heap still shrinks after a burst.
/// Buffers up to 1 MiB come from the heap rather than from `mmap`, for the same reason.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; both are valid options with in-range
        // values, and it is called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, 4 << 20);
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        }
    }
}

/// Drops this process's page-table entries for the machine code it has run so far (its own and its
/// shared libraries'), so that its resident set is what it keeps running rather than everything
/// start-up touched: parsing options and configuration, setting up devices, and the 64 KiB the
/// kernel maps around every code page it faults in. That code (about 3 MiB of the binary's text and
/// 1.5 MiB of libc and friends) stays in the page cache, and a page that runs again is mapped back on
/// first use without reading the disk. Returns the bytes of code released.
///
/// Only read-only, executable, file-backed private mappings are touched: their pages are never
/// written (no text relocations), so dropping them cannot lose data. Writable and read-only data
/// mappings (which relocation may have copied on write) are left alone.
pub fn release_startup_code() -> std::io::Result<usize> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut released = 0;
    for (start, end) in maps.lines().filter_map(code_mapping) {
        let len = end - start;
        // SAFETY: `start..end` is a whole mapping listed by the kernel for this process, read-only
        // and executable, backed by a file and never written; MADV_DONTNEED on such a private file
        // mapping only unmaps pages, which fault back in from the same file unchanged.
        let status = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        if status == 0 {
            released += len;
        }
    }
    Ok(released)
}

/// The address range of a `/proc/self/maps` line that is a read-only executable private mapping of
/// a file (`r-xp` with an absolute path), or `None`.
fn code_mapping(line: &str) -> Option<(usize, usize)> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let perms = fields.next()?;
    let path = fields.nth(3)?;
    if perms != "r-xp" || !path.starts_with('/') {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    (start < end).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_only_code_of_files_is_picked() {
        let line = |perms: &str, path: &str| format!("7f00-7f10 {perms} 00000000 08:01 42 {path}");
        assert_eq!(
            code_mapping(&line("r-xp", "/usr/lib/libc.so.6")),
            Some((0x7f00, 0x7f10))
        );
        for (perms, path) in [
            ("r--p", "/usr/lib/libc.so.6"),
            ("rw-p", "/usr/lib/libc.so.6"),
            ("rwxp", "/usr/lib/libc.so.6"),
            ("r-xs", "/dev/shm/x"),
            ("r-xp", "[vdso]"),
        ] {
            assert_eq!(code_mapping(&line(perms, path)), None, "{perms} {path}");
        }
        assert_eq!(code_mapping("7f00-7f10 r-xp 00000000 08:01 0"), None);
        assert_eq!(code_mapping("garbage"), None);
    }

    #[test]
    fn releasing_code_leaves_the_process_running() {
        let released = release_startup_code().unwrap();
        assert!(released > 0);
        // Code still runs (it faults back in) and data is intact.
        let v: Vec<u64> = (0..1000).collect();
        assert_eq!(v.iter().sum::<u64>(), 499_500);
    }
}
