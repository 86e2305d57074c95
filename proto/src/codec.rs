//! The versioned codec: message bodies are serde values in postcard's
//! compact encoding. The version lives in the RPC header, so a peer of
//! another version is refused before any body is decoded.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Portals: one service each, numbered as Lustre's.
pub mod portal {
    pub const OST: u16 = 6;
    pub const MDS: u16 = 12;
    pub const MGS: u16 = 26;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode {what}: {reason}")]
pub struct CodecError {
    pub what: &'static str,
    pub reason: String,
}

impl CodecError {
    pub fn errno(&self) -> fabric::Errno {
        fabric::Errno::EPROTO
    }
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("glint messages always serialize")
}

/// Decodes a value from the front of `bytes`, and hands back what follows
/// it (the raw data some messages carry after themselves).
pub fn decode_head<'a, T: DeserializeOwned>(
    what: &'static str,
    bytes: &'a [u8],
) -> Result<(T, &'a [u8]), CodecError> {
    postcard::take_from_bytes(bytes).map_err(|e| CodecError { what, reason: e.to_string() })
}

/// Decodes a whole body; trailing bytes are an error, as they mean the
/// peer and this node disagree about the message.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, CodecError> {
    let (v, rest) = decode_head(what, bytes)?;
    if !rest.is_empty() {
        return Err(CodecError { what, reason: format!("{} trailing bytes", rest.len()) });
    }
    Ok(v)
}
