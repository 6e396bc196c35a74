//! The cell's time server: chrony's configuration rendered from the settings (pure), and
//! chrony's own account of its synchronisation, read with `chronyc`.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use cell_model::api::NtpSync;
use cell_model::Settings;

/// The unit that runs chronyd with the configuration celld writes.
pub const NTP_UNIT: &str = "cell-ntp.service";

/// chrony's configuration for `settings`, serving the `lan` networks (private ones only)
/// and the VPN's.
pub fn render(settings: &Settings, lan: &[(IpAddr, u8)]) -> String {
    let mut out = String::from(
        "# Written by celld from the cell's settings; a change here is overwritten.\n\
         driftfile /var/lib/chrony/chrony.drift\n\
         ntsdumpdir /var/lib/chrony\n\
         # Step the clock at start if it is far off (no RTC on many boards), then slew.\n\
         makestep 1 3\n\
         rtcsync\n\
         # Without a reachable source the cell still serves its clock to its own networks.\n\
         local stratum 10 orphan\n\
         # Monitoring (chronyc tracking) from the cell itself only.\n\
         cmdallow 127.0.0.1\n\
         bindcmdaddress 127.0.0.1\n",
    );
    for source in settings.ntp.sources() {
        let kind = if source.pool { "pool" } else { "server" };
        let nts = if source.nts { " nts" } else { "" };
        let _ = writeln!(out, "{kind} {} iburst{nts}", source.host);
    }
    if settings.ntp.serve {
        out.push_str("# Clients: the cell's LAN and VPN networks, nobody else.\n");
        let private = lan.iter().filter(|(address, _)| match address {
            IpAddr::V4(v4) => v4.is_private(),
            IpAddr::V6(v6) => v6.is_unique_local(),
        });
        for (network, prefix) in private {
            let _ = writeln!(out, "allow {network}/{prefix}");
        }
        if let Some(vpn) = &settings.vpn {
            let _ = writeln!(out, "allow {}", vpn.subnet4);
            let _ = writeln!(out, "allow {}/64", vpn.prefix6.host(0));
        }
    } else {
        out.push_str("# Serving time is off: no client is allowed.\n");
    }
    out
}

/// How long chronyc may take to answer.
const CHRONYC_TIMEOUT: Duration = Duration::from_secs(3);

/// chrony's synchronisation state, from `chronyc -c tracking` (over its local UDP command
/// port, which answers monitoring commands from the machine itself).
pub async fn tracking() -> Result<NtpSync, String> {
    let run = tokio::process::Command::new("chronyc")
        .args(["-n", "-c", "-h", "127.0.0.1", "tracking"])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(CHRONYC_TIMEOUT, run)
        .await
        .map_err(|_| "chronyc did not answer in time".to_owned())?
        .map_err(|e| format!("running chronyc: {e}"))?;
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stderr);
        return Err(format!("chronyc: {}", message.trim()));
    }
    parse_tracking(&String::from_utf8_lossy(&output.stdout))
}

/// `chronyc -c tracking`: reference id, name, stratum, reference time, system time offset
/// (s), last offset, RMS offset, frequency, residual frequency, skew, root delay, root
/// dispersion, update interval, leap status.
pub fn parse_tracking(csv: &str) -> Result<NtpSync, String> {
    let fields: Vec<&str> = csv.trim().split(',').collect();
    let [_, reference, stratum, _, offset, .., leap] = fields.as_slice() else {
        return Err(format!(
            "chronyc's tracking output is not understood: {csv:?}"
        ));
    };
    let stratum: u8 = stratum
        .parse()
        .map_err(|_| format!("chronyc's stratum is not a number: {stratum:?}"))?;
    let offset: f64 = offset
        .parse()
        .map_err(|_| format!("chronyc's offset is not a number: {offset:?}"))?;
    let synchronised = *leap != "Not synchronised" && stratum > 0 && stratum < 16;
    Ok(NtpSync {
        synchronised,
        reference: (!reference.is_empty()).then(|| (*reference).to_owned()),
        stratum,
        offset_ms: offset * 1000.0,
        leap: (*leap).to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn configuration_follows_the_settings() {
        let mut settings = Settings {
            vpn: Some(crate::vpn::new_vpn()),
            ..Settings::default()
        };
        let lan = [
            ("192.168.1.0".parse().unwrap(), 24),
            ("203.0.113.0".parse().unwrap(), 24),
        ];
        let conf = render(&settings, &lan);
        assert!(
            conf.contains("pool 2.debian.pool.ntp.org iburst\n"),
            "{conf}"
        );
        assert!(conf.contains("allow 192.168.1.0/24\n"), "{conf}");
        assert!(
            !conf.contains("203.0.113"),
            "never a public network: {conf}"
        );
        assert!(conf.contains("allow 10.87.0.0/20\n"), "{conf}");
        settings.ntp = serde_json::from_value(serde_json::json!({
            "servers": [{"host": "time.cloudflare.com", "nts": true}], "serve": false
        }))
        .unwrap();
        let conf = render(&settings, &lan);
        assert!(
            conf.contains("server time.cloudflare.com iburst nts\n"),
            "{conf}"
        );
        assert!(!conf.contains("pool "), "{conf}");
        assert!(!conf.contains("\nallow "), "{conf}");
    }

    #[test]
    fn tracking_is_read() {
        let synced = parse_tracking(
            "C0A80101,192.168.1.1,3,1796294000.123,-0.000012345,0.000001,0.000020,1.234,0.001,0.050,0.012,0.003,64.5,Normal\n",
        )
        .unwrap();
        assert!(synced.synchronised);
        assert_eq!(synced.stratum, 3);
        assert!((synced.offset_ms + 0.012345).abs() < 1e-9);
        let local = parse_tracking(
            "7F7F0101,,10,1796294000.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,Normal\n",
        )
        .unwrap();
        assert_eq!(local.reference, None);
        let unsynced = parse_tracking(
            "00000000,,0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,Not synchronised\n",
        )
        .unwrap();
        assert!(!unsynced.synchronised);
        assert!(parse_tracking("garbage").is_err());
    }
}
