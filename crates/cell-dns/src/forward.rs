//! Names outside the cell's zone are asked of the upstream resolvers, and the answers kept
//! for their TTL: a second asker is answered from the cache, without an upstream query.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RecordType};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one upstream gets before the next is asked.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Bounds on how long an answer is kept, whatever its TTL says.
const MIN_KEEP: u32 = 5;
const MAX_KEEP: u32 = 3600;
const NEGATIVE_KEEP: u32 = 60;
/// Entries kept at most; when it is full the expired ones go, and if that is not enough,
/// all of them.
const CACHE_SIZE: usize = 10_000;
/// The UDP payload advertised upstream (EDNS): the size the DNS flag day settled on, so
/// answers are not fragmented; a bigger one comes truncated and is asked again over TCP.
const UDP_PAYLOAD: u16 = 1232;

/// An answer kept: when it was received, until when it may be given, the answer.
type Kept = (Instant, Instant, Message);

#[derive(Debug, Default)]
pub struct Forwarder {
    cache: Mutex<HashMap<(Name, RecordType), Kept>>,
    sent: AtomicU64,
}

impl Forwarder {
    /// Queries sent upstream since start.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// A fresh answer from the cache, its TTLs lowered by the time it was kept.
    fn cached(&self, key: &(Name, RecordType)) -> Option<Message> {
        let now = Instant::now();
        let (received, mut answer) = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            let (received, _, answer) = cache.get(key).filter(|(_, until, _)| *until > now)?;
            (*received, answer.clone())
        };
        let aged = u32::try_from(now.duration_since(received).as_secs()).unwrap_or(u32::MAX);
        for record in answer
            .answers
            .iter_mut()
            .chain(answer.authorities.iter_mut())
            .chain(answer.additionals.iter_mut())
        {
            record.ttl = record.ttl.saturating_sub(aged);
        }
        Some(answer)
    }

    fn keep(&self, key: (Name, RecordType), answer: &Message) {
        // A negative answer is kept for its SOA's TTL (RFC 2308), within bounds.
        let ttl = answer
            .answers
            .iter()
            .map(|r| r.ttl)
            .min()
            .or_else(|| {
                answer
                    .authorities
                    .iter()
                    .map(|r| r.ttl.min(NEGATIVE_KEEP))
                    .min()
            })
            .unwrap_or(NEGATIVE_KEEP)
            .clamp(MIN_KEEP, MAX_KEEP);
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_SIZE {
            cache.retain(|_, (_, until, _)| *until > now);
            if cache.len() >= CACHE_SIZE {
                cache.clear();
            }
        }
        cache.insert(
            key,
            (
                now,
                now + Duration::from_secs(u64::from(ttl)),
                answer.clone(),
            ),
        );
    }

    /// The upstreams' answer to `name`/`kind`, from the cache when it is fresh; None when
    /// no upstream answered. With `tls`, they are asked over DNS-over-TLS and must show a
    /// certificate for that name.
    pub async fn resolve(
        &self,
        upstreams: &[SocketAddr],
        tls: Option<&str>,
        name: &Name,
        kind: RecordType,
    ) -> Option<Message> {
        let key = (name.to_lowercase(), kind);
        if let Some(answer) = self.cached(&key) {
            return Some(answer);
        }
        for upstream in upstreams {
            let asked = match tls {
                Some(tls_name) => self.ask_tls(*upstream, tls_name, name, kind).await,
                None => self.ask(*upstream, name, kind).await,
            };
            match asked {
                Ok(answer) if answer.metadata.response_code != ResponseCode::ServFail => {
                    self.keep(key, &answer);
                    return Some(answer);
                }
                Ok(_) => tracing::debug!(%upstream, %name, "upstream failed the query"),
                Err(error) => tracing::debug!(%upstream, %name, %error, "upstream did not answer"),
            }
        }
        None
    }

    /// Asks `upstream` over TLS (RFC 7858), checking its certificate against `tls_name`
    /// with the system's certificate authorities.
    async fn ask_tls(
        &self,
        upstream: SocketAddr,
        tls_name: &str,
        name: &Name,
        kind: RecordType,
    ) -> Result<Message, String> {
        let (bytes, id) = query_bytes(name, kind)?;
        let config = tls_config()?;
        let server_name = ServerName::try_from(tls_name.to_owned())
            .map_err(|e| format!("'{tls_name}' as a TLS name: {e}"))?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        let exchange = async {
            let tcp = TcpStream::connect(upstream)
                .await
                .map_err(|e| e.to_string())?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(server_name, tcp)
                .await
                .map_err(|e| format!("TLS with {upstream} as {tls_name}: {e}"))?;
            exchange_framed(stream, &bytes, id, name).await
        };
        tokio::time::timeout(UPSTREAM_TIMEOUT, exchange)
            .await
            .map_err(|_| "timed out over TLS".to_owned())?
    }

    /// Asks `upstream` over UDP, and again over TCP when the answer comes truncated.
    async fn ask(
        &self,
        upstream: SocketAddr,
        name: &Name,
        kind: RecordType,
    ) -> Result<Message, String> {
        let (bytes, id) = query_bytes(name, kind)?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        let answer = tokio::time::timeout(UPSTREAM_TIMEOUT, ask_udp(upstream, &bytes, id, name))
            .await
            .map_err(|_| "timed out".to_owned())??;
        if !answer.metadata.truncation {
            return Ok(answer);
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
        tokio::time::timeout(UPSTREAM_TIMEOUT, ask_tcp(upstream, &bytes, id, name))
            .await
            .map_err(|_| "timed out over TCP".to_owned())?
    }
}

