//! The Units and logs page and its API over a real cell-web and celld (whose recorded
//! system has the cell's units but no journal: the journal itself is checked in the
//! booted image).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[tokio::test]
async fn units_and_logs_for_administrators_with_filters_checked_by_celld() {
    let cell = start().await;
    let (cookie, _) = set_up_as_alice(&cell).await;
    let units = http(cell.addr, "GET", "/api/v1/units", Some(&cookie), None, None).await;
    assert_eq!(units.status, 200, "{}", units.body);
    let units = units.json();
    let names: Vec<&str> = units
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["unit"].as_str().unwrap())
        .collect();
    for unit in [
        "celld.service",
        "cell-web.service",
        "cell-dns.service",
        "cell-ntp.service",
    ] {
        assert!(names.contains(&unit), "{unit} in {names:?}");
    }
    let page = http(cell.addr, "GET", "/logs", Some(&cookie), None, None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("<code>cell-dns.service</code>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"no-lines\""));
    assert!(page.body.contains("src=\"/static/logs.js\""));
    let filtered = http(
        cell.addr,
        "GET",
        "/logs?unit=cell-web.service&priority=4&text=refused",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert_eq!(filtered.status, 200);
    assert!(
        filtered
            .body
            .contains("data-query=\"unit=cell-web.service&#38;priority=4&#38;text=refused\""),
        "the script follows with the same filter: {}",
        filtered.body
    );
    assert!(filtered.body.contains("value=\"refused\""));
    let refused = http(
        cell.addr,
        "GET",
        "/logs?unit=sshd.service",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert!(
        refused.body.contains("id=\"logs-error\"")
            && refused.body.contains("is not one of the cell&#39;s units"),
        "{}",
        refused.body
    );
    for (query, field) in [
        ("priority=9", "priority"),
        ("unit=sshd.service", "unit"),
        ("after=--output%3Dexport", "after"),
        ("limit=5000", "limit"),
    ] {
        let bad = http(
            cell.addr,
            "GET",
            &format!("/api/v1/logs?{query}"),
            Some(&cookie),
            None,
            None,
        )
        .await;
        assert_eq!(bad.status, 400, "{query}: {}", bad.body);
        assert_eq!(bad.json()["field"], field, "{query}");
    }
    let logs = http(
        cell.addr,
        "GET",
        "/api/v1/logs?unit=celld.service",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert_eq!(logs.status, 200, "{}", logs.body);
    let script = http(cell.addr, "GET", "/static/logs.js", None, None, None).await;
    assert_eq!(script.status, 200);
    assert!(script.head.contains("text/javascript"));
    // Without a session: no logs.
    let anonymous = http(cell.addr, "GET", "/api/v1/logs", None, None, None).await;
    assert_eq!(anonymous.status, 401);
}
