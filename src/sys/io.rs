//! Gathered writes to a descriptor no crate lets us borrow as `AsFd` (the TUN device).

use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;

/// Writes `parts` as one write (`writev(2)`): for a TUN device, one packet from several buffers.
pub fn write_vectored(fd: &impl AsRawFd, parts: &[IoSlice<'_>]) -> io::Result<usize> {
    let count = libc::c_int::try_from(parts.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `IoSlice` is guaranteed ABI-compatible with `struct iovec` on Unix, and each points into
    // a live borrowed buffer for the whole call; writev(2) only reads them. The descriptor is borrowed
    // from a live device.
    let written = unsafe { libc::writev(fd.as_raw_fd(), parts.as_ptr().cast(), count) };
    usize::try_from(written).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn parts_arrive_as_one() {
        let (mut reader, writer) = std::os::unix::net::UnixStream::pair().unwrap();
        let parts = [IoSlice::new(b"head "), IoSlice::new(b"and body")];
        assert_eq!(write_vectored(&writer, &parts).unwrap(), 13);
        drop(writer);
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "head and body");
    }
}
