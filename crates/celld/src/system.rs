//! What celld asks of the operating system, through systemd's own services on D-Bus: the
//! hostname (hostnamed, which also renames the cell on mDNS), the time zone (timedated)
//! and the state of the cell's units (the service manager). Behind a trait so that tests
//! and development runs off the device record the requests instead of changing the
//! machine they run on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use cell_model::api::{LogPage, UnitHealth, UnitState};
use tokio::sync::OnceCell;

use crate::sync::lock;

pub type SystemFuture<'a, T = ()> =
    Pin<Box<dyn Future<Output = Result<T, SystemError>> + Send + 'a>>;

/// A request to one of systemd's services that failed, named by what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error("connecting to the system bus: {0}")]
    Bus(#[source] zbus::Error),
    #[error("{call}: {source}")]
    Call {
        call: String,
        #[source]
        source: zbus::Error,
    },
    #[error("{call}: unexpected answer: {message}")]
    Answer { call: String, message: String },
    #[error("reading the journal: {0}")]
    Journal(String),
    #[error("in machine {machine}: {message}")]
    InMachine { machine: String, message: String },
}

impl SystemError {
    fn call(call: impl Into<String>) -> impl FnOnce(zbus::Error) -> Self {
        let call = call.into();
        move |source| Self::Call { call, source }
    }

    fn answer(call: impl Into<String>) -> impl FnOnce(String) -> Self {
        let call = call.into();
        move |message| Self::Answer { call, message }
    }
}

/// The machine's identity: what only the reconciler's identity applier changes.
pub trait HostIdentity: Send + Sync + std::fmt::Debug {
    /// The static hostname hostnamed holds.
    fn hostname(&self) -> SystemFuture<'_, String>;
    fn set_hostname<'a>(&'a self, hostname: &'a str) -> SystemFuture<'a>;
    /// The time zone timedated holds.
    fn timezone(&self) -> SystemFuture<'_, String>;
    fn set_timezone<'a>(&'a self, timezone: &'a str) -> SystemFuture<'a>;
}

/// Units, jobs and reboots: what API requests may ask of systemd directly.
pub trait System: Send + Sync + std::fmt::Debug {
    /// `ActiveState` of each unit (`active`, `failed`, `inactive`…).
    fn unit_health<'a>(&'a self, units: &'a [&'a str]) -> SystemFuture<'a, Vec<UnitHealth>>;
    /// Each unit's states, since when, and its restarts.
    fn unit_states<'a>(&'a self, units: &'a [&'a str]) -> SystemFuture<'a, Vec<UnitState>>;
    /// The journal's lines that `query` (validated) asks for.
    fn journal<'a>(&'a self, query: &'a crate::journal::LogQuery) -> SystemFuture<'a, LogPage>;
    /// Starts a unit (a job such as cell-update.service) and returns at once.
    fn start_unit<'a>(&'a self, unit: &'a str) -> SystemFuture<'a>;
    /// Restarts a unit (starts it when it is not running), e.g. after its configuration
    /// changed.
    fn restart_unit<'a>(&'a self, unit: &'a str) -> SystemFuture<'a>;
    fn stop_unit<'a>(&'a self, unit: &'a str) -> SystemFuture<'a>;
    /// Reloads `unit` inside the machine `machine` (a systemd-nspawn container machined
    /// knows), if it runs there, and waits for the job to finish.
    fn reload_in_machine<'a>(&'a self, machine: &'a str, unit: &'a str) -> SystemFuture<'a>;
    /// Ends `user`'s IMAP sessions in the mail machine, if it runs, and waits for it.
    fn end_mail_sessions<'a>(&'a self, user: &'a str) -> SystemFuture<'a>;
    /// Has the mail machine's Postfix, if it runs, retry the mail in its queue now, and
    /// waits for the request to be handed over.
    fn flush_mail_queue(&self) -> SystemFuture<'_>;
    /// Has systemd-networkd read its `.network` files again and reconfigure the links
    /// whose configuration changed.
    fn reload_network(&self) -> SystemFuture<'_>;
    /// Reboots at `at` (now when it is in the past), through logind: users of the
    /// machine get its usual warnings, and it can be cancelled.
    fn schedule_reboot(&self, at: jiff::Timestamp) -> SystemFuture<'_>;
    fn cancel_reboot(&self) -> SystemFuture<'_>;
    /// When a reboot is scheduled, if one is.
    fn scheduled_reboot(&self) -> SystemFuture<'_, Option<jiff::Timestamp>>;
}

