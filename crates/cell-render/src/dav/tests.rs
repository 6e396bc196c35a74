use super::*;

fn example() -> Dav {
    Dav {
        users: vec!["alice".into(), "bob".into()],
    }
}

/// Compares with tests/golden/dav/<name>; CELL_UPDATE_GOLDEN=1 rewrites the file.
fn golden(name: &str, bytes: &[u8]) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/dav")
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
    for (_, file) in render(&example()).unwrap() {
        golden(&file.path.replace('/', "_"), &file.bytes);
    }
}

#[test]
fn every_user_gets_their_own_root_and_nobody_else_one() {
    let files = render(&example()).unwrap();
    let (_, conf) = files.iter().find(|(r, _)| *r == Reader::Lighttpd).unwrap();
    let conf = String::from_utf8(conf.bytes.clone()).unwrap();
    assert!(conf.contains("== \"bob\" {\n    server.document-root = \"/srv/files/bob\""));
    assert_eq!(conf.matches("webdav.activate = \"enable\"").count(), 2);
    let empty = render(&Dav { users: Vec::new() }).unwrap();
    let (_, conf) = &empty[1];
    assert!(!String::from_utf8_lossy(&conf.bytes).contains("webdav.activate"));
}

#[test]
fn names_that_could_break_the_file_are_refused() {
    for bad in ["a\" { }", "", ".props", "a/b", "Alice"] {
        let dav = Dav {
            users: vec![bad.into()],
        };
        assert!(render(&dav).is_err(), "{bad:?} was accepted");
    }
}
