//! The reverse proxy by host name: a request for a service's name goes to that service's
//! backend, bodies streaming both ways (nothing is held whole in memory), hop-by-hop
//! headers dropped, the forwarding and identity headers set by us alone, WebSocket (and
//! other) upgrades joined end to end. A VPN peer without access to the service gets 403,
//! as from the firewall and DNS. Routes are swapped whole, like the certificates.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use cell_model::api::{FilesUsage, ProxyRouteSpec, ProxyTable, ServiceLogin};
use cell_model::net::in_network;
use celld_client::{CelldClient, ClientError, OnBehalf};
use http_body_util::{BodyExt, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// How often the route table is asked for (a 204 when nothing changed).
const FOLLOW_EVERY: Duration = Duration::from_secs(2);

/// How long a backend may take to connect, and to answer with its headers once the
/// request's body has stopped moving (an upload may take as long as it keeps moving).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Headers that describe one connection, not the message (RFC 9110 7.6.1), and the
/// proxy forms of authentication.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers a backend trusts to say who and where the client is: only we set them.
const SET_BY_US: [&str; 6] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "x-remote-user",
];

/// One service's name and where it is served.
#[derive(Debug, Clone)]
pub struct ProxyRoute {
    /// The name clients ask for (lower case, no port).
    pub host: String,
    /// The backend's HTTP address.
    pub backend: SocketAddr,
    /// The largest request body passed on; `None`: no limit (uploads stream).
    pub body_limit: Option<u64>,
    /// The VPN's networks: a client from there needs to be in `vpn_allowed`.
    pub vpn_networks: Vec<(IpAddr, u8)>,
    /// The VPN addresses of the devices that may use the service.
    pub vpn_allowed: HashSet<IpAddr>,
    /// When set, the service (`files`, `calendar`…) whose login a request must carry
    /// (HTTP Basic with an app password, checked by celld); the backend is told who it
    /// is by `X-Remote-User` and never sees the password.
    pub login: Option<String>,
    /// Uploads (PUT) count against the logged-in user's files quota: one that would pass
    /// it gets 507 and never reaches the backend whole.
    pub quota: bool,
}

impl From<ProxyRouteSpec> for ProxyRoute {
    fn from(spec: ProxyRouteSpec) -> Self {
        Self {
            host: spec.host.to_ascii_lowercase(),
            backend: spec.backend,
            body_limit: None,
            vpn_networks: spec.vpn_networks,
            vpn_allowed: spec.vpn_allowed.into_iter().collect(),
            login: spec.login,
            quota: spec.quota,
        }
    }
}

impl ProxyRoute {
    fn admits(&self, client: IpAddr) -> bool {
        let from_vpn = self
            .vpn_networks
            .iter()
            .any(|(network, prefix)| in_network(client, *network, *prefix));
        !from_vpn || self.vpn_allowed.contains(&client)
    }
}

/// Why the front door's own request to a service did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("the service is off")]
    NotRouted,
    #[error("this device has no access to this service")]
    NotAllowed,
    #[error("the service is not answering: {0}")]
    Failed(String),
}

/// The routes in force and the client that reaches the backends.
#[derive(Clone)]
pub struct Proxy {
    routes: Arc<ArcSwap<HashMap<String, Arc<ProxyRoute>>>>,
    client: Client<HttpConnector, Body>,
    /// Checks service logins.
    celld: Option<CelldClient>,
    /// Uploads in flight, held together to each user's quota.
    budgets: Arc<crate::upload_budget::Budgets>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("hosts", &self.routes.load().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Default for Proxy {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        Self {
            routes: Arc::default(),
            client: Client::builder(TokioExecutor::new()).build(connector),
            celld: None,
            budgets: Arc::default(),
        }
    }
}

impl Proxy {
    /// A proxy whose routes with a login are checked by `celld`.
    pub fn with_celld(celld: CelldClient) -> Self {
        Self {
            celld: Some(celld),
            ..Self::default()
        }
    }