const LOGIN: &str = "org.freedesktop.login1";
const LOGIN_PATH: &str = "/org/freedesktop/login1";
const LOGIN_MANAGER: &str = "org.freedesktop.login1.Manager";

/// The real machine, over the system bus (one connection, opened on first use).
#[derive(Debug, Default)]
pub struct DBusSystem {
    bus: OnceCell<zbus::Connection>,
}

impl DBusSystem {
    async fn bus(&self) -> Result<&zbus::Connection, SystemError> {
        self.bus
            .get_or_try_init(zbus::Connection::system)
            .await
            .map_err(SystemError::Bus)
    }

    async fn set(
        &self,
        service: &str,
        path: &str,
        method: &str,
        value: &str,
    ) -> Result<(), SystemError> {
        self.bus()
            .await?
            .call_method(Some(service), path, Some(service), method, &(value, false))
            .await
            .map_err(SystemError::call(format!("{service}.{method}")))?;
        Ok(())
    }

    /// A string property of one of systemd's services.
    async fn property(&self, service: &str, path: &str, name: &str) -> Result<String, SystemError> {
        self.property_at(service, path, service, name).await
    }

    async fn property_at(
        &self,
        service: &str,
        path: &str,
        interface: &str,
        name: &str,
    ) -> Result<String, SystemError> {
        let call = format!("{interface}.{name}");
        let reply = self
            .bus()
            .await?
            .call_method(
                Some(service),
                path,
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &(interface, name),
            )
            .await
            .map_err(SystemError::call(call.clone()))?;
        let value: zbus::zvariant::OwnedValue = reply
            .body()
            .deserialize()
            .map_err(|e| SystemError::answer(call.clone())(e.to_string()))?;
        String::try_from(value).map_err(|e| SystemError::answer(call)(e.to_string()))
    }

    /// Queues a job for `unit` with systemd's manager (`StartUnit`, `RestartUnit`,
    /// `StopUnit`), replacing a conflicting one.
    async fn unit_job(&self, method: &str, unit: &str, doing: &str) -> Result<(), SystemError> {
        self.bus()
            .await?
            .call_method(
                Some("org.freedesktop.systemd1"),
                "/org/freedesktop/systemd1",
                Some("org.freedesktop.systemd1.Manager"),
                method,
                &(unit, "replace"),
            )
            .await
            .map_err(SystemError::call(format!("{doing} {unit}")))?;
        Ok(())
    }

