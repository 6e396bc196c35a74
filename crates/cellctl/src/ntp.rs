//! `cellctl ntp`: the cell's time sources and chrony's state, through celld's /v1/ntp.

use anyhow::bail;
use cell_model::api::NtpView;
use cell_model::ntp::{Ntp, NtpServer};
use celld_client::Method;
use serde_json::json;

use crate::cli::NtpCommand;
use crate::Ctl;

/// `HOST[:pool][:nts]` as a source.
pub fn server(text: &str) -> anyhow::Result<NtpServer> {
    // An IPv6 address has colons of its own: flags only at the end.
    let mut host = text;
    let mut server = NtpServer {
        host: String::new(),
        pool: false,
        nts: false,
    };
    loop {
        if let Some(rest) = host.strip_suffix(":pool") {
            server.pool = true;
            host = rest;
        } else if let Some(rest) = host.strip_suffix(":nts") {
            server.nts = true;
            host = rest;
        } else {
            break;
        }
    }
    if host.is_empty() {
        bail!("'{text}' names no host");
    }
    server.host = host.to_owned();
    Ok(server)
}

fn text(view: &NtpView) -> String {
    let sources: Vec<String> = view
        .sources
        .iter()
        .map(|s| {
            let mut line = s.host.clone();
            if s.pool {
                line += " (pool)";
            }
            if s.nts {
                line += " (NTS)";
            }
            line
        })
        .collect();
    let mut out = format!(
        "sources:  {}\nserving:  {}\n",
        sources.join(", "),
        if view.ntp.serve { "LAN and VPN" } else { "off" }
    );
    match (&view.sync, &view.error) {
        (Some(sync), _) => {
            out += &format!(
                "state:    {} ({}), stratum {}, offset {:.3} ms, source {}\n",
                if sync.synchronised {
                    "synchronised"
                } else {
                    "not synchronised"
                },
                sync.leap,
                sync.stratum,
                sync.offset_ms,
                sync.reference.as_deref().unwrap_or("the cell's own clock")
            )
        }
        (None, Some(error)) => out += &format!("state:    unknown: {error}\n"),
        (None, None) => out += "state:    unknown\n",
    }
    out
}

pub async fn run(ctl: &Ctl, command: NtpCommand) -> anyhow::Result<()> {
    let view: NtpView = ctl.call(Method::GET, "/v1/ntp", None).await?;
    let mut ntp: Ntp = view.ntp.clone();
    match command {
        NtpCommand::Status => return ctl.print(&view, || text(&view)),
        NtpCommand::Servers { servers } => {
            ntp.servers = servers
                .iter()
                .map(|s| server(s))
                .collect::<anyhow::Result<_>>()?;
        }
        NtpCommand::Serve { state } => ntp.serve = state == "on",
    }
    let saved: NtpView = ctl.call(Method::PUT, "/v1/ntp", Some(json!(ntp))).await?;
    ctl.print(&saved, || text(&saved))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sources_from_the_command_line() {
        let nts = server("time.cloudflare.com:nts").unwrap();
        assert!(nts.nts && !nts.pool && nts.host == "time.cloudflare.com");
        let both = server("pool.example:pool:nts").unwrap();
        assert!(both.pool && both.nts);
        assert_eq!(server("2001:db8::123").unwrap().host, "2001:db8::123");
        assert!(server(":nts").is_err());
    }
}
