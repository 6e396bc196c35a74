mod cli;
mod dns;
mod lan;
mod logs;
mod mail_relay;
mod ntp;

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context};
use cell_model::api::{
    AuditEntry, AuditVerification, EditableSettings, SessionInfo, SettingsView, UserView,
};
use cell_model::update::{UpdateOutcome, UpdateView};
use cell_model::Status;
use celld_client::{Bytes, CelldClient, ClientError, Method, OnBehalf};
use clap::{CommandFactory, Parser};
use cli::{
    AuditCommand, Cli, Command, PasswordSource, RoleArg, SessionsCommand, SettingsCommand,
    UpdateCommand, UsersCommand,
};
use serde_json::{json, Value};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("cellctl: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// celld's refusals read as one line naming the field; other failures hint at celld.
fn explain(error: ClientError) -> anyhow::Error {
    match error {
        ClientError::Refused {
            message,
            field: Some(field),
            ..
        } => anyhow::anyhow!("{field}: {message}"),
        ClientError::Refused { message, .. } => anyhow::anyhow!("{message}"),
        other => anyhow::Error::new(other).context("is celld running? (systemctl status celld)"),
    }
}

pub(crate) struct Ctl {
    celld: CelldClient,
    json: bool,
}

impl Ctl {
    pub(crate) async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<T> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        self.celld
            .json(method, path, &OnBehalf::default(), body)
            .await
            .map_err(explain)
    }

    /// A call whose success has no body (204).
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<()> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        self.celld
            .send(method, path, &OnBehalf::default(), body)
            .await
            .map_err(explain)
    }

    pub(crate) fn print(
        &self,
        value: &impl serde::Serialize,
        text: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            print!("{}", text());
        }
        Ok(())
    }
}

