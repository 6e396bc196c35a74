//! Crash safety of the settings store: the real celld binary is killed with SIGKILL at
//! random moments while a client keeps changing the settings, 200 times over. After every
//! kill the store must load and hold either the last acknowledged generation or the one
//! that was being written — never a torn or empty document.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cell_store::Store;

const KILLS: usize = 200;

/// Sends one HTTP/1.1 request over the socket; returns status and body.
fn request(
    socket: &Path,
    method: &str,
    path: &str,
    actor: Option<&str>,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let actor = actor
        .map(|a| format!("x-cell-actor: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: celld\r\n{actor}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn start_celld(state: &Path, socket: &Path) -> Child {
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    let child = Command::new(env!("CARGO_BIN_EXE_celld"))
        .arg("--socket")
        .arg(socket)
        .arg("--state-dir")
        .arg(state)
        .arg("--web-user")
        .arg(me)
        .arg("--no-system")
        .arg("--no-network")
        .env("CELL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while request(socket, "GET", "/v1/status", None, "").is_err() {
        assert!(Instant::now() < deadline, "celld did not come up");
        std::thread::sleep(Duration::from_millis(2));
    }
    child
}

fn settings(name: &str) -> String {
    format!(
        r#"{{"identity":{{"cell_name":"{name}","domain":{{"mode":"internal"}},"timezone":"UTC"}}}}"#
    )
}

/// A small deterministic generator (xorshift) so a failing run can be replayed.
struct Random(u64);
impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[derive(Default)]
struct Progress {
    acknowledged: Option<(u64, String)>,
    in_flight: Option<String>,
}

#[test]
fn sigkill_while_writing_never_loses_or_tears_a_generation() {
    let dir = tempfile::tempdir().unwrap();
    let state: PathBuf = dir.path().join("state");
    let socket = dir.path().join("celld.sock");
    let mut random = Random(0x5eed_cafe_f00d_d00d);

    // Claim the cell once so that an admin can change the settings afterwards.
    let mut celld = start_celld(&state, &socket);
    let code = std::fs::read_to_string(state.join("setup-code")).unwrap();
    let setup = format!(
        r#"{{"code":"{}","cell_name":"start","domain":{{"mode":"internal"}},"timezone":"UTC","admin_username":"alice","admin_password":"correct horse battery"}}"#,
        code.trim()
    );
    assert_eq!(
        request(&socket, "POST", "/v1/setup", None, &setup)
            .unwrap()
            .0,
        200
    );
    celld.kill().unwrap();
    celld.wait().unwrap();

    let mut expected = {
        let store = Store::open(&state).unwrap();
        (
            store.current().generation,
            store.current().settings.identity.cell_name.to_string(),
        )
    };
    let mut torn_writes_seen = 0;
    for round in 0..KILLS {
        let mut celld = start_celld(&state, &socket);
        let progress = Arc::new(Mutex::new(Progress {
            acknowledged: Some(expected.clone()),
            in_flight: None,
        }));
        let writer = {
            let progress = progress.clone();
            let socket = socket.clone();
            std::thread::spawn(move || {
                for write in 0.. {
                    let name = format!("r{round}w{write}");
                    progress.lock().unwrap().in_flight = Some(name.clone());
                    match request(
                        &socket,
                        "PUT",
                        "/v1/settings",
                        Some("alice"),
                        &settings(&name),
                    ) {
                        Ok((200, body)) => {
                            let generation = serde_json::from_str::<serde_json::Value>(&body)
                                .unwrap()["generation"]
                                .as_u64()
                                .unwrap();
                            let mut progress = progress.lock().unwrap();
                            progress.acknowledged = Some((generation, name));
                            progress.in_flight = None;
                        }
                        Ok((status, body)) => {
                            panic!("celld refused a valid write: {status} {body}")
                        }
                        Err(_) => return, // celld was killed
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_micros(200 + random.below(15_000)));
        celld.kill().unwrap();
        celld.wait().unwrap();
        writer.join().unwrap();

        let progress = progress.lock().unwrap();
        let (acked_generation, acked_name) = progress.acknowledged.clone().unwrap();
        let store = Store::open(&state).unwrap_or_else(|e| {
            panic!("round {round}: the store does not load after SIGKILL: {e}")
        });
        let current = store.current();
        let name = current.settings.identity.cell_name.to_string();
        let old = current.generation == acked_generation && name == acked_name;
        let new = current.generation == acked_generation + 1
            && Some(&name) == progress.in_flight.as_ref();
        assert!(
            old || new,
            "round {round}: store holds generation {} ({name}); acknowledged {acked_generation} ({acked_name}), in flight {:?}",
            current.generation,
            progress.in_flight
        );
        if new {
            torn_writes_seen += 1;
        }
        store
            .generation(current.generation)
            .expect("the current generation is in the history");
        expected = (current.generation, name);
    }
    let audit = celld::audit::verify_file(&state.join("audit.jsonl")).unwrap();
    assert!(audit.intact, "{audit:?}");
    eprintln!("{KILLS} kills; {torn_writes_seen} landed between the write and its acknowledgement; final generation {}", expected.0);
}
