//! `cellctl mail-relay`: the smarthost outgoing mail goes through, via celld's
//! /v1/mail/relay. The password is asked for (or read from standard input), never shown.

use cell_model::api::MailRelayView;
use celld_client::Method;
use serde_json::json;

use crate::cli::MailRelayCommand;
use crate::Ctl;

fn text(view: &MailRelayView) -> String {
    match &view.relay {
        Some(relay) => format!(
            "relay:     {}:{} as {}{}\npassword:  set {}\nin use:    {}\n",
            relay.host,
            relay.port,
            relay.username,
            if relay.verify_certificate {
                ""
            } else {
                " (certificate not checked)"
            },
            relay.password_set,
            if view.in_use {
                "yes"
            } else {
                "no: on the internal .cell domain mail stays in the cell"
            }
        ),
        None => "relay:     none (mail goes straight to each recipient's server)\n".into(),
    }
}

pub async fn run(ctl: &Ctl, command: MailRelayCommand) -> anyhow::Result<()> {
    match command {
        MailRelayCommand::Show => {
            let view: MailRelayView = ctl.call(Method::GET, "/v1/mail/relay", None).await?;
            ctl.print(&view, || text(&view))
        }
        MailRelayCommand::Set {
            host,
            username,
            port,
            no_verify,
            keep_password,
            password,
        } => {
            let mut body = json!({
                "host": host,
                "port": port,
                "username": username,
                "verify_certificate": !no_verify,
            });
            if !keep_password {
                let secret = crate::read_password(&password, "The relay's password: ")?;
                body["password"] = json!(secret);
            }
            let view: MailRelayView = ctl.call(Method::PUT, "/v1/mail/relay", Some(body)).await?;
            ctl.print(&view, || text(&view))
        }
        MailRelayCommand::Remove => {
            ctl.send(Method::DELETE, "/v1/mail/relay", None).await?;
            ctl.print(&json!({"relay": null}), || "relay removed\n".into())
        }
    }
}
