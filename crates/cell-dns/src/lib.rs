//! cell-dns: the cell's own DNS server, on hickory. Authoritative for the cell's zone with
//! an answer per view (a VPN peer gets the VPN addresses, and no name for a service it may
//! not reach; a LAN client gets the LAN addresses). The zone comes from celld, rendered
//! per settings generation, and is swapped whole.

pub mod forward;
pub mod handler;
pub mod listen;
pub mod wire;
pub mod zone;

use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};

pub use forward::Forwarder;
pub use handler::{CellDns, ZoneHandle};
pub use zone::{Explanation, Zone, ZoneSnapshot};

/// How long a TCP client may take to send its query.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);
const TCP_BUFFER: usize = 64 * 1024;

/// A server answering from `zone` on the given sockets until it is shut down.
pub fn serve(
    zone: ZoneHandle,
    forwarder: Arc<Forwarder>,
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
) -> Server<CellDns> {
    serve_with(CellDns::new(zone, forwarder), udp, tcp)
}

/// A server answering with `handler` on the given sockets until it is shut down.
pub fn serve_with(handler: CellDns, udp: Vec<UdpSocket>, tcp: Vec<TcpListener>) -> Server<CellDns> {
    let mut server = Server::new(handler);
    for socket in udp {
        server.register_socket(socket);
    }
    for listener in tcp {
        server.register_listener(listener, TCP_TIMEOUT, TCP_BUFFER);
    }
    server
}
