use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn request(addr: SocketAddr) -> ProbeRequest {
    ProbeRequest {
        scheme: Scheme::Http,
        ip: addr.ip(),
        port: addr.port(),
        path: "/health".into(),
        host: format!("{addr}"),
        timeout: Duration::from_millis(800),
        body_limit: 16,
        matcher: "200".parse().unwrap(),
        user_agent: GATE_USER_AGENT,
        expect: Vec::new(),
    }
}

/// A one-shot server that records the request head and answers `reply`.
async fn serve(reply: &'static [u8]) -> (SocketAddr, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        s.write_all(reply).await.unwrap();
        let _ = s.shutdown().await;
        String::from_utf8(head).unwrap()
    });
    (addr, task)
}

#[tokio::test]
async fn sends_the_elb_request_and_reads_the_status() {
    let (addr, head) =
        serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok").await;
    let outcome = HttpProber::new().probe(&request(addr)).await;
    assert_eq!(outcome.status, Some(200));
    assert!(outcome.passed);
    assert_eq!(outcome.body, "ok");
    assert_eq!(outcome.content_type.as_deref(), Some("text/plain"));
    let head = head.await.unwrap().to_ascii_lowercase();
    assert!(head.starts_with("get /health http/1.1\r\n"), "{head}");
    assert!(head.contains(&format!("host: {addr}\r\n")), "{head}");
    assert!(head.contains("user-agent: launch-gate/"), "{head}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (addr, _) = serve(b"HTTP/1.1 301 Moved Permanently\r\nLocation: https://shop.example.com/health\r\nContent-Length: 0\r\n\r\n").await;
    let outcome = HttpProber::new().probe(&request(addr)).await;
    assert_eq!(outcome.status, Some(301));
    assert!(!outcome.passed);
    assert_eq!(
        outcome.location.as_deref(),
        Some("https://shop.example.com/health")
    );
}

#[tokio::test]
async fn the_body_is_capped() {
    let (addr, _) = serve(
        b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n0123456789012345678901234567890123456789",
    )
    .await;
    let outcome = HttpProber::new().probe(&request(addr)).await;
    assert!(outcome.passed);
    assert_eq!(outcome.body, "0123456789012345");
}

#[tokio::test]
async fn body_expectations_fail_a_matching_status() {
    let body = br#"HTTP/1.1 200 OK
Content-Length: 37

{"status": "degraded", "version": 12}"#;
    let mut r = request(serve(body).await.0);
    r.body_limit = 1024;
    r.expect = vec![BodyExpectation::json_field("status=pass").unwrap()];
    let outcome = HttpProber::new().probe(&r).await;
    assert!(!outcome.passed);
    assert_eq!(
        outcome.body_mismatch.as_deref(),
        Some("the JSON field status is \"degraded\", not \"pass\"")
    );

    let mut r = request(serve(body).await.0);
    r.body_limit = 1024;
    r.expect = vec![
        BodyExpectation::json_field("version=12").unwrap(),
        BodyExpectation::Contains("degraded".into()),
    ];
    assert!(HttpProber::new().probe(&r).await.passed);
}

#[tokio::test]
async fn refused_and_malformed_and_silent_are_named() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let refused = HttpProber::new().probe(&request(addr)).await;
    assert_eq!(refused.error, Some(ProbeError::ConnectionRefused));

    let (addr, _) = serve(b"SSH-2.0-OpenSSH_9.2\r\n").await;
    let malformed = HttpProber::new().probe(&request(addr)).await;
    assert!(
        matches!(malformed.error, Some(ProbeError::MalformedResponse { .. })),
        "{malformed:?}"
    );

    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let keep = tokio::spawn(async move {
        let (s, _) = silent.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(s);
    });
    let timed_out = HttpProber::new().probe(&request(addr)).await;
    assert_eq!(
        timed_out.error,
        Some(ProbeError::Timeout { phase: "response" })
    );
    assert!(timed_out.latency_ms < 2000);
    keep.abort();
}

#[test]
fn addresses_that_are_never_a_target() {
    let never = |s: &str| is_never_probed(s.parse().unwrap());
    for refused in [
        "169.254.169.254",
        "fe80::1",
        "fd00:ec2::254",
        "0.0.0.0",
        "0.1.2.3",
        "255.255.255.255",
        "224.0.0.1",
        "::",
        "ff02::1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.1.7",
    ] {
        assert!(never(refused), "{refused}");
    }
    for allowed in [
        "10.0.1.7",
        "172.31.14.247",
        "2600:1f18::7",
        "127.0.1.4",
        "::1",
    ] {
        assert!(!never(allowed), "{allowed}");
    }
}
