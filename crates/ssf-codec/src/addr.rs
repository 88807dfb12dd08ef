//! veneur-style address URLs: `udp://host:port`, `tcp://host:port`, `grpc://host:port`,
//! `unix:///path`, `unix:@abstract`, and a bare `host:port` meaning UDP.
//!
//! | form | meaning |
//! |---|---|
//! | `udp://127.0.0.1:8128`, `udp4://…`, `udp6://…` | UDP datagrams; the digit restricts name resolution to IPv4 or IPv6 |
//! | `tcp://…`, `tcp4://…`, `tcp6://…` | a TCP stream with SSF framing |
//! | `grpc://host:port` | veneur's `ssf.SSFGRPC` gRPC service over HTTP/2 (no TLS) |
//! | `unix:///tmp/veneur.sock` | a unix stream socket with SSF framing; `unix:relative.sock` is a relative path |
//! | `unix:@name` | a socket in Linux's abstract namespace |
//! | `unixgram://…`, `unixpacket://…` | parsed for completeness; veneur does not listen for SSF on them |
//! | `127.0.0.1:8128`, `localhost:8128`, `[::1]:8128` | bare `host:port`: UDP, as `veneur-emit` reads it |
//!
//! An empty host (`udp://:8128`) means the local system. Path, query and fragment are
//! ignored for IP schemes. The default address is [`DEFAULT_ADDRESS`].
//!
//! ```
//! use ssf_codec::addr::{Address, Scheme};
//!
//! let a: Address = "udp://127.0.0.1:8200".parse()?;
//! assert_eq!((a.scheme(), a.network()), (Scheme::Udp, "udp"));
//! assert_eq!(a.host_port(), Some(("127.0.0.1", 8200)));
//!
//! let u: Address = "unix:@abstract.sock".parse()?;
//! assert_eq!(u.to_string(), "unix:@abstract.sock");
//!
//! assert_eq!("127.0.0.1:8128".parse::<Address>()?, Address::default());
//! # Ok::<(), ssf_codec::addr::AddrError>(())
//! ```

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// veneur's default SSF address: UDP to port 8128 on the IPv4 loopback.
pub const DEFAULT_ADDRESS: &str = "udp://127.0.0.1:8128";

/// The scheme of an [`Address`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `udp`: UDP over IPv4 or IPv6.
    Udp,
    /// `udp4`: UDP, names resolved to IPv4 only.
    Udp4,
    /// `udp6`: UDP, names resolved to IPv6 only.
    Udp6,
    /// `tcp`: a framed TCP stream.
    Tcp,
    /// `tcp4`: TCP, IPv4 only.
    Tcp4,
    /// `tcp6`: TCP, IPv6 only.
    Tcp6,
    /// `unix`: a framed unix stream socket.
    Unix,
    /// `unixgram`: a unix datagram socket.
    Unixgram,
    /// `unixpacket`: a unix sequenced-packet socket.
    Unixpacket,
    /// `grpc`: veneur's `ssf.SSFGRPC` service over HTTP/2 (plain TCP, no TLS), one unary
    /// call per span. The transport for a veneur on another host.
    Grpc,
}

impl Scheme {
    /// The scheme as written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Udp => "udp",
            Scheme::Udp4 => "udp4",
            Scheme::Udp6 => "udp6",
            Scheme::Tcp => "tcp",
            Scheme::Tcp4 => "tcp4",
            Scheme::Tcp6 => "tcp6",
            Scheme::Unix => "unix",
            Scheme::Unixgram => "unixgram",
            Scheme::Unixpacket => "unixpacket",
            Scheme::Grpc => "grpc",
        }
    }

    fn from_name(s: &str) -> Option<Scheme> {
        Some(match s.to_ascii_lowercase().as_str() {
            "udp" => Scheme::Udp,
            "udp4" => Scheme::Udp4,
            "udp6" => Scheme::Udp6,
            "tcp" => Scheme::Tcp,
            "tcp4" => Scheme::Tcp4,
            "tcp6" => Scheme::Tcp6,
            "unix" => Scheme::Unix,
            "unixgram" => Scheme::Unixgram,
            "unixpacket" => Scheme::Unixpacket,
            "grpc" => Scheme::Grpc,
            _ => return None,
        })
    }

    fn is_unix(self) -> bool {
        matches!(self, Scheme::Unix | Scheme::Unixgram | Scheme::Unixpacket)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Target {
    HostPort { host: String, port: u16 },
    Path(PathBuf),
    Abstract(String),
}

/// A parsed SSF address. See the [module documentation](self) for the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    scheme: Scheme,
    target: Target,
}

impl Default for Address {
    /// [`DEFAULT_ADDRESS`].
    fn default() -> Self {
        Address {
            scheme: Scheme::Udp,
            target: Target::HostPort {
                host: "127.0.0.1".into(),
                port: 8128,
            },
        }
    }
}

