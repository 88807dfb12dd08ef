//! Shared helpers: a UDP receiver with a client pointed at it, and span lookups.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ssf_proto::SsfSpan;
use ssf_receiver::Receiver;
use trace_client::Client;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// A receiver on loopback UDP and a client sending to it.
pub struct Udp {
    pub receiver: Receiver,
    pub client: Client,
}

impl Udp {
    pub async fn new() -> Udp {
        let receiver = Receiver::bind("udp://127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = receiver.local_addr().to_string();
        let client = Client::builder(&addr).build().expect("client");
        Udp { receiver, client }
    }

    /// Flushes the client, then waits for exactly `n` spans.
    pub async fn spans(&mut self, n: usize) -> Vec<SsfSpan> {
        self.client.flush().await.expect("flush");
        self.receiver
            .collect(n, Duration::from_secs(10))
            .await
            .expect("every span to arrive")
    }
}

/// The spans by name; panics on duplicate names, which the tests avoid.
pub fn by_name(spans: Vec<SsfSpan>) -> HashMap<String, SsfSpan> {
    let mut map = HashMap::new();
    for span in spans {
        let name = span.name.clone();
        assert!(
            map.insert(name.clone(), span).is_none(),
            "two spans named {name}"
        );
    }
    map
}

/// A layer recording the target and level of every event it sees.
#[derive(Clone, Default)]
pub struct Events(pub Arc<Mutex<Vec<(String, tracing::Level)>>>);

impl Events {
    pub fn seen(&self) -> Vec<(String, tracing::Level)> {
        self.0.lock().expect("events lock").clone()
    }
}

impl<S: Subscriber> Layer<S> for Events {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        self.0
            .lock()
            .expect("events lock")
            .push((meta.target().to_owned(), *meta.level()));
    }
}
