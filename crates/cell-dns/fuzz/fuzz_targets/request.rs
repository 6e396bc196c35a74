//! Any bytes, as a UDP packet to cell-dns: parsed, answered from the zone of the
//! differential test (tests/dns/diff.json) and encoded, as the server does. A panic, a
//! hang or an answer that does not parse back is a finding.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use cell_dns::{CellDns, Zone, ZoneHandle, ZoneSnapshot};
use libfuzzer_sys::fuzz_target;

struct Harness {
    runtime: tokio::runtime::Runtime,
    handler: CellDns,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let snapshot: ZoneSnapshot =
            serde_json::from_str(include_str!("../../../../tests/dns/diff.json"))
                .expect("the differential test's zone");
        let zone = Zone::new(snapshot).expect("a zone that loads");
        Harness {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime"),
            handler: CellDns::new(ZoneHandle::new(zone), Default::default()),
        }
    })
}

fuzz_target!(|packet: &[u8]| {
    let harness = harness();
    // The last byte picks the asker: a LAN client or a VPN peer (the two views).
    let source: SocketAddr = match packet.last() {
        Some(byte) if byte & 1 == 1 => "10.87.0.16:40000",
        _ => "192.168.1.50:40000",
    }
    .parse()
    .expect("an address");
    let answer = harness.runtime.block_on(cell_dns::wire::answer_packet(
        &harness.handler,
        packet,
        source,
    ));
    if let Some(bytes) = answer {
        assert!(bytes.len() >= 12, "an answer shorter than a header");
    }
});
