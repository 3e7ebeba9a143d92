//! The gate's HTTP probe, sent the way an ELB health checker sends its request. Does
//! network I/O.
//!
//! One probe is one `GET` on a fresh TCP connection to `<private-ip>:<port>` (HTTP, or
//! HTTPS without certificate verification and without SNI, as the ELB health checker
//! does), with `Host: <private-ip>:<port>` (or an override), a User-Agent,
//! `Connection: close`, redirects never followed, the whole exchange (connect, TLS, status
//! and body) bounded by the probe timeout and the body read up to a byte limit. ELB
//! behaviour followed: <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html>.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, LOCATION, USER_AGENT};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::aws::TargetGroupSettings;
pub use crate::expect::BodyExpectation;
use crate::matcher::Matcher;

/// The User-Agent of the gate's own probes of the deep health endpoint.
pub const GATE_USER_AGENT: &str = concat!(
    "launch-gate/",
    env!("CARGO_PKG_VERSION"),
    " (ELB-HealthChecker/2.0 compatible)"
);
/// The User-Agent of a target group's health check, as the ELB sends it.
pub const ELB_USER_AGENT: &str = "ELB-HealthChecker/2.0";

/// HTTP or HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Scheme {
    /// Plain HTTP/1.1.
    #[serde(rename = "HTTP")]
    Http,
    /// HTTP/1.1 over TLS, the certificate not verified (as the ELB health checker).
    #[serde(rename = "HTTPS")]
    Https,
}

/// What to probe and how.
#[derive(Debug, Clone)]
pub struct ProbeRequest {
    /// HTTP or HTTPS.
    pub scheme: Scheme,
    /// The instance's private IP.
    pub ip: IpAddr,
    /// The port.
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
    /// The `Host` header.
    pub host: String,
    /// Bound on the whole probe.
    pub timeout: Duration,
    /// Most body bytes read.
    pub body_limit: usize,
    /// Status codes that pass.
    pub matcher: Matcher,
    /// The `User-Agent` header.
    pub user_agent: &'static str,
    /// What the body must hold besides a matching status (the gate's deep probe only; an
    /// ELB health check looks at the status alone).
    pub expect: Vec<BodyExpectation>,
}

impl ProbeRequest {
    /// The gate's probe of the app's deep health endpoint at `ip`, from its settings:
    /// plain HTTP, `Host: <ip>:<port>` unless overridden, the gate's User-Agent, the
    /// body expectations.
    pub fn deep_health(config: &crate::config::GateConfig, ip: IpAddr) -> Self {
        Self {
            scheme: Scheme::Http,
            ip,
            port: config.health_port,
            path: config.health_path.clone(),
            host: config.host_for(ip),
            timeout: config.probe_timeout,
            body_limit: config.body_limit_bytes,
            matcher: config.matcher.clone(),
            user_agent: GATE_USER_AGENT,
            expect: config.body_expectations(),
        }
    }

    /// A target group's health check as the ELB sends it to a target registered on the
    /// target group's port at `ip`: its protocol, port (`traffic-port` is the target
    /// group's port), path, matcher and timeout, `Host: <ip>:<port>`, the ELB's User-Agent.
    ///
    /// # Errors
    /// Why the gate cannot run it: a protocol other than HTTP or HTTPS, no traffic port
    /// (a Lambda target group), or a matcher outside HTTP codes (gRPC).
    pub fn for_target_group(
        tg: &TargetGroupSettings,
        ip: IpAddr,
        body_limit: usize,
    ) -> Result<Self, String> {
        let scheme = match tg.health_check_protocol.as_str() {
            "HTTP" => Scheme::Http,
            "HTTPS" => Scheme::Https,
            other => {
                return Err(format!(
                    "its health check protocol {other} is not HTTP or HTTPS; skipped"
                ));
            }
        };
        let traffic_port = tg
            .port
            .ok_or_else(|| "it has no traffic port (a Lambda target group); skipped".to_owned())?;
        let port = tg.health_check_port_for(traffic_port).ok_or_else(|| {
            format!(
                "its health check port {:?} is not a port number; skipped",
                tg.health_check_port
            )
        })?;
        let matcher = tg
            .matcher
            .parse()
            .map_err(|e| format!("its {e}; skipped"))?;
        Ok(Self {
            scheme,
            ip,
            port,
            path: tg.health_check_path.clone(),
            host: SocketAddr::new(ip, port).to_string(),
            timeout: tg.health_check_timeout,
            body_limit,
            matcher,
            user_agent: ELB_USER_AGENT,
            expect: Vec::new(),
        })
    }

    /// The same check sent to another instance at `ip`: the `Host` header follows the
    /// address when it was the address (`<ip>:<port>`, as the ELB sends it) and stays when
    /// it was an override.
    pub fn at(&self, ip: IpAddr) -> Self {
        let host = if self.host == SocketAddr::new(self.ip, self.port).to_string() {
            SocketAddr::new(ip, self.port).to_string()
        } else {
            self.host.clone()
        };
        Self {
            ip,
            host,
            ..self.clone()
        }
    }

