//! One packet in, one answer out, without sockets: the request path the server runs
//! (parse, answer, encode), for the fuzz target and the malformed-packet tests.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::proto::op::MessageType;
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;

use crate::handler::CellDns;

/// The largest UDP answer without EDNS (RFC 1035 section 4.2.1).
const PLAIN_UDP: u16 = 512;

/// What `handler` sends back to `packet` from `source` over UDP: the answer's bytes, or
/// None when the packet never reaches it (it does not parse as a DNS request, or it is a
/// response, which the server drops against reflection).
pub async fn answer_packet(
    handler: &CellDns,
    packet: &[u8],
    source: SocketAddr,
) -> Option<Vec<u8>> {
    let request = Request::from_bytes(packet.to_vec(), source, Protocol::Udp).ok()?;
    if request.metadata.message_type == MessageType::Response {
        return None;
    }
    let capture = Capture::default();
    handler
        .handle_request::<_, TokioTime>(&request, capture.clone())
        .await;
    let bytes = capture.0.lock().unwrap_or_else(|p| p.into_inner()).take();
    bytes
}

/// Keeps the encoded answer instead of sending it.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Option<Vec<u8>>>>);

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let limit = response.edns().map_or(PLAIN_UDP, |edns| edns.max_payload());
        let mut bytes = Vec::new();
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(limit);
        let info = response.destructive_emit(&mut encoder)?;
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(bytes);
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Zone, ZoneHandle};
    use hickory_server::proto::op::{Message, ResponseCode};

    fn handler() -> CellDns {
        let zone = Zone::new(crate::zone::tests::home()).unwrap();
        CellDns::new(ZoneHandle::new(zone), Default::default())
    }

    fn query(id: u16, flags: u16, qdcount: u16, question: &[u8]) -> Vec<u8> {
        let mut packet = Vec::new();
        for field in [id, flags, qdcount, 0, 0, 0] {
            packet.extend_from_slice(&field.to_be_bytes());
        }
        packet.extend_from_slice(question);
        packet
    }

    const HOME_A: &[u8] = b"\x04home\x04cell\x00\x00\x01\x00\x01";

    #[tokio::test]
    async fn malformed_packets_get_formerr_or_nothing() {
        let dns = handler();
        let source: SocketAddr = "192.168.1.50:5353".parse().unwrap();
        let good = answer_packet(&dns, &query(1, 0x0100, 1, HOME_A), source)
            .await
            .unwrap();
        let good = Message::from_vec(&good).unwrap();
        assert_eq!(good.metadata.response_code, ResponseCode::NoError);
        assert!(!good.answers.is_empty());
        let two = [HOME_A, HOME_A].concat();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("a short header", vec![0, 1, 1]),
            ("two questions", query(2, 0x0100, 2, &two)),
            ("no question", query(3, 0x0100, 0, b"")),
            (
                "a label running past the end",
                query(4, 0x0100, 1, b"\x3fhome"),
            ),
            (
                "a compression loop",
                query(5, 0x0100, 1, b"\xc0\x0c\x00\x01\x00\x01"),
            ),
            (
                "a truncated type",
                query(6, 0x0100, 1, b"\x04home\x04cell\x00\x00"),
            ),
            ("a response, not a query", query(7, 0x8100, 1, HOME_A)),
            ("an UPDATE", query(8, 0x2800, 1, HOME_A)),
            ("a NOTIFY", query(9, 0x2000, 1, HOME_A)),
        ];
        for (what, packet) in cases {
            if let Some(bytes) = answer_packet(&dns, &packet, source).await {
                let answer = Message::from_vec(&bytes).unwrap();
                assert!(
                    matches!(
                        answer.metadata.response_code,
                        ResponseCode::FormErr | ResponseCode::Refused | ResponseCode::NotImp
                    ),
                    "{what}: {:?}",
                    answer.metadata.response_code
                );
            }
        }
    }
}
