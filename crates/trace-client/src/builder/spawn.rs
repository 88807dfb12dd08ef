//! Spawning a validated [`Config`]: the shared state, one worker per backend, the
//! periodic flush and statistics tasks; the [`Client`] handle that owns them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::config::{Config, Destination};
use crate::client::{Client, Kind, Normalizer};
use crate::error::BuildError;
use crate::future::FlushFuture;
use crate::message::FlushRound;
use crate::sampling::Sampler;
use crate::shared::{Shared, Tx};
use crate::stats::{StatsCounter, report_counters};
use crate::transport::{StreamTransport, Transport, UdpTransport};
use crate::worker::Worker;

/// Spawns the worker of a user backend.
pub(super) type SpawnUser = Box<
    dyn FnOnce(
            Arc<Shared>,
            mpsc::UnboundedReceiver<Arc<FlushRound>>,
            usize,
        ) -> Pin<Box<dyn Future<Output = ()> + Send>>
        + Send,
>;

/// Statistics reporting, as set on the builder.
pub(super) struct StatsReporting {
    pub(super) sink: Arc<dyn StatsCounter + Send + Sync>,
    pub(super) interval: Duration,
    pub(super) tags: Vec<String>,
}

/// What the client gets from the builder besides its [`Config`].
pub(super) struct Parts {
    pub(super) normalizer: Option<Normalizer>,
    pub(super) stats: Option<StatsReporting>,
    pub(super) service: Option<Arc<str>>,
    pub(super) flush_ticks: Option<FlushTicks>,
    pub(super) sampler: Sampler,
}

/// A user's stream of flush ticks ([`flush_on`](super::ClientBuilder::flush_on)).
pub(super) type FlushTicks = Pin<Box<dyn Stream<Item = ()> + Send>>;

/// Spawns the client's tasks on `handle`.
pub(super) fn start(
    handle: &Handle,
    config: Config,
    dest: Destination,
    user: Option<SpawnUser>,
    parts: Parts,
) -> Result<Client, BuildError> {
    let Parts {
        normalizer,
        stats,
        service,
        flush_ticks,
        sampler,
    } = parts;
    let workers = config.workers;
    let mut controls = Vec::with_capacity(workers);
    let mut control_rxs = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (c_tx, c_rx) = mpsc::unbounded_channel();
        controls.push(c_tx);
        control_rxs.push(c_rx);
    }
    // Stream backends copy spans into one buffer and write many at once: they wait for
    // a batch rather than take a few spans at a time. A datagram or a gRPC call costs
    // each span a send, and there several backends sending at once is what counts:
    // they take what is there.
    let batches = matches!(dest, Destination::Stream(_));
    let shared = Arc::new(Shared::new(
        config.capacity,
        batches,
        controls,
        config.flush_timeout,
    ));
    let tx = Tx::new(shared.clone());
    let batch = config.batch;
    match dest {
        Destination::User => {
            // One worker: parallel_backends is a network option.
            if let (Some(spawn_user), Some(control)) = (user, control_rxs.into_iter().next()) {
                handle.spawn(spawn_user(shared.clone(), control, batch));
            }
        }
        Destination::Udp(addr) => {
            for (i, control) in control_rxs.into_iter().enumerate() {
                let t = UdpTransport::new(&addr, &config.net, shared.clone());
                spawn_worker(handle, i, t, &shared, control, batch);
            }
        }
        Destination::Stream(addr) => {
            for (i, control) in control_rxs.into_iter().enumerate() {
                let Some(t) = StreamTransport::new(&addr, &config.net, shared.clone()) else {
                    return Err(BuildError::UnsupportedScheme(addr.scheme()));
                };
                spawn_worker(handle, i, t, &shared, control, batch);
            }
        }
        #[cfg(feature = "grpc")]
        Destination::Grpc(addr) => {
            for (i, control) in control_rxs.into_iter().enumerate() {
                let Some(t) =
                    crate::transport::GrpcTransport::new(&addr, &config.net, shared.clone())
                else {
                    return Err(BuildError::UnsupportedScheme(addr.scheme()));
                };
                spawn_worker(handle, i, t, &shared, control, batch);
            }
        }
    }
    if let Some(every) = config.flush_interval {
        handle.spawn(periodic_flush(shared.clone(), every));
    }
    if let Some(ticks) = flush_ticks {
        handle.spawn(flush_on_ticks(shared.clone(), ticks));
    }
    if let Some(stats) = stats {
        handle.spawn(periodic_stats(shared.clone(), stats));
    }
    Ok(Client::from_parts(
        Kind::Queue(tx),
        shared,
        normalizer,
        config.encoding,
        service,
    )
    .with_sampler(sampler))
}

fn spawn_worker<T: Transport>(
    handle: &Handle,
    index: usize,
    transport: T,
    shared: &Arc<Shared>,
    control: mpsc::UnboundedReceiver<Arc<FlushRound>>,
    batch: usize,
) {
    let worker = Worker {
        index,
        transport,
        shared: shared.clone(),
        control,
        batch,
    };
    handle.spawn(worker.run());
}

async fn periodic_flush(shared: Arc<Shared>, every: Duration) {
    let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shared.draining.wait() => return,
            _ = ticker.tick() => {}
        }
        // Holds the queue open only while the flush runs: the last handle dropped
        // closes it.
        let Some(tx) = Tx::upgrade(&shared) else {
            return;
        };
        // Wait for this flush before the next tick, so slow flushes do not pile up.
        let limit = shared.flush_timeout;
        let _ = FlushFuture::new(shared.clone(), Some(tx), limit).await;
    }
}

async fn flush_on_ticks(shared: Arc<Shared>, mut ticks: FlushTicks) {
    loop {
        tokio::select! {
            biased;
            _ = shared.draining.wait() => return,
            tick = ticks.next() => if tick.is_none() { return },
        }
        // As `periodic_flush`: the queue is held open only while the flush runs.
        let Some(tx) = Tx::upgrade(&shared) else {
            return;
        };
        let limit = shared.flush_timeout;
        let _ = FlushFuture::new(shared.clone(), Some(tx), limit).await;
    }
}

async fn periodic_stats(shared: Arc<Shared>, stats: StatsReporting) {
    let tags: Vec<&str> = stats.tags.iter().map(String::as_str).collect();
    let mut ticker = tokio::time::interval_at(Instant::now() + stats.interval, stats.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let last = tokio::select! {
            biased;
            _ = shared.wait_workers_done() => true,
            _ = ticker.tick() => false,
        };
        report_counters(&shared.counters, &*stats.sink, &tags);
        if last {
            return;
        }
    }
}
