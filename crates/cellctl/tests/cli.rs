//! cellctl against a real celld on a temporary socket. celld lets only root act without
//! naming a user, so this test needs root (CI and `make test` run as root).
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn cellctl(socket: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cellctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn root_manages_the_cell_from_the_console() {
    if !nix_is_root() {
        eprintln!("skipped: celld only lets root act without naming a user; run as root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("celld.sock");
    let listener = celld::socket::bind(&socket).unwrap();
    let daemon = celld::daemon::testing::daemon(dir.path());
    tokio::spawn(celld::serve(listener, daemon, std::future::pending()));
    let socket = socket.as_path();

    let run = |args: &'static [&'static str], stdin: Option<&'static str>| {
        let socket = socket.to_owned();
        tokio::task::spawn_blocking(move || cellctl(&socket, args, stdin))
    };

    let code = run(&["setup-code"], None).await.unwrap();
    assert!(code.status.success(), "{}", text(&code));
    assert!(text(&code).starts_with("Setup code: "), "{}", text(&code));

    let set = run(&["settings", "set", "timezone", "Europe/Berlin"], None)
        .await
        .unwrap();
    assert!(set.status.success(), "{}", text(&set));
    assert!(text(&set).contains("generation 1"), "{}", text(&set));

    let bad = run(&["settings", "set", "cell_name", "bad name"], None)
        .await
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("identity.cell_name:"), "{}", text(&bad));
    let status = run(&["--json", "status"], None).await.unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["generation"], 1, "a refused change stores nothing");
    let human = run(&["status"], None).await.unwrap();
    let human = text(&human);
    for applier in ["identity", "firewall", "wireguard", "addresses"] {
        assert!(human.contains(&format!("  {applier}")), "{human}");
    }

    let add = run(
        &["users", "add", "bob", "--role", "admin", "--password-stdin"],
        Some("correct horse battery\n"),
    )
    .await
    .unwrap();
    assert!(add.status.success(), "{}", text(&add));
    let short = run(
        &["users", "add", "carol", "--password-stdin"],
        Some("short\n"),
    )
    .await
    .unwrap();
    assert!(text(&short).contains("password:"), "{}", text(&short));
    let list = run(&["--json", "users", "list"], None).await.unwrap();
    let users: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 1);
    assert_eq!(users[0]["role"], "admin");

    let made = run(&["users", "add-app-password", "bob", "Bob's phone"], None)
        .await
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    assert!(
        text(&made).contains("it is not shown again"),
        "{}",
        text(&made)
    );
    let listed = run(&["--json", "users", "app-passwords", "bob"], None)
        .await
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["name"], "Bob's phone");
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    // `run` takes arguments for the life of the test.
    let id: &'static str = Box::leak(id.into_boxed_str());
    let revoke: &'static [&'static str] =
        Box::leak(vec!["users", "revoke-app-password", "bob", id].into_boxed_slice());
    let revoked = run(revoke, None).await.unwrap();
    assert!(revoked.status.success(), "{}", text(&revoked));
    let again = run(revoke, None).await.unwrap();
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    let home = dir.path().join("state/dav/files/bob");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("hello.txt"), "hello from bob").unwrap();
    let archive = dir.path().join("bob.tar");
    let export: &'static [&'static str] = Box::leak(
        vec![
            "users",
            "export",
            "bob",
            "-o",
            Box::leak(archive.to_string_lossy().into_owned().into_boxed_str()),
        ]
        .into_boxed_slice(),
    );
    let exported = run(export, None).await.unwrap();
    assert!(exported.status.success(), "{}", text(&exported));
    let mut tar = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    let names: Vec<String> = tar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains(&"bob/files/hello.txt".to_owned()),
        "{names:?}"
    );
    let again = run(export, None).await.unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again).contains("exists already"), "{}", text(&again));
    let nobody = run(
        &["users", "export", "nobody", "-o", "/nonexistent/x.tar"],
        None,
    )
    .await
    .unwrap();
    assert_eq!(nobody.status.code(), Some(2));
    assert!(text(&nobody).contains("nobody"), "{}", text(&nobody));
    let relay = run(
        &[
            "mail-relay",
            "set",
            "smtp.example.net",
            "cell",
            "--password-stdin",
        ],
        Some("relay secret\n"),
    )
    .await
    .unwrap();
    assert!(relay.status.success(), "{}", text(&relay));
    let shown = run(&["mail-relay", "show"], None).await.unwrap();
    assert!(
        text(&shown).contains("smtp.example.net:587 as cell") && !text(&shown).contains("secret"),
        "{}",
        text(&shown)
    );
    let units = run(&["units"], None).await.unwrap();
    assert!(
        text(&units).contains("cell-web.service"),
        "{}",
        text(&units)
    );
    let bad = run(&["logs", "-u", "sshd"], None).await.unwrap();
    assert!(
        text(&bad).contains("not one of the cell's units"),
        "{}",
        text(&bad)
    );

    let audit = run(&["audit", "list", "--action", "user"], None)
        .await
        .unwrap();
    assert!(
        text(&audit).contains("user.create") && text(&audit).contains("bob"),
        "{}",
        text(&audit)
    );
    let verify = run(&["audit", "verify"], None).await.unwrap();
    assert!(verify.status.success(), "{}", text(&verify));

    let log = dir.path().join("state/audit.jsonl");
    let tampered = std::fs::read_to_string(&log)
        .unwrap()
        .replace("Europe/Berlin", "Europe/Paris");
    std::fs::write(&log, tampered).unwrap();
    let verify = run(&["audit", "verify"], None).await.unwrap();
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify));
    assert!(
        text(&verify).contains("BROKEN at entry 1"),
        "{}",
        text(&verify)
    );
}

