//! Apple configuration profiles (`.mobileconfig`, an XML property list, unsigned): the
//! cell's root certificate, and with a VPN device's profile its WireGuard configuration
//! for the WireGuard app (`com.wireguard.ios`), so one tap on an iPhone or iPad sets
//! both up. Identifiers and UUIDs are derived from the cell and the device, so that a
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

/// What a profile carries.
pub struct Profile<'a> {
    /// The cell's zone (`home.cell`): the identifiers are under it.
    pub zone: &'a str,
    /// The root certificate, DER.
    pub root_der: &'a [u8],
    pub root_fingerprint: &'a str,
    pub wireguard: Option<WireGuard<'a>>,
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
        });
        assert!(xml.contains("PrivateKey = a&lt;b&amp;c"), "{xml}");
        assert!(xml.contains("<key>RemoteAddress</key><string>cell.example.org:51820</string>"));
    }
}
