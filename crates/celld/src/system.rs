//! Changes celld asks the operating system to make, through systemd's own services on
//! D-Bus: the hostname (hostnamed, which also renames the cell on mDNS) and the time zone
//! (timedated). Behind a trait so that tests and development runs off the device record
//! the requests instead of changing the machine they run on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

pub type SystemFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

pub trait System: Send + Sync + std::fmt::Debug {
    fn set_hostname<'a>(&'a self, hostname: &'a str) -> SystemFuture<'a>;
    fn set_timezone<'a>(&'a self, timezone: &'a str) -> SystemFuture<'a>;
}

/// The real machine, over the system bus.
#[derive(Debug, Default)]
pub struct DBusSystem;

async fn call(service: &str, path: &str, method: &str, argument: &str) -> Result<(), String> {
    let connection = zbus::Connection::system()
        .await
        .map_err(|e| format!("connecting to the system bus: {e}"))?;
    connection
        .call_method(
            Some(service),
            path,
            Some(service),
            method,
            &(argument, false),
        )
        .await
        .map_err(|e| format!("{service}.{method}: {e}"))?;
    Ok(())
}

impl System for DBusSystem {
    fn set_hostname<'a>(&'a self, hostname: &'a str) -> SystemFuture<'a> {
        Box::pin(call(
            "org.freedesktop.hostname1",
            "/org/freedesktop/hostname1",
            "SetStaticHostname",
            hostname,
        ))
    }

    fn set_timezone<'a>(&'a self, timezone: &'a str) -> SystemFuture<'a> {
        Box::pin(call(
            "org.freedesktop.timedate1",
            "/org/freedesktop/timedate1",
            "SetTimezone",
            timezone,
        ))
    }
}

/// Records what would have been changed; for tests and for running celld off the device
/// (`celld --no-system`).
#[derive(Debug, Default)]
pub struct RecordedSystem {
    requests: Mutex<Vec<String>>,
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
}
