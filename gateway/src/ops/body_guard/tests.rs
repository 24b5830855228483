use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::*;

fn scan_all(chunks: &[&[u8]]) -> (bool, ChunkedScan) {
    let mut scan = ChunkedScan::default();
    let mut done = false;
    for chunk in chunks {
        done = scan.feed(chunk);
    }
    (done, scan)
}

#[test]
fn a_chunked_body_ends_after_its_last_chunk_and_trailers() {
    let body = b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: x\r\n\r\n";
    assert_eq!(scan_all(&[body]), (true, ChunkedScan::Done));
    // Byte by byte, the same, and complete only at the very last byte.
    let mut scan = ChunkedScan::default();
    for (i, byte) in body.iter().enumerate() {
        let done = scan.feed(&[*byte]);
        assert_eq!(done, i == body.len() - 1, "at byte {i}");
    }
    // Bare LFs, as pingora's parser also takes them.
    assert!(scan_all(&[b"3\nabc\n0\n\n"]).0);
    // Not complete yet.
    assert!(!scan_all(&[b"5\r\nhel"]).0);
    assert!(!scan_all(&[b"0\r\n"]).0);
    assert!(!scan_all(&[b"0\r\nTrailer: x\r\n"]).0);
}

#[test]
fn a_broken_chunked_body_never_counts_as_complete() {
    assert_eq!(scan_all(&[b"zz\r\n"]).1, ChunkedScan::Broken);
    assert_eq!(
        scan_all(&[b"3\r\nabcX\r\n0\r\n\r\n"]).1,
        ChunkedScan::Broken
    );
    assert_eq!(
        scan_all(&[b"11111111111111111\r\n"]).1,
        ChunkedScan::Broken,
        "a size beyond 64 bits"
    );
    // Data that looks like the end of the body is data.
    let (done, scan) = scan_all(&[b"7\r\n0\r\n\r\n\r\n"]);
    assert!(!done);
    assert_eq!(scan, ChunkedScan::DataEnd { cr: false });
}

/// A connected pair: the server side as pingora gets it, guarded.
async fn pair(limits: BodyLimits) -> (TcpStream, GuardedStream, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let server: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(server));
    let cuts = Arc::new(AtomicUsize::new(0));
    let counted = cuts.clone();
    let guarded = GuardedStream::new(
        server,
        limits,
        Arc::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        }),
    );
    (client, guarded, cuts)
}

const LIMITS: BodyLimits = BodyLimits {
    timeout: Duration::from_millis(400),
    min_rate: 1000,
};

#[tokio::test]
async fn a_body_dribbled_slower_than_the_minimum_rate_is_cut_off() {
    let (mut client, mut server, cuts) = pair(LIMITS).await;
    server.expect_body(Framing::Length(1000), b"");
    let sender = tokio::spawn(async move {
        for _ in 0..1000 {
            if client.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let error = loop {
        match server.read(&mut buf).await {
            Ok(0) => panic!("closed"),
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    // 400 ms, plus 1 ms per byte received (about ten of them).
    let elapsed = started.elapsed();
    assert!(
        elapsed >= LIMITS.timeout && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    assert_eq!(cuts.load(Ordering::SeqCst), 1);
    assert!(!server.body_complete());
    sender.abort();
}

#[tokio::test]
async fn a_body_at_a_normal_rate_takes_as_long_as_it_needs() {
    // 2,000 bytes at about 4,000 bytes/s: half a second, longer than `timeout`, faster than
    // the minimum rate.
    let (mut client, mut server, cuts) = pair(LIMITS).await;
    server.expect_body(Framing::Length(2100), &[b'x'; 100]);
    tokio::spawn(async move {
        for _ in 0..20 {
            client.write_all(&[b'y'; 100]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        // Then the client waits for its answer, sending nothing.
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let mut received = 0;
    let mut buf = [0u8; 512];
    while !server.body_complete() {
        received += server.read(&mut buf).await.unwrap();
    }
    assert_eq!(received, 2000);
    // Complete: waiting for more (as pingora does while the upstream answers) is no longer
    // bounded by the body rule.
    let waited = tokio::time::timeout(Duration::from_millis(800), server.read(&mut buf)).await;
    assert!(waited.is_err(), "a read after the body waits: {waited:?}");
    assert_eq!(cuts.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn without_a_body_reads_are_not_bounded() {
    let (_client, mut server, cuts) = pair(LIMITS).await;
    server.expect_body(Framing::None, b"");
    let mut buf = [0u8; 8];
    let waited = tokio::time::timeout(Duration::from_millis(700), server.read(&mut buf)).await;
    assert!(waited.is_err());
    assert_eq!(cuts.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_chunked_body_is_followed_to_its_end() {
    let (mut client, mut server, _) = pair(LIMITS).await;
    server.expect_body(Framing::Chunked, b"3\r\nab");
    client.write_all(b"c\r\n0\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    while !server.body_complete() {
        assert!(server.read(&mut buf).await.unwrap() > 0);
    }
}