    /// Starts a one-shot unit and waits until its job is done: Ok once it succeeded,
    /// else what systemd says of its result.
    async fn run_job(&self, unit: &str) -> Result<(), String> {
        let bus = self.bus().await.map_err(|e| e.to_string())?;
        let reply = bus
            .call_method(
                Some("org.freedesktop.systemd1"),
                "/org/freedesktop/systemd1",
                Some("org.freedesktop.systemd1.Manager"),
                "StartUnit",
                &(unit, "replace"),
            )
            .await
            .map_err(|e| format!("starting {unit}: {e}"))?;
        let job: zbus::zvariant::OwnedObjectPath =
            reply.body().deserialize().map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + MACHINE_JOB_LIMIT;
        // The job object exists until the job is done.
        while bus
            .call_method(
                Some("org.freedesktop.systemd1"),
                job.as_str(),
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &("org.freedesktop.systemd1.Job", "State"),
            )
            .await
            .is_ok()
        {
            if tokio::time::Instant::now() > deadline {
                return Err(format!("{unit} took longer than {MACHINE_JOB_LIMIT:?}"));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let path = self.unit_path(unit).await.map_err(|e| e.to_string())?;
        let result = self
            .property_at(
                "org.freedesktop.systemd1",
                path.as_str(),
                "org.freedesktop.systemd1.Service",
                "Result",
            )
            .await
            .map_err(|e| e.to_string())?;
        if result == "success" {
            Ok(())
        } else {
            Err(format!("{unit} ended with {result} (journalctl -u {unit})"))
        }
    }

    /// The unit's object path (loading its description if systemd has not).
    async fn unit_path(&self, unit: &str) -> Result<zbus::zvariant::OwnedObjectPath, SystemError> {
        let reply = self
            .bus()
            .await?
            .call_method(
                Some(SYSTEMD),
                "/org/freedesktop/systemd1",
                Some("org.freedesktop.systemd1.Manager"),
                "LoadUnit",
                &(unit,),
            )
            .await
            .map_err(SystemError::call(format!("loading {unit}")))?;
        reply
            .body()
            .deserialize()
            .map_err(|e| SystemError::answer(format!("loading {unit}"))(e.to_string()))
    }

    /// Every property of one of a unit's interfaces.
    async fn unit_properties(
        &self,
        path: &str,
        interface: &str,
    ) -> Result<std::collections::HashMap<String, zbus::zvariant::OwnedValue>, SystemError> {
        let call = format!("the properties of {path}");
        let reply = self
            .bus()
            .await?
            .call_method(
                Some(SYSTEMD),
                path,
                Some("org.freedesktop.DBus.Properties"),
                "GetAll",
                &(interface,),
            )
            .await
            .map_err(SystemError::call(call.clone()))?;
        reply
            .body()
            .deserialize()
            .map_err(|e| SystemError::answer(call)(e.to_string()))
    }

    async fn unit_state(&self, unit: &str) -> Result<UnitState, SystemError> {
        let path = self.unit_path(unit).await?;
        let mut properties = self
            .unit_properties(path.as_str(), "org.freedesktop.systemd1.Unit")
            .await?;
        let mut text = |name: &str| {
            properties
                .remove(name)
                .and_then(|value| String::try_from(value).ok())
                .unwrap_or_default()
        };
        let description = text("Description");
        let active_state = text("ActiveState");
        let sub_state = text("SubState");
        let since = properties
            .remove("StateChangeTimestamp")
            .and_then(|value| u64::try_from(value).ok())
            .filter(|micros| *micros > 0)
            .and_then(|micros| i64::try_from(micros).ok())
            .and_then(|micros| jiff::Timestamp::from_microsecond(micros).ok());
        let restarts = if unit.ends_with(".service") {
            self.unit_properties(path.as_str(), "org.freedesktop.systemd1.Service")
                .await
                .ok()
                .and_then(|mut service| service.remove("NRestarts"))
                .and_then(|value| u32::try_from(value).ok())
        } else {
            None
        };
        Ok(UnitState {
            unit: unit.to_owned(),
            description,
            active_state,
            sub_state,
            since,
            restarts,
        })
    }

    async fn active_state(&self, unit: &str) -> Result<String, SystemError> {
        let path = self.unit_path(unit).await?;
        let reply = self
            .bus()
            .await?
            .call_method(
                Some(SYSTEMD),
                path.as_str(),
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &("org.freedesktop.systemd1.Unit", "ActiveState"),
            )
            .await
            .map_err(SystemError::call(format!("reading the state of {unit}")))?;
        let call = format!("the state of {unit}");
        let value: zbus::zvariant::OwnedValue = reply
            .body()
            .deserialize()
            .map_err(|e| SystemError::answer(call.clone())(e.to_string()))?;
        String::try_from(value).map_err(|e| SystemError::answer(call)(e.to_string()))
    }

    async fn login_call<B>(&self, method: &str, body: &B) -> Result<zbus::Message, SystemError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        self.bus()
            .await?
            .call_method(Some(LOGIN), LOGIN_PATH, Some(LOGIN_MANAGER), method, body)
            .await
            .map_err(SystemError::call(format!("logind {method}")))
    }
}

const SYSTEMD: &str = "org.freedesktop.systemd1";
const HOSTNAME1: &str = "org.freedesktop.hostname1";
const TIMEDATE1: &str = "org.freedesktop.timedate1";

/// Both halves of the machine, as celld is given them; the API keeps only [`System`].
pub trait Machine: System + HostIdentity {}

impl<T: System + HostIdentity> Machine for T {}

impl HostIdentity for DBusSystem {
    fn hostname(&self) -> SystemFuture<'_, String> {
        Box::pin(self.property(HOSTNAME1, "/org/freedesktop/hostname1", "StaticHostname"))
    }

    fn timezone(&self) -> SystemFuture<'_, String> {
        Box::pin(self.property(TIMEDATE1, "/org/freedesktop/timedate1", "Timezone"))
    }

    fn set_hostname<'a>(&'a self, hostname: &'a str) -> SystemFuture<'a> {
        Box::pin(self.set(
            HOSTNAME1,
            "/org/freedesktop/hostname1",
            "SetStaticHostname",
            hostname,
        ))
    }

    fn set_timezone<'a>(&'a self, timezone: &'a str) -> SystemFuture<'a> {
        Box::pin(self.set(
            TIMEDATE1,
            "/org/freedesktop/timedate1",
            "SetTimezone",
            timezone,
        ))
    }
}

