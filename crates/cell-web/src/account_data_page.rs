//! An account's data page: download everything the account keeps on the cell (mail,
//! calendars, contacts, files) as one archive, and, for an administrator, delete the
//! account with its data once it is exported.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{Html, Response};
use axum::routing::get;
use cell_model::api::UserView;
use cell_model::Username;
use celld_client::{ClientError, Method};

use crate::pages::{render, Nav, PageUser};
use crate::routes::{page as declare, Routed};
use crate::{AppError, AppState};

pub fn routes() -> Vec<Routed> {
    use crate::routes::Access::User;
    vec![
        declare(Method::GET, "/users/{name}/data", User, get(data_get)),
        declare(
            Method::GET,
            "/users/{name}/data/export",
            User,
            get(export_get),
        ),
    ]
}

#[derive(Template)]
#[template(path = "account_data.html")]
struct DataPage {
    version: &'static str,
    nav: Option<Nav>,
    notice: Option<String>,
    csrf: String,
    name: String,
    /// Whether the name is still an account (not only what a deleted one left).
    is_account: bool,
    own: bool,
    admin: bool,
}

/// Only the account's owner and administrators see it.
fn subject(user: &PageUser, name: &str) -> Result<Username, AppError> {
    let name = Username::parse(name).map_err(|_| AppError::NotFound)?;
    if !user.is_admin() && user.session.current.name != name {
        return Err(AppError::Forbidden);
    }
    Ok(name)
}

async fn data_get(
    State(state): State<AppState>,
    user: PageUser,
    Path(name): Path<String>,
) -> Result<Html<String>, AppError> {
    let name = subject(&user, &name)?;
    let is_account = match state
        .celld
        .json::<UserView>(
            Method::GET,
            &format!("/v1/users/{name}"),
            &user.on_behalf(),
            None,
        )
        .await
    {
        Ok(_) => true,
        // A deleted account's leftovers can still be exported and removed by an admin.
        Err(ClientError::Refused { status, .. }) if status.as_u16() == 404 => false,
        Err(error) => return Err(error.into()),
    };
    render(DataPage {
        version: cell_systemd::image_version(),
        nav: user.nav("users"),
        notice: None,
        csrf: user.csrf(),
        own: user.session.current.name == name,
        admin: user.is_admin(),
        name: name.to_string(),
        is_account,
    })
}

/// The archive, streamed from celld as it is written.
async fn export_get(
    State(state): State<AppState>,
    user: PageUser,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    let name = subject(&user, &name)?;
    let streamed = state
        .celld
        .stream(&format!("/v1/users/{name}/export"), &user.on_behalf())
        .await?;
    Ok(crate::api::streamed_response(streamed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_what_is_exported_and_what_deleting_removes() {
        let page = DataPage {
            version: "test",
            nav: None,
            notice: None,
            csrf: "token".into(),
            name: "bob".into(),
            is_account: true,
            own: false,
            admin: true,
        };
        let html = page.render().unwrap();
        assert!(html.contains(r#"href="/users/bob/data/export""#), "{html}");
        assert!(html.contains(r#"action="/users/bob/delete""#), "{html}");
        let own = DataPage {
            own: true,
            admin: false,
            ..page
        };
        let html = own.render().unwrap();
        assert!(html.contains(r#"href="/users/bob/data/export""#));
        assert!(!html.contains("/delete"), "a peer cannot delete: {html}");
    }
}
