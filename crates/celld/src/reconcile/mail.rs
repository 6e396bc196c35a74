//! The mail machine (systemd-nspawn@mail): its configuration rendered from the settings
//! into /var/lib/cell/mail/config, its state directories, the TLS pair, and the machine
//! itself, running while mail is on. A change reloads, inside the machine, only the
//! service that reads the changed file (the account list: none, Dovecot re-reads it, and
//! celld's login policy is the authority meanwhile).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cell_model::settings::DomainMode;
use cell_model::{FieldError, Settings};
use cell_render::mail::{self, Mail, MailUser, Reader};

use super::files::FileError;
use super::{Applier, ApplyError, ApplyFuture, Pass, UNCHANGED};
use crate::dkim::Dkim;
use crate::pki::Pki;
use crate::system::Machine;

pub const MAIL_UNIT: &str = "systemd-nspawn@mail.service";
const MACHINE: &str = "mail";
/// The machine's root on the cell: mail.nspawn's `PrivateUsers=`, which the image's
/// tree was shifted to (a test checks the two agree).
pub const MAIL_UID_BASE: u32 = 0x7000_0000;
/// The machine's `vmail` user (mkosi.images/mail/mkosi.postinst.chroot), who owns every
/// mailbox.
const VMAIL_UID: u32 = 5000;

/// How the machine's Dovecot reaches celld's login policy.
pub struct LoginPolicy {
    /// The nonce its password digests are salted with.
    pub nonce: String,
    /// The policy socket's directory on the cell, given to the machine's `dovecot`.
    pub socket_dir: Option<PathBuf>,
}

pub struct MailApplier {
    system: Arc<dyn Machine>,
    pki: Arc<Pki>,
    dkim: Arc<Dkim>,
    /// Where the outbound relay's password is.
    secrets: cell_secrets::SecretStore,
    /// /var/lib/cell/mail: config/, spool/, mailboxes/.
    state: PathBuf,
    /// The machine's tree (/usr/lib/machines/mail), whose groups the files are shared with.
    tree: PathBuf,
    login_policy: LoginPolicy,
    /// Services whose files changed but whose reload has not succeeded yet: the files on
    /// disk already match, so only this remembers them for the next pass.
    pending: std::sync::Mutex<BTreeSet<Reader>>,
    /// Users whose logins were lost from the account file but whose open sessions have
    /// not been ended yet.
    pending_kicks: std::sync::Mutex<BTreeSet<String>>,
}

impl MailApplier {
    pub fn new(
        system: Arc<dyn Machine>,
        pki: Arc<Pki>,
        dkim: Arc<Dkim>,
        secrets: cell_secrets::SecretStore,
        state: PathBuf,
        tree: PathBuf,
        login_policy: LoginPolicy,
    ) -> Self {
        Self {
            system,
            pki,
            dkim,
            secrets,
            state,
            tree,
            login_policy,
            pending: Default::default(),
            pending_kicks: Default::default(),
        }
    }
}

/// Mail off, or the machine's files and the name its certificate must carry.
pub enum MailPlan {
    Off,
    On {
        files: Vec<(Reader, cell_render::File)>,
        hostname: String,
    },
}

/// What the machine is configured from: every user has a mailbox; app passwords made
/// since the machine exists, and the account password where the settings allow it, log in.
pub fn mail_config(settings: &Settings) -> Mail {
    let zone = settings.zone();
    let account_password = settings.service_logins.account_password;
    let mut users: Vec<MailUser> = settings
        .users
        .iter()
        .map(|user| MailUser {
            name: user.name.to_string(),
            aliases: user.mail_aliases.iter().map(|a| a.to_string()).collect(),
            account_hash: (account_password && user.totp_secret.is_none())
                .then(|| user.password_hash.expose().to_owned()),
            account_tag: crate::mail_login::account_tag(user.password_hash.expose()),
            app_passwords: user
                .app_passwords
                .iter()
                .filter_map(|app| {
                    app.service_hash.as_ref().map(|hash| mail::MailAppPassword {
                        id: app.id.clone(),
                        hash: hash.expose().to_owned(),
                    })
                })
                .collect(),
            disabled: user.disabled,
        })
        .collect();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    Mail {
        hostname: format!("mail.{zone}"),
        domain: zone,
        outbound: !matches!(settings.identity.domain, DomainMode::Internal),
        users,
        // With its password, which the settings do not hold: see the applier's plan.
        relay: None,
        hold_outbound: false,
        // The applier's own, kept in the secret store.
        login_policy_nonce: String::new(),
    }
}

