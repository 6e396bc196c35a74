//! The mail machine: Postfix (SMTP in, submission, delivery out), Dovecot (IMAP, local
//! delivery over LMTP, the authentication Postfix asks), and the account list both read.
//!
//! The machine shares the cell's network stack from its own user namespace, so its
//! daemons listen on unprivileged ports; the cell's firewall redirects the standard ports
//! to them ([`PORTS`]).

use askama::Template;

use crate::{File, RenderError};

/// (standard port, the machine's port): SMTP, submissions (TLS), submission (STARTTLS),
/// IMAPS.
pub const PORTS: [(u16, u16); 4] = [(25, 10025), (465, 10465), (587, 10587), (993, 10993)];
const SMTP: u16 = PORTS[0].1;
const SUBMISSIONS: u16 = PORTS[1].1;
const SUBMISSION: u16 = PORTS[2].1;
const IMAPS: u16 = PORTS[3].1;

/// Where the machine sees the files of [`render`] (bound in read-only).
pub const CONFIG_DIR: &str = "/etc/cell-mail";
/// The TLS pair the cell writes beside the rendered files.
pub const TLS_CERT: &str = "tls/cert.pem";
pub const TLS_KEY: &str = "tls/key.pem";
/// The DKIM selector the machine signs with; the cell writes the key beside the rendered
/// files, at `dkim/<selector>.private`.
pub const DKIM_SELECTOR: &str = "cell";
/// Where, inside the machine, celld answers Dovecot's login policy questions (a Unix
/// socket in a directory the cell binds in; only the machine's `dovecot` may enter it).
pub const LOGIN_POLICY_SOCKET: &str = "/run/cell-login/policy.sock";
/// The passdb field that says which password logged in: `account.<tag>` or an app
/// password's id.
pub const LOGIN_FIELD: &str = "cell_login";
/// What [`LOGIN_FIELD`] starts with for the account password.
pub const ACCOUNT_LOGIN: &str = "account";
/// Messages larger than this are refused (bytes).
pub const MESSAGE_SIZE_LIMIT: u64 = 50 * 1024 * 1024;

/// Everything the mail machine is configured from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The mail domain: the cell's zone.
    pub domain: String,
    /// The name the machine greets with and signs its Received: headers with.
    pub hostname: String,
    /// Whether mail may leave the cell. A cell on the internal `.cell` domain delivers
    /// among its own users only.
    pub outbound: bool,
    /// Sorted by name.
    pub users: Vec<MailUser>,
    /// The smarthost outgoing mail goes through (only with `outbound`).
    pub relay: Option<Relay>,
    /// A relay is set but its login cannot be read: outgoing mail waits in the queue
    /// rather than leave another way.
    pub hold_outbound: bool,
    /// Dovecot prefixes the passwords it digests for the login policy with this (hex); the
    /// cell keeps it, so a digest means nothing without it.
    pub login_policy_nonce: String,
}

