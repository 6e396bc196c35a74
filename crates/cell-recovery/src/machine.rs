//! The real machine behind the console. It prefers asking celld (so that its rules and
//! audit log apply) and falls back to the state on disk when celld is down; everything
//! else uses tools that work with most of the system broken (systemctl, networkctl,
//! bootctl), which is why they are run as commands here rather than over D-Bus.

use std::path::PathBuf;
use std::process::Command;

use cell_model::Role;
use celld_client::{Bytes, CelldClient, Method, OnBehalf};

use crate::console::{Facts, Machine};

/// Units whose state the header shows.
const UNITS: [&str; 3] = ["celld", "cell-web", "systemd-networkd"];
/// Network files celld writes (none yet: the LAN uses DHCP from the image's own file).
const NETWORK_OVERRIDES: &str = "/etc/systemd/network";

pub struct Paths {
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    /// Its presence makes `cell-factory-reset.service` wipe the state on the next boot.
    pub factory_reset_marker: PathBuf,
    pub os_release: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            state_dir: "/var/lib/cell".into(),
            socket: "/run/cell/celld.sock".into(),
            factory_reset_marker: crate::FACTORY_RESET_MARKER.into(),
            os_release: "/usr/lib/os-release".into(),
        }
    }
}

pub struct SystemMachine {
    paths: Paths,
    celld: CelldClient,
    runtime: tokio::runtime::Runtime,
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("running {program}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl SystemMachine {
    pub fn new(paths: Paths) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let celld = CelldClient::new(paths.socket.clone());
        Ok(Self {
            paths,
            celld,
            runtime,
        })
    }

    fn ask_celld(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, celld_client::ClientError> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        self.runtime
            .block_on(self.celld.json(method, path, &OnBehalf::default(), body))
    }

    fn version(&self) -> String {
        std::fs::read_to_string(&self.paths.os_release)
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("IMAGE_VERSION="))
                    .map(|v| v.trim_matches('"').to_owned())
            })
            .unwrap_or_else(|| cell_model::VERSION.to_owned())
    }

    fn addresses(&self) -> Vec<String> {
        // `ip -o addr`: one line per address: "2: eth0    inet 10.0.2.15/24 ...".
        let Ok(text) = run("ip", &["-o", "addr", "show", "scope", "global"]) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let link = fields.get(1)?;
                // The VPN's own addresses are not where a person finds the cell.
                if link.starts_with("cellwg") {
                    return None;
                }
                let address = fields.get(3)?;
                Some(format!("{address} ({link})"))
            })
            .collect()
    }

    fn setup_code(&self) -> Option<String> {
        match self.ask_celld(Method::GET, "/v1/setup-code", None) {
            Ok(answer) => answer["code"].as_str().map(str::to_owned),
            Err(_) => {
                std::fs::read_to_string(self.paths.state_dir.join(celld::setup_code::CODE_FILE))
                    .ok()
                    .map(|code| code.trim().to_owned())
                    .filter(|code| !code.is_empty())
            }
        }
    }

    /// Sets the password in the store itself, for when celld is down; audited as the
    /// recovery console.
    fn reset_password_on_disk(&self, user: &str, password: &str) -> Result<String, String> {
        let name = cell_model::Username::parse(user)?;
        let mut store =
            cell_store::Store::open(&self.paths.state_dir).map_err(|e| e.to_string())?;
        let mut settings = store.current().settings.clone();
        let account = settings
            .users
            .iter_mut()
            .find(|u| u.name == name)
            .ok_or_else(|| format!("there is no user '{user}'"))?;
        account.password_hash = celld::passwords::hash(password).map_err(|e| e.to_string())?;
        let mut audit =
            celld::audit::AuditLog::open(&self.paths.state_dir.join(celld::daemon::AUDIT_FILE))
                .map_err(|e| e.to_string())?;
        celld::audited::commit(
            &mut store,
            &mut audit,
            &self.paths.state_dir,
            settings,
            celld::audit::Record::new("recovery-console", "user.password_reset").target(user),
        )
        .map_err(|e| e.to_string())?;
        // The new password changes the account's credential epoch: its sessions are over
        // the moment celld reads the settings again.
        Ok("set in the settings store (celld is not running); their sessions were ended".into())
    }
}

