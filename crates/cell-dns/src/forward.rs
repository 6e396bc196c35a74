//! Names outside the cell's zone are asked of the upstream resolvers, and the answers kept
//! for their TTL: a second asker is answered from the cache, without an upstream query.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    /// no upstream answered.
    pub async fn resolve(
        &self,
        upstreams: &[SocketAddr],
        name: &Name,
        kind: RecordType,
    ) -> Option<Message> {
        let key = (name.to_lowercase(), kind);
        if let Some(answer) = self.cached(&key) {
            return Some(answer);
        }
        for upstream in upstreams {
            match self.ask(*upstream, name, kind).await {
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

    /// Asks `upstream` over UDP, and again over TCP when the answer comes truncated.
    async fn ask(
        &self,
        upstream: SocketAddr,
        name: &Name,
        kind: RecordType,
    ) -> Result<Message, String> {
        let id: u16 = rand_id();
        let mut query = Message::new(id, MessageType::Query, OpCode::Query);
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(name.clone(), kind));
        let mut edns = Edns::new();
        edns.set_max_payload(UDP_PAYLOAD);
        query.set_edns(edns);
        let bytes = query.to_vec().map_err(|e| e.to_string())?;
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
    let mut stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| e.to_string())?;
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
