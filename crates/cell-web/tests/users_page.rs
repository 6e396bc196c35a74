//! The Users page's mail aliases, over a real cell-web and celld.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[tokio::test]
async fn an_administrator_gives_a_user_mail_aliases_and_a_taken_one_is_refused() {
    let cell = start().await;
    let (cookie, csrf) = set_up_as_alice(&cell).await;
    let added = http_form(
        cell.addr,
        "/users",
        &cookie,
        &format!("csrf={csrf}&name=bob&role=peer&password=bobs+own+passphrase"),
    )
    .await;
    assert_eq!(added.status, 200, "{}", added.body);
    let saved = http_form(
        cell.addr,
        "/users/bob/aliases",
        &cookie,
        &format!("csrf={csrf}&aliases=Info%2C+contact"),
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert!(
        saved.body.contains("value=\"contact info\""),
        "the aliases are shown, lower case and sorted: {}",
        saved.body
    );
    let taken = http_form(
        cell.addr,
        "/users/bob/aliases",
        &cookie,
        &format!("csrf={csrf}&aliases=alice"),
    )
    .await;
    assert_eq!(taken.status, 400, "{}", taken.body);
    assert!(
        taken
            .body
            .contains("&#39;alice&#39; is already a user&#39;s address"),
        "{}",
        taken.body
    );
    assert!(
        taken.body.contains("value=\"contact info\""),
        "nothing changed: {}",
        taken.body
    );
}