fn status_text(status: &Status) -> String {
    let mut text = format!(
        "cell:        {}\nhostname:    {}\nversion:     {}\nuptime:      {} s\nset up:      {}\ngeneration:  {}{}\n",
        status.cell_name,
        status.hostname,
        status.version,
        status.uptime_seconds,
        if status.setup_complete { "yes" } else { "no (open the web UI; cellctl setup-code shows the code)" },
        status.generation,
        if status.settled() { " (applied)" } else { " (being applied)" },
    );
    if let Some(pending) = &status.pending_change {
        text.push_str(&format!(
            "pending:     generation {} changed {}; undone in {} s unless kept in the web UI\n",
            pending.generation,
            pending.fields.join(", "),
            pending.seconds_left
        ));
    }
    text.push_str("applied:\n");
    for applier in &status.appliers {
        let state = match (&applier.error, applier.ok) {
            (_, true) => format!("ok at generation {}", applier.generation),
            (Some(error), false) => format!("FAILED: {error}"),
            (None, false) => "not applied".to_owned(),
        };
        text.push_str(&format!(
            "  {:<11} {state} (since {})\n",
            applier.applier,
            applier.since.strftime("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
    text
}

/// The units whose health decides whether a version is good.
const CORE_UNITS: [&str; 2] = ["celld.service", "cell-web.service"];

/// What is wrong with the cell's core services right now (empty when nothing is), and
/// whether waiting could still help: a core unit systemd gave up on will not come back.
async fn health_problems(ctl: &Ctl, web: std::net::SocketAddr) -> (Vec<String>, bool) {
    let mut problems = Vec::new();
    let mut hopeless = false;
    match ctl.celld.status().await {
        Ok(status) => {
            for unit in status
                .units
                .iter()
                .filter(|u| CORE_UNITS.contains(&u.unit.as_str()))
            {
                if unit.state == "failed" {
                    problems.push(format!("{} has failed", unit.unit));
                    hopeless = true;
                }
            }
        }
        Err(error) => problems.push(format!("celld: {error}")),
    }
    match web_health(web).await {
        Ok(200) => {}
        Ok(status) => problems.push(format!("cell-web: /health answered {status}")),
        Err(error) => problems.push(format!("cell-web: {error}")),
    }
    (problems, hopeless)
}

/// The status code of `GET /health` on cell-web, over a plain HTTP/1.1 connection.
async fn web_health(web: std::net::SocketAddr) -> std::io::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(web).await?;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .await?;
        let mut head = vec![0u8; 64];
        let read = stream.read(&mut head).await?;
        let line = String::from_utf8_lossy(&head[..read]).into_owned();
        line.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {line:?}")))
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), exchange)
        .await
        .map_err(|_| std::io::Error::other("no answer within 5 s"))?
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctl = Ctl {
        celld: CelldClient::new(cli.socket),
        json: cli.json,
    };
    match cli.command {
        Command::Health { wait, web } => {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait);
            loop {
                let (problems, hopeless) = health_problems(&ctl, web).await;
                if problems.is_empty() {
                    println!("healthy: celld and cell-web answer");
                    return Ok(ExitCode::SUCCESS);
                }
                if hopeless || std::time::Instant::now() >= deadline {
                    eprintln!("unhealthy: {}", problems.join("; "));
                    return Ok(ExitCode::FAILURE);
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
        Command::Update(command) => return update(&ctl, command).await,
        Command::Status => {
            let status: Status = ctl.call(Method::GET, "/v1/status", None).await?;
            ctl.print(&status, || status_text(&status))?;
        }
        Command::Settings(SettingsCommand::Get) => {
            let view: SettingsView = ctl.call(Method::GET, "/v1/settings", None).await?;
            ctl.print(&view, || settings_text(&view))?;
        }
        Command::Settings(SettingsCommand::Set { key, value }) => {
            let view: SettingsView = ctl.call(Method::GET, "/v1/settings", None).await?;
            let edited = apply_setting(&view.settings, &key, &value)?;
            let saved: SettingsView = ctl.call(Method::PUT, "/v1/settings", Some(edited)).await?;
            ctl.print(&saved, || {
                if saved.generation == view.generation {
                    "unchanged\n".to_owned()
                } else {
                    format!("saved as generation {}\n", saved.generation)
                }
            })?;
        }
        Command::Users(command) => users(&ctl, command).await?,
        Command::Dns(command) => dns::run(&ctl, command).await?,
        Command::Ntp(command) => ntp::run(&ctl, command).await?,
        Command::MailRelay(command) => mail_relay::run(&ctl, command).await?,
        Command::Units => logs::units(&ctl).await?,
        Command::Logs {
            unit,
            priority,
            grep,
            lines,
            follow,
        } => logs::logs(&ctl, unit, priority, grep, lines, follow).await?,
        Command::Lan(command) => lan::run(&ctl, command).await?,
        Command::Audit(AuditCommand::List {
            actor,
            action,
            search,
            limit,
        }) => {
            let mut query = vec![format!("limit={limit}")];
            for (key, value) in [("actor", actor), ("action", action), ("q", search)] {
                if let Some(value) = value {
                    query.push(format!("{key}={}", celld_client::encode_component(&value)));
                }
            }
            let entries: Vec<AuditEntry> = ctl
                .call(Method::GET, &format!("/v1/audit?{}", query.join("&")), None)
                .await?;
            ctl.print(&entries, || entries.iter().map(audit_line).collect())?;
        }
        Command::Sessions(SessionsCommand::List) => {
            let sessions: Vec<SessionInfo> = ctl.call(Method::GET, "/v1/sessions", None).await?;
            ctl.print(&sessions, || {
                sessions
                    .iter()
                    .map(|s| {
                        format!(
                            "{}  {:<12} {:<16} last seen {}  {}\n",
                            s.id,
                            s.user,
                            s.source.as_deref().unwrap_or("-"),
                            s.last_seen.strftime("%Y-%m-%d %H:%M:%S UTC"),
                            s.user_agent.as_deref().unwrap_or("-")
                        )
                    })
                    .collect()
            })?;
        }
        Command::Sessions(SessionsCommand::End { id }) => {
            let id = celld_client::encode_component(&id);
            ctl.send(Method::DELETE, &format!("/v1/sessions/{id}"), None)
                .await?;
            ctl.print(&json!({"ended": id}), || format!("session {id} ended\n"))?;
        }
        Command::Audit(AuditCommand::Verify) => {
            let result: AuditVerification = ctl.call(Method::GET, "/v1/audit/verify", None).await?;
            ctl.print(&result, || match (&result.intact, &result.problem) {
                (true, _) => format!("intact: {} entries, hash chain verified\n", result.entries),
                (false, problem) => format!(
                    "BROKEN at entry {}: {}\n",
                    result.broken_at.unwrap_or(0),
                    problem.as_deref().unwrap_or("?")
                ),
            })?;
            if !result.intact {
                return Ok(ExitCode::from(1));
            }
        }
        Command::SetupCode => {
            let answer: Value = ctl.call(Method::GET, "/v1/setup-code", None).await?;
            match answer["code"].as_str() {
                Some(code) => ctl.print(&answer, || format!("Setup code: {code}\n"))?,
                None => {
                    ctl.print(&answer, || {
                        "the cell is already set up; there is no setup code\n".to_owned()
                    })?;
                    return Ok(ExitCode::from(1));
                }
            }
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "cellctl",
                &mut std::io::stdout(),
            );
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn users(ctl: &Ctl, command: UsersCommand) -> anyhow::Result<()> {
    let path = |name: &str| format!("/v1/users/{}", celld_client::encode_component(name));
    match command {
        UsersCommand::List => {
            let users: Vec<UserView> = ctl.call(Method::GET, "/v1/users", None).await?;
            ctl.print(&users, || {
                let mut out = format!("{:<24} {:<6} {:<9} {}\n", "NAME", "ROLE", "STATE", "2FA");
                for u in &users {
                    out.push_str(&format!(
                        "{:<24} {:<6} {:<9} {}\n",
                        u.name,
                        u.role.as_str(),
                        if u.disabled { "disabled" } else { "active" },
                        if u.totp_enabled { "on" } else { "off" }
                    ));
                }
                out
            })?;
        }
        UsersCommand::Add {
            name,
            role,
            password,
        } => {
            let password = read_password(&password, &format!("Password for {name}: "))?;
            let user: UserView = ctl
                .call(
                    Method::POST,
                    "/v1/users",
                    Some(json!({"name": name, "role": role_str(role), "password": password})),
                )
                .await?;
            ctl.print(&user, || {
                format!("added {} ({})\n", user.name, user.role.as_str())
            })?;
        }
        UsersCommand::Disable { name } => {
            patch(
                ctl,
                &path(&name),
                json!({"disabled": true}),
                &format!("{name} disabled\n"),
            )
            .await?
        }
        UsersCommand::Enable { name } => {
            patch(
                ctl,
                &path(&name),
                json!({"disabled": false}),
                &format!("{name} enabled\n"),
            )
            .await?
        }
        UsersCommand::SetRole { name, role } => {
            patch(
                ctl,
                &path(&name),
                json!({"role": role_str(role)}),
                &format!("{name} is now {}\n", role_str(role)),
            )
            .await?
        }
        UsersCommand::Delete { name } => {
            ctl.send(Method::DELETE, &path(&name), None).await?;
            ctl.print(&json!({"deleted": name}), || format!("{name} deleted\n"))?;
        }
        UsersCommand::Export { name, output } => {
            let written = export(ctl, &path(&name), &output).await?;
            ctl.print(
                &json!({"exported": name, "archive": output, "bytes": written}),
                || {
                    format!(
                        "{name}'s data written to {} ({written} bytes)\n",
                        output.display()
                    )
                },
            )?;
        }
        UsersCommand::ResetPassword { name, password } => {
            let password = read_password(&password, &format!("New password for {name}: "))?;
            ctl.send(
                Method::PUT,
                &format!("{}/password", path(&name)),
                Some(json!({"password": password})),
            )
            .await?;
            ctl.print(&json!({"reset": name}), || {
                format!("password of {name} reset; their sessions were ended\n")
            })?;
        }
        UsersCommand::RemoveTotp { name } => {
            ctl.send(Method::DELETE, &format!("{}/totp", path(&name)), None)
                .await?;
            ctl.print(&json!({"totp_removed": name}), || {
                format!("second factor of {name} removed\n")
            })?;
        }
        UsersCommand::AppPasswords { name } => {
            let list: Vec<cell_model::api::AppPasswordView> = ctl
                .call(Method::GET, &format!("{}/app-passwords", path(&name)), None)
                .await?;
            ctl.print(&list, || {
                let mut out = format!(
                    "{:<6} {:<24} {:<12} {}\n",
                    "ID", "DEVICE", "MADE", "LAST USED"
                );
                for app in &list {
                    let last = match (&app.last_used, &app.last_service) {
                        (Some(at), Some(service)) => format!(
                            "{} ({service}{})",
                            at.strftime("%Y-%m-%d %H:%M"),
                            app.last_source
                                .as_deref()
                                .map(|s| format!(" from {s}"))
                                .unwrap_or_default()
                        ),
                        _ => "never".into(),
                    };
                    out.push_str(&format!(
                        "{:<6} {:<24} {:<12} {last}\n",
                        app.id,
                        app.name,
                        app.created.strftime("%Y-%m-%d").to_string()
                    ));
                }
                out
            })?;
        }
        UsersCommand::AddAppPassword { name, device } => {
            let created: cell_model::api::CreatedAppPassword = ctl
                .call(
                    Method::POST,
                    &format!("{}/app-passwords", path(&name)),
                    Some(json!({"name": device})),
                )
                .await?;
            ctl.print(
                &json!({"id": created.id, "name": created.name, "password": created.password}),
                || {
                    format!(
                        "app password for {} ({}): {}\nit is not shown again\n",
                        created.name, created.id, created.password
                    )
                },
            )?;
        }
        UsersCommand::RevokeAppPassword { name, id } => {
            ctl.send(
                Method::DELETE,
                &format!(
                    "{}/app-passwords/{}",
                    path(&name),
                    celld_client::encode_component(&id)
                ),
                None,
            )
            .await?;
            ctl.print(&json!({"revoked": id}), || {
                format!("app password {id} of {name} revoked\n")
            })?;
        }
    }
    Ok(())
}

async fn patch(ctl: &Ctl, path: &str, body: Value, done: &str) -> anyhow::Result<()> {
    let user: UserView = ctl.call(Method::PATCH, path, Some(body)).await?;
    ctl.print(&user, || done.to_owned())
}

fn role_str(role: RoleArg) -> &'static str {
    match role {
        RoleArg::Admin => "admin",
        RoleArg::Peer => "peer",
    }
}

pub(crate) fn read_password(source: &PasswordSource, prompt: &str) -> anyhow::Result<String> {
    if source.password_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_owned());
    }
    let first = rpassword::prompt_password(prompt).context("reading the password")?;
    let again = rpassword::prompt_password("Again: ").context("reading the password")?;
    if first != again {
        bail!("the two passwords differ; nothing was changed");
    }
    std::io::stdout().flush().ok();
    Ok(first)
}

/// The edited settings as JSON, for one `key = value`.
fn apply_setting(current: &EditableSettings, key: &str, value: &str) -> anyhow::Result<Value> {
    let mut edited = serde_json::to_value(current)?;
    let boolean = || match value {
        "true" | "on" | "yes" => Ok(json!(true)),
        "false" | "off" | "no" => Ok(json!(false)),
        other => bail!("{key}: '{other}' is not true or false"),
    };
    match key {
        "cell_name" => edited["identity"]["cell_name"] = json!(value),
        "timezone" => edited["identity"]["timezone"] = json!(value),
        "domain" => {
            edited["identity"]["domain"] = match value.split(':').collect::<Vec<_>>().as_slice() {
                ["internal"] => json!({"mode": "internal"}),
                ["own", domain] => json!({"mode": "own", "domain": domain}),
                ["dynamic", provider, hostname] => {
                    json!({"mode": "dynamic", "provider": provider, "hostname": hostname})
                }
                _ => bail!("domain: use internal, own:DOMAIN or dynamic:PROVIDER:HOSTNAME"),
            }
        }
        "services.calendar" | "services.files" | "services.mail" | "services.webdav" => {
            let service = key.trim_start_matches("services.");
            edited["services"][service] = boolean()?;
        }
        other => bail!("unknown setting '{other}' (see cellctl settings set --help)"),
    }
    Ok(edited)
}

fn settings_text(view: &SettingsView) -> String {
    let settings = serde_json::to_value(&view.settings).unwrap_or_default();
    let mut out = format!("generation = {}\n", view.generation);
    flatten("", &settings, &mut out);
    out
}

fn flatten(prefix: &str, value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, child, out);
            }
        }
        Value::String(s) => out.push_str(&format!("{prefix} = {s}\n")),
        other => out.push_str(&format!("{prefix} = {other}\n")),
    }
}

