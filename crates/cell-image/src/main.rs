//! `cell-image`: the image builder's own tool, which the Makefile calls.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use cell_image::ImageVersion;
use clap::{Parser, Subcommand};

mod build;
mod flash;
mod keys;
mod publish;
mod util;

/// Builds, signs, publishes and flashes Personal Internet Cell images.
#[derive(Debug, Parser)]
#[command(name = "cell-image", version = option_env!("CELL_VERSION").unwrap_or(env!("CARGO_PKG_VERSION")))]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Make the signing keys that are missing; never overwrites one
    ///
    /// verity.key and verity.crt sign /usr's verity root hash; gnupg/ holds the ed25519 key
    /// that signs update manifests; import-pubring.gpg is its public keyring, which the
    /// image carries as /usr/lib/systemd/import-pubring.gpg.
    Keys {
        /// Where the keys live (created 0700)
        #[arg(long, default_value = "build/keys")]
        dir: PathBuf,
    },
    /// Build the image with mkosi into an emptied output directory
    Build {
        /// The image version: [A-Za-z0-9.-], starting with a digit, at most 26 characters
        #[arg(long)]
        version: ImageVersion,
        #[arg(long, value_enum)]
        format: build::Format,
        /// Emptied, then filled by mkosi
        #[arg(long)]
        output_dir: PathBuf,
        /// Passed to mkosi as --extra-tree=SRC[:DST]
        #[arg(long, value_name = "SRC[:DST]")]
        extra_tree: Vec<String>,
    },
    /// Publish a built disk image as a signed update
    ///
    /// Its usr, usr-verity and usr-verity-sig partitions xz-compressed, its UKI, and
    /// SHA256SUMS over every file in the directory (all versions) with a detached GnuPG
    /// signature, SHA256SUMS.gpg: what systemd-sysupdate fetches.
    Publish {
        /// The disk image mkosi built (cell_<version>.raw)
        #[arg(long)]
        image: PathBuf,
        /// The keys directory `cell-image keys` made
        #[arg(long, default_value = "build/keys")]
        keys: PathBuf,
        /// The update directory (created; may hold other versions)
        #[arg(long)]
        out: PathBuf,
        /// The unified kernel image [default: the image's path with .raw replaced by .efi]
        #[arg(long)]
        uki: Option<PathBuf>,
        /// Publish again a version the directory already holds
        #[arg(long)]
        replace: bool,
    },
    /// Write a disk image to a whole disk and verify it by reading it back
    ///
    /// Refuses a disk that is mounted, swap, held (device-mapper, LVM, RAID) or under /,
    /// or smaller than the image; asks for the disk's name unless --yes.
    Flash {
        /// The disk image
        #[arg(long)]
        image: PathBuf,
        /// The whole disk to overwrite, e.g. /dev/sdb
        #[arg(long)]
        device: PathBuf,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cell-image: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Keys { dir } => keys::run(&dir),
        Cmd::Build {
            version,
            format,
            output_dir,
            extra_tree,
        } => build::run(&version, format, &output_dir, &extra_tree),
        Cmd::Publish {
            image,
            keys,
            out,
            uki,
            replace,
        } => publish::run(&publish::Args {
            image,
            keys,
            out,
            uki,
            replace,
        }),
        Cmd::Flash { image, device, yes } => flash::run(&flash::Args { image, device, yes }),
    }
}
