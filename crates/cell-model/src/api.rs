//! Types of celld's local API and the public REST API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::names::{CellName, Timezone};
use crate::settings::{DomainMode, Identity, Services};
use crate::users::{NewUsername, Password, Role, Username};

/// The product version compiled into every binary. The Makefile sets `CELL_VERSION` to the
/// same value it gives mkosi as the image version, so what a page shows is what was flashed.
pub const VERSION: &str = match option_env!("CELL_VERSION") {
    Some(version) => version,
    None => env!("CARGO_PKG_VERSION"),
};

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Version of the running cell software.
    pub version: String,
    /// The machine's hostname.
    pub hostname: String,
    /// Seconds since the machine booted.
    pub uptime_seconds: u64,
    /// Whether the first-boot setup wizard has been completed.
    pub setup_complete: bool,
    /// The settings generation in force.
    pub generation: u64,
    /// The cell's name.
    pub cell_name: String,
    /// State of each of the cell's units.
    #[serde(default)]
    pub units: Vec<UnitHealth>,
    /// What the reconciler made of the settings, per applier, in the order it applies them.
    #[serde(default)]
    pub appliers: Vec<ApplierState>,
    /// A risky change applied but not yet confirmed: it is undone at its deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_change: Option<PendingChange>,
    /// What the login guard has done since celld started.
    #[serde(default)]
    pub auth: AuthCounters,
}

/// Counters of the login guard, since celld started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthCounters {
    /// Password (and recovery code) hashes verified: what a burst of guesses costs.
    pub password_checks: u64,
    /// Attempts refused because the throttle said wait.
    pub throttled: u64,
    /// Attempts refused because two hashes were already running and none freed in time.
    pub busy: u64,
}

impl Status {
    /// Whether every applier has applied the generation in force.
    pub fn settled(&self) -> bool {
        !self.appliers.is_empty()
            && self
                .appliers
                .iter()
                .all(|a| a.ok && a.generation == self.generation)
    }
}

/// The reconciler's state of one applier (system identity, firewall, WireGuard, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplierState {
    pub applier: String,
    /// The last generation this applier brought the machine to; 0 before its first success.
    pub generation: u64,
    /// Whether its last pass succeeded (for the generation the pass was for).
    pub ok: bool,
    /// Why its last pass failed, or what it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What its last successful pass did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change: Option<String>,
    /// Since when it has been ok, or failing (RFC 3339).
    pub since: jiff::Timestamp,
}

/// A change that can cut an administrator off (the VPN subnet or port), applied at once and
/// undone unless confirmed before `deadline` over the new settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChange {
    /// The generation that made the change.
    pub generation: u64,
    /// The generation it goes back to (its risky fields) when not confirmed.
    pub revert_to: u64,
    /// The risky fields that changed, as dotted paths (`vpn.subnet4`).
    pub fields: Vec<String>,
    pub deadline: jiff::Timestamp,
    /// Seconds until the deadline when this answer was made.
    pub seconds_left: u64,
}

/// `POST /v1/changes/confirm`: keep the pending change of this generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeConfirm {
    pub generation: u64,
}

/// One systemd unit and its `ActiveState` (`active`, `failed`, `activating`…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitHealth {
    pub unit: String,
    pub state: String,
}

impl UnitHealth {
    pub fn is_active(&self) -> bool {
        self.state == "active"
    }
}

/// Body of every error answer. `field` names the refused input as a dotted path
/// (`identity.cell_name`) when the error is about one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The part of the settings edited as a whole through the settings page and `PUT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditableSettings {
    pub identity: Identity,
    #[serde(default)]
    pub services: Services,
}

/// `GET /v1/settings`: the editable settings and the generation they belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsView {
    pub generation: u64,
    #[serde(flatten)]
    pub settings: EditableSettings,
}

/// `POST /v1/setup`: everything the first-boot wizard asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    /// The one-time code shown on the cell's console.
    pub code: String,
    pub cell_name: CellName,
    pub domain: DomainMode,
    pub timezone: Timezone,
    pub admin_username: NewUsername,
    pub admin_password: Password,
    #[serde(default)]
    pub services: Services,
}