/// A recursive query for `name`/`kind` with EDNS, and its id.
fn query_bytes(name: &Name, kind: RecordType) -> Result<(Vec<u8>, u16), String> {
    let id: u16 = rand_id();
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name.clone(), kind));
    let mut edns = Edns::new();
    edns.set_max_payload(UDP_PAYLOAD);
    query.set_edns(edns);
    Ok((query.to_vec().map_err(|e| e.to_string())?, id))
}

/// The TLS client settings for upstreams: the system's certificate authorities (the
/// image's ca-certificates), made once.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for certificate in found.certs {
                // One unreadable certificate does not take the others with it.
                let _ = roots.add(certificate);
            }
            if roots.is_empty() {
                return Err(format!(
                    "no certificate authorities to check the upstreams with ({} errors)",
                    found.errors.len()
                ));
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

fn is_answer_to(answer: &Message, id: u16, name: &Name) -> bool {
    answer.metadata.id == id && answer.queries.first().is_some_and(|q| q.name() == name)
}

async fn ask_udp(
    upstream: SocketAddr,
    query: &[u8],
    id: u16,
    name: &Name,
) -> Result<Message, String> {
    let local: SocketAddr = if upstream.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    socket
        .send_to(query, upstream)
        .await
        .map_err(|e| e.to_string())?;
    let mut buffer = vec![0u8; usize::from(UDP_PAYLOAD).max(4096)];
    loop {
        let (n, from) = socket
            .recv_from(&mut buffer)
            .await
            .map_err(|e| e.to_string())?;
        // Only the upstream's answer to this query counts (no spoofed replies).
        if from != upstream {
            continue;
        }
        let Ok(answer) = Message::from_vec(&buffer[..n]) else {
            continue;
        };
        if is_answer_to(&answer, id, name) {
            return Ok(answer);
        }
    }
}

async fn ask_tcp(
    upstream: SocketAddr,
    query: &[u8],
    id: u16,
    name: &Name,
) -> Result<Message, String> {
    let stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| e.to_string())?;
    exchange_framed(stream, query, id, name).await
}

/// One query and its answer over a stream, each behind its two-byte length (RFC 1035
/// 4.2.2, and RFC 7858 over TLS).
async fn exchange_framed<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    query: &[u8],
    id: u16,
    name: &Name,
) -> Result<Message, String> {
    let length = u16::try_from(query.len()).map_err(|e| e.to_string())?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await.map_err(|e| e.to_string())?;
    let length = stream.read_u16().await.map_err(|e| e.to_string())?;
    let mut buffer = vec![0u8; usize::from(length)];
    stream
        .read_exact(&mut buffer)
        .await
        .map_err(|e| e.to_string())?;
    let answer = Message::from_vec(&buffer).map_err(|e| e.to_string())?;
    if is_answer_to(&answer, id, name) {
        Ok(answer)
    } else {
        Err("an answer to another query".to_owned())
    }
}

fn rand_id() -> u16 {
    rand::random()
}
