//! The partitions of a built disk image, as `sfdisk --json` describes them, and the three
//! that make up one version of `/usr`.

use serde::Deserialize;

use crate::names::PartKind;
use crate::version::{ImageVersion, VersionError};

/// What `sfdisk --json IMAGE` prints, reduced to what publishing needs.
#[derive(Debug, Clone, Deserialize)]
struct SfdiskOutput {
    partitiontable: PartitionTable,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PartitionTable {
    pub label: String,
    /// `sectors` in every sfdisk we know; anything else is refused.
    #[serde(default)]
    pub unit: Option<String>,
    /// Absent before util-linux 2.36, which only knew 512-byte sectors for image files.
    #[serde(default)]
    pub sectorsize: Option<u64>,
    #[serde(default)]
    pub partitions: Vec<Partition>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Partition {
    pub node: String,
    pub start: u64,
    pub size: u64,
    #[serde(rename = "type")]
    pub type_guid: String,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GptError {
    #[error("cannot read sfdisk's JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the image has a {label:?} partition table, not GPT")]
    NotGpt { label: String },
    #[error("sfdisk reports positions in {unit:?}, not sectors")]
    Unit { unit: String },
    #[error("sector size {size} is not a power of two of at least 512")]
    SectorSize { size: u64 },
    #[error("the image has no {kind} partition (type {guid})")]
    Missing { kind: PartKind, guid: &'static str },
    #[error("the image has {count} {kind} partitions ({nodes}); a built image has exactly one")]
    Several {
        kind: PartKind,
        count: usize,
        nodes: String,
    },
    #[error("the {kind} partition {node} has no name; it must be named cell_<version>")]
    Unnamed { kind: PartKind, node: String },
    #[error("the usr partition {node} is named {name:?}; it must be named cell_<version>")]
    UsrName { node: String, name: String },
    #[error("the usr partition {node} is named {name:?}: {source}")]
    UsrVersion {
        node: String,
        name: String,
        source: VersionError,
    },
    #[error(
        "the {kind} partition {node} is named {found:?}, expected {expected:?} (the usr partition is named cell_{version}; \
         check Label= in image/repart)"
    )]
    Name {
        kind: PartKind,
        node: String,
        found: String,
        expected: String,
        version: ImageVersion,
    },
    #[error("the {kind} partition {node} has no valid partition UUID ({uuid:?})")]
    Uuid {
        kind: PartKind,
        node: String,
        uuid: Option<String>,
    },
    #[error("the {kind} partition {node} is empty or lies beyond 2^64 bytes")]
    Range { kind: PartKind, node: String },
}

impl PartitionTable {
    pub fn from_sfdisk_json(json: &str) -> Result<Self, GptError> {
        let table = serde_json::from_str::<SfdiskOutput>(json)?.partitiontable;
        if table.label != "gpt" {
            return Err(GptError::NotGpt { label: table.label });
        }
        if let Some(unit) = &table.unit {
            if unit != "sectors" {
                return Err(GptError::Unit { unit: unit.clone() });
            }
        }
        let size = table.sector_size();
        if size < 512 || !size.is_power_of_two() {
            return Err(GptError::SectorSize { size });
        }
        Ok(table)
    }

    pub fn sector_size(&self) -> u64 {
        self.sectorsize.unwrap_or(512)
    }
}

/// One partition to publish: where its bytes are in the image and what it is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsrPart {
    pub kind: PartKind,
    pub node: String,
    pub name: String,
    /// Lower case, with dashes: the form systemd-sysupdate's `@u` matches.
    pub uuid: String,
    pub offset: u64,
    pub length: u64,
}

impl UsrPart {
    pub fn end(&self) -> u64 {
        // from_table made sure this does not overflow
        self.offset + self.length
    }
}

/// The usr, usr-verity and usr-verity-sig partitions of one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsrSet {
    pub version: ImageVersion,
    /// In [`PartKind::ALL`] order: usr, usr-verity, usr-verity-sig.
    pub parts: Vec<UsrPart>,
}

