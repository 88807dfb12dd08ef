//! The transports a worker drives, from the queue to the socket.
//!
//! * [`api`]: the [`Transport`] trait a worker drives, and the settings of the network
//!   transports;
//! * [`ledger`]: one backend's accounting (sent, dropped, what a flush reports);
//! * [`backoff`] and [`link`]: one backend's connection, opened lazily, re-opened with
//!   capped backoff, "down" while the receiver cannot be reached;
//! * [`write`]: writes with a stall timeout, cut short by an abort;
//! * [`staged`]: a batch of spans sent one by one (the bytes, the ends, the receipts);
//! * [`stream`] (unix and TCP, framed), [`udp`] (datagrams; [`sys_linux`] sends them
//!   64 per system call), `grpc` (feature `grpc`: one unary call per span, the calls
//!   of a batch in flight together) and [`user`] (a user's [`Backend`](crate::Backend)).
//!
//! A transport belongs to one worker and owns at most one connection. The worker hands
//! it the spans of a batch taken from the queue ([`Transport::stage`]) and then has it
//! send them ([`Transport::send_staged`]). A transport does its own accounting: once
//! `send_staged` returns, each span has been counted as sent, as dropped or as held in
//! the write buffer, and its receipt resolved (or kept, with the span, until the buffer
//! is written). Every wait (connecting, a full socket) ends when the client aborts (its
//! shutdown deadline passed): what is left is counted as dropped with reason `closed`.

pub(crate) mod api;
pub(crate) mod backoff;
#[cfg(feature = "grpc")]
pub(crate) mod grpc;
pub(crate) mod ledger;
pub(crate) mod link;
pub(crate) mod staged;
pub(crate) mod stream;
pub(crate) mod sys_linux;
pub(crate) mod udp;
pub(crate) mod user;
pub(crate) mod write;

pub(crate) use api::{NetConfig, Transport};
#[cfg(feature = "grpc")]
pub(crate) use grpc::GrpcTransport;
pub(crate) use ledger::oversize_error;
pub(crate) use stream::StreamTransport;
pub(crate) use udp::UdpTransport;
pub use user::Backend;
pub(crate) use user::UserTransport;
