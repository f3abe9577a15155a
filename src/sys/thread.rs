//! Scheduling of the daemon's own threads: the router's thread must win the CPU the moment a packet
//! wakes it, even while the services' threads verify and store thousands of changes.

use std::time::Duration;

/// The nice value of the daemon's background threads (the services, the CRDT store's writer): when
/// they and the router's thread (nice 0) both want a busy CPU, the background gets about a tenth of
/// it (CFS weights 110 : 1024), so sync still progresses while the node forwards at full load.
pub const BACKGROUND_NICE: i32 = 10;

/// The router thread's time slice. Linux's EEVDF scheduler (6.6 and later) lets a running thread
/// finish its slice (about 3 ms) before a thread that just woke takes the CPU, unless the woken one
/// asked for a shorter slice (6.12 and later): then the running one is cut short at that much. With
/// 100 µs, a packet that wakes the router waits at most about that long for a busy CPU. Older
/// kernels ignore the request.
pub const ROUTER_SLICE: Duration = Duration::from_micros(100);

/// `struct sched_attr` of `sched_setattr(2)` (version 1, 56 bytes).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

/// Sets the calling thread's scheduling: the ordinary policy (`SCHED_OTHER`) at `nice`, with a time
/// slice of `slice` (the kernel's default if `None`; it takes 100 µs to 100 ms).
pub fn set_scheduling(nice: i32, slice: Option<Duration>) -> std::io::Result<()> {
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        nice,
        runtime: slice.map_or(0, |s| s.as_nanos().min(u64::MAX as u128) as u64),
        ..SchedAttr::default()
    };
    // SAFETY: `attr` is a valid sched_attr whose `size` says how much the kernel may read, and it
    // outlives the call; pid 0 is the calling thread, flags 0 asks for nothing else.
    let result = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Makes the calling thread a background one ([`BACKGROUND_NICE`], the default slice).
pub fn run_in_background() -> std::io::Result<()> {
    set_scheduling(BACKGROUND_NICE, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_nice() -> i32 {
        // SAFETY: gettid and getpriority read no memory of ours.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[test]
    fn sched_attr_has_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<SchedAttr>(), 56);
    }

    #[test]
    fn a_background_thread_lowers_only_its_own_priority() {
        let (background, short_slice) = std::thread::spawn(|| {
            run_in_background().unwrap();
            let background = own_nice();
            // A short slice at the thread's current nice needs no privilege (going back to
            // nice 0 would).
            let short = set_scheduling(BACKGROUND_NICE, Some(ROUTER_SLICE));
            (background, short.map(|()| own_nice()))
        })
        .join()
        .unwrap();
        assert_eq!(background, BACKGROUND_NICE);
        assert_eq!(short_slice.unwrap(), BACKGROUND_NICE);
        assert!(
            own_nice() < BACKGROUND_NICE,
            "the test's own thread is untouched"
        );
    }
}
