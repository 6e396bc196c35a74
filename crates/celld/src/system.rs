//! What celld asks of the operating system, through systemd's own services on D-Bus: the
//! hostname (hostnamed, which also renames the cell on mDNS), the time zone (timedated)
//! and the state of the cell's units (the service manager). Behind a trait so that tests
//! and development runs off the device record the requests instead of changing the
//! machine they run on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use cell_model::api::UnitHealth;
use tokio::sync::OnceCell;

pub type SystemFuture<'a, T = ()> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

pub trait System: Send + Sync + std::fmt::Debug {
    fn set_hostname<'a>(&'a self, hostname: &'a str) -> SystemFuture<'a>;
    fn set_timezone<'a>(&'a self, timezone: &'a str) -> SystemFuture<'a>;
    /// `ActiveState` of each unit (`active`, `failed`, `inactive`…).
    fn unit_health<'a>(&'a self, units: &'a [&'a str]) -> SystemFuture<'a, Vec<UnitHealth>>;
    /// Starts a unit (a job such as cell-update.service) and returns at once.
    fn start_unit<'a>(&'a self, unit: &'a str) -> SystemFuture<'a>;
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
    async fn bus(&self) -> Result<&zbus::Connection, String> {
        self.bus
            .get_or_try_init(zbus::Connection::system)
            .await
            .map_err(|e| format!("connecting to the system bus: {e}"))
    }

    async fn set(
        &self,
        service: &str,
        path: &str,
        method: &str,
        value: &str,
    ) -> Result<(), String> {
        self.bus()
            .await?
            .call_method(Some(service), path, Some(service), method, &(value, false))
            .await
            .map_err(|e| format!("{service}.{method}: {e}"))?;
        Ok(())
    }

    async fn active_state(&self, unit: &str) -> Result<String, String> {
        const SYSTEMD: &str = "org.freedesktop.systemd1";
        let bus = self.bus().await?;
        let reply = bus
            .call_method(
                Some(SYSTEMD),
                "/org/freedesktop/systemd1",
                Some("org.freedesktop.systemd1.Manager"),
                "LoadUnit",
                &(unit,),
            )
            .await
            .map_err(|e| format!("loading {unit}: {e}"))?;
        let path: zbus::zvariant::OwnedObjectPath = reply
            .body()
            .deserialize()
            .map_err(|e| format!("{unit}: {e}"))?;
        let reply = bus
            .call_method(
                Some(SYSTEMD),
                path.as_str(),
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &("org.freedesktop.systemd1.Unit", "ActiveState"),
            )
            .await
            .map_err(|e| format!("reading the state of {unit}: {e}"))?;
        let value: zbus::zvariant::OwnedValue = reply
            .body()
            .deserialize()
            .map_err(|e| format!("{unit}: {e}"))?;
        String::try_from(value).map_err(|e| format!("{unit}: {e}"))
    }

    async fn login_call<B>(&self, method: &str, body: &B) -> Result<zbus::Message, String>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        self.bus()
            .await?
            .call_method(Some(LOGIN), LOGIN_PATH, Some(LOGIN_MANAGER), method, body)
            .await
            .map_err(|e| format!("logind {method}: {e}"))
    }
}

impl System for DBusSystem {
    fn set_hostname<'a>(&'a self, hostname: &'a str) -> SystemFuture<'a> {
        Box::pin(self.set(
            "org.freedesktop.hostname1",
            "/org/freedesktop/hostname1",
            "SetStaticHostname",
            hostname,
        ))
    }

    fn set_timezone<'a>(&'a self, timezone: &'a str) -> SystemFuture<'a> {
        Box::pin(self.set(
            "org.freedesktop.timedate1",
            "/org/freedesktop/timedate1",
            "SetTimezone",
            timezone,
        ))
    }

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

    fn start_unit<'a>(&'a self, unit: &'a str) -> SystemFuture<'a> {
        Box::pin(async move {
            self.bus()
                .await?
                .call_method(
                    Some("org.freedesktop.systemd1"),
                    "/org/freedesktop/systemd1",
                    Some("org.freedesktop.systemd1.Manager"),
                    "StartUnit",
                    &(unit, "replace"),
                )
                .await
                .map_err(|e| format!("starting {unit}: {e}"))?;
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
                .map_err(|e| format!("reading logind's scheduled shutdown: {e}"))?;
            let value: zbus::zvariant::OwnedValue = reply
                .body()
                .deserialize()
                .map_err(|e| format!("logind's scheduled shutdown: {e}"))?;
            let (kind, micros): (String, u64) = value
                .try_into()
                .map_err(|e| format!("logind's scheduled shutdown: {e}"))?;
            if kind.is_empty() || micros == 0 {
                return Ok(None);
            }
            let micros = i64::try_from(micros).map_err(|e| e.to_string())?;
            jiff::Timestamp::from_microsecond(micros)
                .map(Some)
                .map_err(|e| e.to_string())
        })
    }
}

/// Records what would have been changed, and reports every unit as `unknown`; for tests
/// and for running celld off the device (`celld --no-system`).
#[derive(Debug, Default)]
pub struct RecordedSystem {
    requests: Mutex<Vec<String>>,
    reboot_at: Mutex<Option<jiff::Timestamp>>,
}

impl RecordedSystem {
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn record(&self, request: String) -> SystemFuture<'_> {
        if let Ok(mut requests) = self.requests.lock() {
            requests.push(request);
        }
        Box::pin(async { Ok(()) })
    }
}

impl System for RecordedSystem {
    fn set_hostname<'a>(&'a self, hostname: &'a str) -> SystemFuture<'a> {
        self.record(format!("hostname={hostname}"))
    }

    fn set_timezone<'a>(&'a self, timezone: &'a str) -> SystemFuture<'a> {
        self.record(format!("timezone={timezone}"))
    }

    fn unit_health<'a>(&'a self, units: &'a [&'a str]) -> SystemFuture<'a, Vec<UnitHealth>> {
        let health = units
            .iter()
            .map(|unit| UnitHealth {
                unit: (*unit).to_owned(),
                state: "unknown".to_owned(),
            })
            .collect();
        Box::pin(async move { Ok(health) })
    }

    fn start_unit<'a>(&'a self, unit: &'a str) -> SystemFuture<'a> {
        self.record(format!("start={unit}"))
    }

    fn schedule_reboot(&self, at: jiff::Timestamp) -> SystemFuture<'_> {
        if let Ok(mut reboot_at) = self.reboot_at.lock() {
            *reboot_at = Some(at);
        }
        self.record(format!("reboot={at}"))
    }

    fn cancel_reboot(&self) -> SystemFuture<'_> {
        if let Ok(mut reboot_at) = self.reboot_at.lock() {
            *reboot_at = None;
        }
        self.record("reboot=cancel".to_owned())
    }

    fn scheduled_reboot(&self) -> SystemFuture<'_, Option<jiff::Timestamp>> {
        let at = self.reboot_at.lock().ok().and_then(|at| *at);
        Box::pin(async move { Ok(at) })
    }
}