    /// Replaces every route at once.
    pub fn install(&self, routes: Vec<ProxyRoute>) {
        let table = routes
            .into_iter()
            .map(|route| (route.host.to_ascii_lowercase(), Arc::new(route)))
            .collect();
        self.routes.store(Arc::new(table));
    }

    /// The route that logs in to `service` (`files`…), when it is routed.
    fn route_of(&self, service: &str) -> Option<Arc<ProxyRoute>> {
        self.routes
            .load()
            .values()
            .find(|route| route.login.as_deref() == Some(service))
            .cloned()
    }

    /// A request of the front door's own to `service`'s backend, on behalf of `user`
    /// (whom the page's session named) at `client` (a VPN device needs access to the
    /// service, as through its own name): `path_and_query` already percent-encoded.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn to_service(
        &self,
        service: &str,
        user: &str,
        client: Option<IpAddr>,
        method: Method,
        path_and_query: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Body,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ServiceError> {
        let route = self.route_of(service).ok_or(ServiceError::NotRouted)?;
        let admitted = match client {
            Some(client) => route.admits(client),
            None => route.vpn_networks.is_empty(),
        };
        if !admitted {
            return Err(ServiceError::NotAllowed);
        }
        let backend = route.backend;
        let uri = Uri::builder()
            .scheme("http")
            .authority(backend.to_string())
            .path_and_query(path_and_query)
            .build()
            .map_err(|e| ServiceError::Failed(e.to_string()))?;
        let upload = method == Method::PUT;
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let user = HeaderValue::from_str(user).map_err(|e| ServiceError::Failed(e.to_string()))?;
        // An upload from the page may take long; the answer's timeout runs from when its
        // body last moved, as for proxied requests.
        let moved = Arc::new(std::sync::Mutex::new(tokio::time::Instant::now()));
        let body = Body::new(WatchedBody {
            upload,
            inner: body,
            budget: None,
            exceeded: Arc::new(AtomicBool::new(false)),
            moved: moved.clone(),
        });
        let request = request
            .header("x-remote-user", user)
            .body(body)
            .map_err(|e| ServiceError::Failed(e.to_string()))?;
        match answer_in_time(self.client.request(request), &moved).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(ServiceError::Failed(error.to_string())),
            Err(()) => Err(ServiceError::Failed("no answer in time".into())),
        }
    }

    fn route_for(&self, request: &Request) -> Option<Arc<ProxyRoute>> {
        let routes = self.routes.load();
        if routes.is_empty() {
            return None;
        }
        let host = match request.uri().host() {
            Some(host) => host,
            None => {
                let value = request.headers().get(header::HOST)?.to_str().ok()?;
                crate::front_door::host_without_port(value)?
            }
        }
        .to_ascii_lowercase();
        routes.get(&host).cloned()
    }
}

/// Middleware in front of the app: requests for a routed name go to its backend, the
/// rest to the app.
pub async fn dispatch(State(proxy): State<Proxy>, request: Request, next: Next) -> Response {
    let Some(route) = proxy.route_for(&request) else {
        return next.run(request).await;
    };
    let Some(ConnectInfo(client)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    else {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the client's address is unknown",
        );
    };
    if !route.admits(client.ip()) {
        tracing::info!(host = %route.host, client = %client.ip(), "refused a VPN device without access");
        return refuse(
            StatusCode::FORBIDDEN,
            "this device has no access to this service",
        );
    }
    let user = match &route.login {
        None => None,
        Some(service) => {
            match log_in(&proxy, &route, service, client.ip(), request.headers()).await {
                Ok(user) => Some(user),
                Err(refusal) => return refusal,
            }
        }
    };
    let quota = match (&user, route.quota && request.method() == Method::PUT) {
        (Some(user), true) => match start_upload(&proxy, user).await {
            Ok(upload) => Some(upload),
            Err(refusal) => return refusal,
        },
        _ => None,
    };
    // A copy is made by the service from what is stored: it must fit before it starts.
    if let (Some(user), true) = (&user, route.quota && request.method().as_str() == "COPY") {
        if let Err(refusal) = copy_fits(&proxy, user, request.uri().path()).await {
            return refusal;
        }
    }
    forward(&proxy, &route, client.ip(), user, quota, request).await
}

