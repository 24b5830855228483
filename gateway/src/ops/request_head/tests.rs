use std::time::Duration;

use super::*;

const LIMITS: HeadLimits = HeadLimits {
    header_timeout: Duration::from_secs(5),
    max_bytes: 200,
    max_headers: 3,
};

fn scan(bytes: &[u8]) -> Scan {
    HeadScan::default().advance(bytes, &LIMITS)
}

#[test]
fn the_head_ends_at_the_first_blank_line_crlf_or_bare_lf() {
    let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(scan(head), Scan::Complete(head.len()));
    let mut with_body = head.to_vec();
    with_body.extend_from_slice(b"body\r\n\r\nmore");
    assert_eq!(scan(&with_body), Scan::Complete(head.len()));
    let bare = b"GET / HTTP/1.1\nHost: a\n\n";
    assert_eq!(scan(bare), Scan::Complete(bare.len()));
    let mixed = b"GET / HTTP/1.1\r\nHost: a\n\r\n";
    assert_eq!(scan(mixed), Scan::Complete(mixed.len()));
    assert_eq!(scan(b"GET / HTTP/1.1\r\nHost: a\r\n"), Scan::Partial);
    assert_eq!(scan(b"GET / HTTP/1.1\r\nHost: a\r\n\r"), Scan::Partial);
}

#[test]
fn empty_lines_before_the_request_line_are_skipped_not_taken_for_its_end() {
    let head = b"\r\n\r\n\nGET / HTTP/1.1\r\n\r\n";
    assert_eq!(scan(head), Scan::Complete(head.len()));
    assert_eq!(scan(b"\r\n\r\n"), Scan::Partial);
}

#[test]
fn a_head_scanned_read_by_read_ends_where_it_would_at_once() {
    let head = b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
    let mut scan = HeadScan::default();
    let mut outcome = Scan::Partial;
    for end in 1..=head.len() {
        outcome = scan.advance(&head[..end], &LIMITS);
        if outcome != Scan::Partial {
            assert_eq!(end, head.len() - 3, "complete at its blank line");
            break;
        }
    }
    assert_eq!(outcome, Scan::Complete(head.len() - 3));
}

#[test]
fn too_many_fields_are_refused_as_soon_as_they_are_seen() {
    let four = b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n";
    assert_eq!(scan(four), Scan::Refused(Refusal::TooManyHeaders));
    let three = b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n";
    assert_eq!(scan(three), Scan::Complete(three.len()));
}

#[test]
fn a_long_request_line_is_414_long_headers_431() {
    let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(300));
    assert_eq!(
        scan(long_line.as_bytes()),
        Scan::Refused(Refusal::LineTooLong)
    );
    let unfinished_line = format!("GET /{}", "a".repeat(300));
    assert_eq!(
        scan(unfinished_line.as_bytes()),
        Scan::Refused(Refusal::LineTooLong)
    );
    let long_field = format!("GET / HTTP/1.1\r\nCookie: {}\r\n\r\n", "a".repeat(300));
    assert_eq!(
        scan(long_field.as_bytes()),
        Scan::Refused(Refusal::TooLarge)
    );
    let unfinished_field = format!("GET / HTTP/1.1\r\nCookie: {}", "a".repeat(300));
    assert_eq!(
        scan(unfinished_field.as_bytes()),
        Scan::Refused(Refusal::TooLarge)
    );
    assert_eq!(Refusal::LineTooLong.status(), 414);
    assert_eq!(Refusal::TooLarge.status(), 431);
    assert_eq!(Refusal::TooManyHeaders.status(), 431);
    assert_eq!(Refusal::Timeout.status(), 408);
}

#[test]
fn the_body_framing_is_read_as_rfc_9112_says() {
    let of = |fields: &str| framing(format!("POST / HTTP/1.1\r\n{fields}\r\n").as_bytes());
    assert_eq!(of(""), Framing::None);
    assert_eq!(of("Content-Length: 0\r\n"), Framing::None);
    assert_eq!(of("content-length:  12 \r\n"), Framing::Length(12));
    assert_eq!(of("Content-Length: 12, 12\r\n"), Framing::Length(12));
    assert_eq!(
        of("Content-Length: 12\r\nContent-Length: 12\r\n"),
        Framing::Length(12)
    );
    assert_eq!(
        of("Content-Length: 12\r\nContent-Length: 13\r\n"),
        Framing::Unknown
    );
    assert_eq!(of("Content-Length: -1\r\n"), Framing::Unknown);
    assert_eq!(of("Content-Length: +1\r\n"), Framing::Unknown);
    assert_eq!(of("Transfer-Encoding: chunked\r\n"), Framing::Chunked);
    assert_eq!(
        of("Transfer-Encoding: gzip\r\nTransfer-Encoding: Chunked\r\n"),
        Framing::Chunked
    );
    assert_eq!(
        of("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
        Framing::Chunked
    );
    assert_eq!(of("Transfer-Encoding: chunked, gzip\r\n"), Framing::Unknown);
    // A name that only contains the word is another field.
    assert_eq!(of("X-Content-Length: 5\r\n"), Framing::None);
}

#[tokio::test]
async fn read_head_returns_the_head_and_what_followed_it() {
    let (mut client, mut server) = tokio::io::duplex(1024);
    tokio::io::AsyncWriteExt::write_all(
        &mut client,
        b"ET / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbo",
    )
    .await
    .unwrap();
    let limits = HeadLimits {
        max_bytes: 1024,
        max_headers: 10,
        ..LIMITS
    };
    match read_head(&mut server, BytesMut::from(&b"G"[..]), &limits).await {
        Head::Complete {
            bytes,
            head_len,
            framing,
        } => {
            assert_eq!(
                &bytes[..head_len],
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n"
            );
            assert_eq!(&bytes[head_len..], b"bo");
            assert_eq!(framing, Framing::Length(4));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_head_sent_too_slowly_times_out_however_often_bytes_come() {
    let (mut client, mut server) = tokio::io::duplex(1024);
    let sender = tokio::spawn(async move {
        for byte in b"ET / HTTP/1.1\r\nHost: a\r\n".iter() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if tokio::io::AsyncWriteExt::write_all(&mut client, &[*byte])
                .await
                .is_err()
            {
                return;
            }
        }
        // Keep the connection open.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    let limits = HeadLimits {
        header_timeout: Duration::from_millis(300),
        ..LIMITS
    };
    let started = Instant::now();
    let outcome = read_head(&mut server, BytesMut::from(&b"G"[..]), &limits).await;
    assert!(
        matches!(outcome, Head::Refused(Refusal::Timeout)),
        "{outcome:?}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= limits.header_timeout && elapsed < Duration::from_secs(1),
        "{elapsed:?}"
    );
    sender.abort();
}

#[tokio::test]
async fn a_closed_connection_is_closed() {
    let (client, mut server) = tokio::io::duplex(64);
    drop(client);
    assert!(matches!(
        read_head(&mut server, BytesMut::from(&b"G"[..]), &LIMITS).await,
        Head::Closed
    ));
    assert_eq!(first_bytes(&mut server).await, None);
}