impl Applier for MailApplier {
    type Plan = MailPlan;

    fn name(&self) -> &'static str {
        "mail"
    }

    /// The certificate names mail.<zone> once pki has applied the same settings.
    fn requires(&self) -> &'static [&'static str] {
        &["pki"]
    }

    /// While the certificates are not applied, nobody logs in: the account list is
    /// emptied, so a disabled user or a revoked password is refused all the same.
    fn fail_closed(&self, plan: &MailPlan) -> Option<MailPlan> {
        let MailPlan::On { files, hostname } = plan else {
            return None;
        };
        let files = files
            .iter()
            .map(|(reader, file)| {
                let mut file = file.clone();
                if *reader == Reader::Accounts {
                    file.bytes =
                        b"# No logins until the cell's certificates are in place.\n".to_vec();
                }
                (*reader, file)
            })
            .collect();
        Some(MailPlan::On {
            files,
            hostname: hostname.clone(),
        })
    }

    fn plan(&self, settings: &Settings) -> Result<MailPlan, FieldError> {
        if !settings.services.mail {
            return Ok(MailPlan::Off);
        }
        let mut config = mail_config(settings);
        config.login_policy_nonce = self.login_policy.nonce.clone();
        if let Some(relay) = &settings.mail.relay {
            // A missing secret must not stop the whole cell's pass (a user being disabled
            // among it): the machine is planned without the relay, its mail held.
            match crate::mail_relay::password(&self.secrets, relay) {
                Ok(Some(password)) => {
                    config.relay = Some(mail::Relay {
                        host: relay.host.clone(),
                        port: relay.port,
                        username: relay.username.clone(),
                        password,
                        verify_certificate: relay.verify_certificate,
                    });
                }
                Ok(None) => {
                    tracing::error!(relay = %relay.host, "the relay's password is missing, or was stored for another relay setting: outgoing mail is held until the relay is set again");
                    config.hold_outbound = true;
                }
                Err(error) => {
                    tracing::error!(relay = %relay.host, %error, "the relay's password cannot be read: outgoing mail is held until the relay is set again");
                    config.hold_outbound = true;
                }
            }
        }
        let files =
            mail::render(&config).map_err(|e| FieldError::new("services.mail", e.to_string()))?;
        Ok(MailPlan::On {
            files,
            hostname: config.hostname,
        })
    }

    fn apply<'a>(&'a self, plan: &'a MailPlan, _pass: Pass) -> ApplyFuture<'a> {
        Box::pin(async move {
            let running = self.running().await?;
            let MailPlan::On { files, hostname } = plan else {
                if running {
                    self.system.stop_unit(MAIL_UNIT).await?;
                    return Ok("mail machine stopped".to_owned());
                }
                return Ok(UNCHANGED.to_owned());
            };
            // The accounts are written even without a certificate (a disabled user must be
            // refused all the same); the machine starts only with one.
            let tls = self.tls_pair(hostname);
            let pair = tls.as_ref().ok().cloned();
            let state = self.state.clone();
            let tree = self.tree.clone();
            let files = files.clone();
            let dkim = self.dkim.clone();
            let login_dir = self.login_policy.socket_dir.clone();
            let changed = tokio::task::spawn_blocking(move || {
                let key = dkim.ensure().map_err(|e| FileError {
                    path: state.join("config/dkim"),
                    message: e.to_string(),
                })?;
                write_machine(
                    &state,
                    &tree,
                    &files,
                    pair.as_ref(),
                    &key.private_pem,
                    login_dir.as_deref(),
                )
            })
            .await
            .map_err(|e| ApplyError::File {
                path: self.state.clone(),
                message: e.to_string(),
            })??;
            let (changed, lost) = changed;
            crate::sync::lock(&self.pending_kicks).extend(lost);
            let changed: BTreeSet<Reader> = {
                let mut pending = crate::sync::lock(&self.pending);
                // The account file is not reloaded: Dovecot sees it change by itself, and
                // celld's login policy refuses a disabled account or a revoked or changed
                // password at once meanwhile. (A reload would leave the old auth process
                // to be killed a minute later under Postfix's open connections, whose next
                // login then fails "temporarily".)
                pending.extend(changed);
                pending.clone()
            };
            tls?;
            if !running {
                self.system.start_unit(MAIL_UNIT).await?;
                // It reads everything as it starts, and nobody has a session yet.
                crate::sync::lock(&self.pending).clear();
                crate::sync::lock(&self.pending_kicks).clear();
                return Ok("mail machine started".to_owned());
            }
            let mut reloaded = Vec::new();
            for (reader, unit) in [
                (Reader::Postfix, "postfix.service"),
                (Reader::Dovecot, "dovecot.service"),
                (Reader::Opendkim, "opendkim.service"),
            ] {
                if changed.contains(&reader) {
                    self.system.reload_in_machine(MACHINE, unit).await?;
                    crate::sync::lock(&self.pending).remove(&reader);
                    reloaded.push(unit);
                }
            }
            crate::sync::lock(&self.pending).remove(&Reader::Accounts);
            // Mail Postfix deferred (a relay missing its password, or refusing its login)
            // is retried under the new configuration now, not on its backoff schedule
            // (up to an hour). Without the retry it still leaves later: a warning only.
            let mut flushed = false;
            if reloaded.contains(&"postfix.service") {
                match self.system.flush_mail_queue().await {
                    Ok(()) => flushed = true,
                    Err(error) => {
                        tracing::warn!(%error, "cannot have Postfix retry its queue now; it retries on its own schedule");
                    }
                }
            }
            // Refused from now on, and their open sessions ended (Dovecot keeps them).
            let kicks = std::mem::take(&mut *crate::sync::lock(&self.pending_kicks));
            let mut ended = Vec::new();
            for user in kicks {
                match self.system.end_mail_sessions(&user).await {
                    Ok(()) => ended.push(user),
                    Err(error) => {
                        tracing::warn!(%user, %error, "cannot end the user's mail sessions; trying again on the next pass");
                        crate::sync::lock(&self.pending_kicks).insert(user);
                    }
                }
            }
            let mut summary = match (changed.is_empty(), reloaded.is_empty()) {
                (true, _) => UNCHANGED.to_owned(),
                (false, true) => "accounts updated".to_owned(),
                (false, false) => format!("reloaded {}", reloaded.join(", ")),
            };
            if flushed {
                summary.push_str("; queued mail retried");
            }
            if !ended.is_empty() {
                summary.push_str(&format!("; ended the sessions of {}", ended.join(", ")));
            }
            Ok(summary)
        })
    }
}

