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
