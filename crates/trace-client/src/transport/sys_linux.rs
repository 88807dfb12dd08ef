//! Datagrams in groups, one system call a group: `sendmmsg` and `recvmmsg` on Linux;
//! elsewhere the UDP transport sends one datagram per `send`. The one wrapper of these
//! calls in the project: the client's UDP transport, the benchmarks and `ssf bench`
//! (through `trace_client::__sys`) use it.

use std::io;

use tokio::net::UdpSocket;

/// Datagrams sent or read with one call, at most.
pub const DATAGRAMS_PER_CALL: usize = 64;

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
    use std::os::fd::AsFd;
    let count = ends.len().min(DATAGRAMS_PER_CALL);
    if count == 0 {
        return Ok(0);
    }
    let fd = socket.as_fd();
    socket.try_io(tokio::io::Interest::WRITABLE, || {
        send_batch(fd, count, true, |k| {
            let from = if k == 0 { start } else { ends[k - 1] };
            &buf[from..ends[k]]
        })
    })
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

/// Sends `count` (at most [`DATAGRAMS_PER_CALL`]) datagrams, the `k`-th being
/// `datagram(k)`, on the connected socket `fd` with one `sendmmsg` call, without waiting
/// when `nonblocking`. Returns how many the kernel took (at least 1), or the error
/// (`WouldBlock` when the socket is full).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn send_batch<'a>(
    fd: std::os::fd::BorrowedFd<'_>,
    count: usize,
    nonblocking: bool,
    datagram: impl Fn(usize) -> &'a [u8],
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    const MAX: usize = DATAGRAMS_PER_CALL;
    let count = count.min(MAX);
    if count == 0 {
        return Ok(0);
    }
    let mut iovecs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX];
    for (k, iov) in iovecs.iter_mut().enumerate().take(count) {
        let d = datagram(k);
        *iov = libc::iovec {
            iov_base: d.as_ptr().cast_mut().cast(),
            iov_len: d.len(),
        };
    }
    let mut msgs = headers(&mut iovecs, count);
    let flags = if nonblocking { libc::MSG_DONTWAIT } else { 0 };
    // SAFETY: `msgs[..count]` are initialised headers, each pointing to one `iovec` of
    // `iovecs`, which points to a datagram borrowed for `'a` (the whole call); the kernel
    // only reads the data (and writes `msg_len` into `msgs`, which we own). The socket is
    // connected, so no address is given. `count <= 64`, under the kernel's limit of 1024.
    let n = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            count as libc::c_uint,
            flags,
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

/// Reads up to `lens.len()` (at most [`DATAGRAMS_PER_CALL`]) datagrams waiting on `fd`
/// with one `recvmmsg` call, without waiting: the `k`-th into the `k`-th `slot`-byte
/// piece of `bufs` (a longer datagram is cut to `slot` bytes), its length into
/// `lens[k]`. Returns how many were read (`WouldBlock` when none was waiting).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn recv_batch(
    fd: std::os::fd::BorrowedFd<'_>,
    bufs: &mut [u8],
    slot: usize,
    lens: &mut [usize],
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    const MAX: usize = DATAGRAMS_PER_CALL;
    if slot == 0 {
        return Ok(0);
    }
    let n = (bufs.len() / slot).min(lens.len()).min(MAX);
    if n == 0 {
        return Ok(0);
    }
    let mut iovs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX];
    for (iov, piece) in iovs.iter_mut().zip(bufs.chunks_exact_mut(slot)).take(n) {
        iov.iov_base = piece.as_mut_ptr().cast();
        iov.iov_len = piece.len();
    }
    let mut msgs = headers(&mut iovs, n);
    // SAFETY: `msgs[..n]` are initialised headers, each pointing to one `iovec` of
    // `iovs`, which points to a distinct `slot`-byte piece of `bufs` (borrowed mutably
    // for the call); all of them outlive the call. The kernel writes at most `iov_len`
    // bytes into each piece and the lengths into `msgs`. No address is asked for; the
    // call does not block.
    let got = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = got as usize;
    for (len, m) in lens.iter_mut().zip(&msgs[..got]) {
        *len = m.msg_len as usize;
    }
    Ok(got)
}

/// Message headers for the first `count` of `iovecs`, one buffer each (the rest empty).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn headers(
    iovecs: &mut [libc::iovec; DATAGRAMS_PER_CALL],
    count: usize,
) -> [libc::mmsghdr; DATAGRAMS_PER_CALL] {
    // SAFETY: `mmsghdr` is a plain C struct of integers and raw pointers, for which
    // all-zero bytes are a valid value (null pointers, zero lengths and flags).
    let mut msgs: [libc::mmsghdr; DATAGRAMS_PER_CALL] = unsafe { std::mem::zeroed() };
    for (msg, iov) in msgs.iter_mut().zip(iovecs.iter_mut()).take(count) {
        msg.msg_hdr.msg_iov = iov;
        msg.msg_hdr.msg_iovlen = 1;
    }
    msgs
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_batch_sent_is_the_batch_read() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let datagrams: Vec<Vec<u8>> = (0..70u8).map(|i| vec![i; usize::from(i) + 1]).collect();
        let mut sent = 0;
        while sent < datagrams.len() {
            let n = send_batch(tx.as_fd(), datagrams.len() - sent, false, |k| {
                &datagrams[sent + k]
            })
            .unwrap();
            assert!(n <= DATAGRAMS_PER_CALL);
            sent += n;
        }
        let mut bufs = vec![0u8; 64 * 128];
        let mut lens = [0usize; 64];
        let mut seen = Vec::new();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        while seen.len() < datagrams.len() {
            match recv_batch(rx.as_fd(), &mut bufs, 128, &mut lens) {
                Ok(got) => {
                    for k in 0..got {
                        seen.push(bufs[k * 128..k * 128 + lens[k]].to_vec());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(seen, datagrams);
        assert_eq!(
            recv_batch(rx.as_fd(), &mut bufs, 128, &mut lens)
                .unwrap_err()
                .kind(),
            io::ErrorKind::WouldBlock
        );
    }
}
