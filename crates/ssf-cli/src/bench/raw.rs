//! `ssf bench --raw`: the ceiling the client is measured against. One pre-encoded span
//! is written in a plain loop on blocking sockets, with no client, queue or task in
//! between: on streams in 64 KiB writes of repeated frames, on UDP one datagram per span
//! (in `sendmmsg` batches on Linux).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ssf_codec::addr::Address;

/// The size of one write on a stream: as many whole frames as fit (at least one).
const WRITE_SIZE: usize = 64 * 1024;

/// Datagrams handed to the kernel per `sendmmsg` call.
const UDP_BATCH: usize = 64;

/// What the writers did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Outcome {
    /// Spans written (frames, or datagrams the kernel took).
    pub(crate) sent: u64,
    /// Datagrams refused with "connection refused" (an ICMP error for an earlier one).
    pub(crate) refused: u64,
}

/// When the writers stop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Until {
    /// After this many spans in all.
    pub(crate) spans: Option<u64>,
    /// At this time.
    pub(crate) deadline: Option<Instant>,
}

/// Hands out spans to the writers in chunks, until the limit or the deadline.
#[derive(Debug)]
struct Claims {
    next: AtomicU64,
    until: Until,
}

impl Claims {
    /// Claims up to `n` spans; 0 when there are none left.
    fn claim(&self, n: u64) -> u64 {
        if self.until.deadline.is_some_and(|d| Instant::now() >= d) {
            return 0;
        }
        let Some(limit) = self.until.spans else {
            return n;
        };
        let first = self.next.fetch_add(n, Ordering::Relaxed);
        limit.saturating_sub(first).min(n)
    }
}

/// Where the writers connect.
#[derive(Debug, Clone)]
enum Target {
    Udp(Vec<SocketAddr>),
    Tcp(Vec<SocketAddr>),
    #[cfg(unix)]
    Unix(std::os::unix::net::SocketAddr),
}

async fn target(addr: &Address) -> io::Result<Target> {
    if addr.is_udp() {
        return Ok(Target::Udp(addr.resolve().await?));
    }
    if addr.is_tcp() {
        return Ok(Target::Tcp(addr.resolve().await?));
    }
    #[cfg(unix)]
    {
        if let Some(path) = addr.unix_path() {
            return Ok(Target::Unix(std::os::unix::net::SocketAddr::from_pathname(
                path,
            )?));
        }
        #[cfg(target_os = "linux")]
        if let Some(name) = addr.abstract_name() {
            use std::os::linux::net::SocketAddrExt;
            return Ok(Target::Unix(
                std::os::unix::net::SocketAddr::from_abstract_name(name)?,
            ));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{addr} is not a transport --raw can write to"),
    ))
}

