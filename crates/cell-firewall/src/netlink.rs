//! Set-element updates sent straight to nf_tables over netlink, as one batch: atomic like
//! an `nft -f` transaction, without starting a process. This is the per-peer path (adding,
//! removing, re-permissioning a device); whole-table writes go through nft.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use netlink_sys::protocols::NETLINK_NETFILTER;
use netlink_sys::{Socket, SocketAddr};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 0x2;
const NLA_F_NESTED: u16 = 0x8000;
const NFPROTO_INET: u8 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_DATA_VALUE: u16 = 1;
const HEADER: usize = 16;
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Members to add to, or delete from, one set of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementChange {
    pub set: String,
    pub add: bool,
    pub members: Vec<IpAddr>,
}

fn align(buf: &mut Vec<u8>) {
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

fn set_len_u16(buf: &mut [u8], at: usize) {
    let len = u16::try_from(buf.len() - at).unwrap_or(u16::MAX);
    buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
}

fn attribute(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = u16::try_from(4 + payload.len()).unwrap_or(u16::MAX);
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    align(buf);
}

fn nested(buf: &mut Vec<u8>, kind: u16, fill: impl FnOnce(&mut Vec<u8>)) {
    let at = buf.len();
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    fill(buf);
    set_len_u16(buf, at);
    align(buf);
}

fn message(
    buf: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    body: impl FnOnce(&mut Vec<u8>),
) {
    let at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.push(family);
    buf.push(0);
    buf.extend_from_slice(&res_id.to_be_bytes());
    body(buf);
    align(buf);
    let len = u32::try_from(buf.len() - at).unwrap_or(u32::MAX);
    buf[at..at + 4].copy_from_slice(&len.to_ne_bytes());
}

fn key_bytes(address: &IpAddr) -> Vec<u8> {
    match address {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// The batch: begin, one message per change (each asking for an acknowledgement), end.
pub fn encode(table: &str, changes: &[ElementChange], first_seq: u32) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut seq = first_seq;
    message(
        &mut buf,
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        seq,
        0,
        NFNL_SUBSYS_NFTABLES,
        |_| {},
    );
    for change in changes {
        seq += 1;
        let (verb, create) = if change.add {
            (NFT_MSG_NEWSETELEM, NLM_F_CREATE)
        } else {
            (NFT_MSG_DELSETELEM, 0)
        };
        let kind = (NFNL_SUBSYS_NFTABLES << 8) | verb;
        message(
            &mut buf,
            kind,
            NLM_F_REQUEST | NLM_F_ACK | create,
            seq,
            NFPROTO_INET,
            0,
            |buf| {
                attribute(
                    buf,
                    NFTA_SET_ELEM_LIST_TABLE,
                    format!("{table}\0").as_bytes(),
                );
                attribute(
                    buf,
                    NFTA_SET_ELEM_LIST_SET,
                    format!("{}\0", change.set).as_bytes(),
                );
                nested(buf, NFTA_SET_ELEM_LIST_ELEMENTS, |buf| {
                    for member in &change.members {
                        nested(buf, NFTA_LIST_ELEM, |buf| {
                            nested(buf, NFTA_SET_ELEM_KEY, |buf| {
                                attribute(buf, NFTA_DATA_VALUE, &key_bytes(member));
                            });
                        });
                    }
                });
            },
        );
    }
    seq += 1;
    message(
        &mut buf,
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        seq,
        0,
        NFNL_SUBSYS_NFTABLES,
        |_| {},
    );
    buf
}

/// A netfilter netlink socket, opened once and reused for every batch.
#[derive(Debug)]
pub struct Netfilter {
    socket: Socket,
    seq: u32,
}

impl Netfilter {
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        set_receive_timeout(&socket)?;
        Ok(Self { socket, seq: 0 })
    }

    /// Applies `changes` to `table` (family inet) in one transaction: all or nothing.
    pub fn apply(&mut self, table: &str, changes: &[ElementChange]) -> io::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let first_seq = self.seq.wrapping_add(1);
        let batch = encode(table, changes, first_seq);
        self.seq = first_seq.wrapping_add(changes.len() as u32 + 1);
        self.socket.send(&batch, 0)?;
        wait_for_acks(&self.socket, changes.len(), first_seq)
    }
}

/// Reads replies until every change is acknowledged; the first error aborts the batch in
/// the kernel and is returned here. Replies to earlier batches (sequence numbers before
/// `first_seq`) are skipped.
fn wait_for_acks(socket: &Socket, expected: usize, first_seq: u32) -> io::Result<()> {
    let mut acknowledged = 0;
    while acknowledged < expected {
        let (reply, _) = socket.recv_from_full()?;
        let mut at = 0;
        while at + HEADER <= reply.len() {
            let len = u32::from_ne_bytes([reply[at], reply[at + 1], reply[at + 2], reply[at + 3]])
                as usize;
            let kind = u16::from_ne_bytes([reply[at + 4], reply[at + 5]]);
            let seq =
                u32::from_ne_bytes([reply[at + 8], reply[at + 9], reply[at + 10], reply[at + 11]]);
            if len < HEADER || at + len > reply.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "malformed netlink reply",
                ));
            }
            if kind == NLMSG_ERROR && len >= HEADER + 4 && seq >= first_seq {
                let code = i32::from_ne_bytes([
                    reply[at + HEADER],
                    reply[at + HEADER + 1],
                    reply[at + HEADER + 2],
                    reply[at + HEADER + 3],
                ]);
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(-code));
                }
                acknowledged += 1;
            }
            at += (len + 3) & !3;
        }
    }
    Ok(())
}

fn set_receive_timeout(socket: &Socket) -> io::Result<()> {
    // A blocking socket whose reads give up, so a kernel that never answers cannot hang
    // the reconcile pass.
    let fd = std::os::fd::AsFd::as_fd(socket);
    nix::sys::socket::setsockopt(
        &fd,
        nix::sys::socket::sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(REPLY_TIMEOUT.as_secs() as i64, 0),
    )
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_framed_and_aligned() {
        let changes = [ElementChange {
            set: "files4".into(),
            add: true,
            members: vec!["10.87.0.16".parse().unwrap()],
        }];
        let batch = encode("cell", &changes, 1);
        assert_eq!(batch.len() % 4, 0);
        // begin (20) + element message + end (20)
        let first = u32::from_ne_bytes(batch[0..4].try_into().unwrap()) as usize;
        assert_eq!(first, 20);
        let second = u32::from_ne_bytes(batch[20..24].try_into().unwrap()) as usize;
        assert_eq!(20 + second + 20, batch.len());
        let kind = u16::from_ne_bytes(batch[24..26].try_into().unwrap());
        assert_eq!(kind, (10 << 8) | 12);
        assert!(batch.windows(4).any(|w| w == [10, 87, 0, 16]));
        assert!(batch.windows(7).any(|w| w == b"files4\0"));
    }
}