    /// `http://ip:port/path` (or `https://`), for records and messages.
    pub fn url(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        format!(
            "{scheme}://{}{}",
            SocketAddr::new(self.ip, self.port),
            self.path
        )
    }
}

/// Whether `ip` is never a target, whatever EC2, ECS or a claim says: link-local
/// (169.254.0.0/16, fe80::/10) and the IPv6 instance metadata range (fd00:ec2::/32), where
/// the metadata service and other host services live; unspecified, "this network"
/// (0.0.0.0/8), broadcast and multicast addresses; and IPv4-mapped IPv6 addresses (EC2
/// never gives one, and one would reach the IPv4 address it maps). Loopback is left to
/// EC2's answer: AWS never assigns it, and the project's test topology lives there.
pub fn is_never_probed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_link_local() || v4.octets()[0] == 0 || v4.is_broadcast() || v4.is_multicast()
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0xfd00 && s[1] == 0x0ec2)
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.to_ipv4_mapped().is_some()
        }
    }
}

/// What a check is, in the same words in decision records and in `launch-gate probe`:
/// `deep_health`, or `target_group:<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckLabel {
    /// The app's deep health endpoint, from the gate's settings.
    DeepHealth,
    /// A target group's own health check, named.
    TargetGroup(String),
}

impl std::fmt::Display for CheckLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DeepHealth => f.write_str("deep_health"),
            Self::TargetGroup(name) => write!(f, "target_group:{name}"),
        }
    }
}

/// The most characters of a `Location` header the probe keeps.
pub const MAX_LOCATION_CHARS: usize = 1000;

/// Why a probe got no usable HTTP response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProbeError {
    /// The TCP connection was refused: nothing listens on the port.
    ConnectionRefused,
    /// No complete answer within the probe timeout.
    Timeout {
        /// How far it got: `connect`, `response` (status line and headers) or `body`.
        phase: &'static str,
    },
    /// The peer reset or closed the connection before a complete response.
    ConnectionReset,
    /// The TLS handshake failed (for example a plain HTTP port probed with HTTPS).
    Tls {
        /// The TLS library's message.
        detail: String,
    },
    /// The bytes received are not HTTP/1.x.
    MalformedResponse {
        /// The parser's message.
        detail: String,
    },
    /// No route to the address, or another network error.
    Network {
        /// The error.
        detail: String,
    },
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ConnectionRefused => f.write_str("connection refused"),
            Self::Timeout { phase } => write!(f, "timed out waiting for the {phase}"),
            Self::ConnectionReset => f.write_str("connection reset before a complete response"),
            Self::Tls { detail } => write!(f, "TLS handshake failed: {detail}"),
            Self::MalformedResponse { detail } => write!(f, "malformed HTTP response: {detail}"),
            Self::Network { detail } => write!(f, "network error: {detail}"),
        }
    }
}

/// What one probe saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeOutcome {
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Whether the probe passed: a status in the matcher, and the body read in time.
    pub passed: bool,
    /// Time from the start of the probe to its end, milliseconds.
    pub latency_ms: u64,
    /// Why there is no usable response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ProbeError>,
    /// The `Location` header of a redirect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The `Content-Type` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Why the body fails an expectation, when the status matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_mismatch: Option<String>,
    /// The first `body_limit` bytes of the body, lossily decoded as UTF-8.
    #[serde(skip)]
    pub body: String,
}

impl ProbeOutcome {
    /// What came back, in a few words: the error, else the status, else `no answer`.
    pub fn answer(&self) -> String {
        match (&self.error, self.status) {
            (Some(e), _) => e.to_string(),
            (None, Some(status)) => status.to_string(),
            (None, None) => "no answer".into(),
        }
    }
}

/// The capability to probe an instance. [`HttpProber`] is the real one.
pub trait Prober: Send + Sync {
    /// Sends one probe; never fails: a failure is an outcome.
    fn probe(&self, request: &ProbeRequest) -> impl Future<Output = ProbeOutcome> + Send;
}

/// Probes over HTTP/1.1 with hyper, and TLS with rustls. Build it once and share it.
#[derive(Clone)]
pub struct HttpProber {
    tls: TlsConnector,
}

impl std::fmt::Debug for HttpProber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpProber")
    }
}