/// Answer to a completed setup: the generation stored. Applying it (hostname, time zone,
/// VPN, firewall) is the reconciler's work, reported in `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupDone {
    pub generation: u64,
}

/// `POST /v1/auth/login` (celld) — cell-web passes the person's source address.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// A TOTP code or a recovery code, for accounts with a second factor.
    #[serde(default)]
    pub second_factor: Option<String>,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// celld's answer to a login: the session's token, given once and only to cell-web (which
/// puts it in the browser's cookie), and the session.
#[derive(Clone, Serialize, Deserialize)]
pub struct LoginAnswer {
    pub token: String,
    pub session: CurrentSession,
}

impl std::fmt::Debug for LoginAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginAnswer")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// `GET /v1/session`: the session a token opens, as its holder may see it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentSession {
    /// The session's public id (what the Sessions list shows and revokes by).
    pub id: String,
    pub name: Username,
    pub role: Role,
    /// The token every state-changing request of this session must carry.
    pub csrf_token: String,
}

impl std::fmt::Debug for CurrentSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentSession")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// One entry of `GET /v1/sessions`: never its token or CSRF secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: String,
    pub user: Username,
    pub created: jiff::Timestamp,
    pub last_seen: jiff::Timestamp,
    /// The address it logged in from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The browser or client it logged in with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Whether this is the session asking.
    pub current: bool,
}

/// `DELETE /v1/users/{name}/totp`: the owner confirms with their password; an admin
/// removing someone else's second factor needs none.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpRemoval {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_password: Option<Password>,
}

/// An account as the APIs show it: never a hash or a seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub name: Username,
    pub role: Role,
    pub disabled: bool,
    pub totp_enabled: bool,
    #[serde(default)]
    pub mail_aliases: Vec<Username>,
    /// How much the user's files home may hold (MiB).
    #[serde(default)]
    pub files_quota_mib: u32,
}

/// `GET /v1/users/{name}/client-settings`: what to type into an app (DAVx5, Thunderbird,
/// a mail program) for each of the cell's services that is on. Nothing secret: the
/// password is an app password the user makes for the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSettings {
    pub username: Username,
    pub mail: Option<MailClientSettings>,
    /// The CalDAV and CardDAV base URL (apps find the calendars and address books there).
    pub calendar_url: Option<String>,
    /// The WebDAV URL of the user's files.
    pub files_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailClientSettings {
    pub address: String,
    /// IMAP (TLS) and SMTP submission (STARTTLS) server.
    pub server: String,
    pub imap_port: u16,
    pub submission_port: u16,
}

/// `GET /v1/mail/relay`: the outbound relay (never its password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailRelayView {
    pub relay: Option<crate::mail::MailRelay>,
    /// Whether mail leaves the cell at all (not on the internal `.cell` domain), so that
    /// the relay is used.
    pub in_use: bool,
}

/// `PUT /v1/mail/relay`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MailRelayEdit {
    pub host: String,
    #[serde(default = "submission_port")]
    pub port: u16,
    pub username: String,
    /// Needed the first time, and when the host or the username changes; left out, the
    /// one set before stays.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default = "yes")]
    pub verify_certificate: bool,
}

fn submission_port() -> u16 {
    587
}

fn yes() -> bool {
    true
}

/// `POST /v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: NewUsername,
    pub role: Role,
    pub password: Password,
}

/// `PATCH /v1/users/{name}`: only the fields present change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default)]
    pub disabled: Option<bool>,
    #[serde(default)]
    pub role: Option<Role>,
    /// Replaces the user's mail aliases.
    #[serde(default)]
    pub mail_aliases: Option<Vec<Username>>,
    /// The files home's quota, MiB (1 to 16 TiB's worth).
    #[serde(default)]
    pub files_quota_mib: Option<u32>,
}

/// `PUT /v1/users/{name}/password`. Changing one's own password needs the current one;
/// an admin resetting someone else's does not.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub password: Password,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_password: Option<Password>,
}

