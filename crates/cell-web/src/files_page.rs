//! The Files page: one's own files home in the browser — list, upload, download, new
//! folder, rename, delete, and how much of the quota is used. The front door asks the DAV
//! machine's WebDAV server itself, naming the page's user as it does for WebDAV clients,
//! and holds uploads to the quota the same way. Works without JavaScript.

use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Form;
use cell_model::api::FilesUsage;
use celld_client::{Method, OnBehalf};
use http_body_util::BodyExt;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use serde::Deserialize;

use crate::pages::{render, Nav, PageUser};
use crate::proxy::ServiceError;
use crate::routes::{page as declare, Routed};
use crate::{AppError, AppState};

/// The service whose backend holds the files homes.
const SERVICE: &str = "files";
/// The longest path the page accepts (bytes).
const MAX_PATH: usize = 1024;
/// The longest name of one file or folder (bytes), as Linux allows.
const MAX_NAME: usize = 255;
/// A folder listing larger than this is not read.
const MAX_LISTING: usize = 8 << 20;

/// Everything but unreserved characters is escaped in a path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'\\')
    .add(b'[')
    .add(b']')
    .add(b'^')
    .add(b'|')
    .add(b'&')
    .add(b'+')
    .add(b';')
    .add(b'=')
    .add(b'\'');

pub fn routes() -> Vec<Routed> {
    use crate::routes::Access::User;
    vec![
        declare(Method::GET, "/files", User, get(files_get)),
        declare(Method::GET, "/files/download", User, get(download_get)),
        declare(Method::POST, "/files/folder", User, post(folder_post)),
        declare(Method::POST, "/files/rename", User, post(rename_post)),
        declare(Method::POST, "/files/delete", User, post(delete_post)),
        // No body limit: uploads stream to the files service, held to the user's quota.
        declare(
            Method::POST,
            "/files/upload",
            User,
            post(upload_post).layer(DefaultBodyLimit::disable()),
        ),
    ]
}

/// A path in one's files home: `/` or `/a/b`, every segment a valid name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HomePath(Vec<String>);

impl HomePath {
    fn parse(text: &str) -> Option<Self> {
        if !text.starts_with('/') || text.len() > MAX_PATH {
            return None;
        }
        let segments: Vec<String> = text
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        segments
            .iter()
            .all(|s| valid_name(s))
            .then_some(Self(segments))
    }

    fn child(&self, name: &str) -> Option<Self> {
        valid_name(name).then(|| {
            let mut segments = self.0.clone();
            segments.push(name.to_owned());
            Self(segments)
        })
    }

    fn parent(&self) -> Self {
        Self(self.0[..self.0.len().saturating_sub(1)].to_vec())
    }

    fn name(&self) -> &str {
        self.0.last().map_or("", String::as_str)
    }

    /// As the page shows and links it: `/a/b`.
    fn display(&self) -> String {
        format!("/{}", self.0.join("/"))
    }

    /// As the WebDAV server is asked for it: every segment percent-encoded; a folder's
    /// path ends in `/`.
    fn encoded(&self, folder: bool) -> String {
        let mut out = String::new();
        for segment in &self.0 {
            out.push('/');
            out.extend(utf8_percent_encode(segment, SEGMENT));
        }
        if folder || self.0.is_empty() {
            out.push('/');
        }
        out
    }
}

/// A file or folder name: no slash, not `.` or `..`, no control character.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

/// One entry of a folder, as the page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: String,
    path: String,
    folder: bool,
    size: u64,
    modified: String,
}

#[derive(Template)]
#[template(path = "files.html")]
struct FilesPage {
    version: &'static str,
    nav: Option<Nav>,
    notice: Option<String>,
    csrf: String,
    dir: String,
    dir_query: String,
    parent: Option<String>,
    crumbs: Vec<(String, String)>,
    entries: Vec<Entry>,
    usage: Option<FilesUsage>,
    error: Option<String>,
    off: bool,
}

impl FilesPage {
    fn size(&self, bytes: &u64) -> String {
        human_size(*bytes)
    }

    fn query(&self, path: &str) -> String {
        serde_urlencoded::to_string([("path", path)]).unwrap_or_default()
    }

    fn dir_link(&self, path: &str) -> String {
        serde_urlencoded::to_string([("dir", path)]).unwrap_or_default()
    }

