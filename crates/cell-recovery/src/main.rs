use std::io::{self, IsTerminal};
use std::path::PathBuf;

use anyhow::Context;
use cell_recovery::console::Console;
use cell_recovery::machine::{Paths, SystemMachine};
use clap::{Parser, Subcommand};

/// The cell's recovery console (tty1 and the serial port).
#[derive(Debug, Parser)]
#[command(version = cell_model::VERSION)]
struct Args {
    #[command(subcommand)]
    command: Option<Action>,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Wipe the cell's state if a factory reset was requested (run early at boot).
    FactoryResetNow {
        #[arg(long, default_value = "/var/lib/cell")]
        state_dir: PathBuf,
    },
}

/// Turns echo of the terminal on stdin on or off (for password prompts).
fn set_echo(on: bool) {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        return;
    }
    if let Ok(mut attributes) = tcgetattr(&stdin) {
        attributes.local_flags.set(LocalFlags::ECHO, on);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &attributes);
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.command {
        Some(Action::FactoryResetNow { state_dir }) => {
            let marker = PathBuf::from(cell_recovery::FACTORY_RESET_MARKER);
            if cell_recovery::factory_reset_now(&state_dir, &marker)
                .with_context(|| format!("wiping {}", state_dir.display()))?
            {
                println!("factory reset: {} wiped", state_dir.display());
            }
            Ok(())
        }
        None => {
            let machine = SystemMachine::new(Paths::default())?;
            let stdin = io::stdin().lock();
            let stdout = io::stdout().lock();
            Console::new(&machine, stdin, stdout, Box::new(set_echo)).run()?;
            Ok(())
        }
    }
}