impl Default for HttpProber {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpProber {
    /// A prober whose HTTPS, like the ELB health checker's, accepts any certificate.
    pub fn new() -> Self {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the default provider supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        Self {
            tls: TlsConnector::from(Arc::new(config)),
        }
    }
}

/// Accepts any server certificate, as the ELB health checker does; handshake signatures
/// are still verified.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl Prober for HttpProber {
    async fn probe(&self, request: &ProbeRequest) -> ProbeOutcome {
        let started = Instant::now();
        let deadline = started + request.timeout;
        let result = self.exchange(request, deadline).await;
        let latency_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(r) => {
                let status_ok = request.matcher.matches(r.status);
                let body_mismatch = if status_ok {
                    request.expect.iter().find_map(|e| e.check(&r.body).err())
                } else {
                    None
                };
                ProbeOutcome {
                    passed: status_ok && body_mismatch.is_none(),
                    body_mismatch,
                    status: Some(r.status),
                    latency_ms,
                    error: None,
                    location: r.location,
                    content_type: r.content_type,
                    body: r.body,
                }
            }
            Err(Failure { error, status }) => ProbeOutcome {
                status,
                passed: false,
                body_mismatch: None,
                latency_ms,
                error: Some(error),
                location: None,
                content_type: None,
                body: String::new(),
            },
        }
    }
}

struct Response {
    status: u16,
    location: Option<String>,
    content_type: Option<String>,
    body: String,
}

struct Failure {
    error: ProbeError,
    status: Option<u16>,
}

impl From<ProbeError> for Failure {
    fn from(error: ProbeError) -> Self {
        Self {
            error,
            status: None,
        }
    }
}

impl HttpProber {
    async fn exchange(
        &self,
        request: &ProbeRequest,
        deadline: Instant,
    ) -> Result<Response, Failure> {
        let addr = SocketAddr::new(request.ip, request.port);
        let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => return Err(ProbeError::Timeout { phase: "connect" }.into()),
            Ok(Err(e)) => return Err(io_error(&e).into()),
            Ok(Ok(s)) => s,
        };
        match request.scheme {
            Scheme::Http => http_exchange(stream, request, deadline).await,
            Scheme::Https => {
                let name = ServerName::IpAddress(request.ip.into());
                let tls =
                    match tokio::time::timeout_at(deadline, self.tls.connect(name, stream)).await {
                        Err(_) => {
                            return Err(ProbeError::Timeout {
                                phase: "TLS handshake",
                            }
                            .into());
                        }
                        Ok(Err(e)) => {
                            return Err(ProbeError::Tls {
                                detail: e.to_string(),
                            }
                            .into());
                        }
                        Ok(Ok(s)) => s,
                    };
                http_exchange(tls, request, deadline).await
            }
        }
    }
}

async fn http_exchange<S>(
    stream: S,
    request: &ProbeRequest,
    deadline: Instant,
) -> Result<Response, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = match tokio::time::timeout_at(
        deadline,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    {
        Err(_) => return Err(ProbeError::Timeout { phase: "connect" }.into()),
        Ok(Err(e)) => return Err(hyper_error(&e).into()),
        Ok(Ok(pair)) => pair,
    };
    // The connection task ends with the exchange; aborting it on every exit path closes
    // the socket even when the peer never does.
    let driver = AbortOnDrop(tokio::spawn(connection));
    let req = Request::get(request.path.as_str())
        .header(HOST, request.host.as_str())
        .header(USER_AGENT, request.user_agent)
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| ProbeError::Network {
            detail: format!("cannot build the request: {e}"),
        })?;
    let response = match tokio::time::timeout_at(deadline, sender.send_request(req)).await {
        Err(_) => return Err(ProbeError::Timeout { phase: "response" }.into()),
        Ok(Err(e)) => return Err(hyper_error(&e).into()),
        Ok(Ok(r)) => r,
    };
    let status = response.status().as_u16();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &hyper::header::HeaderValue| {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            })
    };
    // Kept in records and events: clipped where read, whatever the app sends.
    // Its query may carry a secret (an OAuth code, a presigned signature): never kept.
    let location = header(LOCATION)
        .map(|l| crate::text::clip(&crate::text::redact_url(&l), MAX_LOCATION_CHARS));
    let content_type = header(CONTENT_TYPE).map(|t| crate::text::clip(&t, 200));
    // The whole body must arrive within the timeout, as for the ELB; only the first
    // `body_limit` bytes are kept. An endless or trickling body is a timeout.
    let mut body = response.into_body();
    let mut buf = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(Failure {
                    error: ProbeError::Timeout { phase: "body" },
                    status: Some(status),
                });
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(Failure {
                    error: hyper_error(&e),
                    status: Some(status),
                });
            }
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let room = request.body_limit.saturating_sub(buf.len());
                    buf.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
        }
    }
    drop(driver);
    Ok(Response {
        status,
        location,
        content_type,
        body: String::from_utf8_lossy(&buf).into_owned(),
    })
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn io_error(e: &io::Error) -> ProbeError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ProbeError::ConnectionRefused,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => ProbeError::ConnectionReset,
        io::ErrorKind::TimedOut => ProbeError::Timeout { phase: "connect" },
        _ => ProbeError::Network {
            detail: e.to_string(),
        },
    }
}

fn hyper_error(e: &hyper::Error) -> ProbeError {
    if e.is_parse() || e.is_parse_status() {
        return ProbeError::MalformedResponse {
            detail: e.to_string(),
        };
    }
    if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        return ProbeError::ConnectionReset;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return io_error(io);
        }
        source = s.source();
    }
    ProbeError::Network {
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests;
