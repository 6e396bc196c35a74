//! Apple configuration profiles (`.mobileconfig`, an XML property list, unsigned): the
//! cell's root certificate, and with a VPN device's profile its WireGuard configuration
//! for the WireGuard app (`com.wireguard.ios`) and, for the device's owner, their
//! calendar, contacts and mail accounts with the device's app password, so one tap on an
//! iPhone or iPad sets all of it up. Identifiers and UUIDs are derived from the cell and the device, so that a
//! profile downloaded again replaces the one installed instead of adding a second.

use sha2::{Digest, Sha256};

/// The media type Safari hands to the profile installer.
pub const CONTENT_TYPE: &str = "application/x-apple-aspen-config";

/// A WireGuard tunnel for the profile.
pub struct WireGuard<'a> {
    /// The name shown in the VPN settings.
    pub name: &'a str,
    /// The wg-quick configuration, as the `.conf` download has it.
    pub conf: &'a str,
}

/// The device owner's accounts on the cell's services, all logging in with one app
/// password made for this device.
pub struct Accounts<'a> {
    pub username: &'a str,
    pub password: &'a str,
    /// Mail, when it is on.
    pub mail: Option<MailAccount<'a>>,
    /// The host serving calendars and contacts (`calendar.<zone>`), when they are on.
    pub dav_host: Option<&'a str>,
}

pub struct MailAccount<'a> {
    /// `user@<zone>`.
    pub address: &'a str,
    /// `mail.<zone>`: IMAPS on 993, submission with STARTTLS on 587.
    pub host: &'a str,
}

/// What a profile carries.
pub struct Profile<'a> {
    /// The cell's zone (`home.cell`): the identifiers are under it.
    pub zone: &'a str,
    /// The root certificate, DER.
    pub root_der: &'a [u8],
    pub root_fingerprint: &'a str,
    pub wireguard: Option<WireGuard<'a>>,
    /// Only with `wireguard`: the accounts are the device's.
    pub accounts: Option<Accounts<'a>>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A stable UUID (the hash's first 16 bytes, with the RFC 9562 version 8 bits) for