/// An outbound relay and the cell's login there.
#[derive(Clone, PartialEq, Eq)]
pub struct Relay {
    /// A DNS name or an IP address.
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    /// Its certificate must be valid for `host`; otherwise TLS is still required.
    pub verify_certificate: bool,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("verify_certificate", &self.verify_certificate)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// Postfix's name for it: brackets, so no MX lookup, and the port.
    fn nexthop(&self) -> String {
        match self.host.parse::<std::net::Ipv6Addr>() {
            Ok(_) => format!("[ipv6:{}]:{}", self.host, self.port),
            Err(_) => format!("[{}]:{}", self.host, self.port),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailUser {
    /// The local part of the user's address (a cell username: `[a-z][a-z0-9._-]*`).
    pub name: String,
    /// More local parts delivered to this user.
    pub aliases: Vec<String>,
    /// The account password's argon2id PHC hash, when it may log in to mail.
    pub account_hash: Option<String>,
    /// Names that hash for the login policy (hex, [`ACCOUNT_LOGIN`]`.<tag>`): a password
    /// changed since the machine's file was written no longer matches the settings.
    pub account_tag: String,
    /// App passwords, oldest first.
    pub app_passwords: Vec<MailAppPassword>,
    /// A disabled user keeps the mailbox and its mail but logs in nowhere.
    pub disabled: bool,
}

/// An app password as mail checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailAppPassword {
    /// Its id (lowercase letters and digits), reported back with each login it makes.
    pub id: String,
    /// The argon2id PHC hash of the whole password.
    pub hash: String,
}

/// Which service of the machine reads a file, so the cell reloads only that one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reader {
    Postfix,
    Dovecot,
    /// Read by Dovecot, which sees it change by itself (celld's login policy refuses what
    /// it no longer allows meanwhile).
    Accounts,
    Opendkim,
}

/// The files and which service reads each.
pub fn render(mail: &Mail) -> Result<Vec<(Reader, File)>, RenderError> {
    check(mail)?;
    let template =
        |template: &'static str| move |source| RenderError::Template { template, source };
    // askama drops a template's last newline.
    let file = |path, text: String, mode| File {
        path,
        bytes: if text.ends_with('\n') {
            text
        } else {
            text + "\n"
        }
        .into_bytes(),
        mode,
        group: None,
    };
    Ok(vec![
        (
            Reader::Postfix,
            file(
                "postfix/main.cf",
                MainCf { mail }.render().map_err(template("main.cf"))?,
                0o644,
            ),
        ),
        (
            Reader::Postfix,
            file(
                "postfix/master.cf",
                MasterCf { mail }.render().map_err(template("master.cf"))?,
                0o644,
            ),
        ),
        (
            Reader::Postfix,
            file("postfix/mailboxes", mailboxes(mail), 0o644),
        ),
        (
            Reader::Postfix,
            file("postfix/aliases", aliases(mail), 0o644),
        ),
        (
            Reader::Postfix,
            file("postfix/senders", senders(mail), 0o644),
        ),
        (
            Reader::Postfix,
            file("postfix/relay_password", relay_password(mail), 0o600),
        ),
        (
            Reader::Dovecot,
            file(
                "dovecot/dovecot.conf",
                DovecotConf { mail }
                    .render()
                    .map_err(template("dovecot.conf"))?,
                0o644,
            ),
        ),
        (
            Reader::Opendkim,
            file(
                "opendkim/opendkim.conf",
                OpendkimConf { mail }
                    .render()
                    .map_err(template("opendkim.conf"))?,
                0o644,
            ),
        ),
        (
            Reader::Accounts,
            File {
                path: "passwd",
                bytes: passwd(mail).into_bytes(),
                mode: 0o640,
                group: Some("dovecot"),
            },
        ),
    ])
}

/// What the templates and maps rely on: names that cannot break a line or a field.
fn check(mail: &Mail) -> Result<(), RenderError> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    };
    for name in [&mail.domain, &mail.hostname] {
        if !plain(name) {
            return Err(RenderError::Invalid(format!(
                "'{name}' is not a plain DNS name"
            )));
        }
    }
    for user in &mail.users {
        for part in std::iter::once(&user.name).chain(&user.aliases) {
            if !plain(part) {
                return Err(RenderError::Invalid(format!(
                    "'{part}' is not a plain local part"
                )));
            }
        }
        if let Some(app) = user.app_passwords.iter().find(|app| {
            app.id.is_empty()
                || !app
                    .id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        }) {
            return Err(RenderError::Invalid(format!(
                "{}'s app password id '{}' is not lowercase letters and digits",
                user.name, app.id
            )));
        }
        if user.account_hash.is_some()
            && (user.account_tag.is_empty()
                || !user.account_tag.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(RenderError::Invalid(format!(
                "{}'s account password tag is not hex",
                user.name
            )));
        }
        let app_hashes = user.app_passwords.iter().map(|app| &app.hash);
        for hash in user.account_hash.iter().chain(app_hashes) {
            if !hash.starts_with("$argon2id$")
                || hash.contains(|c: char| c.is_whitespace() || c == ':')
            {
                return Err(RenderError::Invalid(format!(
                    "{}'s password hash is not an argon2id PHC string",
                    user.name
                )));
            }
        }
    }
    if mail.login_policy_nonce.is_empty()
        || !mail
            .login_policy_nonce
            .chars()
            .all(|c| c.is_ascii_hexdigit())
    {
        return Err(RenderError::Invalid(
            "the login policy's nonce is not hex".into(),
        ));
    }
    if let Some(relay) = &mail.relay {
        let host_ok = relay.host.parse::<std::net::IpAddr>().is_ok() || plain(&relay.host);
        let login_ok = !relay.username.is_empty()
            && !relay
                .username
                .contains(|c: char| c.is_whitespace() || c.is_control() || c == ':')
            && !relay.password.is_empty()
            && !relay.password.contains(char::is_control)
            && relay.password.trim() == relay.password;
        if !host_ok || !login_ok || relay.port == 0 {
            return Err(RenderError::Invalid(format!(
                "the relay {}:{} or its login cannot be written safely",
                relay.host, relay.port
            )));
        }
    }
    Ok(())
}

const HEADER: &str = "# Written by celld from the cell's settings; a change here is overwritten.\n";

