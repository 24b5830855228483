use std::time::Duration;

use pingora::protocols::{GetSocketDigest, GetTimingDigest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{PlainStream, GATHER};

/// A connected pair: the server side as a `PlainStream`, and the client's socket.
async fn pair() -> (PlainStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (socket, peer) = listener.accept().await.unwrap();
    (PlainStream::new(socket, peer), client)
}

/// What the client can read within a short while (nothing: empty).
async fn available(client: &mut TcpStream) -> Vec<u8> {
    let mut buffer = vec![0u8; 64 * 1024];
    match tokio::time::timeout(Duration::from_millis(100), client.read(&mut buffer)).await {
        Ok(Ok(n)) => buffer[..n].to_vec(),
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn small_writes_are_gathered_until_flush_then_the_buffer_is_freed() {
    let (mut stream, mut client) = pair().await;
    stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
    stream.write_all(b"hello").await.unwrap();
    assert!(available(&mut client).await.is_empty(), "sent before flush");
    assert_eq!(stream.pending.capacity(), GATHER);
    stream.flush().await.unwrap();
    assert_eq!(
        available(&mut client).await,
        b"HTTP/1.1 200 OK\r\n\r\nhello"
    );
    assert_eq!(stream.pending.capacity(), 0, "buffer kept after flush");
}

#[tokio::test]
async fn a_large_write_sends_what_was_gathered_first_then_goes_straight_to_the_socket() {
    let (mut stream, mut client) = pair().await;
    stream.write_all(b"head;").await.unwrap();
    let body = vec![b'x'; 3 * GATHER];
    stream.write_all(&body).await.unwrap();
    stream.flush().await.unwrap();
    let mut received = Vec::new();
    while received.len() < 5 + body.len() {
        let more = available(&mut client).await;
        assert!(!more.is_empty(), "short: {} bytes", received.len());
        received.extend(more);
    }
    assert_eq!(&received[..5], b"head;");
    assert_eq!(&received[5..], &body[..]);
}

#[tokio::test]
async fn shutdown_sends_what_is_pending() {
    let (mut stream, mut client) = pair().await;
    stream.write_all(b"last words").await.unwrap();
    AsyncWriteExt::shutdown(&mut stream).await.unwrap();
    let mut all = Vec::new();
    client.read_to_end(&mut all).await.unwrap();
    assert_eq!(all, b"last words");
}

#[tokio::test]
async fn the_digests_name_the_peer_and_the_connection_time() {
    let (stream, client) = pair().await;
    let digest = stream.get_socket_digest().expect("a socket digest");
    let peer = digest.peer_addr().and_then(|addr| addr.as_inet().copied());
    assert_eq!(peer, Some(client.local_addr().unwrap()));
    // Made once, then shared.
    assert!(std::sync::Arc::ptr_eq(
        &digest,
        &stream.get_socket_digest().unwrap()
    ));
    let timing = stream.get_timing_digest();
    assert!(matches!(timing.as_slice(), [Some(_)]));
}