    fn used_percent(&self) -> u64 {
        self.usage
            .map(|u| (u.used_bytes.saturating_mul(100)) / u.quota_bytes.max(1))
            .unwrap_or(0)
            .min(100)
    }
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DirQuery {
    dir: String,
    done: String,
}

/// What a finished action says on the page it returns to (fixed texts: nothing the
/// request carries is shown back).
fn done_text(done: &str) -> Option<String> {
    Some(
        match done {
            "uploaded" => "Uploaded.",
            "folder" => "Folder made.",
            "renamed" => "Renamed.",
            "deleted" => "Deleted.",
            _ => return None,
        }
        .to_owned(),
    )
}

async fn files_get(
    State(state): State<AppState>,
    user: PageUser,
    Query(query): Query<DirQuery>,
) -> Result<Response, AppError> {
    let dir_text = if query.dir.is_empty() {
        "/"
    } else {
        &query.dir
    };
    let dir = HomePath::parse(dir_text).ok_or(AppError::NotFound)?;
    let notice = done_text(&query.done);
    Ok(show(&state, &user, &dir, notice, None, StatusCode::OK)
        .await?
        .into_response())
}

/// The page for `dir`, with `error` shown (and answered with `status`) when set.
async fn show(
    state: &AppState,
    user: &PageUser,
    dir: &HomePath,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Result<(StatusCode, axum::response::Html<String>), AppError> {
    let name = user.session.current.name.to_string();
    let (entries, listing_error, off) = match list(state, &name, user.client_ip(), dir).await {
        Ok(entries) => (entries, None, false),
        Err(ListError::Off) => (Vec::new(), None, true),
        Err(ListError::NotFound) => return Err(AppError::NotFound),
        Err(ListError::Failed(message)) => (Vec::new(), Some(message), false),
    };
    let usage = if off { None } else { usage(state, &name).await };
    let mut crumbs = vec![("Home".to_owned(), "/".to_owned())];
    for depth in 1..=dir.0.len() {
        let part = HomePath(dir.0[..depth].to_vec());
        crumbs.push((part.name().to_owned(), part.display()));
    }
    let view = FilesPage {
        version: cell_model::VERSION,
        nav: user.nav("files"),
        notice,
        csrf: user.csrf(),
        dir: dir.display(),
        dir_query: serde_urlencoded::to_string([("dir", dir.display())]).unwrap_or_default(),
        parent: (!dir.0.is_empty()).then(|| dir.parent().display()),
        crumbs,
        entries,
        usage,
        error: error.or(listing_error),
        off,
    };
    Ok((status, render(view)?))
}

enum ListError {
    Off,
    NotFound,
    Failed(String),
}

async fn list(
    state: &AppState,
    user: &str,
    client: Option<std::net::IpAddr>,
    dir: &HomePath,
) -> Result<Vec<Entry>, ListError> {
    let body = r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/></D:prop></D:propfind>"#;
    let answer = state
        .proxy
        .to_service(
            SERVICE,
            user,
            client,
            Method::from_bytes(b"PROPFIND").map_err(|e| ListError::Failed(e.to_string()))?,
            &dir.encoded(true),
            vec![
                (
                    HeaderName::from_static("depth"),
                    HeaderValue::from_static("1"),
                ),
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/xml"),
                ),
            ],
            Body::from(body),
        )
        .await
        .map_err(|e| match e {
            ServiceError::NotRouted => ListError::Off,
            other => ListError::Failed(other.to_string()),
        })?;
    match answer.status().as_u16() {
        207 => {}
        404 | 409 => return Err(ListError::NotFound),
        other => {
            return Err(ListError::Failed(format!(
                "the files service answered {other}"
            )))
        }
    }
    let bytes = http_body_util::Limited::new(answer.into_body(), MAX_LISTING)
        .collect()
        .await
        .map_err(|e| ListError::Failed(e.to_string()))?
        .to_bytes();
    let text = String::from_utf8(bytes.to_vec()).map_err(|e| ListError::Failed(e.to_string()))?;
    parse_listing(&text, dir).map_err(ListError::Failed)
}

/// The entries of a PROPFIND (depth 1) answer for `dir`, without `dir` itself: folders
/// first, then by name.
fn parse_listing(xml: &str, dir: &HomePath) -> Result<Vec<Entry>, String> {
    const DAV: &str = "DAV:";
    let document = roxmltree::Document::parse(xml).map_err(|e| e.to_string())?;
    let mut entries = Vec::new();
    for response in document
        .descendants()
        .filter(|n| n.has_tag_name((DAV, "response")))
    {
        let child_text = |node: roxmltree::Node, name: &str| {
            node.descendants()
                .find(|n| n.has_tag_name((DAV, name)))
                .and_then(|n| n.text())
                .map(str::trim)
                .map(str::to_owned)
        };
        let Some(href) = child_text(response, "href") else {
            continue;
        };
        let decoded = percent_decode_str(&href).decode_utf8_lossy().into_owned();
        // An absolute URL's path, or the path itself.
        let path_text = match decoded.find("://") {
            Some(scheme_end) => decoded[scheme_end + 3..]
                .find('/')
                .map_or("/".to_owned(), |i| decoded[scheme_end + 3 + i..].to_owned()),
            None => decoded,
        };
        let Some(path) = HomePath::parse(&path_text) else {
            continue;
        };
        if path == *dir || path.parent() != *dir {
            continue;
        }
        let folder = response
            .descendants()
            .any(|n| n.has_tag_name((DAV, "collection")));
        entries.push(Entry {
            name: path.name().to_owned(),
            path: path.display(),
            folder,
            size: child_text(response, "getcontentlength")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            modified: child_text(response, "getlastmodified").unwrap_or_default(),
        });
    }
    entries.sort_by(|a, b| b.folder.cmp(&a.folder).then_with(|| a.name.cmp(&b.name)));
    Ok(entries)
}

async fn usage(state: &AppState, user: &str) -> Option<FilesUsage> {
    state
        .celld
        .json::<FilesUsage>(
            Method::GET,
            &format!("/v1/files/{user}/usage"),
            &OnBehalf::default(),
            None,
        )
        .await
        .inspect_err(|error| tracing::warn!(%error, user, "cannot read a files quota"))
        .ok()
}

fn back_to(dir: &HomePath, done: &str) -> Response {
    let query = serde_urlencoded::to_string([("dir", dir.display()), ("done", done.to_owned())])
        .unwrap_or_default();
    Redirect::to(&format!("/files?{query}")).into_response()
}

/// Answers an action on the folder page: back to it when the service did `ok`, else the
/// page with what went wrong.
async fn after(
    state: &AppState,
    user: &PageUser,
    dir: &HomePath,
    outcome: Result<u16, ServiceError>,
    done: &str,
) -> Result<Response, AppError> {
    let refused = |status: StatusCode, message: &str| (status, message.to_owned());
    let (status, message) = match outcome {
        Ok(200..=299) => return Ok(back_to(dir, done)),
        Ok(404) => refused(StatusCode::NOT_FOUND, "That is no longer there."),
        Ok(405 | 412) => refused(
            StatusCode::CONFLICT,
            "Something of that name is already there.",
        ),
        Ok(409) => refused(StatusCode::CONFLICT, "The folder is not there any more."),
        Ok(423) => refused(
            StatusCode::LOCKED,
            "It is locked by an app that is using it; try again later.",
        ),
        Ok(507) => refused(
            StatusCode::INSUFFICIENT_STORAGE,
            "That does not fit in your files quota.",
        ),
        Ok(other) => (
            StatusCode::BAD_GATEWAY,
            format!("The files service answered {other}."),
        ),
        Err(ServiceError::NotRouted) => refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "Files are turned off on this cell.",
        ),
        Err(ServiceError::NotAllowed) => {
            refused(StatusCode::FORBIDDEN, "This device has no access to files.")
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()),
    };
    Ok(show(state, user, dir, None, Some(message), status)
        .await?
        .into_response())
}