/// Whether what `path` (a URL path in the user's home) holds fits in what is left of
/// their quota.
async fn copy_fits(proxy: &Proxy, user: &str, path: &str) -> Result<(), Response> {
    let Some(celld) = &proxy.celld else {
        return Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the quota cannot be checked",
        ));
    };
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| refuse(StatusCode::BAD_REQUEST, "the path is not UTF-8"))?;
    let query = format!(
        "/v1/files/{user}/usage?path={}",
        celld_client::encode_component(&decoded)
    );
    match celld
        .json::<FilesUsage>(Method::GET, &query, &OnBehalf::default(), None)
        .await
    {
        Ok(usage) => {
            let left = usage.quota_bytes.saturating_sub(usage.used_bytes);
            if usage.path_bytes.unwrap_or(0) > left {
                Err(refuse(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "this copy does not fit in your files quota",
                ))
            } else {
                Ok(())
            }
        }
        Err(ClientError::Refused { status, .. }) if status == StatusCode::BAD_REQUEST => {
            Err(refuse(StatusCode::BAD_REQUEST, "not a path in your files"))
        }
        Err(error) => {
            tracing::warn!(%error, user, "cannot read a files quota");
            Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the quota cannot be checked now",
            ))
        }
    }
}

/// Starts an upload of `user`'s, held with their others in flight to what their quota
/// leaves.
pub(crate) async fn start_upload(
    proxy: &Proxy,
    user: &str,
) -> Result<Arc<crate::upload_budget::Upload>, Response> {
    let upload = proxy.budgets.enter(user);
    upload.start(room_left(proxy, user).await?);
    Ok(upload)
}

/// How many bytes `user` may still upload, from celld.
pub(crate) async fn room_left(proxy: &Proxy, user: &str) -> Result<u64, Response> {
    let Some(celld) = &proxy.celld else {
        return Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the quota cannot be checked",
        ));
    };
    let path = format!("/v1/files/{user}/usage");
    match celld
        .json::<FilesUsage>(Method::GET, &path, &OnBehalf::default(), None)
        .await
    {
        Ok(usage) => Ok(usage.quota_bytes.saturating_sub(usage.used_bytes)),
        Err(error) => {
            tracing::warn!(%error, user, "cannot read a files quota");
            Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the quota cannot be checked now",
            ))
        }
    }
}

/// A request's body on its way to the backend: it notes when it last moved (the answer's
/// timeout runs from then), and, for an upload held to a quota, fails once it carries
/// more than `left` bytes, saying so in `exceeded`. The backend then never completes the
/// upload (lighttpd links a PUT's file in only once its body is whole); the client gets
/// 507.
struct WatchedBody {
    inner: Body,
    budget: Option<Arc<crate::upload_budget::Upload>>,
    exceeded: Arc<AtomicBool>,
    moved: Arc<std::sync::Mutex<tokio::time::Instant>>,
    /// Whether moving pushes the answer's deadline on: for uploads (PUT) only, so that
    /// a slow trickle cannot hold another backend connection past the fixed timeout.
    upload: bool,
}

