//! `cellctl lan`: the LAN port and the DHCP server, through celld's /v1/lan (which
//! validates; a new address waits for confirmation, as in the web UI).

use anyhow::bail;
use cell_model::api::LanView;
use cell_model::lan::{DhcpServer, LanAddressing, Reservation};
use celld_client::Method;
use serde_json::json;

use crate::cli::LanCommand;
use crate::Ctl;

fn text(view: &LanView) -> String {
    let mut out = match &view.lan.addressing {
        LanAddressing::Dhcp => "addressing: from the LAN's DHCP server\n".to_owned(),
        LanAddressing::Static {
            address,
            gateway,
            dns,
        } => {
            let dns: Vec<String> = dns.iter().map(ToString::to_string).collect();
            format!(
                "addressing: static {address}, gateway {gateway}, resolvers {}\n",
                if dns.is_empty() {
                    "none".into()
                } else {
                    dns.join(", ")
                }
            )
        }
    };
    for (link, address, prefix) in &view.addresses {
        out += &format!("address:    {address}/{prefix} on {link}\n");
    }
    if let Some(pending) = &view.pending_change {
        out += &format!(
            "waiting:    generation {} must be confirmed within {} s (POST /v1/changes/confirm), or it is undone\n",
            pending.generation, pending.seconds_left
        );
    }
    match &view.lan.dhcp_server {
        Some(server) => {
            out += &format!(
                "dhcp:       {}, {} addresses from {}, leases of {} s\n",
                if server.enabled { "on" } else { "off" },
                server.pool_size,
                server.pool_start,
                server.lease_seconds
            );
            for r in &server.reservations {
                out += &format!("reserved:   {} {} {}\n", r.name, r.mac, r.address);
            }
        }
        None => out += "dhcp:       off\n",
    }
    for lease in &view.leases {
        out += &format!(
            "lease:      {} {} {}\n",
            lease.address,
            lease.mac,
            lease.hostname.as_deref().unwrap_or("-")
        );
    }
    out
}

pub async fn run(ctl: &Ctl, command: LanCommand) -> anyhow::Result<()> {
    let view: LanView = ctl.call(Method::GET, "/v1/lan", None).await?;
    let mut lan = view.lan.clone();
    match command {
        LanCommand::Show => return ctl.print(&view, || text(&view)),
        LanCommand::Dhcp => lan.addressing = LanAddressing::Dhcp,
        LanCommand::Static {
            address,
            gateway,
            dns,
        } => {
            lan.addressing = LanAddressing::Static {
                address,
                gateway,
                dns,
            }
        }
        LanCommand::DhcpServer {
            state,
            pool_start,
            pool_size,
            lease_seconds,
        } => {
            let current = lan.dhcp_server.take();
            let Some(pool_start) = pool_start.or(current.as_ref().map(|s| s.pool_start)) else {
                bail!("the first time, give the pool: --pool-start ADDRESS --pool-size N");
            };
            lan.dhcp_server = Some(DhcpServer {
                enabled: state == "on",
                pool_start,
                pool_size: pool_size
                    .or(current.as_ref().map(|s| s.pool_size))
                    .unwrap_or(50),
                lease_seconds: lease_seconds
                    .or(current.as_ref().map(|s| s.lease_seconds))
                    .unwrap_or(3600),
                reservations: current.map(|s| s.reservations).unwrap_or_default(),
            });
        }
        LanCommand::Reserve { mac, address, name } => {
            let Some(server) = lan.dhcp_server.as_mut() else {
                bail!("set up the DHCP server first (cellctl lan dhcp-server on --pool-start …)");
            };
            server.reservations.push(Reservation {
                mac: mac.to_ascii_lowercase(),
                address,
                name,
            });
        }
        LanCommand::Unreserve { name } => {
            let Some(server) = lan.dhcp_server.as_mut() else {
                bail!("no reservation called '{name}'");
            };
            let before = server.reservations.len();
            server.reservations.retain(|r| r.name != name);
            if server.reservations.len() == before {
                bail!("no reservation called '{name}'");
            }
        }
    }
    let saved: LanView = ctl.call(Method::PUT, "/v1/lan", Some(json!(lan))).await?;
    ctl.print(&saved, || text(&saved))
}