impl Address {
    /// Parses an address URL or a bare `host:port` (UDP).
    ///
    /// # Errors
    ///
    /// An [`AddrError`] saying what is wrong.
    pub fn parse(s: &str) -> Result<Address, AddrError> {
        s.parse()
    }

    /// A UDP address.
    pub fn udp(addr: SocketAddr) -> Address {
        Address::ip(Scheme::Udp, addr)
    }

    /// A framed TCP address.
    pub fn tcp(addr: SocketAddr) -> Address {
        Address::ip(Scheme::Tcp, addr)
    }

    /// The gRPC address of `addr` (`grpc://host:port`).
    ///
    /// ```
    /// use ssf_codec::Address;
    /// let a = Address::grpc("127.0.0.1:8128".parse().unwrap());
    /// assert_eq!(a.to_string(), "grpc://127.0.0.1:8128");
    /// assert!(a.is_grpc());
    /// ```
    pub fn grpc(addr: SocketAddr) -> Address {
        Address::ip(Scheme::Grpc, addr)
    }

    fn ip(scheme: Scheme, addr: SocketAddr) -> Address {
        Address {
            scheme,
            target: Target::HostPort {
                host: addr.ip().to_string(),
                port: addr.port(),
            },
        }
    }

    /// A unix stream socket at `path`.
    pub fn unix(path: impl Into<PathBuf>) -> Address {
        Address {
            scheme: Scheme::Unix,
            target: Target::Path(path.into()),
        }
    }

    /// A unix stream socket in Linux's abstract namespace (no leading `@`).
    pub fn unix_abstract(name: impl Into<String>) -> Address {
        Address {
            scheme: Scheme::Unix,
            target: Target::Abstract(name.into()),
        }
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// veneur's network name: `udp` for the three UDP schemes, `tcp` for the TCP ones,
    /// and the scheme itself for unix sockets and for `grpc`.
    pub fn network(&self) -> &'static str {
        match self.scheme {
            Scheme::Udp | Scheme::Udp4 | Scheme::Udp6 => "udp",
            Scheme::Tcp | Scheme::Tcp4 | Scheme::Tcp6 => "tcp",
            s => s.as_str(),
        }
    }

    /// Whether this is a UDP address.
    pub fn is_udp(&self) -> bool {
        self.network() == "udp"
    }

    /// Whether this is a gRPC address (`grpc://`).
    pub fn is_grpc(&self) -> bool {
        self.scheme == Scheme::Grpc
    }

    /// Whether this is a TCP address.
    pub fn is_tcp(&self) -> bool {
        self.network() == "tcp"
    }

    /// Host and port of an IP address; `None` for unix sockets.
    pub fn host_port(&self) -> Option<(&str, u16)> {
        match &self.target {
            Target::HostPort { host, port } => Some((host, *port)),
            _ => None,
        }
    }

    /// The file system path of a unix socket; `None` otherwise.
    pub fn unix_path(&self) -> Option<&Path> {
        match &self.target {
            Target::Path(p) => Some(p),
            _ => None,
        }
    }

    /// The abstract-namespace name of a unix socket (without the `@`); `None` otherwise.
    pub fn abstract_name(&self) -> Option<&str> {
        match &self.target {
            Target::Abstract(n) => Some(n),
            _ => None,
        }
    }

    /// Resolves an IP address to socket addresses, restricted to the scheme's family.
    /// An empty host resolves to the unspecified address of the family (IPv4 for the
    /// unrestricted schemes), which binds every interface and, when connected to, reaches
    /// the local system.
    ///
    /// # Errors
    ///
    /// An I/O error when the name does not resolve, resolves to no address of the
    /// family, or the address is a unix socket.
    pub async fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        let Target::HostPort { host, port } = &self.target else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{self} is not an ip address"),
            ));
        };
        let want_v4 = matches!(self.scheme, Scheme::Udp4 | Scheme::Tcp4);
        let want_v6 = matches!(self.scheme, Scheme::Udp6 | Scheme::Tcp6);
        let host = if host.is_empty() {
            if want_v6 { "::" } else { "0.0.0.0" }
        } else {
            host.as_str()
        };
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, *port))
            .await?
            .filter(|a| (!want_v4 || a.is_ipv4()) && (!want_v6 || a.is_ipv6()))
            .collect();
        if found.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{self} resolves to no address of its family"),
            ));
        }
        Ok(found)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::HostPort { host, port } if host.contains(':') => {
                write!(f, "{}://[{host}]:{port}", self.scheme)
            }
            Target::HostPort { host, port } => write!(f, "{}://{host}:{port}", self.scheme),
            Target::Path(p) if p.is_absolute() => write!(f, "{}://{}", self.scheme, p.display()),
            Target::Path(p) => write!(f, "{}:{}", self.scheme, p.display()),
            Target::Abstract(n) => write!(f, "{}:@{n}", self.scheme),
        }
    }
}