impl UsrSet {
    /// Finds exactly one partition of each type, takes the version from the usr partition's
    /// name `cell_<V>` and checks that the others are named `cell_<V>_hash` and `cell_<V>_sig`.
    pub fn from_table(table: &PartitionTable) -> Result<Self, GptError> {
        let mut found = Vec::with_capacity(PartKind::ALL.len());
        for kind in PartKind::ALL {
            let matching: Vec<&Partition> = table
                .partitions
                .iter()
                .filter(|p| p.type_guid.eq_ignore_ascii_case(kind.type_guid()))
                .collect();
            match matching.as_slice() {
                [] => {
                    return Err(GptError::Missing {
                        kind,
                        guid: kind.type_guid(),
                    })
                }
                [one] => found.push((kind, *one)),
                several => {
                    return Err(GptError::Several {
                        kind,
                        count: several.len(),
                        nodes: several
                            .iter()
                            .map(|p| p.node.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
                }
            }
        }

        let name_of = |kind: PartKind, p: &Partition| {
            p.name
                .clone()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| GptError::Unnamed {
                    kind,
                    node: p.node.clone(),
                })
        };
        let (_, usr) = found[0];
        let usr_name = name_of(PartKind::Usr, usr)?;
        let version_str = usr_name
            .strip_prefix("cell_")
            .ok_or_else(|| GptError::UsrName {
                node: usr.node.clone(),
                name: usr_name.clone(),
            })?;
        let version = ImageVersion::parse(version_str).map_err(|source| GptError::UsrVersion {
            node: usr.node.clone(),
            name: usr_name.clone(),
            source,
        })?;

        let sector = table.sector_size();
        let mut parts = Vec::with_capacity(found.len());
        for (kind, p) in found {
            let name = name_of(kind, p)?;
            let expected = kind.partition_name(&version);
            if name != expected {
                return Err(GptError::Name {
                    kind,
                    node: p.node.clone(),
                    found: name,
                    expected,
                    version: version.clone(),
                });
            }
            let uuid =
                p.uuid
                    .as_deref()
                    .and_then(normalize_uuid)
                    .ok_or_else(|| GptError::Uuid {
                        kind,
                        node: p.node.clone(),
                        uuid: p.uuid.clone(),
                    })?;
            let range = p
                .start
                .checked_mul(sector)
                .zip(p.size.checked_mul(sector))
                .filter(|&(offset, length)| length > 0 && offset.checked_add(length).is_some());
            let Some((offset, length)) = range else {
                return Err(GptError::Range {
                    kind,
                    node: p.node.clone(),
                });
            };
            parts.push(UsrPart {
                kind,
                node: p.node.clone(),
                name,
                uuid,
                offset,
                length,
            });
        }
        Ok(Self { version, parts })
    }

    /// Where the last of the three partitions ends: the image must be at least this long.
    pub fn end(&self) -> u64 {
        self.parts.iter().map(UsrPart::end).max().unwrap_or(0)
    }
}

/// `0A39AAD1-2409-C7C5-6C0C-D6E1B7EE0A56` → `0a39aad1-2409-c7c5-6c0c-d6e1b7ee0a56`; `None`
/// unless it is 8-4-4-4-12 hex digits.
pub fn normalize_uuid(uuid: &str) -> Option<String> {
    let groups: Vec<&str> = uuid.split('-').collect();
    let shape_ok = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()));
    shape_ok.then(|| uuid.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sfdisk --json` of a real `make image` output (before the verity partitions were
    /// renamed `_hash` and `_sig`).
    const CAPTURED: &str = include_str!("../testdata/sfdisk-cell_0.1.0-53-ga5b0902f.json");

    fn renamed() -> String {
        CAPTURED
            .replace(
                "\"cell_0.1.0-53-ga5b0902f_verity_sig\"",
                "\"cell_0.1.0-53-ga5b0902f_sig\"",
            )
            .replace(
                "\"cell_0.1.0-53-ga5b0902f_verity\"",
                "\"cell_0.1.0-53-ga5b0902f_hash\"",
            )
    }

    #[test]
    fn parses_the_captured_table() {
        let table = PartitionTable::from_sfdisk_json(CAPTURED).expect("parses");
        assert_eq!(table.sector_size(), 512);
        assert_eq!(table.partitions.len(), 4);
        assert_eq!(table.partitions[0].name.as_deref(), Some("esp"));
        assert_eq!(table.partitions[1].start, 1_050_624);
        assert_eq!(table.partitions[3].size, 32);
    }

    #[test]
    fn finds_the_three_usr_partitions_and_their_byte_ranges() {
        let table = PartitionTable::from_sfdisk_json(&renamed()).expect("parses");
        let set = UsrSet::from_table(&table).expect("usr set");
        assert_eq!(set.version.as_str(), "0.1.0-53-ga5b0902f");
        let got: Vec<_> = set
            .parts
            .iter()
            .map(|p| (p.kind, p.uuid.as_str(), p.offset, p.length))
            .collect();
        assert_eq!(
            got,
            [
                (
                    PartKind::Usr,
                    "0a39aad1-2409-c7c5-6c0c-d6e1b7ee0a56",
                    1_050_624 * 512,
                    1 << 30
                ),
                (
                    PartKind::UsrVerity,
                    "42dd1162-587c-812e-5888-c720312e7f7f",
                    3_147_776 * 512,
                    64 << 20
                ),
                (
                    PartKind::UsrVeritySig,
                    "418513c3-7816-41fd-88a8-ed6f7e39696e",
                    3_278_848 * 512,
                    16 << 10
                ),
            ]
        );
        assert_eq!(set.end(), (3_278_848 + 32) * 512);
    }

    #[test]
    fn type_guids_match_in_any_case_and_the_sector_size_comes_from_the_json() {
        let json = renamed()
            .replace(
                "8484680C-9521-48C6-9C11-B0720656F69E",
                "8484680c-9521-48c6-9c11-b0720656f69e",
            )
            .replace("\"sectorsize\": 512", "\"sectorsize\": 4096");
        let set = UsrSet::from_table(&PartitionTable::from_sfdisk_json(&json).expect("parses"))
            .expect("usr set");
        assert_eq!(set.parts[0].offset, 1_050_624 * 4096);
        // Old sfdisk without "sectorsize": 512.
        let json = renamed().replace("\"sectorsize\": 512,", "");
        assert_eq!(
            PartitionTable::from_sfdisk_json(&json)
                .expect("parses")
                .sector_size(),
            512
        );
    }

    #[test]
    fn refuses_the_old_verity_names_saying_what_is_expected() {
        let table = PartitionTable::from_sfdisk_json(CAPTURED).expect("parses");
        let err = UsrSet::from_table(&table).expect_err("old names");
        assert!(
            matches!(
                err,
                GptError::Name {
                    kind: PartKind::UsrVerity,
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("\"cell_0.1.0-53-ga5b0902f_verity\"")
                && msg.contains("expected \"cell_0.1.0-53-ga5b0902f_hash\""),
            "{msg}"
        );
        let json = CAPTURED.replace(
            "\"cell_0.1.0-53-ga5b0902f_verity\"",
            "\"cell_0.1.0-53-ga5b0902f_hash\"",
        );
        let err = UsrSet::from_table(&PartitionTable::from_sfdisk_json(&json).expect("parses"))
            .expect_err("sig");
        assert!(
            err.to_string()
                .contains("expected \"cell_0.1.0-53-ga5b0902f_sig\""),
            "{err}"
        );
    }

    #[test]
    fn refuses_missing_duplicate_and_misnamed_partitions() {
        let no_sig = renamed().replace(
            "E7BB33FB-06CF-4E81-8273-E543B413E2E2",
            "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
        );
        let err = UsrSet::from_table(&PartitionTable::from_sfdisk_json(&no_sig).expect("parses"))
            .expect_err("missing");
        assert!(
            matches!(
                err,
                GptError::Missing {
                    kind: PartKind::UsrVeritySig,
                    ..
                }
            ),
            "{err:?}"
        );

        let two_usr = renamed().replace(
            "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
            "8484680C-9521-48C6-9C11-B0720656F69E",
        );
        let err = UsrSet::from_table(&PartitionTable::from_sfdisk_json(&two_usr).expect("parses"))
            .expect_err("two");
        assert!(
            matches!(
                err,
                GptError::Several {
                    kind: PartKind::Usr,
                    count: 2,
                    ..
                }
            ),
            "{err:?}"
        );

        let unversioned =
            renamed().replace("\"name\": \"cell_0.1.0-53-ga5b0902f\"", "\"name\": \"usr\"");
        let err =
            UsrSet::from_table(&PartitionTable::from_sfdisk_json(&unversioned).expect("parses"))
                .expect_err("usr name");
        assert!(matches!(err, GptError::UsrName { .. }), "{err:?}");

        let bad_version = renamed().replace(
            "\"name\": \"cell_0.1.0-53-ga5b0902f\"",
            "\"name\": \"cell_v1\"",
        );
        let err =
            UsrSet::from_table(&PartitionTable::from_sfdisk_json(&bad_version).expect("parses"))
                .expect_err("version");
        assert!(matches!(err, GptError::UsrVersion { .. }), "{err:?}");
    }

    #[test]
    fn refuses_other_tables() {
        let dos = CAPTURED.replace("\"label\": \"gpt\"", "\"label\": \"dos\"");
        assert!(matches!(
            PartitionTable::from_sfdisk_json(&dos),
            Err(GptError::NotGpt { .. })
        ));
        let odd = CAPTURED.replace("\"sectorsize\": 512", "\"sectorsize\": 520");
        assert!(matches!(
            PartitionTable::from_sfdisk_json(&odd),
            Err(GptError::SectorSize { size: 520 })
        ));
        assert!(matches!(
            PartitionTable::from_sfdisk_json("{}"),
            Err(GptError::Json(_))
        ));
    }

    #[test]
    fn uuids_are_normalized_or_refused() {
        assert_eq!(
            normalize_uuid("0A39AAD1-2409-C7C5-6C0C-D6E1B7EE0A56").as_deref(),
            Some("0a39aad1-2409-c7c5-6c0c-d6e1b7ee0a56")
        );
        for bad in [
            "",
            "0A39AAD1",
            "0A39AAD12409C7C56C0CD6E1B7EE0A56",
            "0A39AAD1-2409-C7C5-6C0C-D6E1B7EE0A5G",
            "../../etc",
        ] {
            assert_eq!(normalize_uuid(bad), None, "{bad}");
        }
    }
}
