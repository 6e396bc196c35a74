//! Reading what the kernel says about block devices and mounts (the parsing; the flash
//! command does the reading).

use std::fmt;

/// A device number, as `/proc/self/mountinfo` and `/sys/class/block/*/dev` write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DevNum {
    pub major: u64,
    pub minor: u64,
}

impl DevNum {
    /// `"8:16"` (a trailing newline is fine).
    pub fn parse(text: &str) -> Option<Self> {
        let (major, minor) = text.trim().split_once(':')?;
        Some(Self {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub dev: DevNum,
    pub mount_point: String,
    pub fs_type: String,
    /// What was mounted: `/dev/sda1`, `tmpfs`, `overlay`…
    pub source: String,
}

/// Parses `/proc/self/mountinfo` (proc(5)); lines it cannot read are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

fn parse_mountinfo_line(line: &str) -> Option<Mount> {
    // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    let (before, after) = line.split_once(" - ")?;
    let mut fields = before.split(' ');
    let dev = DevNum::parse(fields.nth(2)?)?;
    let mount_point = unescape_octal(fields.nth(1)?);
    let mut after = after.split(' ');
    let fs_type = unescape_octal(after.next()?);
    let source = unescape_octal(after.next()?);
    Some(Mount {
        dev,
        mount_point,
        fs_type,
        source,
    })
}

/// The kernel writes space, tab, newline and backslash in paths as `\040` and the like.
pub fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], digits) {
            (b'\\', Some(d)) => {
                let value = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The file names in the first column of `/proc/swaps` (escaped like mountinfo).
pub fn parse_swaps(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(unescape_octal)
        .collect()
}

/// `1.5 GiB`, `53.2 MiB`, `512 B`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // Display only: the precision f64 loses above 2^53 bytes does not show.
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
41 22 7:17 / /tmp/my\\040stick rw,relatime shared:30 - vfat /dev/loop1p1 rw,fmask=0022
55 22 0:45 / /home rw,relatime shared:40 master:3 - btrfs /dev/mapper/home rw,space_cache
garbage line
";

    #[test]
    fn mountinfo_gives_device_numbers_mount_points_and_sources() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(mounts.len(), 4);
        assert_eq!(
            mounts[0],
            Mount {
                dev: DevNum {
                    major: 259,
                    minor: 2
                },
                mount_point: "/".into(),
                fs_type: "ext4".into(),
                source: "/dev/nvme0n1p2".into()
            }
        );
        assert_eq!(
            mounts[2].dev,
            DevNum {
                major: 7,
                minor: 17
            }
        );
        assert_eq!(mounts[2].mount_point, "/tmp/my stick");
        assert_eq!(mounts[3].source, "/dev/mapper/home");
        assert_eq!(mounts[3].fs_type, "btrfs");
    }

    #[test]
    fn device_numbers_parse_from_sysfs() {
        assert_eq!(
            DevNum::parse("8:16\n"),
            Some(DevNum {
                major: 8,
                minor: 16
            })
        );
        assert_eq!(
            DevNum::parse("8:16").map(|d| d.to_string()).as_deref(),
            Some("8:16")
        );
        assert_eq!(DevNum::parse("8"), None);
        assert_eq!(DevNum::parse("a:b"), None);
    }

    #[test]
    fn octal_escapes_and_stray_backslashes() {
        assert_eq!(unescape_octal("a\\040b\\011c\\134d"), "a b\tc\\d");
        assert_eq!(unescape_octal("end\\04"), "end\\04");
        assert_eq!(unescape_octal("\\"), "\\");
    }

    #[test]
    fn swaps_list_file_names() {
        let text = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sda3                               partition\t8388604\t\t0\t\t-2\n/swap\\040file file 1024 0 -3\n";
        assert_eq!(parse_swaps(text), ["/dev/sda3", "/swap file"]);
    }

    #[test]
    fn sizes_read_like_du() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(1_678_807_040), "1.6 GiB");
        assert_eq!(human_size(64 << 20), "64.0 MiB");
    }
}