fn audit_line(entry: &AuditEntry) -> String {
    let mut line = format!(
        "{:>5}  {}  {:<10} {:<24}",
        entry.seq, entry.time, entry.actor, entry.action
    );
    if let Some(target) = &entry.target {
        line.push_str(&format!(" {target}"));
    }
    if let Some(source) = &entry.source {
        line.push_str(&format!(" from {source}"));
    }
    for (field, change) in &entry.changes {
        line.push_str(&format!("\n         {field}: {change}"));
    }
    line.push('\n');
    line
}

fn describe_update(view: &UpdateView) -> String {
    let mut text = format!("running:    {}\n", view.current);
    text += &format!(
        "server:     {}\n",
        view.url.as_deref().unwrap_or("(not set)")
    );
    let list = |versions: &[String]| {
        if versions.is_empty() {
            "none".to_owned()
        } else {
            versions.join(", ")
        }
    };
    text += &format!("available:  {}\n", list(&view.available));
    if let Some(pending) = &view.pending {
        text += &format!("installed:  {pending} (starts at the next reboot)\n");
    }
    if !view.failed.is_empty() {
        text += &format!(
            "failed:     {} (rolled back, not offered again)\n",
            list(&view.failed)
        );
    }
    if let Some(job) = &view.job {
        text += &format!(
            "job:        {:?} {}% {}\n",
            job.phase, job.percent, job.detail
        );
    }
    if let Some(result) = &view.last_result {
        text += &format!(
            "last:       {:?}: {} ({})\n",
            result.outcome, result.message, result.at
        );
    }
    if let Some(at) = view.reboot_at {
        text += &format!("reboot at:  {at}\n");
    }
    text
}

