//! WireGuard for the cell: the server device and its peers, reconciled to the desired
//! state with the smallest change (peers keyed by public key), client configurations and
//! their QR codes.
//!
//! wireguard-control is blocking; call these functions from a blocking thread.

mod client;
mod device;
mod qr;

pub use client::ClientConfig;
pub use device::{
    diff, reconcile, remove_device, status, DesiredDevice, DesiredPeer, LiveDevice, LivePeer,
    PeerDiff, Report, WgBackend, WgError,
};
pub use qr::{qr_png, qr_svg, QrError};

/// A new X25519 key pair: (private, public).
pub fn generate_keypair() -> ([u8; 32], [u8; 32]) {
    let pair = wireguard_control::KeyPair::generate();
    (pair.private.0, pair.public.0)
}

/// The public key of a private key.
pub fn public_key(private: &[u8; 32]) -> [u8; 32] {
    wireguard_control::Key(*private).get_public().0
}

/// Standard base64, as WireGuard writes keys.
pub fn key_base64(key: &[u8; 32]) -> String {
    wireguard_control::Key(*key).to_base64()
}
