use super::*;

const HASH_A: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";
const HASH_B: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$b3RoZXJzYWx0MTIz$b3RoZXJoYXNob3RoZXJoYXNob3RoZXJoYXNo";

fn user(name: &str) -> MailUser {
    MailUser {
        name: name.into(),
        aliases: Vec::new(),
        account_hash: None,
        account_tag: "a1b2c3d4e5f6".into(),
        app_passwords: Vec::new(),
        disabled: false,
    }
}

fn example(outbound: bool) -> Mail {
    Mail {
        domain: "example.org".into(),
        hostname: "mail.example.org".into(),
        outbound,
        users: vec![
            MailUser {
                aliases: vec!["info".into(), "a.smith".into()],
                account_hash: Some(HASH_A.into()),
                app_passwords: (0..10)
                    .map(|n| MailAppPassword {
                        id: format!("ap{n:02}"),
                        hash: HASH_B.into(),
                    })
                    .collect(),
                ..user("alice")
            },
            MailUser {
                app_passwords: vec![MailAppPassword {
                    id: "b0b1".into(),
                    hash: HASH_A.into(),
                }],
                ..user("bob")
            },
            MailUser {
                account_hash: Some(HASH_B.into()),
                disabled: true,
                ..user("carol")
            },
        ],
        relay: None,
        hold_outbound: false,
        login_policy_nonce: "0123456789abcdef".into(),
    }
}

fn relay(port: u16, verify_certificate: bool) -> Relay {
    Relay {
        host: "smtp.example.net".into(),
        port,
        username: "cell@example.org".into(),
        password: "s3cret: pass".into(),
        verify_certificate,
    }
}

/// Compares with tests/golden/mail/<name>; CELL_UPDATE_GOLDEN=1 rewrites the file.
fn golden(name: &str, bytes: &[u8]) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/mail")
        .join(name);
    if std::env::var_os("CELL_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, bytes).unwrap();
    }
    let expected = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (CELL_UPDATE_GOLDEN=1 writes it)", path.display()));
    assert!(
        expected == bytes,
        "{name} differs from {}:\n{}",
        path.display(),
        String::from_utf8_lossy(bytes)
    );
}

#[test]
fn files_match_their_golden_copies() {
    for (_, file) in render(&example(true)).unwrap() {
        golden(&file.path.replace('/', "_"), &file.bytes);
    }
    for (_, file) in render(&example(false)).unwrap() {
        if file.path.ends_with(".cf") {
            golden(
                &format!("{}.internal", file.path.replace('/', "_")),
                &file.bytes,
            );
        }
    }
}

#[test]
fn a_relay_gets_every_outgoing_message_over_tls_with_the_cells_login() {
    let with_relay = Mail {
        relay: Some(relay(587, true)),
        ..example(true)
    };
    let files = render(&with_relay).unwrap();
    let text = |path: &str| {
        let (_, file) = files.iter().find(|(_, f)| f.path == path).unwrap();
        (String::from_utf8(file.bytes.clone()).unwrap(), file.mode)
    };
    let (main_cf, _) = text("postfix/main.cf");
    golden("postfix_main.cf.relay", main_cf.as_bytes());
    let (password, mode) = text("postfix/relay_password");
    assert!(
        password.ends_with("\n[smtp.example.net]:587 cell@example.org:s3cret: pass\n"),
        "{password}"
    );
    assert_eq!(
        mode, 0o600,
        "only the machine's root reads the relay's password"
    );
    assert!(
        !format!("{with_relay:?}").contains("s3cret"),
        "never in logs"
    );

    let implicit = Mail {
        relay: Some(relay(465, false)),
        ..example(true)
    };
    let main_cf = render(&implicit).unwrap()[0].1.bytes.clone();
    let main_cf = String::from_utf8(main_cf).unwrap();
    assert!(
        main_cf.contains("\nsmtp_tls_wrappermode = yes\n"),
        "{main_cf}"
    );
    assert!(main_cf.contains("\nsmtp_tls_security_level = encrypt\n"));
    assert_eq!(main_cf.matches("smtp_tls_security_level").count(), 1);

    // A .cell cell sends nothing out, relay or not.
    let internal = Mail {
        relay: Some(relay(587, true)),
        ..example(false)
    };
    let files = render(&internal).unwrap();
    let (_, main_cf) = &files[0];
    assert!(!String::from_utf8_lossy(&main_cf.bytes).contains("relayhost"));
    let (_, password) = files
        .iter()
        .find(|(_, f)| f.path == "postfix/relay_password")
        .unwrap();
    assert!(!String::from_utf8_lossy(&password.bytes).contains("s3cret"));

    let held = Mail {
        hold_outbound: true,
        ..example(true)
    };
    let main_cf = String::from_utf8(render(&held).unwrap()[0].1.bytes.clone()).unwrap();
    assert!(
        main_cf.ends_with("\ndefer_transports = smtp\n"),
        "{main_cf}"
    );

    let broken = Mail {
        relay: Some(Relay {
            password: "two\nlines".into(),
            ..relay(587, true)
        }),
        ..example(true)
    };
    assert!(render(&broken).is_err());
}

#[test]
fn disabled_users_keep_their_mailbox_but_no_login() {
    let files = render(&example(true)).unwrap();
    let text = |path: &str| {
        let (_, file) = files.iter().find(|(_, f)| f.path == path).unwrap();
        String::from_utf8(file.bytes.clone()).unwrap()
    };
    assert!(text("postfix/mailboxes").contains("carol@example.org carol\n"));
    assert!(!text("passwd").contains("carol"));
}

#[test]
fn every_app_password_has_a_line_found_by_its_id() {
    let files = render(&example(true)).unwrap();
    let (_, passwd) = files.iter().find(|(_, f)| f.path == "passwd").unwrap();
    let passwd = String::from_utf8(passwd.bytes.clone()).unwrap();
    assert!(
        passwd.contains("\nalice/ap09:{ARGON2ID}"),
        "all ten: {passwd}"
    );
    assert_eq!(passwd.matches("{ARGON2ID}$argon2id$").count(), 1 + 10 + 1);
    // Each line names the password that logs in, for celld's login policy.
    assert!(passwd.contains("\nalice:{ARGON2ID}"));
    assert!(passwd.contains(&format!("::::::{LOGIN_FIELD}=account.a1b2c3d4e5f6\n")));
    assert!(passwd.contains(&format!(
        "\nbob/b0b1:{{ARGON2ID}}{HASH_A}::::::{LOGIN_FIELD}=b0b1\n"
    )));
    let (_, conf) = files
        .iter()
        .find(|(_, f)| f.path == "dovecot/dovecot.conf")
        .unwrap();
    let conf = String::from_utf8(conf.bytes.clone()).unwrap();
    assert_eq!(conf.matches("driver = passwd-file").count(), 2);
}

#[test]
fn values_that_could_break_a_file_are_refused() {
    let mut bad = example(true);
    bad.users[0].aliases.push("x y".into());
    assert!(render(&bad).is_err());
    let mut bad = example(true);
    bad.users[1].app_passwords[0].hash = "plain:text".into();
    assert!(render(&bad).is_err());
    let mut bad = example(true);
    bad.users[1].app_passwords[0].id = "b0b1 userdb_uid=0".into();
    assert!(render(&bad).is_err());
    let mut bad = example(true);
    bad.login_policy_nonce = "nonce\nauth_policy_server_url = http://evil/".into();
    assert!(render(&bad).is_err());
    let mut bad = example(true);
    bad.domain = "example.org\nmydestination = evil".into();
    assert!(render(&bad).is_err());
}
