//! The ZooKeeper client wire protocol: jute records, opcodes, error codes and four-letter words.
//!
//! Owns: turning frame bytes into typed requests and typed replies into frame bytes, for both
//! the server side (decode requests, encode replies) and the client side (`rzk bench`, tests).
//! Layouts follow `zookeeper.jute` of ZooKeeper 3.9 field by field.
//!
//! Never: touch sockets, clocks or the tree; panic on any input. Every decoder returns
//! [`DecodeError`] for bytes it cannot make sense of, and the fuzz targets in `fuzz/` hold it
//! to that.

mod codec;
mod consts;
mod prng;
mod records;
mod request;
mod response;
mod txn;
mod zxid;

pub use codec::{DecodeError, Reader, Writer};
pub use consts::*;
pub use prng::Prng;
pub use records::*;
pub use request::*;
pub use response::*;
pub use txn::*;
pub use zxid::Zxid;

/// ZooKeeper's default `jute.maxbuffer`: the largest frame a server accepts (1 MiB - 1).
pub const JUTE_MAXBUFFER_DEFAULT_BYTES: usize = 0xfffff;

/// Length of the big-endian frame length prefix.
pub const FRAME_HEADER_BYTES: usize = 4;

/// Returns the four-letter word if the first four bytes of a fresh connection are one.
/// ZooKeeper checks this before decoding a frame length: the word arrives in its place.
pub fn four_letter_word(first4: [u8; 4]) -> Option<FourLetterWord> {
    FourLetterWord::from_bytes(first4)
}
