//! Names outside the cell's zone are asked of the upstream resolvers, and the answers kept
//! for their TTL: a second asker is answered from the cache, without an upstream query.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RecordType};
use tokio::net::UdpSocket;

/// How long one upstream gets before the next is asked.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Bounds on how long an answer is kept, whatever its TTL says.
const MIN_KEEP: u32 = 5;
const MAX_KEEP: u32 = 3600;
const NEGATIVE_KEEP: u32 = 60;
/// Entries kept at most; the oldest half goes when it is full.
const CACHE_SIZE: usize = 10_000;

#[derive(Debug, Default)]
pub struct Forwarder {
    cache: Mutex<HashMap<(Name, RecordType), (Instant, Message)>>,
    sent: AtomicU64,
}

impl Forwarder {
    /// Queries sent upstream since start.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn cached(&self, key: &(Name, RecordType)) -> Option<Message> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|(until, _)| *until > Instant::now())
            .map(|(_, answer)| answer.clone())
    }

    fn keep(&self, key: (Name, RecordType), answer: &Message) {
        let ttl = answer
            .answers
            .iter()
            .map(|r| r.ttl)
            .min()
            .unwrap_or(NEGATIVE_KEEP)
            .clamp(MIN_KEEP, MAX_KEEP);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_SIZE {
            let now = Instant::now();
            cache.retain(|_, (until, _)| *until > now);
            if cache.len() >= CACHE_SIZE {
                cache.clear();
            }
        }
        cache.insert(
            key,
            (
                Instant::now() + Duration::from_secs(u64::from(ttl)),
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

    async fn ask(
        &self,
        upstream: SocketAddr,
        name: &Name,
        kind: RecordType,
    ) -> Result<Message, String> {
        let local: SocketAddr = if upstream.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
        let id: u16 = rand_id();
        let mut query = Message::new(id, MessageType::Query, OpCode::Query);
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(name.clone(), kind));
        let bytes = query.to_vec().map_err(|e| e.to_string())?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        socket
            .send_to(&bytes, upstream)
            .await
            .map_err(|e| e.to_string())?;
        let mut buffer = vec![0u8; 4096];
        let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
        loop {
            let (n, from) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buffer))
                .await
                .map_err(|_| "timed out".to_owned())?
                .map_err(|e| e.to_string())?;
            // Only the upstream's answer to this query counts (no spoofed replies).
            if from != upstream {
                continue;
            }
            let Ok(answer) = Message::from_vec(&buffer[..n]) else {
                continue;
            };
            if answer.metadata.id == id && answer.queries.first().is_some_and(|q| q.name() == name)
            {
                return Ok(answer);
            }
        }
    }
}

fn rand_id() -> u16 {
    rand::random()
}
