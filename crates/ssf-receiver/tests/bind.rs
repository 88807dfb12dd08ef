//! Binding: unix socket files (stale, live, permissions, removal), abstract sockets and
#![cfg(unix)]
//! the errors for addresses that cannot be served.

mod support;

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use ssf_codec::Address;
use ssf_receiver::Receiver;
use support::*;

fn unix_url(path: &std::path::Path) -> String {
    format!("unix://{}", path.display())
}

#[tokio::test]
async fn socket_file_is_world_writable_and_removed_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ssf.sock");
    let mut receiver = Receiver::bind(&unix_url(&path)).await.unwrap();
    assert_eq!(receiver.local_addr(), &Address::unix(&path));
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o666);

    let mut conn = connect(receiver.local_addr()).await;
    write(&mut conn, &frame(&span(1))).await;
    assert_eq!(receiver.recv().await.unwrap().id, 1);
    receiver.shutdown().await;
    assert!(!path.exists());
}

#[tokio::test]
async fn unix_mode_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private.sock");
    let receiver = Receiver::builder()
        .listen(unix_url(&path))
        .unwrap()
        .unix_mode(0o600)
        .bind()
        .await
        .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    drop(receiver);
    assert!(!path.exists(), "removed on drop");
}

#[tokio::test]
async fn a_live_socket_is_not_stolen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ssf.sock");
    let mut first = Receiver::bind(&unix_url(&path)).await.unwrap();
    let err = Receiver::bind(&unix_url(&path)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    // The first receiver still owns the path and still works.
    assert!(path.exists());
    let mut conn = connect(first.local_addr()).await;
    write(&mut conn, &frame(&span(1))).await;
    assert_eq!(first.recv().await.unwrap().id, 1);

    // Nor is a socket some other program serves.
    let other = dir.path().join("other.sock");
    let _live = tokio::net::UnixListener::bind(&other).unwrap();
    let err = Receiver::bind(&unix_url(&other)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert!(other.exists());
}

#[tokio::test]
async fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ssf.sock");
    // A listener that went away without removing its file.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let mut receiver = Receiver::bind(&unix_url(&path)).await.unwrap();
    let mut conn = connect(receiver.local_addr()).await;
    write(&mut conn, &frame(&span(7))).await;
    assert_eq!(receiver.recv().await.unwrap().id, 7);
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "keep me").unwrap();
    let err = Receiver::bind(&unix_url(&path)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
}

#[tokio::test]
async fn a_replaced_socket_file_is_not_removed_by_the_old_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ssf.sock");
    let old = Receiver::bind(&unix_url(&path)).await.unwrap();
    // Someone removes the file and binds a new listener at the same path.
    std::fs::remove_file(&path).unwrap();
    let _new = std::os::unix::net::UnixListener::bind(&path).unwrap();
    old.shutdown().await;
    assert!(path.exists(), "the new listener's socket was removed");
}

#[tokio::test]
async fn failed_bind_leaves_nothing_listening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ssf.sock");
    let err = Receiver::builder()
        .listen(unix_url(&path))
        .unwrap()
        .listen("unixgram:///tmp/never.sock")
        .unwrap()
        .bind()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(!path.exists(), "the first listener's file was left behind");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn abstract_sockets_work() {
    let name = format!("ssf-receiver-test-{}", std::process::id());
    let mut receiver = Receiver::bind(&format!("unix:@{name}")).await.unwrap();
    assert_eq!(receiver.local_addr().abstract_name(), Some(name.as_str()));
    assert_eq!(receiver.local_addr().to_string(), format!("unix:@{name}"));

    use std::os::linux::net::SocketAddrExt;
    let sa = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let std_conn = std::os::unix::net::UnixStream::connect_addr(&sa).unwrap();
    std_conn.set_nonblocking(true).unwrap();
    let mut conn: Box<dyn Conn> = Box::new(tokio::net::UnixStream::from_std(std_conn).unwrap());
    write(&mut conn, &frame(&span(3))).await;
    assert_eq!(receiver.recv().await.unwrap().id, 3);
    // The name is taken while the receiver lives, and free again after.
    let err = Receiver::bind(&format!("unix:@{name}")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    receiver.shutdown().await;
    let again = Receiver::bind(&format!("unix:@{name}")).await.unwrap();
    again.shutdown().await;
}

#[tokio::test]
async fn datagram_unix_schemes_are_refused() {
    for url in ["unixgram:///tmp/x.sock", "unixpacket:///tmp/x.sock"] {
        let err = Receiver::bind(url).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{url}");
        let msg = err.to_string();
        assert!(msg.contains(url) && msg.contains("not on unix"), "{msg}");
    }
}

#[tokio::test]
async fn bad_addresses_and_busy_ports() {
    let err = Receiver::builder().bind().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), "no listen address given");

    let err = Receiver::bind("http://127.0.0.1:1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("unknown address family"), "{err}");
    assert!(Receiver::builder().listen("udp://127.0.0.1").is_err());

    for scheme in ["tcp", "udp"] {
        let first = Receiver::bind(&format!("{scheme}://127.0.0.1:0"))
            .await
            .unwrap();
        let taken = first.local_addr().to_string();
        let err = Receiver::bind(&taken).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{taken}");
        assert!(
            err.to_string()
                .starts_with(&format!("cannot listen on {taken}: "))
        );
    }
}

#[tokio::test]
async fn builder_and_handle_are_debug() {
    let builder = Receiver::builder()
        .listen("udp://127.0.0.1:0")
        .unwrap()
        .on_reject(|_| {});
    let text = format!("{builder:?}");
    assert!(
        text.contains("0o666") && text.contains("on_reject: true"),
        "{text}"
    );
    let receiver = builder.bind().await.unwrap();
    let handle = receiver.handle();
    let clone = handle.clone();
    assert!(format!("{clone:?}").contains("ReceiverHandle"));
    drop(receiver);
    // A handle outliving its receiver still answers.
    assert!(handle.is_shutdown());
    assert_eq!(handle.stats().spans, 0);
}
