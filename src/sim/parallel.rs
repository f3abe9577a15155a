//! The simulator's threads: the one place in the sans-IO folders that may start any.
//!
//! Within a window (see [`super::Sim::run_until`]) every node's events depend only on that node, so
//! parts of the window's nodes are handled on threads of their own; what they produce is applied
//! afterwards in node order, so the number of threads never changes a run (`tests/sim_basic.rs`
//! compares one thread with several).

/// Threads to use unless told otherwise: the machine's cores, at most 8.
pub(super) fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
}

/// Runs `f` on each part, each on a thread of its own, and returns when all are done.
pub(super) fn for_each_part<T: Send>(parts: Vec<&mut [T]>, f: impl Fn(&mut [T]) + Sync) {
    let f = &f;
    std::thread::scope(|s| {
        for part in parts {
            s.spawn(move || f(part));
        }
    });
}