async fn simple(
    state: &AppState,
    user: &PageUser,
    method: &[u8],
    path: &str,
    headers: Vec<(HeaderName, HeaderValue)>,
) -> Result<u16, ServiceError> {
    let method = Method::from_bytes(method).map_err(|e| ServiceError::Failed(e.to_string()))?;
    let name = user.session.current.name.to_string();
    let answer = state
        .proxy
        .to_service(
            SERVICE,
            &name,
            user.client_ip(),
            method,
            path,
            headers,
            Body::empty(),
        )
        .await?;
    Ok(answer.status().as_u16())
}

#[derive(Debug, Deserialize)]
pub struct FolderForm {
    dir: String,
    name: String,
}

async fn folder_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<FolderForm>,
) -> Result<Response, AppError> {
    let dir = HomePath::parse(&form.dir).ok_or(AppError::NotFound)?;
    let Some(folder) = dir.child(form.name.trim()) else {
        return bad_name(&state, &user, &dir).await;
    };
    let outcome = simple(&state, &user, b"MKCOL", &folder.encoded(true), Vec::new()).await;
    after(&state, &user, &dir, outcome, "folder").await
}

async fn bad_name(state: &AppState, user: &PageUser, dir: &HomePath) -> Result<Response, AppError> {
    let message = "A name of 1 to 255 bytes, without / or \\, and not . or ..".to_owned();
    Ok(show(
        state,
        user,
        dir,
        None,
        Some(message),
        StatusCode::BAD_REQUEST,
    )
    .await?
    .into_response())
}

