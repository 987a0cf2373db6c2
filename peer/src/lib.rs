//! The servers' transport: what goes over the quorum and election ports between rzk servers.
//!
//! Owns: the frame (length, crc32c, kind, body), the handshake that opens every connection
//! and names the sender (and, with quorum SASL, authenticates it), and the encoding of every quorum message and forwarded client
//! request (`wire.rs`), and the connections themselves on one mio thread (`transport.rs`).
//! Never: decide anything the protocol decides (the quorum core does), trust a byte before
//! its checksum and length are checked, or allocate more than the frame limit for a peer
//! that lies about a length. A frame that fails any check ends that connection, nothing
//! else: the caller logs the error and closes it.

pub mod transport;
pub mod wire;

pub use transport::{Event, PeerAddrs, QuorumSasl, QuorumTls, Transport, TransportConfig};
pub use wire::{
    decode, decode_handshake, encode, encode_handshake, Channel, Frame, Handshake, Hello,
    SaslStatus, WireError, MAX_FRAME_BYTES, VERSION,
};
