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
        app_hashes: Vec::new(),
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
                app_hashes: vec![HASH_B.into(); 10],
                ..user("alice")
            },
            MailUser {
                app_hashes: vec![HASH_A.into()],
                ..user("bob")
            },
            MailUser {
                account_hash: Some(HASH_B.into()),
                disabled: true,
                ..user("carol")
            },
        ],
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
fn app_passwords_beyond_the_slots_get_no_line() {
    let files = render(&example(true)).unwrap();
    let (_, passwd) = files.iter().find(|(_, f)| f.path == "passwd").unwrap();
    let passwd = String::from_utf8(passwd.bytes.clone()).unwrap();
    assert!(passwd.contains(&format!("alice/{APP_PASSWORD_SLOTS}:")));
    assert!(!passwd.contains(&format!("alice/{}:", APP_PASSWORD_SLOTS + 1)));
    assert_eq!(
        passwd.matches("{ARGON2ID}$argon2id$").count(),
        1 + APP_PASSWORD_SLOTS + 1
    );
    let dovecot = render(&example(true)).unwrap();
    let (_, conf) = dovecot
        .iter()
        .find(|(_, f)| f.path == "dovecot/dovecot.conf")
        .unwrap();
    let conf = String::from_utf8(conf.bytes.clone()).unwrap();
    assert_eq!(
        conf.matches("driver = passwd-file").count(),
        1 + APP_PASSWORD_SLOTS
    );
}

#[test]
fn values_that_could_break_a_file_are_refused() {
    let mut bad = example(true);
    bad.users[0].aliases.push("x y".into());
    assert!(render(&bad).is_err());
    let mut bad = example(true);
    bad.users[1].app_hashes = vec!["plain:text".into()];
    assert!(render(&bad).is_err());
    let mut bad = example(true);
    bad.domain = "example.org\nmydestination = evil".into();
    assert!(render(&bad).is_err());
}
