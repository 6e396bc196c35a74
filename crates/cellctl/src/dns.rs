//! `cellctl dns`: the zone's records, upstreams and forwarding zones, edited through
//! celld's PUT /v1/dns (which validates; a refusal names the field).

use anyhow::bail;
use cell_model::api::DnsView;
use cell_model::dns::{is_within, DnsRecord, ForwardZone, RecordData};
use celld_client::Method;
use serde_json::{json, Value};

use crate::cli::DnsCommand;
use crate::Ctl;

/// A record from the command line's words, e.g. `MX ["10", "mail.example.org"]`.
pub fn record(name: &str, kind: &str, value: &[String], ttl: u32) -> anyhow::Result<DnsRecord> {
    let data =
        RecordData::parse(kind, &value.join(" ")).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    Ok(DnsRecord {
        name: name.to_owned(),
        ttl,
        data,
    })
}

fn view_text(view: &DnsView) -> String {
    let mut text = format!("zone: {}\n", view.zone);
    for record in &view.records {
        text += &format!(
            "{:<24} {:>6} {:<5} {}\n",
            record.name,
            record.ttl,
            record.data.kind(),
            match &record.data {
                RecordData::Txt { text } => format!("\"{text}\""),
                other => other.value_text(),
            }
        );
    }
    let in_force: Vec<String> = view
        .snapshot
        .iter()
        .flat_map(|s| s.upstreams.iter().map(|u| u.ip().to_string()))
        .collect();
    let source = if view.upstreams.is_empty() {
        "from the uplink's DHCP"
    } else {
        "set"
    };
    let shown = if in_force.is_empty() {
        "none (names outside the zone are refused)".to_owned()
    } else {
        in_force.join(", ")
    };
    text += &format!("upstreams ({source}): {shown}\n");
    if let Some(name) = &view.upstream_tls {
        text += &format!("over DNS-over-TLS, certificate for {name}\n");
    }
    for forward in &view.forward_zones {
        let servers: Vec<String> = forward.servers.iter().map(|s| s.to_string()).collect();
        text += &format!("forward {} to {}\n", forward.zone, servers.join(", "));
    }
    text
}

/// The forwarding zones but `zone` (written with or without the final dot, in any case).
fn without_zone(zones: Vec<ForwardZone>, zone: &str) -> Vec<ForwardZone> {
    zones
        .into_iter()
        .filter(|f| !(is_within(&f.zone, zone) && is_within(zone, &f.zone)))
        .collect()
}

async fn put(ctl: &Ctl, body: Value) -> anyhow::Result<()> {
    let view: DnsView = ctl.call(Method::PUT, "/v1/dns", Some(body)).await?;
    ctl.print(&view, || view_text(&view))
}

pub async fn run(ctl: &Ctl, command: DnsCommand) -> anyhow::Result<()> {
    match command {
        DnsCommand::List => {
            let view: DnsView = ctl.call(Method::GET, "/v1/dns", None).await?;
            ctl.print(&view, || view_text(&view))
        }
        DnsCommand::Add {
            name,
            kind,
            value,
            ttl,
        } => {
            let view: DnsView = ctl.call(Method::GET, "/v1/dns", None).await?;
            let mut records = view.records;
            records.push(record(&name, &kind, &value, ttl)?);
            put(ctl, json!({ "records": records })).await
        }
        DnsCommand::Remove { name, kind } => {
            let view: DnsView = ctl.call(Method::GET, "/v1/dns", None).await?;
            let before = view.records.len();
            let records: Vec<DnsRecord> = view
                .records
                .into_iter()
                .filter(|r| {
                    r.name != name
                        || kind
                            .as_deref()
                            .is_some_and(|k| !k.eq_ignore_ascii_case(r.data.kind()))
                })
                .collect();
            if records.len() == before {
                bail!(
                    "no record named '{name}'{}",
                    kind.map(|k| format!(" of type {k}")).unwrap_or_default()
                );
            }
            put(ctl, json!({ "records": records })).await
        }
        DnsCommand::Upstreams { servers, tls } => {
            put(
                ctl,
                json!({ "upstreams": servers, "upstream_tls": tls.unwrap_or_default() }),
            )
            .await
        }
        DnsCommand::Forward { zone, servers } => {
            let view: DnsView = ctl.call(Method::GET, "/v1/dns", None).await?;
            let mut zones = without_zone(view.forward_zones, &zone);
            zones.push(ForwardZone { zone, servers });
            put(ctl, json!({ "forward_zones": zones })).await
        }
        DnsCommand::Unforward { zone } => {
            let view: DnsView = ctl.call(Method::GET, "/v1/dns", None).await?;
            let before = view.forward_zones.len();
            let zones = without_zone(view.forward_zones, &zone);
            if zones.len() == before {
                bail!("'{zone}' is not forwarded");
            }
            put(ctl, json!({ "forward_zones": zones })).await
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn records_from_words() {
        let mx = record("@", "mx", &words("10 mail.example.org."), 300).unwrap();
        assert_eq!(
            mx.data,
            RecordData::Mx {
                preference: 10,
                exchange: "mail.example.org.".into()
            }
        );
        let txt = record("note", "TXT", &words("v=spf1 -all"), 60).unwrap();
        assert_eq!(
            txt.data,
            RecordData::Txt {
                text: "v=spf1 -all".into()
            }
        );
        assert_eq!(txt.ttl, 60);
        let srv = record(
            "_sip._tcp",
            "SRV",
            &["1 5 5060 sip.example.org".into()],
            300,
        )
        .unwrap();
        assert!(matches!(srv.data, RecordData::Srv { port: 5060, .. }));
        assert!(record("a", "A", &words("not-an-address"), 300).is_err());
        assert!(record("a", "A", &words("1.2.3.4 5.6.7.8"), 300).is_err());
        let error = record("@", "MX", &words("ten mail"), 300).unwrap_err();
        assert!(record("a", "NAPTR", &words("x"), 300).is_err());
        assert!(error.to_string().contains("preference"), "{error}");
    }
}
