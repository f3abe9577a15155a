//! Signal dispositions for the command-line tools.

/// Lets SIGPIPE end the process quietly, as it does for other Unix tools: Rust ignores it, so
/// `meshrouter info | head -1` would otherwise fail its next write with EPIPE and panic. Only for
/// the short-lived commands: the daemon keeps ignoring SIGPIPE, so a client that hangs up on the
/// API socket cannot kill it.
pub fn die_quietly_on_broken_pipe() {
    // SAFETY: restoring the default disposition of SIGPIPE installs no handler of ours, so no
    // async-signal-safety question arises; it runs at start-up, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
