//! cell-dns over real sockets on loopback: UDP and TCP queries, two sources with different
//! access getting different answers (127.0.0.16 and .17 stand in for VPN peers), and a new
//! zone swapped in while queries keep coming, none of them lost.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use cell_dns::zone::{PeerAccess, ZoneName};
use cell_dns::{Zone, ZoneHandle, ZoneSnapshot};
use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

fn snapshot(serial: u32, extra: Option<&str>) -> ZoneSnapshot {
    let mut names = vec![
        ZoneName {
            label: String::new(),
            service: None,
            lan: vec!["192.168.1.2".parse().unwrap()],
            vpn: vec!["10.87.0.1".parse().unwrap()],
        },
        ZoneName {
            label: "files".into(),
            service: Some("files".into()),
            lan: vec!["192.168.1.2".parse().unwrap()],
            vpn: vec!["10.87.0.1".parse().unwrap()],
        },
    ];
    if let Some(label) = extra {
        names.push(ZoneName {
            label: label.into(),
            service: None,
            lan: vec!["192.168.1.9".parse().unwrap()],
            vpn: vec!["10.87.0.9".parse().unwrap()],
        });
    }
    ZoneSnapshot {
        origin: "home.cell.".into(),
        serial,
        ttl: 60,
        names,
        vpn_networks: vec![("127.0.0.16".parse().unwrap(), 28)],
        peers: vec![
            PeerAccess {
                addresses: vec!["127.0.0.16".parse().unwrap()],
                services: vec!["files".into()],
            },
            PeerAccess {
                addresses: vec!["127.0.0.17".parse().unwrap()],
                services: vec![],
            },
        ],
        records: Vec::new(),
        upstreams: Vec::new(),
        forward_zones: Vec::new(),
        listen: Vec::new(),
        upstream_tls: None,
    }
}

fn query(name: &str, kind: RecordType) -> Message {
    let mut message = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
    message
}

fn rand_id() -> u16 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 65_000) as u16
}

async fn udp(server: SocketAddr, from: &str, message: &Message) -> Message {
    let socket = UdpSocket::bind((from.parse::<IpAddr>().unwrap(), 0))
        .await
        .unwrap();
    socket
        .send_to(&message.to_vec().unwrap(), server)
        .await
        .unwrap();
    let mut buffer = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buffer))
        .await
        .expect("an answer within 2 s")
        .unwrap();
    Message::from_vec(&buffer[..n]).unwrap()
}

async fn tcp(server: SocketAddr, message: &Message) -> Message {
    let mut stream = TcpStream::connect(server).await.unwrap();
    let bytes = message.to_vec().unwrap();
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&bytes).await.unwrap();
    let mut length = [0u8; 2];
    stream.read_exact(&mut length).await.unwrap();
    let mut answer = vec![0u8; u16::from_be_bytes(length) as usize];
    stream.read_exact(&mut answer).await.unwrap();
    Message::from_vec(&answer).unwrap()
}

async fn start(zone: ZoneHandle) -> (SocketAddr, SocketAddr) {
    let udp = UdpSocket::bind("0.0.0.0:0").await.unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    let tcp_addr = tcp.local_addr().unwrap();
    let server = cell_dns::serve(zone, Default::default(), vec![udp], vec![tcp]);
    // The server runs for the test's lifetime.
    std::mem::forget(server);
    (SocketAddr::from(([127, 0, 0, 1], udp_port)), tcp_addr)
}

fn first_a(answer: &Message) -> Option<String> {
    answer.answers.iter().find_map(|r| match &r.data {
        RData::A(a) => Some(a.0.to_string()),
        _ => None,
    })
}

#[tokio::test]
async fn answers_over_udp_and_tcp_per_view_and_swaps_zones_without_losing_a_query() {
    let zone = ZoneHandle::new(Zone::new(snapshot(1, None)).unwrap());
    let (udp_addr, tcp_addr) = start(zone.clone()).await;

    let soa = udp(udp_addr, "127.0.0.1", &query("home.cell.", RecordType::SOA)).await;
    assert_eq!(soa.metadata.response_code, ResponseCode::NoError);
    assert!(soa.metadata.authoritative);
    assert!(matches!(&soa.answers[0].data, RData::SOA(s) if s.serial == 1));
    let ns = tcp(tcp_addr, &query("home.cell.", RecordType::NS)).await;
    assert!(matches!(&ns.answers[0].data, RData::NS(_)), "{ns:?}");

    // A LAN client, a peer with files access and one without.
    let files = query("files.home.cell.", RecordType::A);
    assert_eq!(
        first_a(&udp(udp_addr, "127.0.0.1", &files).await).as_deref(),
        Some("192.168.1.2")
    );
    assert_eq!(
        first_a(&udp(udp_addr, "127.0.0.16", &files).await).as_deref(),
        Some("10.87.0.1")
    );
    let hidden = udp(udp_addr, "127.0.0.17", &files).await;
    assert_eq!(hidden.metadata.response_code, ResponseCode::NXDomain);
    assert!(
        matches!(&hidden.authorities[0].data, RData::SOA(_)),
        "negative answers carry the SOA"
    );
    let other = udp(udp_addr, "127.0.0.1", &query("example.org.", RecordType::A)).await;
    assert_eq!(other.metadata.response_code, ResponseCode::Refused);

    // A new generation while queries run: every query is answered, by one zone or the other.
    let printer = query("printer.home.cell.", RecordType::A);
    let load = tokio::spawn(async move {
        let mut answered = 0;
        for _ in 0..200 {
            let answer = udp(udp_addr, "127.0.0.1", &query("home.cell.", RecordType::A)).await;
            assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
            answered += 1;
        }
        answered
    });
    assert_eq!(
        udp(udp_addr, "127.0.0.1", &printer)
            .await
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );
    zone.replace(Zone::new(snapshot(2, Some("printer"))).unwrap());
    let seen = udp(udp_addr, "127.0.0.1", &printer).await;
    assert_eq!(
        first_a(&seen).as_deref(),
        Some("192.168.1.9"),
        "the new record answers at once"
    );
    assert_eq!(load.await.unwrap(), 200, "no query lost during the swap");
}