impl System for DBusSystem {
    fn unit_health<'a>(&'a self, units: &'a [&'a str]) -> SystemFuture<'a, Vec<UnitHealth>> {
        Box::pin(async move {
            let mut health = Vec::with_capacity(units.len());
            for unit in units {
                let state = self.active_state(unit).await.unwrap_or_else(|error| {
                    tracing::warn!(%error, unit, "cannot read a unit's state");
                    "unknown".to_owned()
                });
                health.push(UnitHealth {
                    unit: (*unit).to_owned(),
                    state,
                });
            }
            Ok(health)
        })
    }

    fn unit_states<'a>(&'a self, units: &'a [&'a str]) -> SystemFuture<'a, Vec<UnitState>> {
        Box::pin(async move {
            let mut states = Vec::with_capacity(units.len());
            for unit in units {
                // One unit systemd cannot describe does not hide the others.
                let state = self.unit_state(unit).await.unwrap_or_else(|error| {
                    tracing::warn!(%error, unit, "cannot read a unit's state");
                    UnitState {
                        unit: (*unit).to_owned(),
                        description: error.to_string(),
                        active_state: "unknown".to_owned(),
                        sub_state: "unknown".to_owned(),
                        since: None,
                        restarts: None,
                    }
                });
                states.push(state);
            }
            Ok(states)
        })
    }

    fn journal<'a>(&'a self, query: &'a crate::journal::LogQuery) -> SystemFuture<'a, LogPage> {
        Box::pin(async move {
            let run = tokio::process::Command::new("journalctl")
                .args(query.journalctl_args())
                .kill_on_drop(true)
                .output();
            let output = tokio::time::timeout(JOURNAL_LIMIT, run)
                .await
                .map_err(|_| {
                    SystemError::Journal(format!("journalctl took longer than {JOURNAL_LIMIT:?}"))
                })?
                .map_err(|e| SystemError::Journal(format!("running journalctl: {e}")))?;
            if !output.status.success() {
                return Err(SystemError::Journal(format!(
                    "journalctl {}: {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                )));
            }
            Ok(query.page(&String::from_utf8_lossy(&output.stdout)))
        })
    }

    fn start_unit<'a>(&'a self, unit: &'a str) -> SystemFuture<'a> {
        Box::pin(self.unit_job("StartUnit", unit, "starting"))
    }

    fn restart_unit<'a>(&'a self, unit: &'a str) -> SystemFuture<'a> {
        Box::pin(self.unit_job("RestartUnit", unit, "restarting"))
    }

    fn stop_unit<'a>(&'a self, unit: &'a str) -> SystemFuture<'a> {
        Box::pin(self.unit_job("StopUnit", unit, "stopping"))
    }

    fn reload_in_machine<'a>(&'a self, machine: &'a str, unit: &'a str) -> SystemFuture<'a> {
        Box::pin(async move {
            let job = machine_reload_unit(machine, unit).ok_or_else(|| SystemError::InMachine {
                machine: machine.to_owned(),
                message: format!("'{unit}' is not a unit name celld reloads"),
            })?;
            self.run_job(&job)
                .await
                .map_err(|message| SystemError::InMachine {
                    machine: machine.to_owned(),
                    message: format!("reloading {unit}: {message}"),
                })
        })
    }

    fn end_mail_sessions<'a>(&'a self, user: &'a str) -> SystemFuture<'a> {
        Box::pin(async move {
            let job = mail_kick_unit(user).ok_or_else(|| SystemError::InMachine {
                machine: "mail".to_owned(),
                message: format!("'{user}' is not a username"),
            })?;
            self.run_job(&job)
                .await
                .map_err(|message| SystemError::InMachine {
                    machine: "mail".to_owned(),
                    message: format!("ending {user}'s sessions: {message}"),
                })
        })
    }

    fn flush_mail_queue(&self) -> SystemFuture<'_> {
        Box::pin(async move {
            self.run_job(MAIL_FLUSH_UNIT)
                .await
                .map_err(|message| SystemError::InMachine {
                    machine: "mail".to_owned(),
                    message: format!("retrying the mail queue: {message}"),
                })
        })
    }

    fn reload_network(&self) -> SystemFuture<'_> {
        Box::pin(async move {
            self.bus()
                .await?
                .call_method(
                    Some("org.freedesktop.network1"),
                    "/org/freedesktop/network1",
                    Some("org.freedesktop.network1.Manager"),
                    "Reload",
                    &(),
                )
                .await
                .map_err(SystemError::call("reloading systemd-networkd"))?;
            Ok(())
        })
    }

    fn schedule_reboot(&self, at: jiff::Timestamp) -> SystemFuture<'_> {
        Box::pin(async move {
            let micros = u64::try_from(at.as_microsecond()).unwrap_or(0);
            self.login_call("ScheduleShutdown", &("reboot", micros))
                .await?;
            Ok(())
        })
    }

    fn cancel_reboot(&self) -> SystemFuture<'_> {
        Box::pin(async move {
            self.login_call("CancelScheduledShutdown", &()).await?;
            Ok(())
        })
    }

    fn scheduled_reboot(&self) -> SystemFuture<'_, Option<jiff::Timestamp>> {
        Box::pin(async move {
            let reply = self
                .bus()
                .await?
                .call_method(
                    Some(LOGIN),
                    LOGIN_PATH,
                    Some("org.freedesktop.DBus.Properties"),
                    "Get",
                    &(LOGIN_MANAGER, "ScheduledShutdown"),
                )
                .await
                .map_err(SystemError::call("reading logind's scheduled shutdown"))?;
            let bad = SystemError::answer("logind's scheduled shutdown");
            let value: zbus::zvariant::OwnedValue = match reply.body().deserialize() {
                Ok(value) => value,
                Err(e) => return Err(bad(e.to_string())),
            };
            let (kind, micros): (String, u64) = match value.try_into() {
                Ok(pair) => pair,
                Err(e) => return Err(bad(format!("{e}"))),
            };
            if kind.is_empty() || micros == 0 {
                return Ok(None);
            }
            i64::try_from(micros)
                .map_err(|e| e.to_string())
                .and_then(|m| jiff::Timestamp::from_microsecond(m).map_err(|e| e.to_string()))
                .map(Some)
                .map_err(bad)
        })
    }
}

