//! The receiver's memory stays bounded by the frame limit times the live connections,
//! whatever lengths the connections announce: checked on the process's resident memory
//! (`VmRSS`/`VmHWM` in `/proc/self/status`). The only test in its binary, so that no other
//! test's allocations blur the measurement.
#![cfg(target_os = "linux")]

mod support;

use std::sync::Arc;

use ssf_receiver::RejectReason;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;

/// A field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: u64 = line
        .trim_start_matches(field)
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("a number of kB");
    kib * 1024
}

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn announced_lengths_cannot_grow_memory_past_the_frame_limit() {
    const LIMIT: usize = 1 << 20;
    const ATTACKERS: usize = 8;
    const HOLDERS: usize = 8;
    // What each attacker tries to send after its header: allocated once, up front.
    let flood: Arc<Vec<u8>> = Arc::new(vec![0x0a; 16 << 20]);
    let lengths = [
        u32::MAX,
        u32::MAX - 1,
        1 << 31,
        1 << 30,
        1 << 24,
        LIMIT as u32 + 1,
        0x7fff_ffff,
        0xdead_beef,
    ];
    let before = status_bytes("VmRSS:");

    for listen in streams() {
        let mut receiver = listen
            .builder()
            .max_frame_length(LIMIT)
            .bind()
            .await
            .unwrap();
        let addr = receiver.local_addr().clone();
        let mut good = connect(&addr).await;

        // Attackers: a length over the limit, then 16 MiB of body, all at once.
        let mut attackers = JoinSet::new();
        for len in lengths.into_iter().take(ATTACKERS) {
            let mut conn = connect(&addr).await;
            let flood = Arc::clone(&flood);
            attackers.spawn(async move {
                let mut bytes = vec![0];
                bytes.extend(len.to_be_bytes());
                // Cut off early: these writes fail once the receiver hangs up.
                if conn.write_all(&bytes).await.is_ok() {
                    let _ = conn.write_all(&flood).await;
                }
                conn
            });
        }
        // Holders: a frame of exactly the limit, all but its last byte, then nothing.
        let mut holders = Vec::new();
        for _ in 0..HOLDERS {
            let mut conn = connect(&addr).await;
            let mut bytes = vec![0];
            bytes.extend((LIMIT as u32).to_be_bytes());
            bytes.extend_from_slice(&flood[..LIMIT - 1]);
            write(&mut conn, &bytes).await;
            holders.push(conn);
        }
        while let Some(r) = attackers.join_next().await {
            drop(r.unwrap());
        }
        eventually("the attackers' framing errors", || {
            receiver.stats().framing_errors == ATTACKERS as u64
        })
        .await;
        eventually("the holders' bytes to be read", || {
            receiver.stats().bytes >= (HOLDERS * (5 + LIMIT - 1)) as u64
        })
        .await;

        // Memory in use now: the holders' partial frames, nothing of the floods.
        let peak = status_bytes("VmHWM:");
        let growth = peak.saturating_sub(before);
        let bound = (HOLDERS as u64) * (LIMIT as u64 + 64 * 1024) + 24 * MIB;
        assert!(
            growth <= bound,
            "{}: resident memory grew by {} MiB, more than {} MiB",
            listen.url,
            growth / MIB,
            bound / MIB
        );

        // The well-behaved connection is still served.
        write(&mut good, &frame(&span(1))).await;
        assert_eq!(receiver.recv().await.unwrap().id, 1);

        drop(holders);
        eventually("the holders' framing errors", || {
            receiver.stats().framing_errors == (ATTACKERS + HOLDERS) as u64
        })
        .await;
        let stats = receiver.shutdown().await;
        assert_eq!(
            stats.rejects(RejectReason::Framing),
            (ATTACKERS + HOLDERS) as u64
        );
        // Far less than the floods were read.
        assert!(stats.bytes < 4 * 16 * MIB, "{stats:?}");
    }
}