/// How long a job may take to show up before `--wait` gives up on it.
const JOB_START_GRACE: std::time::Duration = std::time::Duration::from_secs(120);

/// Polls the update state until no job runs; progress on stderr. Fails when the job did.
async fn wait_for_job(ctl: &Ctl, started: jiff::Timestamp) -> anyhow::Result<ExitCode> {
    let mut shown = String::new();
    let mut seen_job = false;
    let since = std::time::Instant::now();
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let view: UpdateView = ctl.call(Method::GET, "/v1/update", None).await?;
        if let Some(job) = &view.job {
            seen_job = true;
            let line = format!("{:?} {}% {}", job.phase, job.percent, job.detail);
            if line != shown {
                eprintln!("{line}");
                shown = line;
            }
            continue;
        }
        let Some(result) = view.last_result.as_ref().filter(|r| r.at >= started) else {
            if !seen_job && since.elapsed() > JOB_START_GRACE {
                bail!("the update job did not start; see journalctl -u cell-update.service");
            }
            continue; // not started yet
        };
        println!("{}", result.message);
        return Ok(if result.outcome == UpdateOutcome::Failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
}

async fn update(ctl: &Ctl, command: UpdateCommand) -> anyhow::Result<ExitCode> {
    let started = jiff::Timestamp::now();
    match command {
        UpdateCommand::Status => {
            let view: UpdateView = ctl.call(Method::GET, "/v1/update", None).await?;
            ctl.print(&view, || describe_update(&view))?;
        }
        UpdateCommand::Url { url, clear: _ } => {
            ctl.send(
                Method::PUT,
                "/v1/update",
                Some(serde_json::json!({ "url": url })),
            )
            .await?;
        }
        UpdateCommand::Check { wait } => {
            ctl.send(
                Method::POST,
                "/v1/update/check",
                Some(serde_json::json!({})),
            )
            .await?;
            if wait {
                return wait_for_job(ctl, started).await;
            }
        }
        UpdateCommand::Install { version, wait } => {
            ctl.send(
                Method::POST,
                "/v1/update/install",
                Some(serde_json::json!({ "version": version })),
            )
            .await?;
            if wait {
                return wait_for_job(ctl, started).await;
            }
        }
        UpdateCommand::Reboot { at, cancel } => {
            if cancel {
                ctl.send(Method::DELETE, "/v1/update/reboot", None).await?;
            } else {
                ctl.send(
                    Method::POST,
                    "/v1/update/reboot",
                    Some(serde_json::json!({ "at": at })),
                )
                .await?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Streams the account's archive into `output` through a `.part` file that becomes
/// `output` only once whole; on a terminal, shows how much has arrived. Returns its size.
async fn export(ctl: &Ctl, account: &str, output: &std::path::Path) -> anyhow::Result<u64> {
    use http_body_util::BodyExt;
    if output.exists() {
        bail!("{} exists already; choose another file", output.display());
    }
    let mut partial = output.as_os_str().to_owned();
    partial.push(".part");
    let partial = std::path::PathBuf::from(partial);
    let streamed = ctl
        .celld
        .stream(&format!("{account}/export"), &OnBehalf::default())
        .await
        .map_err(explain)?;
    let mut file = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let progress = std::io::stderr().is_terminal();
    let mut body = streamed.body;
    let mut written = 0u64;
    let copied: anyhow::Result<()> = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.context("the export stopped before its end")?;
            if let Some(data) = frame.data_ref() {
                file.write_all(data)
                    .with_context(|| format!("writing {}", partial.display()))?;
                written += data.len() as u64;
                if progress {
                    eprint!("\r{} MiB", written / (1024 * 1024));
                }
            }
        }
        file.sync_all()
            .with_context(|| format!("writing {}", partial.display()))?;
        Ok(())
    }
    .await;
    if progress {
        eprintln!();
    }
    if let Err(error) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    std::fs::rename(&partial, output).with_context(|| format!("naming {}", output.display()))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current() -> EditableSettings {
        serde_json::from_value(json!({
            "identity": {"cell_name": "home", "domain": {"mode": "internal"}, "timezone": "UTC"},
            "services": {"calendar": false, "files": false, "mail": false, "webdav": false}
        }))
        .unwrap()
    }

    #[test]
    fn settings_keys_map_onto_the_tree() {
        let edited = apply_setting(&current(), "domain", "dynamic:duckdns:me.duckdns.org").unwrap();
        assert_eq!(edited["identity"]["domain"]["provider"], "duckdns");
        let edited = apply_setting(&current(), "services.mail", "on").unwrap();
        assert_eq!(edited["services"]["mail"], true);
        assert!(apply_setting(&current(), "services.mail", "maybe").is_err());
        assert!(apply_setting(&current(), "colour", "blue").is_err());
        assert!(apply_setting(&current(), "domain", "own").is_err());
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