impl FromStr for Address {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Address, AddrError> {
        let err = |kind| AddrError {
            kind,
            address: s.to_owned(),
        };
        if s.is_empty() {
            return Err(err(ErrorKind::Empty));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(ErrorKind::Whitespace));
        }
        if let Some((scheme_text, rest)) = s.split_once("://") {
            let scheme = Scheme::from_name(scheme_text)
                .ok_or_else(|| err(ErrorKind::UnknownScheme(scheme_text.to_owned())))?;
            if scheme.is_unix() {
                // unix:///abs/path: the authority must be empty, the path is the address.
                let path = rest.strip_prefix('/').map(|p| format!("/{p}"));
                return match path {
                    Some(p) if p.len() > 1 => Ok(Address {
                        scheme,
                        target: Target::Path(PathBuf::from(p)),
                    }),
                    _ => Err(err(ErrorKind::MissingPath)),
                };
            }
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let (host, port) = split_host_port(authority).map_err(err)?;
            return Ok(Address {
                scheme,
                target: Target::HostPort { host, port },
            });
        }
        if let Some((scheme_text, opaque)) = s.split_once(':') {
            if let Some(scheme) = Scheme::from_name(scheme_text).filter(|s| s.is_unix()) {
                let target = if let Some(name) = opaque.strip_prefix('@') {
                    if name.is_empty() {
                        return Err(err(ErrorKind::MissingPath));
                    }
                    Target::Abstract(name.to_owned())
                } else if opaque.is_empty() || opaque == "/" {
                    // The root alone is no socket path, as in the `unix:///` form, which
                    // is how it would print.
                    return Err(err(ErrorKind::MissingPath));
                } else {
                    Target::Path(PathBuf::from(opaque))
                };
                return Ok(Address { scheme, target });
            }
        }
        // A bare host:port is UDP, as veneur-emit reads it.
        match split_host_port(s) {
            Ok((host, port)) => Ok(Address {
                scheme: Scheme::Udp,
                target: Target::HostPort { host, port },
            }),
            Err(kind @ (ErrorKind::InvalidPort | ErrorKind::InvalidHost)) => Err(err(kind)),
            Err(_) => {
                let scheme = s.split(':').next().unwrap_or(s);
                if s.contains(':') && !scheme.is_empty() {
                    Err(err(ErrorKind::UnknownScheme(scheme.to_owned())))
                } else {
                    Err(err(ErrorKind::MissingPort))
                }
            }
        }
    }
}

impl TryFrom<&str> for Address {
    type Error = AddrError;
    fn try_from(s: &str) -> Result<Address, AddrError> {
        s.parse()
    }
}

fn split_host_port(authority: &str) -> Result<(String, u16), ErrorKind> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(ErrorKind::InvalidHost)?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(ErrorKind::InvalidHost);
        }
        let port = after.strip_prefix(':').ok_or(ErrorKind::MissingPort)?;
        (host, port)
    } else {
        let (host, port) = authority.rsplit_once(':').ok_or(ErrorKind::MissingPort)?;
        if host.contains(':') || host.contains('@') || host.contains('[') || host.contains(']') {
            return Err(ErrorKind::InvalidHost);
        }
        (host, port)
    };
    if port.is_empty() {
        return Err(ErrorKind::MissingPort);
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ErrorKind::InvalidPort);
    }
    let port = port.parse::<u16>().map_err(|_| ErrorKind::InvalidPort)?;
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._:%".contains(&b))
    {
        return Err(ErrorKind::InvalidHost);
    }
    Ok((host.to_owned(), port))
}

/// An address that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrError {
    kind: ErrorKind,
    address: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ErrorKind {
    Empty,
    Whitespace,
    UnknownScheme(String),
    MissingPort,
    InvalidPort,
    InvalidHost,
    MissingPath,
}

impl AddrError {
    /// The text that failed to parse.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether the scheme was not one SSF knows (`unknown address family`).
    pub fn is_unknown_scheme(&self) -> bool {
        matches!(self.kind, ErrorKind::UnknownScheme(_))
    }
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.address;
        match &self.kind {
            ErrorKind::Empty => f.write_str("empty address"),
            ErrorKind::Whitespace => {
                write!(f, "address {a:?} contains whitespace or control characters")
            }
            ErrorKind::UnknownScheme(s) => {
                write!(f, "unknown address family {s:?} on address {a:?}")
            }
            ErrorKind::MissingPort => write!(f, "address {a:?} has no port"),
            ErrorKind::InvalidPort => write!(f, "address {a:?} has an invalid port (0 to 65535)"),
            ErrorKind::InvalidHost => write!(f, "address {a:?} has an invalid host"),
            ErrorKind::MissingPath => write!(f, "unix address {a:?} has no socket path"),
        }
    }
}

