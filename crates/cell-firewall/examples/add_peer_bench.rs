//! `make bench`: the cost of adding one peer to the firewall with N peers configured —
//! the cell's set-element update (one nft transaction) against the predecessor's
//! rule-per-peer approach (`iptables -A`, iptables-nft) — in fresh network namespaces of
//! the real kernel. Prints one line per N. Root only.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use cell_firewall::{Applied, Firewall, Plan};
use cell_model::vpn::Vpn;

const ROUNDS: usize = 100;

fn vpn(peers: u32) -> Vpn {
    let mut vpn = cell_firewall::testing::vpn(peers, |_, peer| {
        peer.access.files = true;
        peer.access.calendar = true;
        peer.internet_exit = true;
    });
    vpn.subnet4 = cell_model::net::PrivateNet4::parse("10.80.0.0/12").unwrap();
    vpn
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

fn summary(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

fn new_netns() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
}

/// Adds peer N+1 to a table holding N peers, then removes it again, ROUNDS times. Timed:
/// what celld does for the firewall when a peer is added — plan the whole table from the
/// settings, diff it against what is live, send the element batch.
fn cell_sets(n: u32) -> (f64, f64) {
    new_netns();
    let mut firewall = Firewall::default();
    let base = Plan::new(&vpn(n), "cellwg0");
    firewall.apply(base.clone()).unwrap();
    let grown = vpn(n + 1);
    let mut samples = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t0 = Instant::now();
        let plan = Plan::new(&grown, "cellwg0");
        assert_eq!(firewall.apply(plan).unwrap(), Applied::Elements);
        samples.push(t0.elapsed());
        firewall.apply(base.clone()).unwrap();
    }
    summary(samples)
}

fn address(i: u32) -> String {
    let host = 16 + i;
    format!(
        "10.{}.{}.{}",
        80 + (host >> 16),
        (host >> 8) & 255,
        host & 255
    )
}

fn iptables(args: &[&str]) {
    let status = Command::new("iptables").args(args).status().unwrap();
    assert!(status.success(), "iptables {args:?}");
}

/// The predecessor: one `-A FORWARD -s PEER -j ACCEPT` per peer, appended by iptables-nft.
fn iptables_rule_per_peer(n: u32) -> (f64, f64) {
    new_netns();
    let mut restore = String::from("*filter\n:FORWARD DROP [0:0]\n");
    for i in 0..n {
        restore.push_str(&format!(
            "-A FORWARD -i cellwg0 -s {}/32 -j ACCEPT\n",
            address(i)
        ));
    }
    restore.push_str("COMMIT\n");
    let mut child = Command::new("iptables-restore")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(restore.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let new_peer = format!("{}/32", address(n));
    let mut samples = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t0 = Instant::now();
        iptables(&[
            "-A", "FORWARD", "-i", "cellwg0", "-s", &new_peer, "-j", "ACCEPT",
        ]);
        samples.push(t0.elapsed());
        iptables(&[
            "-D", "FORWARD", "-i", "cellwg0", "-s", &new_peer, "-j", "ACCEPT",
        ]);
    }
    summary(samples)
}

/// `add_peer_bench table N`: writes the cell's table with N peers into the current
/// network namespace (for the throughput bench).
fn load_table(n: u32) {
    let mut firewall = Firewall::default();
    firewall.apply(Plan::new(&vpn(n), "cellwg0")).unwrap();
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("add_peer_bench: needs root (network namespaces)");
        std::process::exit(1);
    }
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize| args.get(i).and_then(|n| n.parse::<u32>().ok());
    match args.get(1).map(String::as_str) {
        Some("table") => return load_table(number(2).unwrap_or(1000)),
        // `add_peer_bench address I`: the address of peer I.
        Some("address") => return println!("{}", address(number(2).unwrap_or(0))),
        _ => {}
    }
    println!(
        "  {:>6}  {:>22}  {:>22}  {:>17}",
        "peers", "cell sets p50/p99 ms", "iptables p50/p99 ms", "speed-up p50/p99"
    );
    for n in [10u32, 100, 1000] {
        // Each measurement in its own thread, so that each gets a fresh namespace.
        let ours = std::thread::spawn(move || cell_sets(n)).join().unwrap();
        let theirs = std::thread::spawn(move || iptables_rule_per_peer(n))
            .join()
            .unwrap();
        println!(
            "  {n:>6}  {:>10.2} / {:>9.2}  {:>10.2} / {:>9.2}  {:>7.1}x / {:>6.1}x",
            ours.0,
            ours.1,
            theirs.0,
            theirs.1,
            theirs.0 / ours.0,
            theirs.1 / ours.1
        );
    }
}
