use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use clap::{Parser, Subcommand};

use cell_update::boot::BootVerdict;
use cell_update::job::{self, Paths};

/// The cell's update job and boot assessment helper. Run by systemd units, not by hand.
#[derive(Parser)]
#[command(version = cell_model::VERSION)]
struct Args {
    /// celld's state directory.
    #[arg(long, default_value = "/var/lib/cell")]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Run the job celld asked for (cell-update.service).
    Run,
    /// Record how a pending update went and update the boot menu's recovery entry
    /// (cell-update-boot.service, after boot-complete).
    AfterBoot {
        /// Where the ESP is mounted.
        #[arg(long, default_value = "/boot")]
        esp: PathBuf,
    },
    /// The health check failed: reboot if this version is on trial, so that boot counting
    /// tries again and then falls back (cell-health-failed.service).
    HealthFailed,
}

const BLESS_BOOT: &str = "/usr/lib/systemd/systemd-bless-boot";

fn verdict() -> BootVerdict {
    match Command::new(BLESS_BOOT).arg("status").output() {
        Ok(output) => BootVerdict::parse(&String::from_utf8_lossy(&output.stdout)),
        Err(error) => {
            tracing::warn!(%error, "cannot ask systemd-bless-boot; taking this boot as good");
            BootVerdict::Good
        }
    }
}

fn main() -> anyhow::Result<()> {
    cell_systemd::init_logging("cell-update")?;
    let args = Args::parse();
    let paths = Paths::device(&args.state_dir);
    match args.command {
        Action::Run => job::run_request(&paths),
        Action::AfterBoot { esp } => job::after_boot(&paths, &esp, verdict()),
        Action::HealthFailed => {
            if verdict() != BootVerdict::Indeterminate {
                tracing::warn!(
                    "the health check failed on a version already judged; not rebooting"
                );
                return Ok(());
            }
            tracing::error!("the health check failed on a version on trial; rebooting so that boot counting decides");
            let status = Command::new("systemctl")
                .arg("reboot")
                .status()
                .context("running systemctl reboot")?;
            anyhow::ensure!(status.success(), "systemctl reboot failed: {status}");
            Ok(())
        }
    }
}
