//! The builder's options, their defaults, and their validation into a plain
//! [`Config`] that the spawning step ([`super::spawn`]) follows.

use std::time::Duration;

use ssf_codec::addr::{Address, Scheme};

use crate::client::Encoding;
use crate::encode::Framing;
use crate::error::BuildError;
use crate::transport::NetConfig;

/// Default queue capacity of a network client, in spans: 1024, as veneur's server uses
/// for its own client (veneur's library default is 64, which refuses most of a burst).
pub const DEFAULT_CAPACITY: usize = 1024;
/// Default queue capacity of a client with a user backend: 1, as in veneur.
pub const DEFAULT_BACKEND_CAPACITY: usize = 1;
/// Default number of backends (each with its own connection): 8, as in veneur.
pub const DEFAULT_PARALLEL_BACKENDS: usize = 8;
/// Default write-buffer size of buffered stream backends: 64 KiB (veneur: 16 MiB + 5 bytes
/// per connection).
pub const DEFAULT_BUFFER_SIZE: usize = 64 * 1024;
/// Default first reconnect delay: 20 ms, as in veneur.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(20);
/// Default cap on the reconnect delay: 1 s, as in veneur (where the cap does not work).
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Default time budget of one connect sequence: 10 s, as in veneur.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default write timeout: 5 s during which the receiver takes no byte (veneur has none:
/// a receiver that stops reading holds its connection forever).
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time limit of [`Client::flush`](crate::Client::flush): 15 s, enough for a connect sequence and a
/// stalled write with the default timeouts.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(15);
/// Default limit on a UDP span's encoded size: 16 384 bytes.
pub const DEFAULT_MAX_DATAGRAM_SIZE: usize = ssf_codec::DEFAULT_MAX_DATAGRAM_SIZE;
/// Default number of gRPC calls each backend keeps in flight on its connection: 64,
/// under the 100 concurrent streams HTTP/2 servers commonly allow, so no call waits for
/// a stream.
pub const DEFAULT_GRPC_CALLS_IN_FLIGHT: usize = 64;
/// The most gRPC calls in flight per backend that
/// [`ClientBuilder::grpc_calls_in_flight`](crate::ClientBuilder::grpc_calls_in_flight)
/// accepts.
pub const MAX_GRPC_CALLS_IN_FLIGHT: usize = 1024;
/// The largest queue capacity [`ClientBuilder::build`](crate::ClientBuilder::build) accepts: 1 048 576 spans, whose
/// slots take 576 MiB (see [`ClientBuilder::capacity`](crate::ClientBuilder::capacity)).
pub const MAX_CAPACITY: usize = 1 << 20;

/// The options as set on the builder (`None`: the default).
#[derive(Debug, Default)]
pub(super) struct Options {
    pub(super) capacity: Option<usize>,
    pub(super) parallel_backends: Option<usize>,
    pub(super) buffered: bool,
    pub(super) buffer_size: Option<usize>,
    pub(super) flush_interval: Option<Duration>,
    pub(super) backoff: Option<Duration>,
    pub(super) max_backoff: Option<Duration>,
    pub(super) connect_timeout: Option<Duration>,
    pub(super) write_timeout: Option<Duration>,
    pub(super) flush_timeout: Option<Duration>,
    pub(super) max_datagram_size: Option<usize>,
    pub(super) grpc_calls_in_flight: Option<usize>,
    /// The first network option set (an error for a user backend).
    pub(super) network_option: Option<&'static str>,
    pub(super) encode_in_backend: bool,
}

/// Where the spans go.
#[derive(Debug)]
pub(super) enum Destination {
    Udp(Address),
    Stream(Address),
    #[cfg(feature = "grpc")]
    Grpc(Address),
    User,
}

impl Destination {
    /// The transport for `addr`, or why there is none.
    pub(super) fn of(addr: Address) -> Result<Self, BuildError> {
        match addr.scheme() {
            Scheme::Udp | Scheme::Udp4 | Scheme::Udp6 => Ok(Destination::Udp(addr)),
            Scheme::Tcp | Scheme::Tcp4 | Scheme::Tcp6 => Ok(Destination::Stream(addr)),
            #[cfg(unix)]
            Scheme::Unix => Ok(Destination::Stream(addr)),
            #[cfg(feature = "grpc")]
            Scheme::Grpc => Ok(Destination::Grpc(addr)),
            other => Err(BuildError::UnsupportedScheme(other)),
        }
    }
}

/// A validated configuration.
#[derive(Debug)]
pub(super) struct Config {
    pub(super) capacity: usize,
    pub(super) workers: usize,
    /// How many messages a worker takes from the queue at once, at most.
    pub(super) batch: usize,
    pub(super) net: NetConfig,
    pub(super) flush_timeout: Duration,
    pub(super) flush_interval: Option<Duration>,
    pub(super) encoding: Encoding,
}

fn positive(d: Duration, what: &'static str) -> Result<Duration, BuildError> {
    if d.is_zero() {
        Err(BuildError::Invalid(what))
    } else {
        Ok(d)
    }
}

impl Options {
    /// Checks the options for `dest`; `stats_interval` is the statistics interval, if
    /// reporting is on.
    pub(super) fn validate(
        &self,
        dest: &Destination,
        stats_interval: Option<Duration>,
    ) -> Result<Config, BuildError> {
        let user = matches!(dest, Destination::User);
        if user {
            if let Some(option) = self.network_option {
                return Err(BuildError::NotNetworked(option));
            }
        }
        let capacity = self.capacity.unwrap_or(if user {
            DEFAULT_BACKEND_CAPACITY
        } else {
            DEFAULT_CAPACITY
        });
        if capacity == 0 {
            return Err(BuildError::Invalid("capacity must be at least 1"));
        }
        if capacity > MAX_CAPACITY {
            return Err(BuildError::Invalid("capacity is over MAX_CAPACITY"));
        }
        let workers =
            self.parallel_backends
                .unwrap_or(if user { 1 } else { DEFAULT_PARALLEL_BACKENDS });
        if workers == 0 {
            return Err(BuildError::Invalid("parallel_backends must be at least 1"));
        }
        let backoff = positive(
            self.backoff.unwrap_or(DEFAULT_BACKOFF),
            "backoff must be greater than zero",
        )?;
        let max_backoff = self.max_backoff.unwrap_or(DEFAULT_MAX_BACKOFF);
        if max_backoff < backoff {
            return Err(BuildError::Invalid("max_backoff must be at least backoff"));
        }
        let connect_timeout = positive(
            self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            "connect_timeout must be greater than zero",
        )?;
        let write_timeout = positive(
            self.write_timeout.unwrap_or(DEFAULT_WRITE_TIMEOUT),
            "write_timeout must be greater than zero",
        )?;
        let flush_timeout = positive(
            self.flush_timeout.unwrap_or(DEFAULT_FLUSH_TIMEOUT),
            "flush_timeout must be greater than zero",
        )?;
        let buffer_size = self.buffer_size.unwrap_or(DEFAULT_BUFFER_SIZE);
        if self.buffered && buffer_size == 0 {
            return Err(BuildError::Invalid("buffer_size must be greater than zero"));
        }
        let max_datagram_size = self.max_datagram_size.unwrap_or(DEFAULT_MAX_DATAGRAM_SIZE);
        if max_datagram_size == 0 || max_datagram_size > ssf_codec::MAX_UDP_PAYLOAD {
            return Err(BuildError::Invalid(
                "max_datagram_size must be between 1 and 65507 bytes",
            ));
        }
        let grpc_calls_in_flight = self
            .grpc_calls_in_flight
            .unwrap_or(DEFAULT_GRPC_CALLS_IN_FLIGHT);
        if !(1..=MAX_GRPC_CALLS_IN_FLIGHT).contains(&grpc_calls_in_flight) {
            return Err(BuildError::Invalid(
                "grpc_calls_in_flight must be between 1 and 1024",
            ));
        }
        if let Some(every) = self.flush_interval {
            positive(every, "flush_interval must be greater than zero")?;
        }
        if let Some(every) = stats_interval {
            positive(every, "the statistics interval must be greater than zero")?;
        }
        let encoding = match (dest, self.encode_in_backend) {
            (Destination::User, _) => Encoding::None,
            (_, true) => Encoding::InBackend,
            (Destination::Udp(_), false) => Encoding::OnRecord {
                framing: Framing::Datagram,
                max: max_datagram_size,
            },
            (Destination::Stream(_), false) => Encoding::OnRecord {
                framing: Framing::Stream,
                max: ssf_codec::MAX_FRAME_LENGTH,
            },
            // The bare protobuf bytes, as UDP sends them: the message of a call.
            #[cfg(feature = "grpc")]
            (Destination::Grpc(_), false) => Encoding::OnRecord {
                framing: Framing::Datagram,
                max: crate::transport::grpc::MAX_MESSAGE,
            },
        };
        Ok(Config {
            capacity,
            workers,
            // Each worker takes its share of a full queue at once, within limits: large
            // batches mean large writes, small ones let the backends share the work.
            batch: capacity.clamp(1, 512),
            net: NetConfig {
                backoff,
                max_backoff,
                connect_timeout,
                write_timeout,
                buffer_size: self.buffered.then_some(buffer_size),
                max_datagram_size,
                grpc_calls_in_flight,
            },
            flush_timeout,
            flush_interval: self.flush_interval,
            encoding,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp() -> Destination {
        Destination::of(Address::parse("udp://127.0.0.1:1").unwrap()).unwrap()
    }

    #[test]
    fn defaults_validate() {
        let c = Options::default().validate(&udp(), None).unwrap();
        assert_eq!((c.capacity, c.workers, c.batch), (1024, 8, 512));
        assert_eq!(
            c.encoding,
            Encoding::OnRecord {
                framing: Framing::Datagram,
                max: DEFAULT_MAX_DATAGRAM_SIZE
            }
        );
        let user = Options::default()
            .validate(&Destination::User, None)
            .unwrap();
        assert_eq!((user.capacity, user.workers, user.batch), (1, 1, 1));
    }

    #[test]
    fn zero_durations_are_refused() {
        let o = Options {
            write_timeout: Some(Duration::ZERO),
            ..Options::default()
        };
        assert!(matches!(
            o.validate(&udp(), None),
            Err(BuildError::Invalid(_))
        ));
        let o = Options::default();
        assert!(matches!(
            o.validate(&udp(), Some(Duration::ZERO)),
            Err(BuildError::Invalid(_))
        ));
    }

    #[test]
    fn grpc_calls_in_flight_is_between_1_and_the_maximum() {
        for bad in [0, MAX_GRPC_CALLS_IN_FLIGHT + 1] {
            let o = Options {
                grpc_calls_in_flight: Some(bad),
                ..Options::default()
            };
            assert!(matches!(
                o.validate(&udp(), None),
                Err(BuildError::Invalid(m)) if m.contains("grpc_calls_in_flight")
            ));
        }
        let o = Options {
            grpc_calls_in_flight: Some(MAX_GRPC_CALLS_IN_FLIGHT),
            ..Options::default()
        };
        let c = o.validate(&udp(), None).unwrap();
        assert_eq!(c.net.grpc_calls_in_flight, MAX_GRPC_CALLS_IN_FLIGHT);
        let c = Options::default().validate(&udp(), None).unwrap();
        assert_eq!(c.net.grpc_calls_in_flight, DEFAULT_GRPC_CALLS_IN_FLIGHT);
    }
}
