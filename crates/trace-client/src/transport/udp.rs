//! UDP: one span per datagram, size-checked, over a connected socket.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use ssf_codec::addr::Address;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::error::DropReason;
use crate::message::Message;
use crate::shared::Shared;
use crate::transport::api::{NetConfig, Transport};
use crate::transport::backoff::Backoff;
use crate::transport::ledger::Ledger;
use crate::transport::link::{Connect, ConnectFuture, Link};
use crate::transport::staged::Staged;
use crate::transport::sys_linux::{self as sys, DATAGRAMS_PER_CALL};
use crate::transport::write::{TryWrite, wait_writable};

/// UDP: encoded datagrams held before they are sent, at most (bytes).
const DATAGRAM_BYTES: usize = 256 * 1024;

/// A send cut short by an abort.
struct Aborted;

#[derive(Debug)]
struct UdpTarget(Address);

async fn connect_udp(addr: Address) -> io::Result<UdpSocket> {
    let mut last = None;
    for a in addr.resolve().await? {
        let local = if a.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let attempt = async {
            let s = UdpSocket::bind(local).await?;
            s.connect(a).await?;
            Ok::<_, io::Error>(s)
        };
        match attempt.await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable)))
}

impl Connect for UdpTarget {
    type Conn = UdpSocket;

    fn connect(&self) -> ConnectFuture<UdpSocket> {
        Box::pin(connect_udp(self.0.clone()))
    }
}

impl TryWrite for UdpSocket {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.try_send(buf)
    }

    async fn writable(&self) -> io::Result<()> {
        UdpSocket::writable(self).await
    }
}

/// One span per datagram, size-checked, over a connected UDP socket. The datagrams of a
/// run are encoded into one buffer and sent in groups.
#[derive(Debug)]
pub(crate) struct UdpTransport {
    link: Link<UdpTarget>,
    /// The datagrams of the batch.
    staged: Staged,
    max_size: usize,
    write_timeout: Duration,
    ledger: Ledger,
}

impl UdpTransport {
    pub(crate) fn new(addr: &Address, config: &NetConfig, shared: Arc<Shared>) -> Self {
        UdpTransport {
            link: Link::new(
                UdpTarget(addr.clone()),
                Backoff::new(config.backoff, config.max_backoff),
                config.connect_timeout,
                config.max_backoff,
                shared.clone(),
            ),
            staged: Staged::default(),
            max_size: config.max_datagram_size,
            write_timeout: config.write_timeout,
            ledger: Ledger::new(shared),
        }
    }

    /// Sends the encoded datagrams, counting each. `Err` when the client aborted (the
    /// datagrams not sent are counted as closed).
    async fn send_datagrams(&mut self) -> Result<(), Aborted> {
        let n = self.staged.ends.len();
        let mut i = 0;
        let mut deadline: Option<Instant> = None;
        let result = loop {
            if i == n {
                break Ok(());
            }
            let socket = match self.link.get().await {
                Ok(s) => s,
                Err(e) => {
                    let reason = if self.ledger.aborting().is_set() {
                        DropReason::Closed
                    } else {
                        DropReason::ConnectTimeout
                    };
                    self.settle_from(i, reason, &e);
                    break if reason == DropReason::Closed {
                        Err(Aborted)
                    } else {
                        Ok(())
                    };
                }
            };
            let start = self.staged.span(i).start;
            let group = &self.staged.ends[i..n.min(i + DATAGRAMS_PER_CALL)];
            match sys::send_datagrams(socket, &self.staged.buf, start, group) {
                Ok(k) => {
                    let bytes = self.staged.ends[i + k - 1] - start;
                    self.ledger.shared().counters.wrote(bytes);
                    self.ledger.sent(k as u64);
                    let receipts = &mut self.staged.receipts[i..i + k];
                    for r in receipts.iter_mut().filter_map(Option::take) {
                        let _ = r.send(Ok(()));
                    }
                    i += k;
                    deadline = None;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let at = *deadline.get_or_insert_with(|| Instant::now() + self.write_timeout);
                    let aborting = self.ledger.aborting();
                    if let Err(f) = wait_writable(socket, at, self.write_timeout, aborting).await {
                        let (reason, e) = f.into_drop();
                        if reason == DropReason::WriteTimeout {
                            self.link.stalled();
                        }
                        self.settle_from(i, reason, &e);
                        break if reason == DropReason::Closed {
                            Err(Aborted)
                        } else {
                            Ok(())
                        };
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // "Connection refused" reports an earlier datagram's ICMP error; the
                    // socket itself is fine. Anything else: start over with a fresh
                    // socket (and a fresh name lookup). Either way this datagram is lost.
                    if e.kind() != io::ErrorKind::ConnectionRefused {
                        self.link.reset();
                    }
                    let r = self.staged.receipts[i].take();
                    self.ledger.settle(r, Err((DropReason::WriteError, &e)));
                    i += 1;
                }
            }
        };
        self.staged.abort();
        if self.staged.buf.capacity() > 4 * DATAGRAM_BYTES {
            self.staged.buf = Vec::new();
        }
        result
    }

    /// Counts datagrams `from..` as dropped.
    fn settle_from(&mut self, from: usize, reason: DropReason, e: &io::Error) {
        for r in self.staged.receipts[from..].iter_mut() {
            self.ledger.settle(r.take(), Err((reason, e)));
        }
    }
}

impl Transport for UdpTransport {
    #[inline]
    fn stage(&mut self, msg: Message, inline: &[u8]) -> bool {
        let max = self.max_size;
        self.staged
            .stage(&mut self.ledger, msg, inline, max, DATAGRAM_BYTES)
    }

    async fn send_staged(&mut self) {
        let _ = self.send_datagrams().await;
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn close(&mut self) -> io::Result<()> {
        drop(self.link.take());
        Ok(())
    }

    fn abort(&mut self) -> u64 {
        drop(self.link.take());
        self.staged.abort()
    }

    fn ledger(&mut self) -> &mut Ledger {
        &mut self.ledger
    }
}