/// `POST /v1/users/{name}/totp`: a new, not yet active, second factor to enrol.
#[derive(Clone, Serialize, Deserialize)]
pub struct TotpEnrolment {
    /// Base32 seed, for typing into an authenticator app.
    pub secret: String,
    /// `otpauth://` URL, for a QR code.
    pub url: String,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrolment(<redacted>)")
    }
}

/// `POST /v1/users/{name}/totp/confirm`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirm {
    pub code: String,
}

/// Answer to a confirmed second factor: the one-time recovery codes, shown once.
#[derive(Clone, Serialize, Deserialize)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// One record of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, from 1.
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
    /// Username, `root` for cellctl, `setup` for the wizard, `-` for nobody yet.
    pub actor: String,
    /// Source address of the request, when it came over the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// What happened, e.g. `settings.update`, `user.create`, `auth.failure`.
    pub action: String,
    /// What it happened to, e.g. a username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The changes, field by field (`identity.timezone` → `UTC → Europe/Berlin`). Never
    /// secret values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub changes: BTreeMap<String, String>,
    /// Hash of the previous entry (hex), all zeros for the first.
    pub prev: String,
    /// SHA-256 of this entry without `hash` (hex).
    pub hash: String,
}

/// Result of `GET /v1/audit/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVerification {
    pub entries: u64,
    pub intact: bool,
    /// The first entry that does not match the chain, when it is broken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Entries the stored settings say were written but the log no longer has: its tail
    /// was cut. First and last sequence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<(u64, u64)>,
}

/// `GET /v1/dns`: the cell's zone, its records, and the names the cell gives itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsView {
    /// The zone the cell answers for, e.g. `home.cell`.
    pub zone: String,
    pub records: Vec<crate::dns::DnsRecord>,
    /// Upstreams set by hand (none: the uplink's, which the snapshot lists).
    pub upstreams: Vec<std::net::IpAddr>,
    pub forward_zones: Vec<crate::dns::ForwardZone>,
    pub upstream_tls: Option<String>,
    /// The zone as cell-dns has it, per the reconciler (names, views, records).
    pub snapshot: Option<crate::dns::ZoneSnapshot>,
}

/// `PUT /v1/dns`: each part given replaces that part whole (records, upstreams,
/// forwarding zones); a part left out stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsEdit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<Vec<crate::dns::DnsRecord>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstreams: Option<Vec<std::net::IpAddr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_zones: Option<Vec<crate::dns::ForwardZone>>,
    /// `""` turns DNS-over-TLS to the upstreams off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_tls: Option<String>,
}

/// A lease the cell's DHCP server gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub mac: String,
    pub address: std::net::Ipv4Addr,
    /// The name the device sent, if any.
    pub hostname: Option<String>,
    pub expires: Option<jiff::Timestamp>,
}

/// `GET /v1/lan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LanView {
    pub lan: crate::lan::Lan,
    /// The LAN port's addresses now: (interface, address, prefix).
    pub addresses: Vec<(String, std::net::IpAddr, u8)>,
    pub leases: Vec<Lease>,
    /// A risky change (the addressing) waiting for its confirmation.
    pub pending_change: Option<PendingChange>,
}

/// chrony's synchronisation, as `chronyc tracking` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NtpSync {
    pub synchronised: bool,
    /// The source in use (an address), if any.
    pub reference: Option<String>,
    pub stratum: u8,
    /// How far the system clock is from true time, by chrony's estimate.
    pub offset_ms: f64,
    /// chrony's leap status: `Normal`, `Not synchronised`…
    pub leap: String,
}