#[derive(Debug, Deserialize)]
pub struct RenameForm {
    path: String,
    name: String,
}

async fn rename_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<RenameForm>,
) -> Result<Response, AppError> {
    let from = HomePath::parse(&form.path)
        .filter(|p| !p.0.is_empty())
        .ok_or(AppError::NotFound)?;
    let dir = from.parent();
    let Some(to) = dir.child(form.name.trim()) else {
        return bad_name(&state, &user, &dir).await;
    };
    let destination =
        HeaderValue::from_str(&to.encoded(false)).map_err(|e| AppError::Internal(e.to_string()))?;
    let outcome = simple(
        &state,
        &user,
        b"MOVE",
        &from.encoded(false),
        vec![
            (HeaderName::from_static("destination"), destination),
            (
                HeaderName::from_static("overwrite"),
                HeaderValue::from_static("F"),
            ),
        ],
    )
    .await;
    after(&state, &user, &dir, outcome, "renamed").await
}

#[derive(Debug, Deserialize)]
pub struct DeleteForm {
    path: String,
}

async fn delete_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<DeleteForm>,
) -> Result<Response, AppError> {
    let path = HomePath::parse(&form.path)
        .filter(|p| !p.0.is_empty())
        .ok_or(AppError::NotFound)?;
    let outcome = simple(&state, &user, b"DELETE", &path.encoded(false), Vec::new()).await;
    after(&state, &user, &path.parent(), outcome, "deleted").await
}

#[derive(Debug, Deserialize)]
pub struct PathQuery {
    path: String,
}

/// A file, streamed from the files service as an attachment.
async fn download_get(
    State(state): State<AppState>,
    user: PageUser,
    Query(query): Query<PathQuery>,
) -> Result<Response, AppError> {
    let path = HomePath::parse(&query.path)
        .filter(|p| !p.0.is_empty())
        .ok_or(AppError::NotFound)?;
    let name = user.session.current.name.to_string();
    let answer = state
        .proxy
        .to_service(
            SERVICE,
            &name,
            user.client_ip(),
            Method::GET,
            &path.encoded(false),
            Vec::new(),
            Body::empty(),
        )
        .await
        .map_err(|e| match e {
            ServiceError::NotRouted => AppError::NotFound,
            ServiceError::NotAllowed => AppError::Forbidden,
            other => AppError::Internal(other.to_string()),
        })?;
    if answer.status() != StatusCode::OK {
        return Err(AppError::NotFound);
    }
    let (parts, body) = answer.into_parts();
    let mut response = Response::new(Body::new(body.map_err(axum::Error::new)));
    if let Some(length) = parts.headers.get(header::CONTENT_LENGTH) {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, length.clone());
    }
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let disposition = format!(
        "attachment; filename*=UTF-8''{}",
        utf8_percent_encode(path.name(), SEGMENT)
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// A request body fed from a channel: the upload's chunks as the form's field yields them.
struct ChannelBody(tokio::sync::mpsc::Receiver<Result<Bytes, axum::Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(hyper::body::Frame::data)))
    }
}

