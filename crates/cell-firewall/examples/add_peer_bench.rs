//! `make bench`: the cost of adding one peer to the firewall with N peers configured —
//! the cell's set-element update (one nft transaction) against the predecessor's
//! rule-per-peer approach (`iptables -A`, iptables-nft) — in fresh network namespaces of
//! the real kernel. Prints one line per N. Root only.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use cell_firewall::{Applied, Firewall, Plan};
use cell_model::vpn::Vpn;

const ROUNDS: usize = 100;

fn vpn(peers: u32) -> Vpn {
    let mut vpn = cell_firewall::testing::vpn(peers, |_, peer| {
        peer.access.files = true;
        peer.access.calendar = true;
        peer.internet_exit = true;
    });
    vpn.subnet4 = cell_model::net::PrivateNet4::parse("10.80.0.0/12")
        .expect("10.80.0.0/12 is a private network");
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

fn new_netns() -> anyhow::Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .context("entering a new network namespace")
}

/// Adds peer N+1 to a table holding N peers, then removes it again, ROUNDS times. Timed:
/// what celld does for the firewall when a peer is added — plan the whole table from the
/// settings, diff it against what is live, send the element batch.
fn cell_sets(n: u32) -> anyhow::Result<(f64, f64)> {
    new_netns()?;
    let mut firewall = Firewall::default();
    let base = Plan::new(&vpn(n), "cellwg0");
    firewall.apply(base.clone()).context("writing the table")?;
    let grown = vpn(n + 1);
    let mut samples = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t0 = Instant::now();
        let plan = Plan::new(&grown, "cellwg0");
        let applied = firewall.apply(plan).context("adding a peer")?;
        samples.push(t0.elapsed());
        ensure!(
            applied == Applied::Elements,
            "adding a peer rewrote the table ({applied:?})"
        );
        firewall
            .apply(base.clone())
            .context("removing the peer again")?;
    }
    Ok(summary(samples))
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

fn iptables(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("iptables")
        .args(args)
        .status()
        .context("running iptables")?;
    ensure!(status.success(), "iptables {args:?} failed: {status}");
    Ok(())
}

/// The predecessor: one `-A FORWARD -s PEER -j ACCEPT` per peer, appended by iptables-nft.
fn iptables_rule_per_peer(n: u32) -> anyhow::Result<(f64, f64)> {
    new_netns()?;
    let mut restore = String::from("*filter\n:FORWARD DROP [0:0]\n");
    for i in 0..n {
        restore.push_str(&format!(
            "-A FORWARD -i cellwg0 -s {}/32 -j ACCEPT\n",
            address(i)
        ));
    }
    restore.push_str("COMMIT\n");
    let mut child = Command::new("iptables-restore")
        .stdin(Stdio::piped())
        .spawn()
        .context("running iptables-restore")?;
    child
        .stdin
        .take()
        .context("iptables-restore has no stdin")?
        .write_all(restore.as_bytes())
        .context("feeding iptables-restore")?;
    ensure!(
        child.wait()?.success(),
        "iptables-restore refused the rules"
    );
    let new_peer = format!("{}/32", address(n));
    let rule = |verb| {
        [
            verb,
            "FORWARD",
            "-i",
            "cellwg0",
            "-s",
            new_peer.as_str(),
            "-j",
            "ACCEPT",
        ]
    };
    let mut samples = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t0 = Instant::now();
        iptables(&rule("-A"))?;
        samples.push(t0.elapsed());
        iptables(&rule("-D"))?;
    }
    Ok(summary(samples))
}

/// `add_peer_bench table N`: writes the cell's table with N peers into the current
/// network namespace (for the throughput bench).
fn load_table(n: u32) -> anyhow::Result<()> {
    let mut firewall = Firewall::default();
    firewall
        .apply(Plan::new(&vpn(n), "cellwg0"))
        .context("writing the table")?;
    Ok(())
}

/// Runs `work` on a thread of its own, so that the namespace it enters is its own.
fn on_own_thread(
    work: impl FnOnce() -> anyhow::Result<(f64, f64)> + Send + 'static,
) -> anyhow::Result<(f64, f64)> {
    std::thread::spawn(work)
        .join()
        .map_err(|_| anyhow::anyhow!("a measurement panicked"))?
}

fn main() -> anyhow::Result<()> {
    ensure!(
        nix::unistd::geteuid().is_root(),
        "needs root (network namespaces)"
    );
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |what: &str| -> anyhow::Result<u32> {
        let text = args
            .get(1)
            .with_context(|| format!("{what} needs a number"))?;
        text.parse()
            .with_context(|| format!("'{text}' is not a number"))
    };
    match args.first().map(String::as_str) {
        Some("table") => {
            let peers = number("table")?;
            ensure!(peers >= 1, "a table needs at least one peer");
            return load_table(peers);
        }
        // `add_peer_bench address I`: the address of peer I.
        Some("address") => {
            println!("{}", address(number("address")?));
            return Ok(());
        }
        Some(other) => bail!("unknown command '{other}' (table N, address I, or nothing)"),
        None => {}
    }
    println!(
        "  {:>6}  {:>22}  {:>22}  {:>17}",
        "peers", "cell sets p50/p99 ms", "iptables p50/p99 ms", "speed-up p50/p99"
    );
    for n in [10u32, 100, 1000] {
        let ours = on_own_thread(move || cell_sets(n))?;
        let theirs = on_own_thread(move || iptables_rule_per_peer(n))?;
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
    Ok(())
}