/// `GET /v1/ntp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NtpView {
    pub ntp: crate::ntp::Ntp,
    /// The sources in force (the listed ones, or the default pool).
    pub sources: Vec<crate::ntp::NtpServer>,
    pub sync: Option<NtpSync>,
    /// Why the state could not be read (chrony not running yet…).
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_has_a_stable_wire_form() {
        let status = Status {
            version: "1.2.3".into(),
            hostname: "cell".into(),
            uptime_seconds: 42,
            setup_complete: false,
            generation: 0,
            cell_name: "cell".into(),
            units: vec![UnitHealth {
                unit: "celld.service".into(),
                state: "active".into(),
            }],
            appliers: Vec::new(),
            pending_change: None,
            auth: AuthCounters::default(),
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "version": "1.2.3",
                "hostname": "cell",
                "uptime_seconds": 42,
                "setup_complete": false,
                "generation": 0,
                "cell_name": "cell",
                "units": [{"unit": "celld.service", "state": "active"}],
                "appliers": [],
                "auth": {"password_checks": 0, "throttled": 0, "busy": 0},
            })
        );
        assert_eq!(serde_json::from_value::<Status>(json).unwrap(), status);
    }

    #[test]
    fn status_rejects_missing_fields() {
        let partial = serde_json::json!({ "version": "1", "hostname": "cell" });
        assert!(serde_json::from_value::<Status>(partial).is_err());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let login = LoginRequest {
            username: "alice".into(),
            password: "hunter2hunter2".into(),
            second_factor: Some("123456".into()),
        };
        let shown = format!("{login:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("123456"),
            "{shown}"
        );
    }
}

/// `PUT /v1/vpn`: the server settings an admin may change. Peers keep their host numbers;
/// a subnet too small for them is refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpnSettingsEdit {
    pub subnet4: crate::net::PrivateNet4,
    pub listen_port: u16,
    #[serde(default)]
    pub endpoint: Option<crate::vpn::EndpointHost>,
}

/// `POST /v1/vpn/peers`. Without `public_key` the cell generates the key pair and keeps the
/// private key for the client configuration; with it, the client keeps its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPeer {
    pub name: crate::vpn::PeerName,
    /// Whose device; the requesting user when absent.
    #[serde(default)]
    pub owner: Option<Username>,
    #[serde(default)]
    pub public_key: Option<crate::net::WgPublicKey>,
    #[serde(default)]
    pub access: crate::vpn::ServiceAccess,
    #[serde(default)]
    pub internet_exit: bool,
    #[serde(default)]
    pub lan_access: bool,
    #[serde(default)]
    pub keepalive: u16,
}

/// `PATCH /v1/vpn/peers/{name}`: only the fields present change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerPatch {
    #[serde(default)]
    pub name: Option<crate::vpn::PeerName>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub access: Option<crate::vpn::ServiceAccess>,
    #[serde(default)]
    pub internet_exit: Option<bool>,
    #[serde(default)]
    pub lan_access: Option<bool>,
    #[serde(default)]
    pub keepalive: Option<u16>,
}

/// What WireGuard reports about a peer right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerLive {
    /// Seconds since the Unix epoch; absent before the first handshake.
    pub last_handshake: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub endpoint: Option<String>,
}

/// A peer as the APIs show it: never a private key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerView {
    pub name: crate::vpn::PeerName,
    pub owner: Username,
    pub public_key: crate::net::WgPublicKey,
    pub address4: String,
    pub address6: String,
    pub access: crate::vpn::ServiceAccess,
    pub internet_exit: bool,
    pub lan_access: bool,
    pub keepalive: u16,
    pub enabled: bool,
    /// Whether the cell can produce a full client configuration (it holds the key).
    pub key_on_cell: bool,
    pub live: Option<PeerLive>,
}

/// `GET /v1/vpn`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpnView {
    pub interface: String,
    /// `kernel` or `userspace` (wireguard-go), as detected on this machine.
    pub backend: String,
    pub public_key: Option<crate::net::WgPublicKey>,
    pub listen_port: u16,
    pub endpoint: Option<String>,
    pub subnet4: String,
    pub prefix6: String,
    pub gateway4: String,
    pub gateway6: String,
    /// Each service's address inside the VPN.
    pub services: BTreeMap<String, String>,
    pub peers: usize,
    pub peers_connected: usize,
    /// The reconciler's state of the VPN's appliers (firewall, WireGuard, addresses).
    pub reconcile: Vec<ApplierState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_change: Option<PendingChange>,
}

