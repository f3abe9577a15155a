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

/// Returns the heap's free pages to the kernel: what start-up allocated and freed (parsed
/// configuration, key material, handshake scratch) stays resident otherwise, since
/// [`keep_freed_memory`] stops glibc from trimming on its own. Called while idle, not on a busy path.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only gives free pages of the allocator's own arenas back to the kernel;
        // it takes the arena locks itself, so it is safe with other threads allocating.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// Drops this process's page-table entries for the code and read-only data it has used so far (its
/// own and its shared libraries'), so that its resident set is what it keeps running rather than
/// everything start-up touched: parsing options and configuration, setting up devices, and the
/// 64 KiB the kernel maps around every page it faults in. Those pages (about 3 MiB of the binary's
/// text and 1.5 MiB of libc and friends) stay in the page cache, and a page used again is mapped back
/// on first use without reading the disk. Returns the bytes of mappings released.
///
/// Only read-only private mappings of files without a single anonymous page are touched: each page
/// of such a mapping is the file's own (none was ever copied on write, as relocation does to
/// read-only data after start-up), so dropping it cannot lose anything. Writable mappings are left
/// alone.
pub fn release_startup_code() -> std::io::Result<usize> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut released = 0;
    for (start, end) in clean_file_mappings(&smaps) {
        let len = end - start;
        // SAFETY: `start..end` is a whole mapping listed by the kernel for this process: private,
        // read-only, backed by a file, with no anonymous (copied-on-write) page. MADV_DONTNEED on it
        // only unmaps page-cache pages, which fault back in from the same file unchanged.
        let status = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        if status == 0 {
            released += len;
        }
    }
    Ok(released)
}

/// The address ranges of the mappings in `/proc/self/smaps` text that are read-only private
/// mappings of a file (`r-xp` or `r--p` with an absolute path) with `Anonymous: 0 kB`.
fn clean_file_mappings(smaps: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if first.ends_with(':') {
            if first == "Anonymous:"
                && let Some(range) = current.take()
                && fields.next() == Some("0")
            {
                found.push(range);
            }
            continue;
        }
        current = mapping_header(line);
    }
    found
}

/// The address range of a mapping header line of `/proc/self/{maps,smaps}` if it is a read-only
/// private mapping of a file, or `None`.
fn mapping_header(line: &str) -> Option<(usize, usize)> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let perms = fields.next()?;
    let path = fields.nth(3)?;
    if !matches!(perms, "r-xp" | "r--p") || !path.starts_with('/') {
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
    fn only_clean_read_only_mappings_of_files_are_picked() {
        let mapping = |perms: &str, path: &str, anonymous: u32| {
            format!(
                "7f00-7f10 {perms} 00000000 08:01 42 {path}\nRss:  4 kB\nAnonymous:  {anonymous} kB\nVmFlags: rd\n"
            )
        };
        assert_eq!(
            clean_file_mappings(&mapping("r-xp", "/usr/lib/libc.so.6", 0)),
            vec![(0x7f00, 0x7f10)]
        );
        assert_eq!(
            clean_file_mappings(&mapping("r--p", "/usr/bin/meshrouter", 0)),
            vec![(0x7f00, 0x7f10)]
        );
        for (perms, path, anonymous) in [
            ("r--p", "/usr/lib/libc.so.6", 4), // relocated read-only data
            ("rw-p", "/usr/lib/libc.so.6", 0),
            ("rwxp", "/usr/lib/libc.so.6", 0),
            ("r-xs", "/dev/shm/x", 0),
            ("r-xp", "[vdso]", 0),
            ("r--p", "", 0),
        ] {
            let text = mapping(perms, path, anonymous);
            assert!(clean_file_mappings(&text).is_empty(), "{text}");
        }
        let two = mapping("r-xp", "/a", 0) + &mapping("r--p", "/a", 8) + &mapping("r--p", "/b", 0);
        assert_eq!(clean_file_mappings(&two).len(), 2);
        assert!(
            clean_file_mappings("garbage\n7f00-7f10 r-xp 0 08:01 0\nAnonymous: 0 kB").is_empty()
        );
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
