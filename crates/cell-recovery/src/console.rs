//! The menu itself: what it shows, what it asks, and what it refuses. Everything it does to
//! the machine goes through [`Machine`], so the dialogue is tested with a recorded machine.

use std::io::{self, BufRead, Write};

/// What the header shows about the cell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub version: String,
    pub hostname: String,
    /// `address/prefix (link)`.
    pub addresses: Vec<String>,
    /// Unit and its state (`active`, `failed`, …).
    pub units: Vec<(String, String)>,
    /// Shown until the cell is set up.
    pub setup_code: Option<String>,
    /// The SHA-256 fingerprint of the cell's root certificate, for a person to compare
    /// with what their browser or phone shows before trusting it.
    pub root_fingerprint: Option<String>,
}

impl Facts {
    /// The web UI's address: the first IPv4 address, else the mDNS name.
    pub fn web_url(&self) -> String {
        let ipv4 = self.addresses.iter().find(|a| {
            a.split('/')
                .next()
                .is_some_and(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
        });
        match ipv4 {
            Some(address) => format!("https://{}/", address.split('/').next().unwrap_or_default()),
            None => format!("https://{}.local/", self.hostname),
        }
    }
}

/// What the console asks of the machine.
pub trait Machine {
    fn facts(&self) -> Facts;
    fn administrators(&self) -> Result<Vec<String>, String>;
    /// Sets `user`'s password; says how it was done.
    fn reset_password(&self, user: &str, password: &str) -> Result<String, String>;
    fn reset_network(&self) -> Result<String, String>;
    /// The version the previous boot entry would start, if there is one.
    fn previous_version(&self) -> Result<Option<String>, String>;
    /// Boots the previous version once (the current one stays the default) and reboots.
    fn boot_previous(&self) -> Result<(), String>;
    /// Arranges for the cell's state to be wiped on the next boot, and reboots.
    fn factory_reset(&self) -> Result<(), String>;
    /// Runs a root shell on this console until it exits.
    fn shell(&self) -> Result<(), String>;
    /// A fresh random code for confirming physical presence.
    fn presence_code(&self) -> String;
    /// Whether an administrator set a shell password in the web UI.
    fn shell_password_set(&self) -> bool;
    fn check_shell_password(&self, password: &str) -> Result<bool, String>;
}

const MIN_PASSWORD: usize = 12;

pub struct Console<'a, M, R, W> {
    machine: &'a M,
    input: R,
    output: W,
    /// Turns terminal echo off (false) and on (true) around password prompts.
    echo: Box<dyn FnMut(bool) + 'a>,
}

enum Step {
    Again,
    Quit,
}

impl<'a, M: Machine, R: BufRead, W: Write> Console<'a, M, R, W> {
    pub fn new(machine: &'a M, input: R, output: W, echo: Box<dyn FnMut(bool) + 'a>) -> Self {
        Self {
            machine,
            input,
            output,
            echo,
        }
    }

    /// Shows the menu and acts on choices until the input ends.
    pub fn run(&mut self) -> io::Result<()> {
        loop {
            self.header()?;
            self.menu()?;
            let Some(choice) = self.ask("Choice: ")? else {
                return Ok(());
            };
            let step = match choice.as_str() {
                "" | "1" => Step::Again,
                "2" => self.reset_password()?,
                "3" => self.reset_network()?,
                "4" => self.boot_previous()?,
                "5" => self.factory_reset()?,
                "6" => self.shell()?,
                other => {
                    writeln!(self.output, "'{other}' is not on the menu.")?;
                    Step::Again
                }
            };
            if let Step::Quit = step {
                return Ok(());
            }
        }
    }