/// A stand-in for the uplink's resolver: answers www.example.org A with 192.0.2.80 (TTL
/// 300) and anything else NXDOMAIN, counting the queries it gets.
async fn upstream() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use hickory_server::proto::rr::rdata::A;
    use hickory_server::proto::rr::Record;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 4096];
        loop {
            let (n, from) = socket.recv_from(&mut buffer).await.unwrap();
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let query = Message::from_vec(&buffer[..n]).unwrap();
            let mut answer = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
            answer.metadata.recursion_available = true;
            let question = query.queries[0].clone();
            if question.name().to_ascii() == "www.example.org." {
                answer.add_answer(Record::from_rdata(
                    question.name().clone(),
                    300,
                    RData::A(A("192.0.2.80".parse().unwrap())),
                ));
            } else {
                answer.metadata.response_code = ResponseCode::NXDomain;
            }
            answer.add_query(question);
            socket
                .send_to(&answer.to_vec().unwrap(), from)
                .await
                .unwrap();
        }
    });
    (addr, count)
}

#[tokio::test]
async fn other_names_are_forwarded_and_cached() {
    let (upstream, asked) = upstream().await;
    let mut snapshot = snapshot(1, None);
    snapshot.upstreams = vec![upstream];
    let (udp_addr, tcp_addr) = start(ZoneHandle::new(Zone::new(snapshot).unwrap())).await;
    let mut www = query("www.example.org.", RecordType::A);
    www.metadata.recursion_desired = true;
    let first = udp(udp_addr, "127.0.0.1", &www).await;
    assert_eq!(first_a(&first).as_deref(), Some("192.0.2.80"), "{first:?}");
    assert!(first.metadata.recursion_available && !first.metadata.authoritative);
    let second = tcp(tcp_addr, &www).await;
    assert_eq!(first_a(&second).as_deref(), Some("192.0.2.80"));
    assert_eq!(
        asked.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the second answer came from the cache"
    );
    let mut nope = query("nope.example.org.", RecordType::A);
    nope.metadata.recursion_desired = true;
    assert_eq!(
        udp(udp_addr, "127.0.0.1", &nope)
            .await
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );
    // The cell's own zone is never forwarded.
    let own = udp(udp_addr, "127.0.0.1", &query("home.cell.", RecordType::SOA)).await;
    assert!(own.metadata.authoritative);
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 2);
    // Without recursion desired, names outside the zone stay refused.
    let plain = udp(
        udp_addr,
        "127.0.0.1",
        &query("www.example.org.", RecordType::A),
    )
    .await;
    assert_eq!(plain.metadata.response_code, ResponseCode::Refused);
}

#[tokio::test]
async fn hickorys_own_client_gets_the_same_answers_over_udp_and_tcp() {
    use hickory_server::net::client::{Client, ClientHandle};
    use hickory_server::net::runtime::TokioRuntimeProvider;
    use hickory_server::net::tcp::TcpClientStream;
    use hickory_server::net::udp::UdpClientStream;
    use hickory_server::proto::rr::DNSClass;

    let mut zone = snapshot(3, None);
    zone.records = serde_json::from_value(serde_json::json!([
        {"name": "nas", "ttl": 120, "type": "A", "address": "192.168.1.7"},
        {"name": "www", "ttl": 120, "type": "CNAME", "target": "nas.home.cell."}
    ]))
    .unwrap();
    let (udp_addr, tcp_addr) = start(ZoneHandle::new(Zone::new(zone).unwrap())).await;

    let stream = UdpClientStream::builder(udp_addr, TokioRuntimeProvider::default()).build();
    let (mut over_udp, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
    tokio::spawn(background);
    let (connect, sender) = TcpClientStream::new(tcp_addr, None, None, TokioRuntimeProvider::new());
    let (mut over_tcp, background) =
        Client::<TokioRuntimeProvider>::new(connect.await.unwrap(), sender);
    tokio::spawn(background);

    for client in [&mut over_udp, &mut over_tcp] {
        let soa = client
            .query(
                Name::from_ascii("home.cell.").unwrap(),
                DNSClass::IN,
                RecordType::SOA,
            )
            .await
            .unwrap();
        assert!(soa.metadata.authoritative);
        assert!(matches!(&soa.answers[0].data, RData::SOA(s) if s.serial == 3));
        let www = client
            .query(
                Name::from_ascii("www.home.cell.").unwrap(),
                DNSClass::IN,
                RecordType::A,
            )
            .await
            .unwrap();
        assert_eq!(www.answers.len(), 2, "the CNAME and its target: {www:?}");
        assert_eq!(first_a(&www).as_deref(), Some("192.168.1.7"));
        let files = client
            .query(
                Name::from_ascii("files.home.cell.").unwrap(),
                DNSClass::IN,
                RecordType::A,
            )
            .await
            .unwrap();
        assert_eq!(
            first_a(&files).as_deref(),
            Some("192.168.1.2"),
            "the LAN view"
        );
        let missing = client
            .query(
                Name::from_ascii("nope.home.cell.").unwrap(),
                DNSClass::IN,
                RecordType::A,
            )
            .await
            .unwrap();
        assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
        assert!(
            !missing.authorities.is_empty(),
            "the SOA for negative caching"
        );
    }
}
