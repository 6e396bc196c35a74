//! Schema migrations: each step turns a document of schema N into schema N + 1, on the
//! untyped TOML tree, so that old documents need no old Rust types.

use std::path::Path;

use crate::StoreError;

/// The schema this release writes.
pub const SCHEMA: u32 = 1;

/// One step: a document of schema N in, schema N + 1 out (`schema` is updated by the caller).
pub type Migration = fn(toml::Table) -> Result<toml::Table, String>;

/// `CHAIN[i]` migrates schema `i + 1` to `i + 2`. Schema 1 is the first; the chain grows
/// with every release that changes the document's shape.
pub(crate) const CHAIN: &[Migration] = &[];

const _: () = assert!(CHAIN.len() + 1 == SCHEMA as usize);

/// Brings `table` to the schema `chain` ends at.
pub(crate) fn to_current(
    mut table: toml::Table,
    chain: &[Migration],
    path: &Path,
) -> Result<toml::Table, StoreError> {
    let target = chain.len() as u32 + 1;
    let found = match table.get("schema").and_then(toml::Value::as_integer) {
        Some(n) if n >= 1 && n <= i64::from(u32::MAX) => n as u32,
        _ => {
            return Err(StoreError::Parse {
                path: path.to_owned(),
                message: "missing or invalid `schema`".to_owned(),
            })
        }
    };
    if found > target {
        return Err(StoreError::FutureSchema {
            path: path.to_owned(),
            found,
            supported: target,
        });
    }
    for from in found..target {
        let step = chain[(from - 1) as usize];
        table = step(table).map_err(|message| StoreError::Migrate {
            path: path.to_owned(),
            from,
            message,
        })?;
        table.insert(
            "schema".to_owned(),
            toml::Value::Integer(i64::from(from) + 1),
        );
        tracing::info!(path = %path.display(), from, to = from + 1, "settings migrated");
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rename_name_to_cell_name(mut table: toml::Table) -> Result<toml::Table, String> {
        let identity = table
            .get_mut("settings")
            .and_then(|s| s.get_mut("identity"))
            .and_then(toml::Value::as_table_mut)
            .ok_or("no [settings.identity]")?;
        let name = identity.remove("name").ok_or("no identity.name")?;
        identity.insert("cell_name".to_owned(), name);
        Ok(table)
    }

    fn add_services(mut table: toml::Table) -> Result<toml::Table, String> {
        let settings = table
            .get_mut("settings")
            .and_then(toml::Value::as_table_mut)
            .ok_or("no [settings]")?;
        settings
            .entry("services")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        Ok(table)
    }

    const OLD: &str = r#"
        schema = 1
        generation = 3
        [settings.identity]
        name = "home"
        timezone = "UTC"
        domain = { mode = "internal" }
    "#;

    #[test]
    fn runs_every_step_from_the_found_schema() {
        let chain: &[Migration] = &[rename_name_to_cell_name, add_services];
        let table: toml::Table = toml::from_str(OLD).unwrap();
        let migrated = to_current(table, chain, Path::new("s.toml")).unwrap();
        assert_eq!(migrated["schema"].as_integer(), Some(3));
        assert_eq!(
            migrated["settings"]["identity"]["cell_name"].as_str(),
            Some("home")
        );
        assert!(migrated["settings"]["services"].is_table());
    }

    #[test]
    fn a_failing_step_names_its_schema() {
        let chain: &[Migration] = &[add_services, rename_name_to_cell_name];
        let mut table: toml::Table = toml::from_str(OLD).unwrap();
        table.insert("schema".into(), toml::Value::Integer(2));
        table["settings"]["identity"]
            .as_table_mut()
            .unwrap()
            .remove("name");
        let err = to_current(table, chain, Path::new("s.toml")).unwrap_err();
        assert!(matches!(err, StoreError::Migrate { from: 2, .. }), "{err}");
    }

    #[test]
    fn schema_zero_or_missing_is_invalid() {
        for text in ["generation = 1", "schema = 0", "schema = \"1\""] {
            let table: toml::Table = toml::from_str(text).unwrap();
            assert!(
                to_current(table, &[], Path::new("s.toml")).is_err(),
                "{text}"
            );
        }
    }
}