/// `GET /v1/firewall`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallView {
    /// The live `inet cell` table as nft prints it.
    pub ruleset: String,
    /// How many rules it has (constant in the number of peers).
    pub rules: usize,
    /// How many set elements it has (one or a few per peer).
    pub elements: usize,
}

/// `GET /v1/recovery`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryView {
    pub shell_password_set: bool,
}

/// `PUT /v1/recovery/shell-password`, and the recovery console's check of a typed one
/// (`POST /v1/recovery/shell-password/check`, root only).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellPassword {
    pub password: Password,
}

/// The answer to a shell-password check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellPasswordCheck {
    pub matches: bool,
}

/// The cell's root certificate, as anyone may see it: `GET /v1/pki/root`. A person
/// compares the fingerprint with the one on the console before trusting the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootCertificate {
    /// SHA-256 of the DER certificate, `AB:CD:…`.
    pub fingerprint: String,
    pub pem: String,
    pub not_after: jiff::Timestamp,
    /// The DNS subtrees it may sign for (besides the private address ranges).
    pub name_constraints: Vec<String>,
}

/// A certificate the front door serves, without its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedCertificate {
    pub names: Vec<String>,
    pub addresses: Vec<std::net::IpAddr>,
    pub not_before: jiff::Timestamp,
    pub not_after: jiff::Timestamp,
    /// When the reconciler replaces it (two thirds into its life, or sooner when the
    /// cell's names or addresses change).
    pub renew_at: jiff::Timestamp,
    /// Who signed it: `cell` (the cell's own root) or `acme` (the ACME CA).
    pub issuer: String,
}

/// `GET /v1/pki`: the root and what the front door serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkiView {
    pub root: RootCertificate,
    pub certificates: Vec<ServedCertificate>,
    pub acme: AcmeView,
}

/// `GET /v1/acme` (and in `GET /v1/pki`): ACME's settings and how it is going.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeView {
    pub settings: crate::acme::Acme,
    pub state: AcmeState,
    /// The names a certificate is asked for (the zone's apex and enabled services).
    pub names: Vec<String>,
    /// The ACME certificate served now, if any.
    pub certificate: Option<ServedCertificate>,
    /// How the certificate in force was obtained.
    pub issued_with: Option<crate::acme::Challenge>,
    /// When the certificate in force is renewed (two thirds into its life).
    pub next_renewal: Option<jiff::Timestamp>,
    pub last_attempt: Option<jiff::Timestamp>,
    pub last_error: Option<String>,
    /// Failed attempts in a row; each one doubles the wait before the next.
    pub failures: u32,
    /// When the next attempt is made after a failure.
    pub next_attempt: Option<jiff::Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AcmeState {
    /// Turned off: the cell's own root serves every name.
    Off,
    /// Turned on, but the cell's domain is internal.
    NoPublicName,
    /// Asking the CA now.
    Ordering,
    /// A certificate is served and renewal is scheduled.
    Valid,
    /// The last attempt failed; another follows after a backoff.
    Failing,
}

impl AcmeState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::NoPublicName => "no public name",
            Self::Ordering => "ordering",
            Self::Valid => "valid",
            Self::Failing => "failing",
        }
    }
}

/// One certificate with its key, handed to the front door only (`GET /v1/tls`, to
/// cell-web's user): the key lives in cell-web's memory and nowhere else outside celld.
#[derive(Clone, Serialize, Deserialize)]
pub struct TlsCertificate {
    /// The DNS names it carries (served to clients that ask for one of them by SNI).
    pub names: Vec<String>,
    /// The certificate chain, leaf first (PEM).
    pub chain_pem: String,
    /// The leaf's private key (PEM).
    pub key_pem: String,
    /// From a public CA (ACME): preferred for its names, and sent with HSTS.
    #[serde(default)]
    pub public: bool,
}

impl std::fmt::Debug for TlsCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCertificate")
            .field("names", &self.names)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// `GET /v1/tls`: the certificates the front door serves, numbered so that it can ask