/// Postfix's virtual mailboxes: every user's address (disabled ones too: their mail is
/// kept). texthash: read at reload, no postmap.
fn mailboxes(mail: &Mail) -> String {
    let mut out = String::from(HEADER);
    for user in &mail.users {
        out.push_str(&format!("{}@{} {}\n", user.name, mail.domain, user.name));
    }
    out
}

/// Postfix's virtual aliases: alias address → the user's address.
fn aliases(mail: &Mail) -> String {
    let mut out = String::from(HEADER);
    for user in &mail.users {
        for alias in &user.aliases {
            out.push_str(&format!(
                "{alias}@{domain} {name}@{domain}\n",
                name = user.name,
                domain = mail.domain
            ));
        }
    }
    out
}

/// Which login may send as which address: one's own and one's aliases.
fn senders(mail: &Mail) -> String {
    let mut out = String::from(HEADER);
    for user in &mail.users {
        for part in std::iter::once(&user.name).chain(&user.aliases) {
            out.push_str(&format!("{part}@{} {}\n", mail.domain, user.name));
        }
    }
    out
}

/// The cell's login at its relay, for Postfix's SMTP client (root only, 0600): it must be
/// given as it is, so it is the one secret in the machine's files. Empty without a relay.
fn relay_password(mail: &Mail) -> String {
    let mut out = String::from(HEADER);
    if let Some(relay) = mail.relay.as_ref().filter(|_| mail.outbound) {
        out.push_str(&format!(
            "{} {}:{}\n",
            relay.nexthop(),
            relay.username,
            relay.password
        ));
    }
    out
}

/// Dovecot's accounts: `name` holds the account password, `name/<id>` each app password
/// (looked up by the first group of what was typed), each line with the field that names
/// the password for the login policy. Disabled users have no line: their next login is refused, as soon
/// as Dovecot sees the file change (celld's policy refuses it before that).
fn passwd(mail: &Mail) -> String {
    let mut out = String::from(HEADER);
    for user in mail.users.iter().filter(|u| !u.disabled) {
        if let Some(hash) = &user.account_hash {
            out.push_str(&format!(
                "{}:{{ARGON2ID}}{hash}::::::{LOGIN_FIELD}={ACCOUNT_LOGIN}.{}\n",
                user.name, user.account_tag
            ));
        }
        for app in &user.app_passwords {
            out.push_str(&format!(
                "{}/{}:{{ARGON2ID}}{}::::::{LOGIN_FIELD}={}\n",
                user.name, app.id, app.hash, app.id
            ));
        }
    }
    out
}

#[derive(Template)]
#[template(path = "mail/main.cf", escape = "none")]
struct MainCf<'a> {
    mail: &'a Mail,
}

impl MainCf<'_> {
    fn message_size_limit(&self) -> u64 {
        MESSAGE_SIZE_LIMIT
    }

    /// Opportunistic TLS to recipients' servers; to a relay, TLS always.
    fn smtp_tls_level(&self) -> &'static str {
        match self.relay() {
            Some(relay) if relay.verify_certificate => "secure",
            Some(_) => "encrypt",
            None => "may",
        }
    }

    /// The relay, when mail may leave the cell.
    fn relay(&self) -> Option<&Relay> {
        self.mail.relay.as_ref().filter(|_| self.mail.outbound)
    }
}

#[derive(Template)]
#[template(path = "mail/master.cf", escape = "none")]
struct MasterCf<'a> {
    mail: &'a Mail,
}

impl MasterCf<'_> {
    /// Who may send where after logging in: anywhere, or on a `.cell` cell only to its
    /// own users (refused at RCPT, so the sender hears at once).
    fn relay(&self) -> &'static str {
        if self.mail.outbound {
            "permit_sasl_authenticated,reject"
        } else {
            "reject_unauth_destination,permit_sasl_authenticated,reject"
        }
    }

    fn smtp(&self) -> u16 {
        SMTP
    }
    fn submission(&self) -> u16 {
        SUBMISSION
    }
    fn submissions(&self) -> u16 {
        SUBMISSIONS
    }
}

#[derive(Template)]
#[template(path = "mail/opendkim.conf", escape = "none")]
struct OpendkimConf<'a> {
    mail: &'a Mail,
}

impl OpendkimConf<'_> {
    fn selector(&self) -> &'static str {
        DKIM_SELECTOR
    }
}

#[derive(Template)]
#[template(path = "mail/dovecot.conf", escape = "none")]
struct DovecotConf<'a> {
    mail: &'a Mail,
}

impl DovecotConf<'_> {
    fn policy_socket(&self) -> &'static str {
        LOGIN_POLICY_SOCKET
    }
    fn login_field(&self) -> &'static str {
        LOGIN_FIELD
    }
    fn imaps(&self) -> u16 {
        IMAPS
    }
}

#[cfg(test)]
mod tests;
