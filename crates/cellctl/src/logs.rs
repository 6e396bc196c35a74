//! `cellctl units` and `cellctl logs`: the cell's units and their journal, through celld's
//! /v1/units and /v1/logs (`--follow` asks for the lines after the last one every second).

use cell_model::api::{LogLine, LogPage, UnitState};
use celld_client::{encode_component, Method};

use crate::Ctl;

pub async fn units(ctl: &Ctl) -> anyhow::Result<()> {
    let units: Vec<UnitState> = ctl.call(Method::GET, "/v1/units", None).await?;
    ctl.print(&units, || {
        units
            .iter()
            .map(|u| {
                let since = u
                    .since
                    .map(|s| s.strftime("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_else(|| "-".into());
                let restarts = u
                    .restarts
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "-".into());
                format!(
                    "{:<28} {:<10} {:<10} since {since}  restarts {restarts}\n",
                    u.unit, u.active_state, u.sub_state
                )
            })
            .collect()
    })
}

fn line_text(line: &LogLine) -> String {
    format!(
        "{} {} [{}] {}\n",
        line.at.strftime("%Y-%m-%d %H:%M:%S"),
        line.unit,
        line.priority,
        line.message
    )
}

pub async fn logs(
    ctl: &Ctl,
    unit: Option<String>,
    priority: Option<u8>,
    text: Option<String>,
    lines: u16,
    follow: bool,
) -> anyhow::Result<()> {
    let mut query = vec![format!("limit={lines}")];
    if let Some(unit) = unit {
        // `celld` for `celld.service`.
        let unit = if unit.contains('.') {
            unit
        } else {
            format!("{unit}.service")
        };
        query.push(format!("unit={}", encode_component(&unit)));
    }
    if let Some(priority) = priority {
        query.push(format!("priority={priority}"));
    }
    if let Some(text) = text {
        query.push(format!("text={}", encode_component(&text)));
    }
    let base = query.join("&");
    let page: LogPage = ctl
        .call(Method::GET, &format!("/v1/logs?{base}"), None)
        .await?;
    ctl.print(&page, || page.lines.iter().map(line_text).collect())?;
    if !follow {
        return Ok(());
    }
    let mut cursor = page.cursor;
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let path = match &cursor {
            Some(after) => format!("/v1/logs?{base}&after={}", encode_component(after)),
            None => format!("/v1/logs?{base}"),
        };
        let page: LogPage = ctl.call(Method::GET, &path, None).await?;
        ctl.print(&page, || page.lines.iter().map(line_text).collect())?;
        if page.cursor.is_some() {
            cursor = page.cursor;
        }
    }
}