#[test]
fn completions_and_man_page_come_from_the_definition() {
    let socket = Path::new("/nonexistent.sock");
    let bash = cellctl(socket, &["completions", "bash"], None);
    assert!(bash.status.success());
    assert!(text(&bash).contains("reset-password"));
    let man = cellctl(socket, &["man"], None);
    assert!(text(&man).contains(".TH cellctl"), "{}", text(&man));
    let down = cellctl(socket, &["status"], None);
    assert_eq!(down.status.code(), Some(2));
    assert!(text(&down).contains("is celld running?"), "{}", text(&down));
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A stand-in for cell-web's /health that answers `status`.
async fn fake_web(status: u16) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 256];
            let _ = stream.read(&mut request).await;
            let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn health_needs_both_celld_and_cell_web() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("celld.sock");
    let listener = celld::socket::bind(&socket).unwrap();
    let daemon = celld::daemon::testing::daemon(dir.path());
    tokio::spawn(celld::serve(listener, daemon, std::future::pending()));
    let health = |web: std::net::SocketAddr, socket: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            cellctl(&socket, &["health", "--web", &web.to_string()], None)
        })
    };
    let good = health(fake_web(200).await, socket.clone()).await.unwrap();
    assert!(good.status.success(), "{}", text(&good));
    let sick = health(fake_web(503).await, socket.clone()).await.unwrap();
    assert!(!sick.status.success());
    assert!(
        text(&sick).contains("cell-web: /health answered 503"),
        "{}",
        text(&sick)
    );
    let no_celld = health(fake_web(200).await, dir.path().join("gone.sock"))
        .await
        .unwrap();
    assert!(!no_celld.status.success());
    assert!(text(&no_celld).contains("celld:"), "{}", text(&no_celld));
}

#[tokio::test]
async fn dns_lan_and_time_from_the_console() {
    if !nix_is_root() {
        eprintln!("skipped: celld only lets root act without naming a user; run as root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("celld.sock");
    let listener = celld::socket::bind(&socket).unwrap();
    let daemon = celld::daemon::testing::daemon(dir.path());
    tokio::spawn(celld::serve(listener, daemon, std::future::pending()));
    let run = |args: &'static [&'static str]| {
        let socket = socket.clone();
        tokio::task::spawn_blocking(move || cellctl(&socket, args, None))
    };

    let added = run(&["dns", "add", "printer", "A", "192.168.1.9"])
        .await
        .unwrap();
    assert!(added.status.success(), "{}", text(&added));
    assert!(text(&added).contains("printer"), "{}", text(&added));
    let clash = run(&["dns", "add", "files", "A", "192.168.1.9"])
        .await
        .unwrap();
    assert!(!clash.status.success());
    assert!(text(&clash).contains("records.1.name"), "{}", text(&clash));
    let removed = run(&["dns", "remove", "printer"]).await.unwrap();
    assert!(removed.status.success(), "{}", text(&removed));

    let early = run(&["lan", "dhcp-server", "on", "--pool-start", "192.168.1.100"])
        .await
        .unwrap();
    assert!(!early.status.success(), "no static address yet");
    assert!(
        text(&early).contains("dhcp_server.enabled"),
        "{}",
        text(&early)
    );
    let fixed = run(&["lan", "static", "192.168.1.2/24", "192.168.1.1"])
        .await
        .unwrap();
    assert!(fixed.status.success(), "{}", text(&fixed));
    assert!(
        text(&fixed).contains("addressing: static 192.168.1.2/24, gateway 192.168.1.1"),
        "{}",
        text(&fixed)
    );
    let on = run(&[
        "lan",
        "dhcp-server",
        "on",
        "--pool-start",
        "192.168.1.100",
        "--pool-size",
        "20",
    ])
    .await
    .unwrap();
    assert!(on.status.success(), "{}", text(&on));
    let reserved = run(&[
        "lan",
        "reserve",
        "52:54:00:AB:CD:EF",
        "192.168.1.20",
        "printer",
    ])
    .await
    .unwrap();
    assert!(
        text(&reserved).contains("reserved:   printer 52:54:00:ab:cd:ef 192.168.1.20"),
        "{}",
        text(&reserved)
    );

    let ntp = run(&["ntp", "servers", "time.cloudflare.com:nts"])
        .await
        .unwrap();
    assert!(ntp.status.success(), "{}", text(&ntp));
    assert!(
        text(&ntp).contains("time.cloudflare.com (NTS)"),
        "{}",
        text(&ntp)
    );
}