    fn header(&mut self) -> io::Result<()> {
        let facts = self.machine.facts();
        let out = &mut self.output;
        writeln!(out)?;
        writeln!(out, "=== Personal Internet Cell: recovery console ===")?;
        writeln!(out, "Version:   {}", facts.version)?;
        writeln!(out, "Name:      {}", facts.hostname)?;
        if facts.addresses.is_empty() {
            writeln!(out, "Addresses: none (is a network cable plugged in?)")?;
        }
        for (i, address) in facts.addresses.iter().enumerate() {
            writeln!(
                out,
                "{}{address}",
                if i == 0 { "Addresses: " } else { "           " }
            )?;
        }
        writeln!(out, "Web UI:    {}", facts.web_url())?;
        let health: Vec<String> = facts
            .units
            .iter()
            .map(|(unit, state)| format!("{unit} {state}"))
            .collect();
        writeln!(out, "Health:    {}", health.join(", "))?;
        if let Some(print) = &facts.root_fingerprint {
            // Two lines of 16 bytes each, so that it fits an 80-column console.
            let (first, second) = print.split_at(print.len().min(47));
            writeln!(out, "Root certificate (SHA-256): {first}")?;
            if !second.is_empty() {
                writeln!(
                    out,
                    "                            {}",
                    second.trim_start_matches(':')
                )?;
            }
        }
        if let Some(code) = &facts.setup_code {
            writeln!(out, "Setup code: {code}")?;
        }
        Ok(())
    }

    fn menu(&mut self) -> io::Result<()> {
        writeln!(
            self.output,
            "\n  1) Refresh\n  2) Reset an administrator's password\n  3) Reset the network to DHCP\n  4) Boot the previous version\n  5) Factory reset\n  6) Root shell"
        )
    }

    /// A line of input without its newline; `None` when the input has ended.
    fn ask(&mut self, prompt: &str) -> io::Result<Option<String>> {
        write!(self.output, "{prompt}")?;
        self.output.flush()?;
        let mut line = String::new();
        if self.input.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        Ok(Some(line.trim_end_matches(['\r', '\n']).trim().to_owned()))
    }

    fn ask_secret(&mut self, prompt: &str) -> io::Result<Option<String>> {
        (self.echo)(false);
        let answer = self.ask(prompt);
        (self.echo)(true);
        writeln!(self.output)?;
        answer
    }

    /// Asks for `word` to be typed to go ahead.
    fn confirm(&mut self, what: &str, word: &str) -> io::Result<bool> {
        let answer = self.ask(&format!("{what} Type '{word}' to go ahead: "))?;
        let confirmed = answer.as_deref() == Some(word);
        if !confirmed {
            writeln!(self.output, "Cancelled; nothing was changed.")?;
        }
        Ok(confirmed)
    }

    fn report(&mut self, result: Result<String, String>) -> io::Result<()> {
        match result {
            Ok(done) => writeln!(self.output, "Done: {done}"),
            Err(error) => writeln!(self.output, "Failed: {error}"),
        }
    }

    fn reset_password(&mut self) -> io::Result<Step> {
        let admins = match self.machine.administrators() {
            Ok(admins) if !admins.is_empty() => admins,
            Ok(_) => {
                writeln!(
                    self.output,
                    "This cell has no administrator yet: finish the setup in the web UI."
                )?;
                return Ok(Step::Again);
            }
            Err(error) => {
                writeln!(self.output, "Failed: {error}")?;
                return Ok(Step::Again);
            }
        };
        writeln!(self.output, "Administrators: {}", admins.join(", "))?;
        let Some(user) = self.ask("Whose password? ")? else {
            return Ok(Step::Quit);
        };
        if !admins.contains(&user) {
            writeln!(
                self.output,
                "'{user}' is not an administrator; nothing was changed."
            )?;
            return Ok(Step::Again);
        }
        let Some(password) = self.ask_secret("New password: ")? else {
            return Ok(Step::Quit);
        };
        if password.chars().count() < MIN_PASSWORD {
            writeln!(
                self.output,
                "At least {MIN_PASSWORD} characters, please; nothing was changed."
            )?;
            return Ok(Step::Again);
        }
        let Some(again) = self.ask_secret("The same again: ")? else {
            return Ok(Step::Quit);
        };
        if again != password {
            writeln!(self.output, "The two differ; nothing was changed.")?;
            return Ok(Step::Again);
        }
        if !self.confirm(&format!("Set a new password for {user}?"), "yes")? {
            return Ok(Step::Again);
        }
        let result = self.machine.reset_password(&user, &password);
        self.report(result)?;
        Ok(Step::Again)
    }

