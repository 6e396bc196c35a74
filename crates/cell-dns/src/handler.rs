//! The request handler: every query is answered from the zone snapshot in force, which a
//! new generation replaces whole (an atomic pointer swap: no query sees half of one, none
//! is dropped while it happens).

use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::Name;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use crate::forward::Forwarder;
use crate::zone::Zone;

/// The zone in force; [`ZoneHandle::replace`] swaps in the next generation.
#[derive(Debug, Clone)]
pub struct ZoneHandle(Arc<ArcSwap<Zone>>);

impl ZoneHandle {
    pub fn new(zone: Zone) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(zone)))
    }

    pub fn replace(&self, zone: Zone) {
        self.0.store(Arc::new(zone));
    }

    pub fn current(&self) -> Arc<Zone> {
        self.0.load_full()
    }
}

/// Answers queries from the zone in force, and forwards the rest to its upstreams.
#[derive(Debug, Clone)]
pub struct CellDns {
    zone: ZoneHandle,
    forwarder: Arc<Forwarder>,
}

impl CellDns {
    pub fn new(zone: ZoneHandle, forwarder: Arc<Forwarder>) -> Self {
        Self { zone, forwarder }
    }
}

fn failed(request: &Request, code: ResponseCode) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = code;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

#[async_trait::async_trait]
impl RequestHandler for CellDns {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        // Queries only: no updates, notifies or zone transfers of the cell's names.
        if request.metadata.op_code != OpCode::Query {
            let response = builder.error_msg(&request.metadata, ResponseCode::NotImp);
            return match response_handle.send_response(response).await {
                Ok(info) => info,
                Err(_) => failed(request, ResponseCode::NotImp),
            };
        }
        let Ok(info) = request.request_info() else {
            // Not exactly one question: FORMERR, as the RFCs ask.
            let response = builder.error_msg(&request.metadata, ResponseCode::FormErr);
            return match response_handle.send_response(response).await {
                Ok(info) => info,
                Err(_) => failed(request, ResponseCode::FormErr),
            };
        };
        let zone = self.zone.current();
        let name = Name::from(info.query.name().clone());
        let kind = info.query.query_type();
        let answer = zone.answer(&name, kind, info.src.ip());
        let (upstreams, tls) = zone.route_for(&name);
        if answer.code == ResponseCode::Refused
            && request.metadata.recursion_desired
            && !upstreams.is_empty()
        {
            let mut metadata = Metadata::response_from_request(&request.metadata);
            metadata.recursion_available = true;
            let Some(forwarded) = self.forwarder.resolve(upstreams, tls, &name, kind).await else {
                let response = builder.error_msg(&request.metadata, ResponseCode::ServFail);
                return match response_handle.send_response(response).await {
                    Ok(info) => info,
                    Err(_) => failed(request, ResponseCode::ServFail),
                };
            };
            metadata.response_code = forwarded.metadata.response_code;
            let response = builder.build(
                metadata,
                forwarded.answers.iter(),
                forwarded.authorities.iter(),
                std::iter::empty(),
                forwarded.additionals.iter(),
            );
            return match response_handle.send_response(response).await {
                Ok(info) => info,
                Err(error) => {
                    tracing::warn!(%error, "sending a forwarded DNS answer");
                    failed(request, ResponseCode::ServFail)
                }
            };
        }
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = answer.authoritative;
        metadata.recursion_available = false;
        metadata.response_code = answer.code;
        let response = builder.build(
            metadata,
            answer.answers.iter(),
            std::iter::empty(),
            answer.authorities.iter(),
            std::iter::empty(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                tracing::warn!(%error, "sending a DNS answer");
                failed(request, ResponseCode::ServFail)
            }
        }
    }
}