/// Writes `span` (encoded for the transport: a frame for streams, a bare body for UDP)
/// from `writers` threads, each with its own socket.
///
/// # Errors
///
/// The first connect or write error of any writer.
pub(crate) async fn run(
    addr: &Address,
    frame: Vec<u8>,
    writers: usize,
    until: Until,
) -> io::Result<Outcome> {
    let target = target(addr).await?;
    let frame: Arc<[u8]> = frame.into();
    let claims = Arc::new(Claims {
        next: AtomicU64::new(0),
        until,
    });
    let mut handles = Vec::with_capacity(writers);
    for _ in 0..writers {
        let (target, frame, claims) = (target.clone(), Arc::clone(&frame), Arc::clone(&claims));
        handles.push(tokio::task::spawn_blocking(move || {
            write(&target, &frame, &claims)
        }));
    }
    let mut total = Outcome::default();
    let mut first_error = None;
    for h in handles {
        match h.await {
            Ok(Ok(o)) => {
                total.sent += o.sent;
                total.refused += o.refused;
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(io::Error::other(e));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

fn write(target: &Target, frame: &[u8], claims: &Claims) -> io::Result<Outcome> {
    match target {
        Target::Udp(addrs) => {
            let socket = connect_udp(addrs)?;
            send_datagrams(&socket, frame, claims)
        }
        Target::Tcp(addrs) => {
            let stream = std::net::TcpStream::connect(&addrs[..])?;
            stream.set_nodelay(true)?;
            write_frames(stream, frame, claims)
        }
        #[cfg(unix)]
        Target::Unix(a) => {
            let stream = std::os::unix::net::UnixStream::connect_addr(a)?;
            write_frames(stream, frame, claims)
        }
    }
}

fn connect_udp(addrs: &[SocketAddr]) -> io::Result<std::net::UdpSocket> {
    let mut last = None;
    for a in addrs {
        let local = if a.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let attempt = std::net::UdpSocket::bind(local).and_then(|s| s.connect(a).map(|()| s));
        match attempt {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable)))
}

/// Writes the frame repeated, `WRITE_SIZE` bytes at a time, then the remainder.
fn write_frames(mut stream: impl Write, frame: &[u8], claims: &Claims) -> io::Result<Outcome> {
    let per_write = (WRITE_SIZE / frame.len().max(1)).max(1);
    let chunk = frame.repeat(per_write);
    let mut sent = 0;
    loop {
        let n = claims.claim(per_write as u64);
        if n == 0 {
            break;
        }
        // `n` is at most `per_write`, so the slice is within `chunk`.
        let len = n as usize * frame.len();
        stream.write_all(&chunk[..len])?;
        sent += n;
    }
    stream.flush()?;
    Ok(Outcome { sent, refused: 0 })
}

/// Sends one datagram per span, in batches.
fn send_datagrams(
    socket: &std::net::UdpSocket,
    datagram: &[u8],
    claims: &Claims,
) -> io::Result<Outcome> {
    let mut out = Outcome::default();
    loop {
        let n = claims.claim(UDP_BATCH as u64);
        if n == 0 {
            return Ok(out);
        }
        let mut left = n as usize;
        while left > 0 {
            match send_batch(socket, datagram, left) {
                Ok(k) => {
                    out.sent += k as u64;
                    left -= k;
                }
                // An ICMP error for an earlier datagram (nobody listening): this one was
                // not sent.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    out.refused += 1;
                    left -= 1;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Sends up to `n` (at most [`UDP_BATCH`]) copies of `datagram` with one `sendmmsg` call
/// (the client's wrapper); returns how many the kernel took (at least 1).
#[cfg(target_os = "linux")]
fn send_batch(socket: &std::net::UdpSocket, datagram: &[u8], n: usize) -> io::Result<usize> {
    use std::os::fd::AsFd;
    let n = n.clamp(1, UDP_BATCH);
    trace_client::__sys::send_batch(socket.as_fd(), n, false, |_| datagram)
}

/// Sends one copy of `datagram` (no `sendmmsg` on this platform).
#[cfg(not(target_os = "linux"))]
fn send_batch(socket: &std::net::UdpSocket, datagram: &[u8], _n: usize) -> io::Result<usize> {
    socket.send(datagram).map(|_| 1)
}

/// Datagrams read per `recvmmsg` call by the counting sink.
pub(crate) const RECV_BATCH: usize = 64;

/// Room for each datagram read by [`recv_batch`]: a longer one is cut (it still counts).
pub(crate) const RECV_SLOT: usize = 2048;

/// Reads up to [`RECV_BATCH`] datagrams waiting on `socket` without blocking, into
/// `bufs` (one slot of [`RECV_SLOT`] bytes each), with one `recvmmsg` call (the
/// client's wrapper); returns how many were not empty, and how many were read in all
/// (`WouldBlock` when none was waiting).
#[cfg(target_os = "linux")]
pub(crate) fn recv_batch(
    socket: &impl std::os::fd::AsFd,
    bufs: &mut [u8],
) -> io::Result<(usize, usize)> {
    let mut lens = [0usize; RECV_BATCH];
    let got = trace_client::__sys::recv_batch(socket.as_fd(), bufs, RECV_SLOT, &mut lens)?;
    let non_empty = lens[..got].iter().filter(|&&len| len > 0).count();
    Ok((non_empty, got))
}

/// Reads one datagram (no `recvmmsg` on this platform).
#[cfg(not(target_os = "linux"))]
pub(crate) fn recv_batch(
    socket: &std::net::UdpSocket,
    bufs: &mut [u8],
) -> io::Result<(usize, usize)> {
    let n = socket.recv(bufs)?;
    Ok((usize::from(n > 0), 1))
}

/// Asks for a receive buffer of `bytes` on a socket (the kernel caps it).
///
/// # Errors
///
/// The error of `setsockopt`.
#[cfg(unix)]
#[allow(unsafe_code)]
pub(crate) fn set_recv_buffer(socket: &impl std::os::fd::AsRawFd, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: the option value is a `c_int` that lives across the call, and its size is
    // passed with it; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Not available on this platform.
#[cfg(not(unix))]
pub(crate) fn set_recv_buffer<T>(_socket: &T, _bytes: usize) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_stop_at_the_limit() {
        let c = Claims {
            next: AtomicU64::new(0),
            until: Until {
                spans: Some(10),
                deadline: None,
            },
        };
        assert_eq!(c.claim(4), 4);
        assert_eq!(c.claim(4), 4);
        assert_eq!(c.claim(4), 2);
        assert_eq!(c.claim(4), 0);
    }

    #[test]
    fn claims_stop_at_the_deadline() {
        let c = Claims {
            next: AtomicU64::new(0),
            until: Until {
                spans: None,
                deadline: Some(Instant::now()),
            },
        };
        assert_eq!(c.claim(4), 0);
    }

    #[test]
    fn frames_are_written_whole_and_counted() {
        let frame = [0u8, 0, 0, 0, 2, 7, 7];
        let c = Claims {
            next: AtomicU64::new(0),
            until: Until {
                spans: Some(20_000),
                deadline: None,
            },
        };
        let mut out = Vec::new();
        let o = write_frames(&mut out, &frame, &c).expect("writes to a vec");
        assert_eq!(o.sent, 20_000);
        assert_eq!(out.len(), 20_000 * frame.len());
        assert!(out.chunks(frame.len()).all(|f| f == frame));
    }

    #[test]
    fn datagrams_reach_a_socket() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let tx = connect_udp(&[rx.local_addr().expect("addr")]).expect("connect");
        let c = Claims {
            next: AtomicU64::new(0),
            until: Until {
                spans: Some(100),
                deadline: None,
            },
        };
        let o = send_datagrams(&tx, b"span", &c).expect("send");
        assert_eq!(o.sent, 100);
        let mut buf = [0u8; 16];
        let n = rx.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"span");
    }
}