impl MailApplier {
    async fn running(&self) -> Result<bool, ApplyError> {
        let health = self.system.unit_health(&[MAIL_UNIT]).await?;
        Ok(health
            .first()
            .is_some_and(|h| matches!(h.state.as_str(), "active" | "activating" | "reloading")))
    }

    /// The ACME certificate when it names the mail host, else the cell's own.
    fn tls_pair(&self, hostname: &str) -> Result<(String, String), FileError> {
        let served = self.pki.subscribe();
        let served = served.borrow();
        let names = |leaf: &cell_pki::Leaf| leaf.request().names().any(|n| n == hostname);
        let leaf = served
            .public
            .as_ref()
            .filter(|leaf| names(leaf))
            .or(served.leaf.as_ref().filter(|leaf| names(leaf)))
            .ok_or_else(|| FileError {
                path: self.state.join("config").join(mail::TLS_CERT),
                message: format!("no certificate names {hostname} yet"),
            })?;
        Ok((leaf.chain_pem().to_owned(), leaf.key_pem().to_owned()))
    }
}

/// A file's mtime in whole seconds and its size: what Dovecot compares.
fn file_stamp(path: &Path) -> Option<(i64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.mtime(), m.len()))
}

/// The users with a login line in the account file at `path` that `next` no longer has
/// as it is (disabled, deleted, a password changed or revoked).
fn lost_logins(path: &Path, next: &[u8]) -> BTreeSet<String> {
    let Ok(before) = std::fs::read_to_string(path) else {
        return BTreeSet::new();
    };
    let next = String::from_utf8_lossy(next);
    let kept: BTreeSet<&str> = next.lines().collect();
    before
        .lines()
        .filter(|line| !line.starts_with('#') && !kept.contains(line))
        .filter_map(|line| line.split([':', '/']).next())
        .filter(|user| !user.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Makes the state directories, writes every file whose bytes differ, and says which
/// services read a changed file (the TLS pair is read by both) and whose logins were
/// lost (see [`lost_logins`]). The login policy's
/// socket directory goes to the machine's `dovecot` alone: its auth process asks there.
fn write_machine(
    state: &Path,
    tree: &Path,
    files: &[(Reader, cell_render::File)],
    tls: Option<&(String, String)>,
    dkim_key: &str,
    login_dir: Option<&Path>,
) -> Result<(BTreeSet<Reader>, BTreeSet<String>), FileError> {
    let root = (MAIL_UID_BASE, MAIL_UID_BASE);
    let vmail = (MAIL_UID_BASE + VMAIL_UID, MAIL_UID_BASE + VMAIL_UID);
    let config = state.join("config");
    // celld writes into the configuration directories, so they stay the cell's root's
    // (it has no CAP_DAC_OVERRIDE); the files in them belong to the machine's users.
    let cell = (0, 0);
    for (dir, owner, mode) in [
        (state.to_owned(), cell, 0o700),
        (config.clone(), cell, 0o755),
        (config.join("postfix"), cell, 0o755),
        (config.join("dovecot"), cell, 0o755),
        (config.join("tls"), cell, 0o755),
        (config.join("opendkim"), cell, 0o755),
        (config.join("dkim"), cell, 0o755),
        (state.join("spool"), root, 0o755),
        (state.join("mailboxes"), vmail, 0o700),
    ] {
        super::files::ensure_dir(&dir, owner, mode)?;
    }
    let ids = super::files::MachineIds::read(tree, MAIL_UID_BASE)?;
    if let Some(dir) = login_dir {
        let dovecot = (ids.user("dovecot")?, ids.group("dovecot")?);
        super::files::ensure_dir(dir, dovecot, 0o700)?;
    }
    let mut changed = BTreeSet::new();
    let mut lost = BTreeSet::new();
    for (reader, file) in files {
        let gid = match file.group {
            Some(name) => ids.group(name)?,
            None => MAIL_UID_BASE,
        };
        let path = config.join(file.path);
        let mut stamp_before = None;
        if *reader == Reader::Accounts {
            lost = lost_logins(&path, &file.bytes);
            stamp_before = file_stamp(&path);
        }
        if super::files::write_owned_if_changed(
            &path,
            &file.bytes,
            file.mode,
            (MAIL_UID_BASE, gid),
        )? {
            changed.insert(*reader);
            // Dovecot notices a new account file by its mtime (seconds) and size: one
            // rewritten within the same second at the same size it must be told about.
            if stamp_before.is_some() && file_stamp(&path) == stamp_before {
                changed.insert(Reader::Dovecot);
            }
        }
    }
    let mut tls_changed = false;
    if let Some((chain, key)) = tls {
        for (name, bytes, mode) in [(mail::TLS_CERT, chain, 0o644), (mail::TLS_KEY, key, 0o600)] {
            tls_changed |= super::files::write_owned_if_changed(
                &config.join(name),
                bytes.as_bytes(),
                mode,
                root,
            )?;
        }
    }
    if tls_changed {
        changed.extend([Reader::Postfix, Reader::Dovecot]);
    }
    // OpenDKIM refuses a key anyone else may read.
    let opendkim = (ids.user("opendkim")?, ids.group("opendkim")?);
    let key_path = config.join(format!("dkim/{}.private", mail::DKIM_SELECTOR));
    if super::files::write_owned_if_changed(&key_path, dkim_key.as_bytes(), 0o600, opendkim)? {
        changed.insert(Reader::Opendkim);
    }
    Ok((changed, lost))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uid_base_is_the_one_the_machine_runs_at() {
        let nspawn = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../rootfs/usr/lib/cell/nspawn/mail.nspawn"
        );
        let text = std::fs::read_to_string(nspawn).unwrap();
        assert!(
            text.lines()
                .any(|l| l == format!("PrivateUsers={MAIL_UID_BASE}:65536")),
            "mail.nspawn does not run the machine at {MAIL_UID_BASE}"
        );
    }

    /// A mail applier over a temporary state directory and machine tree, the cell's own
    /// certificate naming mail.cell.cell, and a recording system whose mail machine runs.
    fn applier(dir: &Path) -> (MailApplier, Arc<crate::system::RecordedSystem>) {
        let tree = dir.join("tree");
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        std::fs::write(
            tree.join("etc/group"),
            "root:x:0:\ndovecot:x:105:\nopendkim:x:101:\n",
        )
        .unwrap();
        std::fs::write(
            tree.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nopendkim:x:100:101::/:/bin/false\ndovecot:x:104:105::/:/bin/false\n",
        )
        .unwrap();
        let pki = Arc::new(Pki::open(&dir.join("secrets"), "cell.cell").unwrap());
        let request = cell_pki::LeafRequest::new(["cell.cell".into(), "mail.cell.cell".into()], []);
        pki.ensure("cell.cell", &request, crate::pki::now())
            .unwrap();
        let dkim = Arc::new(Dkim::new(
            cell_secrets::SecretStore::open(&dir.join("secrets")).unwrap(),
        ));
        let system = Arc::new(crate::system::RecordedSystem::default());
        let secrets = cell_secrets::SecretStore::open(&dir.join("secrets")).unwrap();
        let login_policy = LoginPolicy {
            nonce: "00ff".into(),
            socket_dir: Some(dir.join("login")),
        };
        let applier = MailApplier::new(
            system.clone(),
            pki,
            dkim,
            secrets,
            dir.join("mail"),
            tree,
            login_policy,
        );
        (applier, system)
    }

    fn settings() -> Settings {
        let mut settings = Settings::default();
        settings.services.mail = true;
        settings.users.push(cell_model::User {
            name: cell_model::Username::parse("alice").unwrap(),
            role: cell_model::Role::Admin,
            disabled: false,
            password_hash: cell_model::users::Secret::new(
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
            ),
            totp_secret: None,
            recovery_codes: Vec::new(),
            app_passwords: Vec::new(),
            mail_aliases: Vec::new(),
            files_quota_mib: None,
        });
        settings
    }

    #[tokio::test]
    async fn a_second_pass_changes_nothing_and_a_change_reloads_only_its_reader() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: giving files to the machine's users needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (applier, system) = applier(dir.path());
        crate::system::System::restart_unit(system.as_ref(), MAIL_UNIT)
            .await
            .unwrap();
        let pass = Pass {
            generation: 1,
            verify: true,
        };
        let plan = applier.plan(&settings()).unwrap();
        let first = applier.apply(&plan, pass).await.unwrap();
        assert_eq!(
            first,
            "reloaded postfix.service, dovecot.service, opendkim.service; queued mail retried"
        );
        let key = dir.path().join("mail/config/dkim/cell.private");
        let meta = std::fs::metadata(&key).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (meta.uid(), meta.mode() & 0o777),
            (MAIL_UID_BASE + 100, 0o600)
        );
        // Only the machine's dovecot reaches celld's login policy.
        let login = std::fs::metadata(dir.path().join("login")).unwrap();
        assert_eq!(
            (login.uid(), login.gid(), login.mode() & 0o777),
            (MAIL_UID_BASE + 104, MAIL_UID_BASE + 105, 0o700)
        );
        let dovecot_conf =
            std::fs::read_to_string(dir.path().join("mail/config/dovecot/dovecot.conf")).unwrap();
        assert!(dovecot_conf.contains("auth_policy_hash_nonce = 00ff\n"));
        let before = system.requests().len();
        assert_eq!(applier.apply(&plan, pass).await.unwrap(), UNCHANGED);
        assert_eq!(
            system.requests().len(),
            before,
            "nothing reloaded on a pass with no change"
        );
        let mut aliased = settings();
        aliased.users[0].mail_aliases = vec![cell_model::Username::parse("info").unwrap()];
        let plan = applier.plan(&aliased).unwrap();
        let before = system.requests().len();
        assert_eq!(
            applier.apply(&plan, pass).await.unwrap(),
            "reloaded postfix.service; queued mail retried"
        );
        // Postfix retries its queue under the configuration it has just read.
        assert_eq!(
            system.requests()[before..],
            ["reload=mail/postfix.service", "flush=mail"]
        );
        let mut disabled = aliased.clone();
        disabled.users[0].disabled = true;
        let plan = applier.plan(&disabled).unwrap();
        assert_eq!(
            applier.apply(&plan, pass).await.unwrap(),
            "accounts updated; ended the sessions of alice"
        );
        assert!(system.requests().contains(&"kick=mail/alice".to_owned()));
        assert_eq!(
            system
                .requests()
                .iter()
                .filter(|r| *r == "flush=mail")
                .count(),
            2,
            "no retry without a Postfix reload"
        );
    }

    #[test]
    fn logins_lost_from_the_account_file_name_their_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        assert!(lost_logins(&path, b"alice:x\n").is_empty(), "no file yet");
        std::fs::write(
            &path,
            "# header\nalice:x::::::a\nalice/1:y\nbob:z\ncarol:w\n",
        )
        .unwrap();
        let lost = lost_logins(&path, b"# header\nalice:x::::::a\nbob:changed\ncarol:w\n");
        assert_eq!(
            lost.into_iter().collect::<Vec<_>>(),
            vec!["alice".to_owned(), "bob".to_owned()]
        );
    }

    #[test]
    fn the_relay_is_planned_with_its_password_and_without_it_mail_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let (applier, _) = applier(dir.path());
        let mut public = settings();
        public.identity.domain = cell_model::settings::DomainMode::Own {
            domain: cell_model::names::DomainName::parse("example.org").unwrap(),
        };
        public.mail.relay = Some(cell_model::mail::MailRelay {
            host: "smtp.example.net".into(),
            port: 587,
            username: "cell".into(),
            verify_certificate: true,
            password_set: jiff::Timestamp::UNIX_EPOCH,
        });
        let MailPlan::On { files, .. } = applier.plan(&public).unwrap() else {
            panic!("mail is on");
        };
        let main_cf = String::from_utf8_lossy(&files[0].1.bytes).into_owned();
        assert!(
            main_cf.contains("defer_transports = smtp") && !main_cf.contains("relayhost"),
            "without its password the relay is left out and outgoing mail held: {main_cf}"
        );
        let secrets = cell_secrets::SecretStore::open(&dir.path().join("secrets")).unwrap();
        crate::mail_relay::set_password(&secrets, jiff::Timestamp::UNIX_EPOCH, "relay secret")
            .unwrap();
        let MailPlan::On { files, .. } = applier.plan(&public).unwrap() else {
            panic!("mail is on");
        };
        let (_, file) = files
            .iter()
            .find(|(_, f)| f.path == "postfix/relay_password")
            .unwrap();
        assert!(String::from_utf8_lossy(&file.bytes)
            .contains("[smtp.example.net]:587 cell:relay secret"));
    }

    #[test]
    fn without_certificates_nobody_logs_in() {
        let dir = tempfile::tempdir().unwrap();
        let (applier, _) = applier(dir.path());
        let plan = applier.plan(&settings()).unwrap();
        let Some(MailPlan::On { files, .. }) = applier.fail_closed(&plan) else {
            panic!("mail on has a fail-closed plan");
        };
        let (_, accounts) = files.iter().find(|(r, _)| *r == Reader::Accounts).unwrap();
        assert!(!String::from_utf8_lossy(&accounts.bytes).contains("alice"));
        assert!(applier.fail_closed(&MailPlan::Off).is_none());
    }
}
