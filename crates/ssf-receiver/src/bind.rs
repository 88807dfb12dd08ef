//! Binding listen addresses: UDP sockets, TCP and unix stream listeners.

use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::path::{Path, PathBuf};
#[cfg(unix)]
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(unix)]
use std::time::Duration;

use ssf_codec::Address;
use ssf_codec::addr::Scheme;
#[cfg(unix)]
use tokio::net::UnixListener;
use tokio::net::{TcpListener, UdpSocket};

/// A bound socket, ready for its task.
#[derive(Debug)]
pub(crate) enum Bound {
    Udp(UdpSocket),
    Tcp(TcpListener),
    #[cfg(feature = "grpc")]
    Grpc(TcpListener),
    #[cfg(unix)]
    Unix(UnixListener, Option<std::sync::Arc<SocketFile>>),
}

/// How long a probe of an existing socket file may take before the file is taken to be
/// served by a live (if busy) listener.
#[cfg(unix)]
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Binds one listen address, reporting the address actually bound (with the real port).
/// `recv_buffer` is the `SO_RCVBUF` to ask for UDP sockets (0: the system default).
pub(crate) async fn bind(
    addr: &Address,
    unix_mode: u32,
    recv_buffer: usize,
) -> io::Result<(Bound, Address)> {
    let context = |e: io::Error| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"));
    match addr.scheme() {
        Scheme::Udp | Scheme::Udp4 | Scheme::Udp6 => {
            let candidates = addr.resolve().await.map_err(context)?;
            let sock = first_ok(&candidates, |a| async move { bind_udp(a, recv_buffer) })
                .await
                .map_err(context)?;
            let local = sock.local_addr().map_err(context)?;
            Ok((Bound::Udp(sock), Address::udp(local)))
        }
        Scheme::Tcp | Scheme::Tcp4 | Scheme::Tcp6 => {
            let candidates = addr.resolve().await.map_err(context)?;
            let listener = first_ok(&candidates, |a| async move { TcpListener::bind(a).await })
                .await
                .map_err(context)?;
            let local = listener.local_addr().map_err(context)?;
            Ok((Bound::Tcp(listener), Address::tcp(local)))
        }
        #[cfg(feature = "grpc")]
        Scheme::Grpc => {
            let candidates = addr.resolve().await.map_err(context)?;
            let listener = first_ok(&candidates, |a| async move { TcpListener::bind(a).await })
                .await
                .map_err(context)?;
            let local = listener.local_addr().map_err(context)?;
            Ok((Bound::Grpc(listener), Address::grpc(local)))
        }
        Scheme::Unix => bind_unix(addr, unix_mode).await.map_err(context),
        Scheme::Unixgram | Scheme::Unixpacket => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "cannot listen on {addr}: ssf is received on udp, unix stream and tcp sockets, \
                 not on {} sockets",
                addr.scheme()
            ),
        )),
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("cannot listen on {addr}: unsupported scheme"),
        )),
    }
}

/// Binds a UDP socket as [`UdpSocket::bind`] does, asking for a receive buffer of
/// `recv_buffer` bytes first (before binding, so that no datagram arrives under the
/// default). A refused size is ignored: the kernel's default still works.
fn bind_udp(addr: SocketAddr, recv_buffer: usize) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};

    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if recv_buffer > 0 {
        let _ = sock.set_recv_buffer_size(recv_buffer);
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

/// Tries each candidate in turn; returns the first success or the last error.
async fn first_ok<T, F, Fut>(candidates: &[SocketAddr], mut f: F) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to bind");
    for &a in candidates {
        match f(a).await {
            Ok(t) => return Ok(t),
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(unix)]
async fn bind_unix(addr: &Address, unix_mode: u32) -> io::Result<(Bound, Address)> {
    if let Some(name) = addr.abstract_name() {
        let listener = bind_abstract(name)?;
        return Ok((Bound::Unix(listener, None), Address::unix_abstract(name)));
    }
    let Some(path) = addr.unix_path() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "unix address without a path",
        ));
    };
    let (listener, file) = bind_unix_path(path, unix_mode).await?;
    Ok((
        Bound::Unix(listener, Some(file)),
        Address::unix(path.to_path_buf()),
    ))
}

#[cfg(not(unix))]
async fn bind_unix(_addr: &Address, _unix_mode: u32) -> io::Result<(Bound, Address)> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "unix sockets are not available on this platform",
    ))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn bind_abstract(name: &str) -> io::Result<UnixListener> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;

    let sa = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    let listener = std::os::unix::net::UnixListener::bind_addr(&sa)?;
    listener.set_nonblocking(true)?;
    UnixListener::from_std(listener)
}

#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
fn bind_abstract(_name: &str) -> io::Result<UnixListener> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract unix sockets exist on linux only",
    ))
}

/// Binds a unix stream socket at `path`: a stale socket file (nothing accepts on it) is
/// replaced, a live one is left alone (`AddrInUse`), and so is any other kind of file.
#[cfg(unix)]
async fn bind_unix_path(
    path: &Path,
    mode: u32,
) -> io::Result<(UnixListener, std::sync::Arc<SocketFile>)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    match tokio::fs::symlink_metadata(path).await {
        Ok(meta) if meta.file_type().is_socket() => {
            match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::UnixStream::connect(path)).await {
                Ok(Ok(_live)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        "another listener is accepting on this socket",
                    ));
                }
                Err(_elapsed) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        "another listener holds this socket (it did not accept in time)",
                    ));
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    // Stale: nothing listens. Replace it.
                    match tokio::fs::remove_file(path).await {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => {}
                Ok(Err(e)) => return Err(e),
            }
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "the path exists and is not a socket",
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    let meta = tokio::fs::symlink_metadata(path).await?;
    let file = std::sync::Arc::new(SocketFile {
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
        removed: AtomicBool::new(false),
    });
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).await?;
    Ok((listener, file))
}

/// A socket file this receiver created; removed once, and only while it is still the
/// same file (a later listener's socket at the same path is left alone).
#[cfg(unix)]
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    removed: AtomicBool,
}

#[cfg(unix)]
impl SocketFile {
    pub(crate) fn remove(&self) {
        use std::os::unix::fs::MetadataExt;

        if self.removed.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if meta.dev() == self.dev && meta.ino() == self.ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

#[cfg(unix)]
impl Drop for SocketFile {
    fn drop(&mut self) {
        self.remove();
    }
}