/// Records what would have been changed, and reports units as `unknown` (`active` once
/// restarted through it: a service; the units it starts are one-shot jobs); for tests and for running celld off the device
/// (`celld --no-system`). Its hostname and time zone start as a fresh image's (`cell`,
/// `UTC`) and follow what was set.
#[derive(Debug)]
pub struct RecordedSystem {
    requests: Mutex<Vec<String>>,
    started: Mutex<std::collections::BTreeSet<String>>,
    reboot_at: Mutex<Option<jiff::Timestamp>>,
    identity: Mutex<(String, String)>,
    /// Set-requests fail while this many remain (tests of the reconciler's retries).
    failures_left: Mutex<u32>,
}

impl Default for RecordedSystem {
    fn default() -> Self {
        Self {
            requests: Mutex::default(),
            started: Mutex::default(),
            reboot_at: Mutex::default(),
            identity: Mutex::new(("cell".to_owned(), "UTC".to_owned())),
            failures_left: Mutex::new(0),
        }
    }
}

impl RecordedSystem {
    pub fn requests(&self) -> Vec<String> {
        lock(&self.requests).clone()
    }

    /// Makes the next `count` hostname or time-zone requests fail, as a busy or absent
    /// hostnamed/timedated would.
    pub fn fail_next(&self, count: u32) {
        *lock(&self.failures_left) = count;
    }

    fn record(&self, request: String) -> SystemFuture<'_> {
        lock(&self.requests).push(request);
        Box::pin(async { Ok(()) })
    }

    fn set_identity(
        &self,
        call: &str,
        set: impl FnOnce(&mut (String, String)),
    ) -> SystemFuture<'_> {
        {
            let mut failures = lock(&self.failures_left);
            if *failures > 0 {
                *failures -= 1;
                let call = call.to_owned();
                return Box::pin(async move {
                    Err(SystemError::Answer {
                        call,
                        message: "the service is not running (simulated)".to_owned(),
                    })
                });
            }
        }
        set(&mut lock(&self.identity));
        self.record(call.to_owned())
    }
}

impl HostIdentity for RecordedSystem {
    fn hostname(&self) -> SystemFuture<'_, String> {
        let name = lock(&self.identity).0.clone();
        Box::pin(async move { Ok(name) })
    }

    fn set_hostname<'a>(&'a self, hostname: &'a str) -> SystemFuture<'a> {
        self.set_identity(&format!("hostname={hostname}"), |identity| {
            identity.0 = hostname.to_owned()
        })
    }

    fn timezone(&self) -> SystemFuture<'_, String> {
        let zone = lock(&self.identity).1.clone();
        Box::pin(async move { Ok(zone) })
    }

    fn set_timezone<'a>(&'a self, timezone: &'a str) -> SystemFuture<'a> {
        self.set_identity(&format!("timezone={timezone}"), |identity| {
            identity.1 = timezone.to_owned()
        })
    }
}