impl std::error::Error for AddrError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Address {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn spec_address_table() {
        let cases = [
            ("udp://127.0.0.1:8200", "udp", "127.0.0.1:8200"),
            ("tcp://:8200", "tcp", ":8200"),
            ("tcp6://[::1]:8200", "tcp", "[::1]:8200"),
            ("unix:///tmp/foo.sock", "unix", "/tmp/foo.sock"),
            ("unix:@abstract.sock", "unix", "@abstract.sock"),
            ("unixgram:///tmp/foo.sock", "unixgram", "/tmp/foo.sock"),
            ("unixpacket:///tmp/foo.sock", "unixpacket", "/tmp/foo.sock"),
            ("unix:relative.sock", "unix", "relative.sock"),
            ("grpc://127.0.0.1:8128", "grpc", "127.0.0.1:8128"),
            ("grpc://[::1]:8128", "grpc", "[::1]:8128"),
        ];
        for (url, network, addr) in cases {
            let a = ok(url);
            assert_eq!(a.network(), network, "{url}");
            let got = match (a.host_port(), a.unix_path(), a.abstract_name()) {
                (Some((h, p)), _, _) if h.contains(':') => format!("[{h}]:{p}"),
                (Some((h, p)), _, _) => format!("{h}:{p}"),
                (_, Some(p), _) => p.display().to_string(),
                (_, _, Some(n)) => format!("@{n}"),
                _ => unreachable!(),
            };
            assert_eq!(got, addr, "{url}");
            // Display round-trips.
            assert_eq!(ok(&a.to_string()), a, "{url}");
        }
    }

    #[test]
    fn bare_host_port_is_udp() {
        assert_eq!(ok("127.0.0.1:8200").to_string(), "udp://127.0.0.1:8200");
        assert_eq!(ok("localhost:8128").to_string(), "udp://localhost:8128");
        assert_eq!(ok("[::1]:9").to_string(), "udp://[::1]:9");
        assert_eq!(
            ok("tcp://127.0.0.1:8200").to_string(),
            "tcp://127.0.0.1:8200"
        );
        assert_eq!(Address::default().to_string(), DEFAULT_ADDRESS);
        assert_eq!(ok(DEFAULT_ADDRESS), Address::default());
    }

    #[test]
    fn path_query_fragment_ignored_for_ip() {
        assert_eq!(ok("udp://h:1/x?y#z").host_port(), Some(("h", 1)));
    }

    #[test]
    fn errors_are_precise() {
        let e = |s: &str| s.parse::<Address>().unwrap_err().to_string();
        assert_eq!(e(""), "empty address");
        assert_eq!(
            e("foo://x:1"),
            r#"unknown address family "foo" on address "foo://x:1""#
        );
        assert_eq!(
            e("http://x:80"),
            r#"unknown address family "http" on address "http://x:80""#
        );
        assert!(e("udp://127.0.0.1").contains("no port"));
        assert!(e("udp://127.0.0.1:").contains("no port"));
        assert!(e("udp://127.0.0.1:99999").contains("invalid port"));
        assert!(e("udp://127.0.0.1:-1").contains("invalid port"));
        assert!(e("udp://::1:5").contains("invalid host"));
        assert!(e("udp://[nothex]:5").contains("invalid host"));
        assert!(e("udp://u@h:5").contains("invalid host"));
        assert!(e("unix://").contains("no socket path"));
        assert!(e("unix:").contains("no socket path"));
        assert!(e("unix:/").contains("no socket path"));
        assert!(e("unix:///").contains("no socket path"));
        assert!(e("unix:@").contains("no socket path"));
        assert!(e("unix://host.sock").contains("no socket path"));
        assert!(e("udp://h :5").contains("whitespace"));
        assert!(e("just-a-name").contains("no port"));
        assert!(
            "foo://x"
                .parse::<Address>()
                .unwrap_err()
                .is_unknown_scheme()
        );
    }

    #[tokio::test]
    async fn resolves_with_family_restriction() {
        let v4 = ok("udp4://localhost:1").resolve().await.unwrap();
        assert!(v4.iter().all(SocketAddr::is_ipv4));
        let any = ok("udp://127.0.0.1:5").resolve().await.unwrap();
        assert_eq!(any, vec!["127.0.0.1:5".parse().unwrap()]);
        assert!(ok("udp6://127.0.0.1:5").resolve().await.is_err());
        assert!(ok("unix:///x").resolve().await.is_err());
        assert_eq!(
            ok("udp://:7").resolve().await.unwrap(),
            vec!["0.0.0.0:7".parse().unwrap()]
        );
    }
}