    fn reset_network(&mut self) -> io::Result<Step> {
        if self.confirm(
            "Forget the network settings and use DHCP on every wired port?",
            "yes",
        )? {
            let result = self.machine.reset_network();
            self.report(result)?;
        }
        Ok(Step::Again)
    }

    fn boot_previous(&mut self) -> io::Result<Step> {
        match self.machine.previous_version() {
            Ok(Some(version)) => {
                if self.confirm(&format!("Restart into version {version}, once?"), "yes")? {
                    let result = self
                        .machine
                        .boot_previous()
                        .map(|()| "restarting".to_owned());
                    self.report(result)?;
                }
            }
            Ok(None) => writeln!(self.output, "There is no previous version on this cell.")?,
            Err(error) => writeln!(self.output, "Failed: {error}")?,
        }
        Ok(Step::Again)
    }

    fn factory_reset(&mut self) -> io::Result<Step> {
        writeln!(
            self.output,
            "A factory reset erases every setting, account, key and file on this cell and restarts it into the setup wizard."
        )?;
        if self.confirm("Erase everything?", "erase")? {
            let result = self
                .machine
                .factory_reset()
                .map(|()| "restarting to erase".to_owned());
            self.report(result)?;
        }
        Ok(Step::Again)
    }

    /// A root shell: behind the password set in the web UI when there is one, otherwise
    /// for whoever is at the machine, who proves it by typing back a code shown only on
    /// this console.
    fn shell(&mut self) -> io::Result<Step> {
        if self.machine.shell_password_set() {
            let Some(password) = self.ask_secret("Shell password: ")? else {
                return Ok(Step::Quit);
            };
            match self.machine.check_shell_password(&password) {
                Ok(true) => {}
                Ok(false) => {
                    writeln!(self.output, "Wrong password; no shell.")?;
                    return Ok(Step::Again);
                }
                Err(error) => {
                    writeln!(self.output, "Failed: {error}")?;
                    return Ok(Step::Again);
                }
            }
        } else {
            let code = self.machine.presence_code();
            writeln!(self.output, "To open a root shell, type this code: {code}")?;
            let Some(answer) = self.ask("Code: ")? else {
                return Ok(Step::Quit);
            };
            if answer != code {
                writeln!(self.output, "That is not the code; no shell.")?;
                return Ok(Step::Again);
            }
        }
        writeln!(
            self.output,
            "Root shell; type 'exit' to come back to this menu."
        )?;
        self.output.flush()?;
        if let Err(error) = self.machine.shell() {
            writeln!(self.output, "Failed: {error}")?;
        }
        Ok(Step::Again)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    #[derive(Default)]
    struct Recorded {
        actions: RefCell<Vec<String>>,
        previous: Option<String>,
        shell_password: Option<String>,
    }

    impl Machine for Recorded {
        fn facts(&self) -> Facts {
            Facts {
                version: "0.1.0-40".into(),
                hostname: "home".into(),
                addresses: vec!["192.168.1.20/24 (eth0)".into()],
                units: vec![("celld".into(), "active".into())],
                setup_code: None,
                root_fingerprint: Some(
                    (0..32)
                        .map(|i| format!("{i:02X}"))
                        .collect::<Vec<_>>()
                        .join(":"),
                ),
            }
        }
        fn administrators(&self) -> Result<Vec<String>, String> {
            Ok(vec!["alice".into()])
        }
        fn reset_password(&self, user: &str, password: &str) -> Result<String, String> {
            self.actions
                .borrow_mut()
                .push(format!("password {user} {password}"));
            Ok("through celld".into())
        }
        fn reset_network(&self) -> Result<String, String> {
            self.actions.borrow_mut().push("network".into());
            Ok("DHCP".into())
        }
        fn previous_version(&self) -> Result<Option<String>, String> {
            Ok(self.previous.clone())
        }
        fn boot_previous(&self) -> Result<(), String> {
            self.actions.borrow_mut().push("previous".into());
            Ok(())
        }
        fn factory_reset(&self) -> Result<(), String> {
            self.actions.borrow_mut().push("factory-reset".into());
            Ok(())
        }
        fn shell(&self) -> Result<(), String> {
            self.actions.borrow_mut().push("shell".into());
            Ok(())
        }
        fn presence_code(&self) -> String {
            "4711".into()
        }
        fn shell_password_set(&self) -> bool {
            self.shell_password.is_some()
        }
        fn check_shell_password(&self, password: &str) -> Result<bool, String> {
            Ok(self.shell_password.as_deref() == Some(password))
        }
    }

    fn session(machine: &Recorded, input: &str) -> String {
        let mut output = Vec::new();
        let echo_changes = RefCell::new(0);
        Console::new(
            machine,
            input.as_bytes(),
            &mut output,
            Box::new(|_| *echo_changes.borrow_mut() += 1),
        )
        .run()
        .unwrap();
        String::from_utf8(output).unwrap()
    }

    #[test]
    fn the_header_shows_what_a_person_needs() {
        let text = session(&Recorded::default(), "");
        assert!(text.contains("Version:   0.1.0-40"));
        assert!(text.contains("Web UI:    https://192.168.1.20/"));
        assert!(text.contains("Health:    celld active"));
        assert!(
            text.contains("Root certificate (SHA-256): 00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F\n                            10:11:"),
            "the fingerprint on two lines that fit 80 columns: {text}"
        );
        assert!(
            text.lines().all(|line| line.chars().count() <= 80),
            "{text}"
        );
    }

    #[test]
    fn a_password_reset_needs_matching_long_passwords_and_a_yes() {
        let machine = Recorded::default();
        session(&machine, "2\nalice\nshort\n");
        session(
            &machine,
            "2\nalice\ncorrect horse battery\ndifferent horse battery\n",
        );
        session(
            &machine,
            "2\nalice\ncorrect horse battery\ncorrect horse battery\nno\n",
        );
        session(&machine, "2\nmallory\n");
        assert!(
            machine.actions.borrow().is_empty(),
            "{:?}",
            machine.actions.borrow()
        );
        let text = session(
            &machine,
            "2\nalice\ncorrect horse battery\ncorrect horse battery\nyes\n",
        );
        assert_eq!(
            *machine.actions.borrow(),
            ["password alice correct horse battery"]
        );
        assert!(text.contains("Done: through celld"));
        assert!(
            !text.contains("correct horse"),
            "passwords are never echoed"
        );
    }

    #[test]
    fn a_factory_reset_needs_the_word_erase() {
        let machine = Recorded::default();
        session(&machine, "5\nyes\n");
        assert!(machine.actions.borrow().is_empty());
        session(&machine, "5\nerase\n");
        assert_eq!(*machine.actions.borrow(), ["factory-reset"]);
    }

    #[test]
    fn the_shell_needs_the_presence_code() {
        let machine = Recorded::default();
        let text = session(&machine, "6\n1234\n");
        assert!(text.contains("not the code"));
        session(&machine, "6\n4711\n");
        assert_eq!(*machine.actions.borrow(), ["shell"]);
    }

    #[test]
    fn a_shell_password_set_in_the_ui_replaces_the_presence_code() {
        let machine = Recorded {
            shell_password: Some("console secret 1".into()),
            ..Recorded::default()
        };
        let text = session(&machine, "6\n4711\n");
        assert!(text.contains("Wrong password"));
        assert!(machine.actions.borrow().is_empty());
        session(&machine, "6\nconsole secret 1\n");
        assert_eq!(*machine.actions.borrow(), ["shell"]);
    }

    #[test]
    fn booting_the_previous_version_says_when_there_is_none() {
        let text = session(&Recorded::default(), "4\n");
        assert!(text.contains("no previous version"));
        let machine = Recorded {
            previous: Some("0.1.0-39".into()),
            ..Recorded::default()
        };
        session(&machine, "4\nyes\n3\nyes\n");
        assert_eq!(*machine.actions.borrow(), ["previous", "network"]);
    }
}