/// How long a journal query may take.
const JOURNAL_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);
/// The one-shot unit that reloads `unit` inside `machine` (units/system/
/// cell-machine-reload@.service): systemd runs it with the privileges entering a machine
/// takes, which celld does not hold. Only plain names make an instance.
pub fn machine_reload_unit(machine: &str, unit: &str) -> Option<String> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    let service = unit.strip_suffix(".service")?;
    (plain(machine) && plain(service))
        .then(|| format!("cell-machine-reload@{machine}:{service}.service"))
}

/// The job that ends `user`'s sessions in the mail machine (cell-mail-kick@.service), for
/// a username that cannot escape the instance name.
pub fn mail_kick_unit(user: &str) -> Option<String> {
    let plain = !user.is_empty()
        && user
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    plain.then(|| format!("cell-mail-kick@{user}.service"))
}

/// The job that has the mail machine's Postfix retry its queue (cell-mail-flush.service).
pub const MAIL_FLUSH_UNIT: &str = "cell-mail-flush.service";

/// How long a reload inside a machine may take (Postfix and Dovecot reload in well under a
/// second; a machine still booting answers once its PID 1 is up).
const MACHINE_JOB_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

impl System for RecordedSystem {
    fn unit_states<'a>(&'a self, units: &'a [&'a str]) -> SystemFuture<'a, Vec<UnitState>> {
        let started = lock(&self.started);
        let states = units
            .iter()
            .map(|unit| {
                let running = started.contains(*unit);
                UnitState {
                    unit: (*unit).to_owned(),
                    description: String::new(),
                    active_state: if running { "active" } else { "inactive" }.to_owned(),
                    sub_state: if running { "running" } else { "dead" }.to_owned(),
                    since: None,
                    restarts: Some(0),
                }
            })
            .collect();
        Box::pin(async move { Ok(states) })
    }

    /// Off the device there is no journal of the cell's units: nothing, from where asked.
    fn journal<'a>(&'a self, query: &'a crate::journal::LogQuery) -> SystemFuture<'a, LogPage> {
        Box::pin(async move { Ok(query.page("")) })
    }

    fn unit_health<'a>(&'a self, units: &'a [&'a str]) -> SystemFuture<'a, Vec<UnitHealth>> {
        let started = lock(&self.started);
        let health = units
            .iter()
            .map(|unit| UnitHealth {
                unit: (*unit).to_owned(),
                state: if started.contains(*unit) {
                    "active"
                } else {
                    "unknown"
                }
                .to_owned(),
            })
            .collect();
        Box::pin(async move { Ok(health) })
    }

    fn start_unit<'a>(&'a self, unit: &'a str) -> SystemFuture<'a> {
        self.record(format!("start={unit}"))
    }

    fn restart_unit<'a>(&'a self, unit: &'a str) -> SystemFuture<'a> {
        lock(&self.started).insert(unit.to_owned());
        self.record(format!("restart={unit}"))
    }

    fn stop_unit<'a>(&'a self, unit: &'a str) -> SystemFuture<'a> {
        lock(&self.started).remove(unit);
        self.record(format!("stop={unit}"))
    }

    fn reload_in_machine<'a>(&'a self, machine: &'a str, unit: &'a str) -> SystemFuture<'a> {
        self.record(format!("reload={machine}/{unit}"))
    }

    fn end_mail_sessions<'a>(&'a self, user: &'a str) -> SystemFuture<'a> {
        self.record(format!("kick=mail/{user}"))
    }

    fn flush_mail_queue(&self) -> SystemFuture<'_> {
        self.record("flush=mail".to_owned())
    }

    fn reload_network(&self) -> SystemFuture<'_> {
        self.record("networkd=reload".to_owned())
    }

    fn schedule_reboot(&self, at: jiff::Timestamp) -> SystemFuture<'_> {
        *lock(&self.reboot_at) = Some(at);
        self.record(format!("reboot={at}"))
    }

    fn cancel_reboot(&self) -> SystemFuture<'_> {
        *lock(&self.reboot_at) = None;
        self.record("reboot=cancel".to_owned())
    }

    fn scheduled_reboot(&self) -> SystemFuture<'_, Option<jiff::Timestamp>> {
        let at = *lock(&self.reboot_at);
        Box::pin(async move { Ok(at) })
    }
}
