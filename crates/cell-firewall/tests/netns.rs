//! T1: the table written into a fresh network namespace of the real kernel and read back
//! with nft. Needs root (CAP_NET_ADMIN); skips with a message otherwise.
#![allow(clippy::unwrap_used)]

use cell_firewall::{read_live, ruleset_text, Applied, Firewall, Plan};
use cell_model::vpn::Vpn;

fn vpn(peers: u32) -> Vpn {
    cell_firewall::testing::vpn(peers, |i, peer| {
        peer.access.files = true;
        peer.access.mail = i % 3 == 0;
        peer.internet_exit = i % 2 == 0;
    })
}

/// Moves this test's thread (and the nft processes it starts) into a new network
/// namespace, or says why the test cannot run.
fn private_netns() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root for a network namespace");
        return false;
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    true
}

#[test]
fn rules_stay_constant_while_elements_grow() {
    if !private_netns() {
        return;
    }
    let mut firewall = Firewall::default();
    let small = Plan::new(&vpn(1), "cellwg-t");
    assert_eq!(firewall.apply(small.clone()).unwrap(), Applied::Table);
    let live_small = read_live().unwrap();
    assert_eq!(live_small.rules, small.rules().len());

    let large = Plan::new(&vpn(1000), "cellwg-t");
    assert_eq!(firewall.apply(large.clone()).unwrap(), Applied::Elements);
    let live_large = read_live().unwrap();
    assert_eq!(
        live_large.rules, live_small.rules,
        "rules must not grow with peers"
    );
    assert_eq!(live_large.sets["files4"].len(), 1000);
    assert_eq!(live_large.sets["exit6"].len(), 500);

    assert_eq!(
        firewall.apply(large.clone()).unwrap(),
        Applied::Nothing,
        "applying twice changes nothing"
    );
    assert_eq!(
        Firewall::default().verify(large.clone()).unwrap(),
        Applied::Nothing
    );

    let back = Plan::new(&vpn(2), "cellwg-t");
    assert_eq!(firewall.apply(back.clone()).unwrap(), Applied::Elements);
    assert_eq!(read_live().unwrap().sets["files4"].len(), 2);
    let text = ruleset_text().unwrap();
    assert!(text.contains("table inet cell"), "{text}");
    assert!(text.contains("masquerade"), "{text}");
}

#[test]
fn tables_changed_behind_our_back_are_restored() {
    if !private_netns() {
        return;
    }
    let plan = Plan::new(&vpn(3), "cellwg-t");
    let mut firewall = Firewall::default();
    firewall.apply(plan.clone()).unwrap();
    let status = std::process::Command::new("nft")
        .args(["flush", "chain", "inet", "cell", "input"])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(firewall.verify(plan.clone()).unwrap(), Applied::Table);
    assert_eq!(read_live().unwrap().rules, plan.rules().len());
}