impl Machine for SystemMachine {
    fn facts(&self) -> Facts {
        let units = UNITS
            .iter()
            .map(|unit| {
                let state = run("systemctl", &["is-active", &format!("{unit}.service")])
                    .or_else(|e| {
                        if e.contains("inactive") {
                            Ok("inactive".into())
                        } else {
                            Err(e)
                        }
                    })
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_else(|_| "unknown".into());
                (
                    unit.to_string(),
                    if state.is_empty() {
                        "inactive".into()
                    } else {
                        state
                    },
                )
            })
            .collect();
        Facts {
            version: self.version(),
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "cell".into()),
            addresses: self.addresses(),
            units,
            setup_code: self.setup_code(),
            root_fingerprint: self
                .ask_celld(Method::GET, "/v1/pki/root", None)
                .ok()
                .and_then(|root| root["fingerprint"].as_str().map(str::to_owned)),
        }
    }

    fn administrators(&self) -> Result<Vec<String>, String> {
        if let Ok(users) = self.ask_celld(Method::GET, "/v1/users", None) {
            return Ok(users
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter(|u| u["role"] == "admin")
                        .filter_map(|u| u["name"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default());
        }
        let store = cell_store::Store::open(&self.paths.state_dir).map_err(|e| e.to_string())?;
        Ok(store
            .current()
            .settings
            .users
            .iter()
            .filter(|u| u.role == Role::Admin)
            .map(|u| u.name.to_string())
            .collect())
    }

    fn reset_password(&self, user: &str, password: &str) -> Result<String, String> {
        let path = format!(
            "/v1/users/{}/password",
            celld_client::encode_component(user)
        );
        let body = serde_json::json!({ "password": password });
        match self.runtime.block_on(self.celld.send(
            Method::PUT,
            &path,
            &OnBehalf::default(),
            Some(Bytes::from(body.to_string())),
        )) {
            Ok(()) => Ok("set through celld; their sessions were ended".into()),
            Err(celld_client::ClientError::Refused { message, .. }) => Err(message),
            Err(_) => self.reset_password_on_disk(user, password),
        }
    }

    fn reset_network(&self) -> Result<String, String> {
        let mut removed = 0;
        if let Ok(entries) = std::fs::read_dir(NETWORK_OVERRIDES) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("cell-") && name.ends_with(".network") {
                    std::fs::remove_file(entry.path())
                        .map_err(|e| format!("removing {name}: {e}"))?;
                    removed += 1;
                }
            }
        }
        run("networkctl", &["reload"])?;
        run("networkctl", &["reconfigure", "--all"]).or_else(|_| Ok::<_, String>(String::new()))?;
        Ok(format!(
            "DHCP on every wired port ({removed} custom setting(s) removed)"
        ))
    }

    fn previous_version(&self) -> Result<Option<String>, String> {
        Ok(previous_entry(&run("bootctl", &["list", "--json=short"])?).map(|(_, version)| version))
    }

    fn boot_previous(&self) -> Result<(), String> {
        let (id, _) = previous_entry(&run("bootctl", &["list", "--json=short"])?)
            .ok_or("there is no previous version")?;
        run("bootctl", &["set-oneshot", &id])?;
        run("systemctl", &["reboot"]).map(|_| ())
    }

    fn factory_reset(&self) -> Result<(), String> {
        std::fs::write(
            &self.paths.factory_reset_marker,
            b"requested on the recovery console\n",
        )
        .map_err(|e| format!("writing {}: {e}", self.paths.factory_reset_marker.display()))?;
        nix::unistd::sync();
        run("systemctl", &["reboot"]).map(|_| ())
    }

    fn shell(&self) -> Result<(), String> {
        let status = Command::new("/bin/bash")
            .arg("--login")
            .status()
            .map_err(|e| format!("starting a shell: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("the shell ended with {status}"))
        }
    }

    fn shell_password_set(&self) -> bool {
        match self.ask_celld(Method::GET, "/v1/recovery", None) {
            Ok(view) => view["shell_password_set"] == true,
            Err(_) => cell_store::Store::open(&self.paths.state_dir)
                .map(|store| {
                    store
                        .current()
                        .settings
                        .recovery
                        .shell_password_hash
                        .is_some()
                })
                .unwrap_or(false),
        }
    }

    fn check_shell_password(&self, password: &str) -> Result<bool, String> {
        let body = serde_json::json!({ "password": password });
        match self.ask_celld(
            Method::POST,
            "/v1/recovery/shell-password/check",
            Some(body),
        ) {
            Ok(answer) => Ok(answer["matches"] == true),
            Err(celld_client::ClientError::Refused { message, .. }) => Err(message),
            Err(_) => {
                let store =
                    cell_store::Store::open(&self.paths.state_dir).map_err(|e| e.to_string())?;
                let hash = store
                    .current()
                    .settings
                    .recovery
                    .shell_password_hash
                    .clone();
                Ok(hash.is_some_and(|hash| celld::passwords::verify(password, &hash)))
            }
        }
    }

    fn presence_code(&self) -> String {
        let n: u32 = rand::Rng::random_range(&mut rand::rng(), 100_000..1_000_000);
        n.to_string()
    }
}

/// The boot entry of the version before the running one: (entry id, version). Entries
/// without a version (the recovery entry) and versions out of tries (rolled back) are not
/// candidates.
fn previous_entry(bootctl_json: &str) -> Option<(String, String)> {
    let entries: serde_json::Value = serde_json::from_str(bootctl_json).ok()?;
    let entries = entries.as_array()?;
    let current = entries.iter().position(|e| e["isSelected"] == true)?;
    entries
        .iter()
        .skip(current + 1)
        .find(|e| e["version"].is_string() && e["id"].is_string() && e["triesLeft"] != 0)
        .map(|e| {
            (
                e["id"].as_str().unwrap_or_default().to_owned(),
                e["version"].as_str().unwrap_or_default().to_owned(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_entry_follows_the_selected_one() {
        let json = r#"[
            {"id":"cell_0.1.0-41.efi","version":"0.1.0-41","isSelected":false},
            {"id":"cell_0.1.0-40.efi","version":"0.1.0-40","isSelected":true},
            {"id":"cell_0.1.0-39.efi","version":"0.1.0-39","isSelected":false},
            {"id":"auto-reboot-to-firmware-setup","isSelected":false}
        ]"#;
        assert_eq!(
            previous_entry(json),
            Some(("cell_0.1.0-39.efi".into(), "0.1.0-39".into()))
        );
        let single =
            r#"[{"id":"cell_1.efi","version":"1","isSelected":true},{"id":"auto-efi-shell"}]"#;
        assert_eq!(previous_entry(single), None);
    }

    #[test]
    fn rolled_back_versions_and_the_recovery_entry_are_not_previous_versions() {
        let json = r#"[
            {"id":"cell_2.efi","version":"2","isSelected":true},
            {"id":"cell-recovery.conf","title":"recovery console","isSelected":false},
            {"id":"cell_3.efi","version":"3","triesLeft":0,"triesDone":3,"isSelected":false},
            {"id":"cell_1.efi","version":"1","isSelected":false}
        ]"#;
        assert_eq!(
            previous_entry(json),
            Some(("cell_1.efi".into(), "1".into()))
        );
    }
}