/// "anything newer than N?" (`?known=N`, answered 204 when not).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TlsHandover {
    pub serial: u64,
    /// The first is also served to clients that name no known host (or none, as when
    /// they reach the cell by address).
    pub certificates: Vec<TlsCertificate>,
    /// ACME HTTP-01 challenges the front door answers on port 80 while an order runs.
    #[serde(default)]
    pub http_challenges: Vec<HttpChallenge>,
}

/// `GET /.well-known/acme-challenge/{token}` answers `key_authorization`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpChallenge {
    pub token: String,
    pub key_authorization: String,
}

/// One of the cell's units as systemd sees it: `GET /v1/units`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitState {
    pub unit: String,
    pub description: String,
    /// `active`, `inactive`, `failed`, `activating`…
    pub active_state: String,
    /// `running`, `exited`, `dead`…
    pub sub_state: String,
    /// When it entered its current state (none: never, since boot).
    pub since: Option<jiff::Timestamp>,
    /// Automatic restarts since boot (services only).
    pub restarts: Option<u32>,
}

/// One line of a unit's journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// The journal's cursor of this line: ask `after=` it for the lines that follow.
    pub cursor: String,
    pub at: jiff::Timestamp,
    pub unit: String,
    /// syslog priority: 0 emergency … 3 error, 4 warning, 6 info, 7 debug.
    pub priority: u8,
    pub message: String,
}

/// `GET /v1/logs`: the newest lines that match, oldest first, and the cursor to follow
/// from (the last line's, or the one asked with when nothing new came).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPage {
    pub lines: Vec<LogLine>,
    pub cursor: Option<String>,
}

/// An app password as its owner and administrators see it (never the password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPasswordView {
    pub id: String,
    pub name: String,
    pub created: jiff::Timestamp,
    /// The last service login with it, and from where.
    pub last_used: Option<jiff::Timestamp>,
    pub last_source: Option<String>,
    pub last_service: Option<String>,
}

/// `POST /v1/users/{name}/app-passwords`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAppPassword {
    pub name: String,
}

/// The answer to a new app password: the password itself, shown this once.
#[derive(Clone, Serialize, Deserialize)]
pub struct CreatedAppPassword {
    pub id: String,
    pub name: String,
    pub password: String,
}

impl std::fmt::Debug for CreatedAppPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedAppPassword")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `POST /v1/auth/service`: a service login to check (from the front door or a service's
/// own login, never a browser), throttled like the web login.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceLoginRequest {
    /// `mail`, `calendar`, `files`, `webdav`.
    pub service: String,
    pub username: String,
    pub password: String,
    /// The client's address, for the throttle and the last-use record.
    #[serde(default)]
    pub source: Option<String>,
}

impl std::fmt::Debug for ServiceLoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceLoginRequest")
            .field("service", &self.service)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A service login accepted: whose, and with what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceLogin {
    pub username: String,
    /// The app password's name, or none for the account password.
    pub app_password: Option<String>,
}

/// A one-time link to a VPN device's Apple profile (`/p/{ticket}` on the front door).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileLink {
    pub ticket: String,
    pub expires_in_s: u64,
}

/// `GET /v1/proxy`: the names the front door proxies to the service machines, numbered by
/// the settings' generation so that it can ask "anything newer than N?" (`?known=N`,
/// answered 204 when not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyTable {
    pub generation: u64,
    pub routes: Vec<ProxyRouteSpec>,
}

/// One service name and the machine port behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyRouteSpec {
    /// `calendar.<zone>`…
    pub host: String,
    pub backend: std::net::SocketAddr,
    /// The service whose login (an app password) every request must carry.
    pub login: Option<String>,
    /// Whether uploads count against the user's files quota.
    pub quota: bool,
    /// The VPN's networks: a client from there must be one of `vpn_allowed`.
    pub vpn_networks: Vec<(std::net::IpAddr, u8)>,
    /// The VPN addresses of the devices that may use the service.
    pub vpn_allowed: Vec<std::net::IpAddr>,
}

/// `GET /v1/files/{name}/usage[?path=/a/b]`: what a user's files home holds, against
/// their quota; with `path`, also what that file or folder holds (what copying it adds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesUsage {
    pub used_bytes: u64,
    pub quota_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_bytes: Option<u64>,
}