impl hyper::body::Body for WatchedBody {
    type Data = hyper::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if self.upload {
            if let Ok(mut moved) = self.moved.lock() {
                *moved = tokio::time::Instant::now();
            }
        }
        let length = match &frame {
            Some(Ok(frame)) => frame.data_ref().map_or(0, |d| d.len() as u64),
            _ => 0,
        };
        if self
            .budget
            .as_ref()
            .is_some_and(|budget| !budget.take(length))
        {
            self.exceeded.store(true, Ordering::SeqCst);
            // The client is still sending: read on (and drop) what it sends while it gets
            // its 507, as a connection closed on unread data is reset and the answer with
            // it.
            let rest = std::mem::replace(&mut self.inner, Body::empty());
            tokio::spawn(drain(rest));
            return Poll::Ready(Some(Err(axum::Error::new("over the files quota"))));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// How much of a refused upload is read and dropped, at most, so that its client hears the
/// refusal; and how long a pause in it may last.
pub(crate) const DRAIN_LIMIT: u64 = 256 << 20;
const DRAIN_PAUSE: Duration = Duration::from_secs(10);

async fn drain(mut body: Body) {
    let mut drained = 0u64;
    while drained < DRAIN_LIMIT {
        match tokio::time::timeout(DRAIN_PAUSE, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                drained += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
            _ => break,
        }
    }
}

/// Follows celld's route table: asks every [`FOLLOW_EVERY`] for a newer one and installs
/// it, with `fixed` (the command line's routes) on top.
pub async fn follow_celld(celld: CelldClient, proxy: Proxy, fixed: Vec<ProxyRoute>) {
    let mut known: Option<u64> = None;
    loop {
        let path = match known {
            Some(generation) => format!("/v1/proxy?known={generation}"),
            None => "/v1/proxy".to_owned(),
        };
        match celld
            .call(Method::GET, &path, &OnBehalf::default(), None)
            .await
        {
            Ok((status, _)) if status == StatusCode::NO_CONTENT => {}
            Ok((status, body)) => match celld_client::decode::<ProxyTable>(&path, status, &body) {
                Ok(table) => {
                    let mut routes: Vec<ProxyRoute> = table
                        .routes
                        .into_iter()
                        .map(ProxyRoute::from)
                        .filter(|route| !fixed.iter().any(|f| f.host == route.host))
                        .collect();
                    routes.extend(fixed.iter().cloned());
                    tracing::info!(
                        generation = table.generation,
                        routes = routes.len(),
                        "installed the proxy routes"
                    );
                    proxy.install(routes);
                    known = Some(table.generation);
                }
                Err(error) => tracing::warn!(%error, "celld gave no proxy routes"),
            },
            Err(error) => tracing::warn!(%error, "cannot ask celld for the proxy routes"),
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// The user an HTTP Basic login for `service` names, once celld accepts it; otherwise the
/// answer to give (401 with a challenge, 429 while throttled, 503 without celld).
async fn log_in(
    proxy: &Proxy,
    route: &ProxyRoute,
    service: &str,
    client: IpAddr,
    headers: &HeaderMap,
) -> Result<String, Response> {
    let challenge = || {
        let realm = format!("Basic realm=\"{}\", charset=\"UTF-8\"", route.host);
        let mut answer = refuse(
            StatusCode::UNAUTHORIZED,
            "log in with your user name and an app password",
        );
        if let Ok(value) = HeaderValue::from_str(&realm) {
            answer.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        answer
    };
    let Some((username, password)) = basic_credentials(headers) else {
        return Err(challenge());
    };
    let Some(celld) = &proxy.celld else {
        return Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "logins cannot be checked",
        ));
    };
    let body = serde_json::json!({
        "service": service,
        "username": username,
        "password": password,
        "source": client.to_string(),
    });
    let answer = celld
        .json::<ServiceLogin>(
            hyper::Method::POST,
            "/v1/auth/service",
            &OnBehalf::default(),
            Some(hyper::body::Bytes::from(body.to_string())),
        )
        .await;
    match answer {
        Ok(login) => Ok(login.username),
        Err(ClientError::Refused { status, .. }) if status == StatusCode::TOO_MANY_REQUESTS => {
            Err(refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed logins; try again later",
            ))
        }
        Err(ClientError::Refused { status, .. }) if status == StatusCode::UNAUTHORIZED => {
            Err(challenge())
        }
        Err(error) => {
            tracing::warn!(%error, "cannot check a service login");
            Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "logins cannot be checked now",
            ))
        }
    }
}

/// `Authorization: Basic base64(user:password)`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The backend's answer, unless it takes longer than [`ANSWER_TIMEOUT`] from the moment
/// the request's body last moved.
async fn answer_in_time<F: std::future::Future>(
    answer: F,
    moved: &std::sync::Mutex<tokio::time::Instant>,
) -> Result<F::Output, ()> {
    tokio::pin!(answer);
    loop {
        let deadline = match moved.lock() {
            Ok(moved) => *moved + ANSWER_TIMEOUT,
            Err(_) => return Err(()),
        };
        tokio::select! {
            output = &mut answer => return Ok(output),
            () = tokio::time::sleep_until(deadline) => {
                if moved.lock().map_or(true, |m| *m + ANSWER_TIMEOUT <= tokio::time::Instant::now()) {
                    return Err(());
                }
            }
        }
    }
}

/// WebDAV's XML bodies are small; larger ones are refused.
const XML_BODY_LIMIT: usize = 1 << 20;

/// A WebDAV request's XML body, read whole and checked here, where parsing is
/// unprivileged: not well-formed XML (an empty namespace prefix included, a DTD refused)
/// is answered 400 and never reaches the machine.
async fn well_formed_xml(body: Body) -> Result<Body, Response> {
    let bytes = match Limited::new(body, XML_BODY_LIMIT).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request's XML is too large",
            ))
        }
        Err(_) => {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "the request's XML was cut short",
            ))
        }
    };
    if !bytes.is_empty() {
        let text = std::str::from_utf8(&bytes).ok();
        let well_formed = text
            .and_then(|text| roxmltree::Document::parse(text).ok())
            .is_some_and(|document| {
                // XML Namespaces 1.0: a prefix cannot be bound to the empty name.
                document.descendants().all(|node| {
                    node.namespaces()
                        .all(|ns| ns.name().is_none() || !ns.uri().is_empty())
                })
            });
        if !well_formed {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "the request's XML is not well-formed",
            ));
        }
    }
    Ok(Body::from(bytes))
}

