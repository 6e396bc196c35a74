//! The sockets cell-dns answers on. The zone lists the cell's own addresses (LAN and
//! VPN); each gets a server of its own, opened when it appears in a new zone and closed
//! when it leaves. Sockets bind with IP_FREEBIND, so an address that is not up yet (the
//! VPN's, before its interface exists) is listened on all the same and answers once it is.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, SocketAddr};

use hickory_server::Server;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};

use crate::handler::CellDns;

const TCP_BACKLOG: i32 = 1024;

fn socket(address: SocketAddr, kind: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(address), kind, Some(protocol))?;
    match address {
        SocketAddr::V4(_) => socket.set_freebind_v4(true)?,
        SocketAddr::V6(_) => {
            socket.set_only_v6(true)?;
            socket.set_freebind_v6(true)?;
        }
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

pub fn bind_udp(address: SocketAddr) -> io::Result<UdpSocket> {
    let socket = socket(address, Type::DGRAM, Protocol::UDP)?;
    socket.bind(&address.into())?;
    UdpSocket::from_std(socket.into())
}

pub fn bind_tcp(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket(address, Type::STREAM, Protocol::TCP)?;
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(TCP_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// One server per address answered on.
pub struct Listeners {
    handler: CellDns,
    port: u16,
    /// Always answered on (the command line's `--listen`).
    fixed: Vec<SocketAddr>,
    open: BTreeMap<SocketAddr, Server<CellDns>>,
    /// Wanted at the last sync but not bound.
    failed: usize,
}

impl Listeners {
    pub fn new(handler: CellDns, port: u16, fixed: Vec<SocketAddr>) -> Self {
        Self {
            handler,
            port,
            fixed,
            open: BTreeMap::new(),
            failed: 0,
        }
    }

    /// Whether an address wanted at the last sync could not be bound.
    pub fn incomplete(&self) -> bool {
        self.failed > 0
    }

    /// The addresses answered on now.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.open.keys().copied().collect()
    }

    /// Opens a server for each wanted address not yet answered on and closes the ones no
    /// longer wanted. An address that cannot be bound is logged (see [`Self::incomplete`]);
    /// the others are not held up by it.
    pub async fn sync(&mut self, zone_addresses: &[IpAddr]) {
        let wanted: BTreeSet<SocketAddr> = self
            .fixed
            .iter()
            .copied()
            .chain(
                zone_addresses
                    .iter()
                    .map(|address| SocketAddr::new(*address, self.port)),
            )
            .collect();
        let gone: Vec<SocketAddr> = self
            .open
            .keys()
            .filter(|address| !wanted.contains(address))
            .copied()
            .collect();
        for address in gone {
            if let Some(mut server) = self.open.remove(&address) {
                match server.shutdown_gracefully().await {
                    Ok(()) => tracing::info!(%address, "no longer answering"),
                    Err(error) => tracing::warn!(%address, %error, "closing a listener"),
                }
            }
        }
        self.failed = 0;
        for address in wanted {
            if self.open.contains_key(&address) {
                continue;
            }
            match bind_udp(address).and_then(|udp| Ok((udp, bind_tcp(address)?))) {
                Ok((udp, tcp)) => {
                    let server = crate::serve_with(self.handler.clone(), vec![udp], vec![tcp]);
                    self.open.insert(address, server);
                    tracing::info!(%address, "answering over UDP and TCP");
                }
                Err(error) => {
                    self.failed += 1;
                    tracing::error!(%address, %error, "cannot listen");
                }
            }
        }
    }

    /// Closes every server, letting queries in flight finish.
    pub async fn close(&mut self) {
        for (address, mut server) in std::mem::take(&mut self.open) {
            if let Err(error) = server.shutdown_gracefully().await {
                tracing::warn!(%address, %error, "closing a listener");
            }
        }
    }
}