/// `identifier`.
fn uuid_for(identifier: &str) -> String {
    let digest = Sha256::digest(identifier.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode_upper(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Base64 with lines of 52 characters, as property lists usually carry data.
fn base64_lines(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out.as_bytes()
        .chunks(52)
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn endpoint_of(conf: &str) -> &str {
    conf.lines()
        .find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "Endpoint").then(|| value.trim())
        })
        .unwrap_or("")
}

/// The profile as XML.
pub fn render(profile: &Profile<'_>) -> String {
    let zone = escape(profile.zone);
    let base = format!("cell.{}", profile.zone);
    let mut payloads = String::new();
    let root_id = format!("{base}.root");
    payloads.push_str(&format!(
        "    <dict>
      <key>PayloadType</key><string>com.apple.security.root</string>
      <key>PayloadVersion</key><integer>1</integer>
      <key>PayloadIdentifier</key><string>{}</string>
      <key>PayloadUUID</key><string>{}</string>
      <key>PayloadDisplayName</key><string>Root certificate of {zone}</string>
      <key>PayloadDescription</key><string>SHA-256 {}</string>
      <key>PayloadCertificateFileName</key><string>personal-internet-cell-root.cer</string>
      <key>PayloadContent</key>
      <data>
{}
      </data>
    </dict>
",
        escape(&root_id),
        uuid_for(&root_id),
        escape(profile.root_fingerprint),
        base64_lines(profile.root_der)
    ));
    let (identifier, display) = match &profile.wireguard {
        Some(wireguard) => {
            let vpn_id = format!("{base}.vpn.{}", wireguard.name);
            payloads.push_str(&format!(
                "    <dict>
      <key>PayloadType</key><string>com.apple.vpn.managed</string>
      <key>PayloadVersion</key><integer>1</integer>
      <key>PayloadIdentifier</key><string>{}</string>
      <key>PayloadUUID</key><string>{}</string>
      <key>PayloadDisplayName</key><string>VPN to {zone}</string>
      <key>UserDefinedName</key><string>{zone} ({})</string>
      <key>VPNType</key><string>VPN</string>
      <key>VPNSubType</key><string>com.wireguard.ios</string>
      <key>VendorConfig</key>
      <dict>
        <key>WgQuickConfig</key>
        <string>{}</string>
      </dict>
      <key>VPN</key>
      <dict>
        <key>RemoteAddress</key><string>{}</string>
        <key>AuthenticationMethod</key><string>Password</string>
      </dict>
    </dict>
",
                escape(&vpn_id),
                uuid_for(&vpn_id),
                escape(wireguard.name),
                escape(wireguard.conf),
                escape(endpoint_of(wireguard.conf)),
            ));
            if let Some(accounts) = &profile.accounts {
                let device_base = format!("{base}.device.{}", wireguard.name);
                payloads.push_str(&account_payloads(&device_base, &zone, accounts));
            }
            (
                format!("{base}.device.{}", wireguard.name),
                format!("{} on {}", wireguard.name, profile.zone),
            )
        }
        None => (format!("{base}.trust"), format!("Trust {}", profile.zone)),
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>
<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">
<plist version=\"1.0\">
<dict>
  <key>PayloadType</key><string>Configuration</string>
  <key>PayloadVersion</key><integer>1</integer>
  <key>PayloadIdentifier</key><string>{}</string>
  <key>PayloadUUID</key><string>{}</string>
  <key>PayloadDisplayName</key><string>{}</string>
  <key>PayloadOrganization</key><string>Personal Internet Cell</string>
  <key>PayloadRemovalDisallowed</key><false/>
  <key>PayloadContent</key>
  <array>
{payloads}  </array>
</dict>
</plist>
",
        escape(&identifier),
        uuid_for(&identifier),
        escape(&display),
    )
}

/// One payload's header: its type, identifier, UUID and name.
fn payload_head(kind: &str, identifier: &str, display: &str) -> String {
    format!(
        "    <dict>
      <key>PayloadType</key><string>{kind}</string>
      <key>PayloadVersion</key><integer>1</integer>
      <key>PayloadIdentifier</key><string>{}</string>
      <key>PayloadUUID</key><string>{}</string>
      <key>PayloadDisplayName</key><string>{}</string>
",
        escape(identifier),
        uuid_for(identifier),
        escape(display)
    )
}

/// The CalDAV, CardDAV and mail payloads of `accounts` (`zone` escaped already).
fn account_payloads(device_base: &str, zone: &str, accounts: &Accounts<'_>) -> String {
    let mut out = String::new();
    let user = escape(accounts.username);
    let password = escape(accounts.password);
    if let Some(host) = accounts.dav_host {
        let host = escape(host);
        for (kind, prefix, what) in [
            ("com.apple.caldav.account", "CalDAV", "Calendar"),
            ("com.apple.carddav.account", "CardDAV", "Contacts"),
        ] {
            let identifier = format!("{device_base}.{}", prefix.to_lowercase());
            out.push_str(&payload_head(
                kind,
                &identifier,
                &format!("{what} on {zone}"),
            ));
            out.push_str(&format!(
                "      <key>{prefix}AccountDescription</key><string>{what} ({zone})</string>
      <key>{prefix}HostName</key><string>{host}</string>
      <key>{prefix}Port</key><integer>443</integer>
      <key>{prefix}UseSSL</key><true/>
      <key>{prefix}PrincipalURL</key><string>https://{host}/{user}/</string>
      <key>{prefix}Username</key><string>{user}</string>
      <key>{prefix}Password</key><string>{password}</string>
    </dict>
"
            ));
        }
    }
    if let Some(mail) = &accounts.mail {
        let identifier = format!("{device_base}.mail");
        let address = escape(mail.address);
        let host = escape(mail.host);
        out.push_str(&payload_head(
            "com.apple.mail.managed",
            &identifier,
            &format!("Mail on {zone}"),
        ));
        out.push_str(&format!(
            "      <key>EmailAccountDescription</key><string>{address}</string>
      <key>EmailAccountName</key><string>{user}</string>
      <key>EmailAccountType</key><string>EmailTypeIMAP</string>
      <key>EmailAddress</key><string>{address}</string>
      <key>IncomingMailServerHostName</key><string>{host}</string>
      <key>IncomingMailServerPortNumber</key><integer>993</integer>
      <key>IncomingMailServerUseSSL</key><true/>
      <key>IncomingMailServerAuthentication</key><string>EmailAuthPassword</string>
      <key>IncomingMailServerUsername</key><string>{user}</string>
      <key>IncomingPassword</key><string>{password}</string>
      <key>OutgoingMailServerHostName</key><string>{host}</string>
      <key>OutgoingMailServerPortNumber</key><integer>587</integer>
      <key>OutgoingMailServerUseSSL</key><true/>
      <key>OutgoingMailServerAuthentication</key><string>EmailAuthPassword</string>
      <key>OutgoingMailServerUsername</key><string>{user}</string>
      <key>OutgoingPassword</key><string>{password}</string>
      <key>OutgoingPasswordSameAsIncomingPassword</key><true/>
    </dict>
"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_lines(plain.as_bytes()), encoded);
        }
        assert_eq!(base64_lines(&[0u8; 60]).lines().count(), 2);
    }

    #[test]
    fn uuids_are_stable_and_well_formed() {
        let a = uuid_for("cell.home.cell.root");
        assert_eq!(a, uuid_for("cell.home.cell.root"));
        assert_ne!(a, uuid_for("cell.other.cell.root"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8", "version 8: {a}");
    }

    #[test]
    fn text_is_escaped() {
        let xml = render(&Profile {
            zone: "home.cell",
            root_der: b"der",
            root_fingerprint: "AB:CD",
            wireguard: Some(WireGuard {
                name: "phone",
                conf:
                    "[Interface]\nPrivateKey = a<b&c\n[Peer]\nEndpoint = cell.example.org:51820\n",
            }),
            accounts: None,
        });
        assert!(xml.contains("PrivateKey = a&lt;b&amp;c"), "{xml}");
        assert!(xml.contains("<key>RemoteAddress</key><string>cell.example.org:51820</string>"));
    }

    fn device_profile(accounts: Option<Accounts<'_>>) -> String {
        render(&Profile {
            zone: "home.cell",
            root_der: b"der",
            root_fingerprint: "AB:CD",
            wireguard: Some(WireGuard {
                name: "phone",
                conf: "[Interface]\n[Peer]\nEndpoint = cell.example.org:51820\n",
            }),
            accounts,
        })
    }

    #[test]
    fn the_owners_accounts_log_in_with_the_devices_app_password() {
        let xml = device_profile(Some(Accounts {
            username: "bob",
            password: "abcd-efgh-jkmn-pqrs",
            mail: Some(MailAccount {
                address: "bob@home.cell",
                host: "mail.home.cell",
            }),
            dav_host: Some("calendar.home.cell"),
        }));
        for kind in [
            "com.apple.caldav.account",
            "com.apple.carddav.account",
            "com.apple.mail.managed",
        ] {
            assert!(xml.contains(&format!("<string>{kind}</string>")), "{xml}");
        }
        assert!(xml.contains(
            "<key>CalDAVPrincipalURL</key><string>https://calendar.home.cell/bob/</string>"
        ));
        assert!(xml.contains("<key>IncomingMailServerPortNumber</key><integer>993</integer>"));
        assert!(xml.contains("<key>OutgoingMailServerPortNumber</key><integer>587</integer>"));
        assert_eq!(xml.matches("abcd-efgh-jkmn-pqrs").count(), 4, "{xml}");
        assert_eq!(
            xml.matches("<dict>").count(),
            xml.matches("</dict>").count()
        );
        // Downloaded again, the same payloads replace those installed.
        let again = device_profile(Some(Accounts {
            username: "bob",
            password: "zzzz-efgh-jkmn-pqrs",
            mail: None,
            dav_host: Some("calendar.home.cell"),
        }));
        let uuid = uuid_for("cell.home.cell.device.phone.caldav");
        assert!(xml.contains(&uuid) && again.contains(&uuid));
        assert!(
            !again.contains("com.apple.mail.managed"),
            "mail is off: {again}"
        );
        let none = device_profile(None);
        assert!(!none.contains("Password</key>"), "{none}");
    }
}
