//! The DAV machine as the rest of the cell sees it: the names the front door proxies to
//! it (from the settings, like the zone and the firewall), and how much a user's files
//! home holds.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use cell_model::api::ProxyRouteSpec;
use cell_model::vpn::Service;
use cell_model::Settings;
use cell_render::dav::{CALENDAR_PORT, FILES_PORT};

pub const DAV_UNIT: &str = "systemd-nspawn@dav.service";
/// The machine's root on the cell: dav.nspawn's `PrivateUsers=`, which the image's tree
/// was shifted to (a test checks the two agree).
pub const DAV_UID_BASE: u32 = 0x7001_0000;

/// The machine's state below celld's state directory.
pub const STATE_DIR: &str = "dav";

/// Whether any service the DAV machine serves is on.
pub fn wanted(settings: &Settings) -> bool {
    let services = &settings.services;
    services.calendar || services.files || services.webdav
}

/// The machine's port behind each web service it serves; uploads to files and webdav
/// count against the user's quota.
fn backend(service: Service) -> Option<(u16, bool)> {
    match service {
        Service::Calendar => Some((CALENDAR_PORT, false)),
        Service::Files | Service::Webdav => Some((FILES_PORT, true)),
        Service::Mail => None,
    }
}

/// Every enabled web service's name (`calendar.<zone>`…), its backend on the loopback,
/// the login it needs, and which VPN devices may use it (the same access the firewall and
/// the zone give them).
pub fn proxy_routes(settings: &Settings) -> Vec<ProxyRouteSpec> {
    let zone = settings.zone();
    let vpn = settings.vpn.as_ref();
    let vpn_networks: Vec<(IpAddr, u8)> = vpn
        .map(|vpn| {
            vec![
                (IpAddr::V4(vpn.subnet4.network()), vpn.subnet4.prefix()),
                (IpAddr::V6(vpn.prefix6.host(0)), 64),
            ]
        })
        .unwrap_or_default();
    Service::ALL
        .into_iter()
        .filter(|service| crate::dns::enabled(settings, *service))
        .filter_map(|service| {
            let (port, quota) = backend(service)?;
            let vpn_allowed = vpn
                .map(|vpn| {
                    vpn.peers
                        .iter()
                        .filter(|peer| peer.enabled && peer.access.allows(service))
                        .flat_map(|peer| {
                            vpn.peer_address4(peer)
                                .map(IpAddr::V4)
                                .into_iter()
                                .chain([IpAddr::V6(vpn.peer_address6(peer))])
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(ProxyRouteSpec {
                host: format!("{}.{zone}", service.as_str()),
                backend: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                login: Some(service.as_str().to_owned()),
                quota,
                vpn_networks: vpn_networks.clone(),
                vpn_allowed,
            })
        })
        .collect()
}

/// What a user's files take: their home, and lighttpd's database of their properties and
/// locks beside it (which they fill with PROPPATCH).
pub fn files_usage(state_dir: &Path, user: &cell_model::Username) -> std::io::Result<u64> {
    let files = state_dir.join(STATE_DIR).join("files");
    let props = files.join(".props").join(format!("{user}.sqlite"));
    let props = match std::fs::metadata(&props) {
        Ok(meta) => meta.len(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
        Err(error) => return Err(error),
    };
    Ok(usage(&files.join(user.as_str()))?.saturating_add(props))
}

/// What the file or folder at `path` (a decoded URL path in the user's home, `/` the home
/// itself) holds; a missing one holds nothing. None when the path could leave the home.
/// Reached from the cell's own state directory without following a link: the DAV machine
/// owns the homes.
pub fn path_usage(
    state_dir: &Path,
    user: &cell_model::Username,
    path: &str,
) -> Option<std::io::Result<u64>> {
    let base = state_dir.join(STATE_DIR);
    let mut at = base.join("files").join(user.as_str());
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments
        .iter()
        .any(|s| *s == "." || *s == ".." || s.contains('\0'))
    {
        return None;
    }
    let last = segments.pop();
    for segment in &segments {
        at.push(segment);
    }
    Some((|| {
        let Some(dir) = crate::no_follow::OpenDir::beneath(&base, &at)? else {
            return Ok(0);
        };
        match last {
            None => dir.usage(),
            Some(name) => match dir.child(std::ffi::OsStr::new(name))? {
                crate::no_follow::Child::Dir(sub) => sub.usage(),
                crate::no_follow::Child::File(file) => Ok(file.metadata()?.len()),
                crate::no_follow::Child::Other => Ok(0),
            },
        }
    })())
}

/// The bytes of every file under `home` (none: 0). Symbolic links are not followed.
pub fn usage(home: &Path) -> std::io::Result<u64> {
    let mut total = 0u64;
    let mut pending = vec![home.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        for entry in entries {
            let entry = entry?;
            // Moved or deleted while we walk (the user is working in it): not counted.
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() {
                total = total.saturating_add(meta.len());
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_in_a_home_holds_what_is_under_it_and_cannot_leave_it() {
        let dir = tempfile::tempdir().unwrap();
        let alice = cell_model::Username::parse("alice").unwrap();
        let home = dir.path().join(STATE_DIR).join("files/alice");
        std::fs::create_dir_all(home.join("photos/2026")).unwrap();
        std::fs::write(home.join("photos/a.jpg"), [0u8; 300]).unwrap();
        std::fs::write(home.join("photos/2026/b.jpg"), [0u8; 200]).unwrap();
        std::fs::write(home.join("note.txt"), b"hello").unwrap();
        let at = |path: &str| path_usage(dir.path(), &alice, path).map(|r| r.unwrap());
        assert_eq!(at("/photos/"), Some(500));
        assert_eq!(at("/photos/2026/b.jpg"), Some(200));
        assert_eq!(at("/"), Some(505));
        assert_eq!(at("/missing"), Some(0));
        assert_eq!(at("/photos/../../bob"), None);
        // A link planted in the home is not followed, in the middle of a path either.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(elsewhere.join("deep")).unwrap();
        std::fs::write(elsewhere.join("deep/big"), [0u8; 1000]).unwrap();
        std::os::unix::fs::symlink(&elsewhere, home.join("linked")).unwrap();
        assert_eq!(at("/linked/deep"), Some(0));
        assert_eq!(at("/linked"), Some(0));
        assert_eq!(at("/"), Some(505));
    }

    #[test]
    fn only_enabled_web_services_are_routed_with_their_login() {
        let mut settings = Settings::default();
        settings.services.calendar = true;
        settings.services.mail = true;
        settings.services.files = true;
        let routes = proxy_routes(&settings);
        let zone = settings.zone();
        let hosts: Vec<&str> = routes.iter().map(|r| r.host.as_str()).collect();
        assert_eq!(hosts, [format!("calendar.{zone}"), format!("files.{zone}")]);
        assert_eq!(routes[0].login.as_deref(), Some("calendar"));
        assert!(!routes[0].quota);
        assert!(routes[1].quota);
        assert_eq!(routes[1].backend.port(), FILES_PORT);
    }

    #[test]
    fn usage_counts_files_in_every_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("one"), [0u8; 10]).unwrap();
        std::fs::write(dir.path().join("a/b/two"), [0u8; 32]).unwrap();
        assert_eq!(usage(dir.path()).unwrap(), 42);
        assert_eq!(usage(&dir.path().join("missing")).unwrap(), 0);
    }

    #[test]
    fn the_uid_base_is_the_one_the_machine_runs_at() {
        let nspawn = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../rootfs/usr/lib/cell/nspawn/dav.nspawn"
        );
        let text = std::fs::read_to_string(nspawn).unwrap();
        assert!(text
            .lines()
            .any(|l| l == format!("PrivateUsers={DAV_UID_BASE}:65536")));
    }
}