/// The path of a `Destination` URL that names `host` itself (https, the default port).
fn destination_path(destination: &str, host: &str) -> Option<String> {
    let uri: Uri = destination.parse().ok()?;
    let same_host = uri.scheme_str() == Some("https")
        && uri.host().is_some_and(|h| h.eq_ignore_ascii_case(host))
        && uri.port_u16().is_none_or(|port| port == 443);
    same_host.then(|| {
        uri.path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned())
    })
}

fn over_quota() -> Response {
    refuse(
        StatusCode::INSUFFICIENT_STORAGE,
        "this upload does not fit in your files quota",
    )
}

fn refuse(status: StatusCode, message: &'static str) -> Response {
    (status, message).into_response()
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Drops what a client sent of the headers only we set, in any spelling a backend may read
/// as one of them (Python's WSGI turns `X_Remote_User` into `X-Remote-User`'s variable).
fn remove_set_by_us(headers: &mut HeaderMap) {
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let dashed = name.as_str().replace('_', "-");
            SET_BY_US.contains(&dashed.as_str())
        })
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
}

/// Drops the hop-by-hop headers, and those the `Connection` header names.
fn drop_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

async fn forward(
    proxy: &Proxy,
    route: &ProxyRoute,
    client: IpAddr,
    user: Option<String>,
    quota: Option<Arc<crate::upload_budget::Upload>>,
    mut request: Request,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let (Some(limit), Some(length)) = (route.body_limit, declared) {
        if length > limit {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large for this service",
            );
        }
    }
    if let (Some(budget), Some(length)) = (&quota, declared) {
        if !budget.reserve(length) {
            // A client that did not ask to wait for a 100 Continue is sending already:
            // read on while it hears the refusal, as a connection closed on unread data
            // is reset (and some, curl 7.88 over HTTP/2, drop an answer whose stream is
            // reset under their upload). One that asked gets no 100 and sends nothing.
            let waits = request
                .headers()
                .get(header::EXPECT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
            if !waits {
                tokio::spawn(drain(request.into_body()));
            }
            return over_quota();
        }
    }
    let upgrade = is_upgrade(request.headers()).then(|| {
        (
            request.headers().get(header::UPGRADE).cloned(),
            hyper::upgrade::on(&mut request),
        )
    });
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let Ok(uri) = Uri::builder()
        .scheme("http")
        .authority(route.backend.to_string())
        .path_and_query(path)
        .build()
    else {
        return refuse(StatusCode::BAD_REQUEST, "the request's path is not valid");
    };
    let (mut parts, body) = request.into_parts();
    parts.uri = uri;
    parts.version = hyper::Version::HTTP_11;
    drop_hop_by_hop(&mut parts.headers);
    remove_set_by_us(&mut parts.headers);
    if let Some(user) = user.as_deref().and_then(|u| HeaderValue::from_str(u).ok()) {
        // The backend trusts this; the password it needs not see.
        parts.headers.remove(header::AUTHORIZATION);
        parts
            .headers
            .insert(HeaderName::from_static("x-remote-user"), user);
    }
    // WebDAV's PROPFIND, PROPPATCH and LOCK carry XML (RFC 4918); some clients (neon's:
    // davfs2, litmus) do not say so, and lighttpd refuses an unlabelled body with 415.
    let xml_method = matches!(parts.method.as_str(), "PROPFIND" | "PROPPATCH" | "LOCK");
    if xml_method && declared != Some(0) && !parts.headers.contains_key(header::CONTENT_TYPE) {
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
    }
    let body = if xml_method {
        match well_formed_xml(body).await {
            Ok(body) => body,
            Err(refusal) => return refusal,
        }
    } else {
        body
    };
    let host = route.host.as_str();
    // WebDAV's COPY and MOVE name their target as an absolute https:// URL of this host;
    // the backend, reached over plain HTTP on the loopback, takes it for another server.
    // The path alone names the same resource.
    let local_destination = parts
        .headers
        .get("destination")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| destination_path(value, host))
        .and_then(|path| HeaderValue::from_str(&path).ok());
    if let Some(path) = local_destination {
        parts.headers.insert("destination", path);
    }
    let client_text = client.to_string();
    let forwarded_for = match client {
        IpAddr::V4(_) => client_text.clone(),
        IpAddr::V6(_) => format!("\"[{client_text}]\""),
    };
    let set = [
        (header::HOST, host.to_owned()),
        (
            HeaderName::from_static("x-forwarded-for"),
            client_text.clone(),
        ),
        (
            HeaderName::from_static("x-forwarded-proto"),
            "https".to_owned(),
        ),
        (HeaderName::from_static("x-forwarded-host"), host.to_owned()),
        (
            header::FORWARDED,
            format!("for={forwarded_for};proto=https;host=\"{host}\""),
        ),
    ];
    for (name, value) in set {
        if let Ok(value) = HeaderValue::from_str(&value) {
            parts.headers.insert(name, value);
        }
    }
    if let Some((Some(protocol), _)) = &upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, protocol.clone());
    }
    let body = match route.body_limit {
        Some(limit) => Body::new(Limited::new(
            body,
            usize::try_from(limit).unwrap_or(usize::MAX),
        )),
        None => body,
    };
    let exceeded = Arc::new(AtomicBool::new(false));
    let moved = Arc::new(std::sync::Mutex::new(tokio::time::Instant::now()));
    let body = Body::new(WatchedBody {
        upload: parts.method == Method::PUT,
        inner: body,
        budget: quota.clone(),
        exceeded: exceeded.clone(),
        moved: moved.clone(),
    });
    let sent = answer_in_time(
        proxy.client.request(Request::from_parts(parts, body)),
        &moved,
    )
    .await;
    let mut answer = match sent {
        Ok(Ok(answer)) => {
            if let Some(budget) = quota.filter(|_| answer.status().is_success()) {
                budget.stored();
            }
            answer
        }
        Ok(Err(_)) if exceeded.load(Ordering::SeqCst) => return over_quota(),
        Ok(Err(error)) => {
            tracing::warn!(host, backend = %route.backend, %error, "the backend did not answer");
            return refuse(StatusCode::BAD_GATEWAY, "the service is not answering");
        }
        Err(_) => {
            tracing::warn!(host, backend = %route.backend, "the backend did not answer in time");
            return refuse(
                StatusCode::GATEWAY_TIMEOUT,
                "the service did not answer in time",
            );
        }
    };
    if answer.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some((_, client_side)) = upgrade {
            let backend_side = hyper::upgrade::on(&mut answer);
            tokio::spawn(async move {
                match tokio::try_join!(client_side, backend_side) {
                    Ok((client_io, backend_io)) => {
                        let mut client_io = TokioIo::new(client_io);
                        let mut backend_io = TokioIo::new(backend_io);
                        let _ =
                            tokio::io::copy_bidirectional(&mut client_io, &mut backend_io).await;
                    }
                    Err(error) => tracing::debug!(%error, "an upgrade did not complete"),
                }
            });
            let (parts, _) = answer.into_parts();
            return Response::from_parts(parts, Body::empty());
        }
    }
    let (mut parts, body) = answer.into_parts();
    drop_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, Body::new(body.map_err(axum::Error::new)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_cannot_set_the_identity_header_in_another_spelling() {
        let mut headers = HeaderMap::new();
        headers.insert("x_remote_user", HeaderValue::from_static("bob"));
        headers.insert("X-Remote-User", HeaderValue::from_static("bob"));
        headers.insert("x_forwarded_for", HeaderValue::from_static("1.2.3.4"));
        headers.insert("x_other", HeaderValue::from_static("kept"));
        remove_set_by_us(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key("x_other"));
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        drop_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key("x-kept"));
    }

    #[tokio::test]
    async fn webdav_xml_must_be_well_formed() {
        for bad in [
            "<foo>",
            r#"<D:propfind xmlns:D="DAV:" xmlns:ns1=""><D:prop><ns1:x/></D:prop></D:propfind>"#,
            r#"<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>"#,
        ] {
            let refused = well_formed_xml(Body::from(bad)).await.err();
            assert_eq!(
                refused.map(|r| r.status()),
                Some(StatusCode::BAD_REQUEST),
                "{bad}"
            );
        }
        let good =
            r#"<?xml version="1.0"?><propfind xmlns="DAV:"><prop><x xmlns=""/></prop></propfind>"#;
        assert!(well_formed_xml(Body::from(good)).await.is_ok());
        assert!(well_formed_xml(Body::empty()).await.is_ok());
    }

    #[test]
    fn a_destination_on_this_host_becomes_its_path_and_another_stays() {
        let host = "files.home.cell";
        assert_eq!(
            destination_path("https://files.home.cell/a%20b/c?x=1", host).as_deref(),
            Some("/a%20b/c?x=1")
        );
        assert_eq!(
            destination_path("https://FILES.home.cell:443/d/", host).as_deref(),
            Some("/d/")
        );
        assert_eq!(destination_path("https://elsewhere.example/d", host), None);
        assert_eq!(
            destination_path("https://files.home.cell:8443/d", host),
            None
        );
        assert_eq!(destination_path("http://files.home.cell/d", host), None);
        assert_eq!(destination_path("/already/a/path", host), None);
    }

    #[test]
    fn vpn_devices_need_access_and_the_lan_does_not() {
        let route = ProxyRoute {
            host: "files.home.cell".into(),
            backend: "127.0.0.1:1"
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 1))),
            body_limit: None,
            vpn_networks: vec![(IpAddr::from([10, 87, 0, 0]), 20)],
            vpn_allowed: HashSet::from([IpAddr::from([10, 87, 0, 10])]),
            login: None,
            quota: false,
        };
        assert!(route.admits(IpAddr::from([10, 87, 0, 10])));
        assert!(!route.admits(IpAddr::from([10, 87, 0, 11])));
        assert!(route.admits(IpAddr::from([192, 168, 1, 5])));
    }
}
