//! The reverse proxy over real sockets, in front of a stand-in backend (a small hyper
//! server that reports what reached it): method, path, query, headers and body arrive as
//! sent; identity and forwarding headers are ours alone; a 1 GiB upload streams through
//! without the memory growing; body limits, VPN access, WebSocket upgrades, and a backend
//! that is down.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use cell_web::proxy::ProxyRoute;
use cell_web::AppState;
use celld_client::CelldClient;
use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The stand-in backend: answers every request with what it received (the body as its
/// length and SHA-256, read as it streams in); `/ws` upgrades and echoes bytes.
async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|mut request: Request<Incoming>| async move {
                        if request.uri().path() == "/ws" {
                            let upgraded = hyper::upgrade::on(&mut request);
                            tokio::spawn(async move {
                                let mut io = TokioIo::new(upgraded.await.unwrap());
                                let mut buffer = [0u8; 64];
                                let n = io.read(&mut buffer).await.unwrap();
                                io.write_all(&buffer[..n]).await.unwrap();
                            });
                            return Ok::<_, Infallible>(
                                Response::builder()
                                    .status(101)
                                    .header("connection", "upgrade")
                                    .header("upgrade", "websocket")
                                    .body(http_body_util::Full::new(Bytes::new()))
                                    .unwrap(),
                            );
                        }
                        let headers: serde_json::Map<String, Value> = request
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
                            .collect();
                        let method = request.method().to_string();
                        let target = request.uri().to_string();
                        let mut body = request.into_body();
                        let mut hash = Sha256::new();
                        let mut length = 0u64;
                        while let Some(frame) = body.frame().await {
                            if let Ok(data) = frame.unwrap().into_data() {
                                length += data.len() as u64;
                                hash.update(&data);
                            }
                        }
                        let report = json!({
                            "method": method, "target": target, "headers": headers,
                            "length": length, "sha256": hex::encode(hash.finalize()),
                        });
                        Ok(Response::builder()
                            .header("content-type", "application/json")
                            .header("connection", "keep-alive, x-hop")
                            .header("x-hop", "must not reach the client")
                            .body(http_body_util::Full::new(Bytes::from(report.to_string())))
                            .unwrap())
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    address
}

/// cell-web's whole app (its UI would need celld: none here) with `routes` installed.
async fn front(routes: Vec<ProxyRoute>) -> SocketAddr {
    let state = AppState::new(CelldClient::new("/nonexistent/celld.sock"), true);
    state.proxy.install(routes);
    let app = cell_web::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

fn route(host: &str, backend: SocketAddr) -> ProxyRoute {
    ProxyRoute {
        host: host.into(),
        backend,
        body_limit: None,
        vpn_networks: Vec::new(),
        vpn_allowed: HashSet::new(),
        login: None,
        quota: false,
    }
}

async fn send(front: SocketAddr, request: Request<Body>) -> (u16, hyper::HeaderMap, Bytes) {
    let stream = TcpStream::connect(front).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let answer = sender.send_request(request).await.unwrap();
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body)
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn requests_arrive_as_sent_with_only_our_identity_and_forwarding_headers() {
    let backend = backend().await;
    let front = front(vec![route("files.home.cell", backend)]).await;
    let body = vec![7u8; 1 << 20];
    let request = Request::put("/dav/a%20file.txt?x=1&y=two")
        .header("host", "files.home.cell")
        .header("x-custom", "kept")
        .header("x-remote-user", "mallory")
        .header("x-forwarded-for", "6.6.6.6")
        .header("forwarded", "for=6.6.6.6")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "connection-specific")
        .header("te", "trailers")
        .body(Body::from(body.clone()))
        .unwrap();
    let (status, headers, answer) = send(front, request).await;
    assert_eq!(status, 200, "{answer:?}");
    let seen: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(seen["method"], "PUT");
    assert_eq!(seen["target"], "/dav/a%20file.txt?x=1&y=two");
    assert_eq!(seen["length"], 1 << 20);
    assert_eq!(seen["sha256"], hex::encode(Sha256::digest(&body)));
    let got = &seen["headers"];
    assert_eq!(got["x-custom"], "kept");
    assert_eq!(got["host"], "files.home.cell");
    assert!(
        got.get("x-remote-user").is_none(),
        "a client's identity header never passes: {got}"
    );
    assert_eq!(
        got["x-forwarded-for"], "127.0.0.1",
        "ours, not the client's: {got}"
    );
    assert_eq!(got["x-forwarded-proto"], "https");
    assert_eq!(
        got["forwarded"],
        "for=127.0.0.1;proto=https;host=\"files.home.cell\""
    );
    assert!(
        got.get("x-hop").is_none() && got.get("te").is_none(),
        "hop-by-hop dropped: {got}"
    );
    assert!(
        headers.get("x-hop").is_none(),
        "and on the way back: {headers:?}"
    );
    assert!(
        headers.get("content-security-policy").is_none(),
        "the UI's headers are not put on a service's answers"
    );

    // Another name is not proxied: it reaches the UI (which has no celld here).
    let request = Request::get("/health")
        .header("host", "home.cell")
        .body(Body::empty())
        .unwrap();
    let (status, _, _) = send(front, request).await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn a_one_gib_upload_streams_through_without_the_memory_growing() {
    let backend = backend().await;
    let front = front(vec![route("files.home.cell", backend)]).await;
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 1024;
    let before = peak_rss_kib();
    let chunks = futures_stream(CHUNK, CHUNKS);
    let request = Request::put("/big")
        .header("host", "files.home.cell")
        .header("content-length", (CHUNK * CHUNKS).to_string())
        .body(Body::new(chunks))
        .unwrap();
    let (status, _, answer) = send(front, request).await;
    assert_eq!(status, 200);
    let seen: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(seen["length"], (CHUNK * CHUNKS) as u64, "1 GiB arrived");
    let grown = peak_rss_kib().saturating_sub(before);
    println!(
        "# 1 GiB through the proxy: peak memory grew by {} MiB",
        grown / 1024
    );
    assert!(grown < 64 * 1024, "streamed, not held: grew {grown} KiB");
}

/// A body of `count` chunks of `size` bytes, made as it is read.
fn futures_stream(
    size: usize,
    count: usize,
) -> http_body_util::StreamBody<impl futures_core::Stream<Item = Result<Frame<Bytes>, Infallible>>>
{
    let chunk = Bytes::from(vec![1u8; size]);
    let stream = tokio_stream_iter(std::iter::repeat_n(chunk, count).map(|c| Ok(Frame::data(c))));
    http_body_util::StreamBody::new(stream)
}

fn tokio_stream_iter<I: Iterator>(iter: I) -> IterStream<I> {
    IterStream(iter)
}

struct IterStream<I>(I);

impl<I: Iterator + Unpin> futures_core::Stream for IterStream<I> {
    type Item = I::Item;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<I::Item>> {
        std::task::Poll::Ready(self.0.next())
    }
}

#[tokio::test]
async fn limits_access_upgrades_and_a_dead_backend() {
    let backend = backend().await;
    let mut limited = route("files.home.cell", backend);
    limited.body_limit = Some(1 << 20);
    let mut vpn_only = route("calendar.home.cell", backend);
    vpn_only.vpn_networks = vec![(IpAddr::from([127, 0, 0, 0]), 8)];
    let mut dead = route("mail.home.cell", "127.0.0.1:1".parse().unwrap());
    dead.body_limit = None;
    let front = front(vec![
        limited,
        vpn_only,
        dead,
        route("ws.home.cell", backend),
    ])
    .await;

    let too_big = Request::put("/x")
        .header("host", "files.home.cell")
        .body(Body::from(vec![0u8; 2 << 20]))
        .unwrap();
    assert_eq!(send(front, too_big).await.0, 413);
    let fits = Request::put("/x")
        .header("host", "files.home.cell:443")
        .body(Body::from(vec![0u8; 1 << 20]))
        .unwrap();
    assert_eq!(
        send(front, fits).await.0,
        200,
        "the port in Host is ignored"
    );

    // 127.0.0.1 stands for a VPN device here: without access, 403.
    let request = Request::get("/")
        .header("host", "calendar.home.cell")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(front, request).await.0, 403);

    let request = Request::get("/")
        .header("host", "mail.home.cell")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(front, request).await.0, 502);

    // A WebSocket upgrade is joined end to end.
    let mut stream = TcpStream::connect(front).await.unwrap();
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nhost: ws.home.cell\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    stream.write_all(b"hello through the proxy").await.unwrap();
    let mut echo = vec![0u8; 23];
    stream.read_exact(&mut echo).await.unwrap();
    assert_eq!(echo, b"hello through the proxy");
}
