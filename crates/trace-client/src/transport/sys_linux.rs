//! Sending a group of datagrams with one system call (`sendmmsg` on Linux; elsewhere
//! one `send` each).

use std::io;

use tokio::net::UdpSocket;

/// Datagrams sent with one call, at most.
pub(crate) const DATAGRAMS_PER_CALL: usize = 64;

/// Sends the datagrams `buf[start..ends[0]]`, `buf[ends[0]..ends[1]]`, ... on a
/// connected socket without waiting; returns how many were sent (at least 1), or the
/// first one's error (`WouldBlock` when the socket is full).
#[cfg(target_os = "linux")]
pub(crate) fn send_datagrams(
    socket: &UdpSocket,
    buf: &[u8],
    start: usize,
    ends: &[usize],
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    const MAX: usize = DATAGRAMS_PER_CALL;
    let count = ends.len().min(MAX);
    if count == 0 {
        return Ok(0);
    }
    let fd = socket.as_raw_fd();
    socket.try_io(tokio::io::Interest::WRITABLE, || {
        sendmmsg(fd, buf, start, &ends[..count])
    })
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn sendmmsg(fd: std::os::fd::RawFd, buf: &[u8], start: usize, ends: &[usize]) -> io::Result<usize> {
    const MAX: usize = DATAGRAMS_PER_CALL;
    let mut iovecs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX];
    // SAFETY: `mmsghdr` is a plain C struct of integers and raw pointers, for which
    // all-zero bytes are a valid value (null pointers, zero lengths and flags).
    let mut msgs: [libc::mmsghdr; MAX] = unsafe { std::mem::zeroed() };
    let mut from = start;
    let count = ends.len().min(MAX);
    for (k, &end) in ends.iter().take(count).enumerate() {
        let datagram = &buf[from..end];
        iovecs[k] = libc::iovec {
            iov_base: datagram.as_ptr() as *mut libc::c_void,
            iov_len: datagram.len(),
        };
        from = end;
    }
    for (msg, iov) in msgs.iter_mut().zip(iovecs.iter_mut()).take(count) {
        msg.msg_hdr.msg_iov = iov;
        msg.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: `msgs[..count]` are initialised headers, each pointing to one `iovec`
    // of `iovecs`, which points into `buf`; all of them outlive the call, which only
    // reads the data (and writes `msg_len` into `msgs`). The socket is connected, so
    // no address is given. `count <= 64`, well under the kernel's limit of 1024.
    let n = unsafe {
        libc::sendmmsg(
            fd,
            msgs.as_mut_ptr(),
            count as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else if n == 0 {
        Err(io::ErrorKind::WouldBlock.into())
    } else {
        Ok(n as usize)
    }
}

/// Elsewhere: one `send` per datagram, for as long as the socket takes them.
#[cfg(not(target_os = "linux"))]
pub(crate) fn send_datagrams(
    socket: &UdpSocket,
    buf: &[u8],
    start: usize,
    ends: &[usize],
) -> io::Result<usize> {
    let mut from = start;
    for (k, &end) in ends.iter().enumerate() {
        match socket.try_send(&buf[from..end]) {
            Ok(_) => from = end,
            Err(e) if k == 0 => return Err(e),
            Err(_) => return Ok(k),
        }
    }
    Ok(ends.len())
}