/// Uploads the form's files into `dir`, each streamed to the files service and held to
/// the quota as it goes (one that would pass it is dropped whole).
async fn upload_post(
    State(state): State<AppState>,
    user: PageUser,
    Query(query): Query<DirQuery>,
    mut form: Multipart,
) -> Result<Response, AppError> {
    let dir = HomePath::parse(&query.dir).ok_or(AppError::NotFound)?;
    let name = user.session.current.name.to_string();
    let mut outcome: Option<Result<u16, ServiceError>> = None;
    loop {
        let mut field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(_) => {
                let message =
                    "The upload was cut short; nothing after the last file named here was stored."
                        .to_owned();
                return Ok(show(
                    &state,
                    &user,
                    &dir,
                    None,
                    Some(message),
                    StatusCode::BAD_REQUEST,
                )
                .await?
                .into_response());
            }
        };
        if field.name() != Some("file") {
            continue;
        }
        let Some(target) = field.file_name().and_then(|f| dir.child(f.trim())) else {
            return bad_name(&state, &user, &dir).await;
        };
        let budget = match crate::proxy::start_upload(&state.proxy, &name).await {
            Ok(budget) => budget,
            Err(refusal) => return Ok(refusal),
        };
        let feeding = budget.clone();
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let feed = async move {
            loop {
                match field.chunk().await {
                    Ok(Some(chunk)) => {
                        if !feeding.take(chunk.len() as u64) {
                            let _ = sender
                                .send(Err(axum::Error::new("over the files quota")))
                                .await;
                            // Read on (and drop) what the browser still sends, so that it
                            // hears the refusal rather than a reset connection.
                            let mut drained = 0u64;
                            while drained < crate::proxy::DRAIN_LIMIT {
                                match field.chunk().await {
                                    Ok(Some(chunk)) => drained += chunk.len() as u64,
                                    _ => break,
                                }
                            }
                            return true;
                        }
                        if sender.send(Ok(chunk)).await.is_err() {
                            return false;
                        }
                    }
                    Ok(None) => return false,
                    Err(error) => {
                        let _ = sender.send(Err(axum::Error::new(error))).await;
                        return false;
                    }
                }
            }
        };
        let target_path = target.encoded(false);
        let put = state.proxy.to_service(
            SERVICE,
            &name,
            user.client_ip(),
            Method::PUT,
            &target_path,
            Vec::new(),
            Body::new(ChannelBody(receiver)),
        );
        let (over_quota, answer) = tokio::join!(feed, put);
        let stored = if over_quota {
            Ok(507)
        } else {
            answer.map(|a| a.status().as_u16())
        };
        let failed = !matches!(stored, Ok(200..=299));
        if !failed {
            budget.stored();
        }
        drop(budget);
        outcome = Some(stored);
        if failed {
            break;
        }
    }
    let Some(outcome) = outcome else {
        let message = "Choose a file to upload.".to_owned();
        return Ok(show(
            &state,
            &user,
            &dir,
            None,
            Some(message),
            StatusCode::BAD_REQUEST,
        )
        .await?
        .into_response());
    };
    after(&state, &user, &dir, outcome, "uploaded").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_kept_inside_the_home() {
        assert_eq!(HomePath::parse("/").unwrap().encoded(true), "/");
        assert_eq!(
            HomePath::parse("/a b/c%d").unwrap().encoded(false),
            "/a%20b/c%25d"
        );
        for bad in ["", "a", "/../etc", "/a/./b", "/a\u{7}"] {
            assert!(HomePath::parse(bad).is_none(), "{bad:?}");
        }
        let dir = HomePath::parse("/docs").unwrap();
        assert!(dir.child("..").is_none());
        assert!(dir.child("x/y").is_none());
        assert_eq!(dir.child("notes.txt").unwrap().display(), "/docs/notes.txt");
    }

    #[test]
    fn a_listing_is_read_from_lighttpds_answer() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:">
<D:response><D:href>/docs/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop></D:propstat></D:response>
<D:response><D:href>/docs/b%20file.txt</D:href><D:propstat><D:prop><D:getcontentlength>5</D:getcontentlength><D:getlastmodified>Fri, 04 Dec 2026 02:29:12 GMT</D:getlastmodified><D:resourcetype/></D:prop></D:propstat></D:response>
<D:response><D:href>http://files.home.cell/docs/a/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop></D:propstat></D:response>
<D:response><D:href>/elsewhere/x</D:href></D:response>
</D:multistatus>"#;
        let dir = HomePath::parse("/docs").unwrap();
        let entries = parse_listing(xml, &dir).unwrap();
        let names: Vec<(&str, bool, u64)> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.folder, e.size))
            .collect();
        assert_eq!(names, [("a", true, 0), ("b file.txt", false, 5)]);
        assert_eq!(entries[1].path, "/docs/b file.txt");
    }

    #[test]
    fn sizes_read_like_a_person_would_say_them() {
        assert_eq!(human_size(5), "5 bytes");
        assert_eq!(human_size(1_500_000), "1.5 MB");
    }
}
