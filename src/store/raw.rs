//! The original bytes of every stored message (`message_raw`), kept
//! losslessly and compressed.
//!
//! Why compress: the raw message is most of what the single writer thread
//! copies (into SQLite's pages, the WAL, its checksums and, at checkpoint,
//! the database file). Measured on the benchmark mailbox, the raw bytes
//! were half of the writer's CPU per message. LZ4 shrinks that mail 3.6-fold
//! and runs on the analysis threads, which work in parallel, so the writer
//! only copies the small result (BENCHMARKS.md, "IMAP ingest"). The
//! database shrinks with it.
//!
//! Why LZ4 and not zstd: zstd level 1 compressed better (5.4-fold) at the
//! same speed, but each thread's reusable zstd context stays resident (about
//! 1.3 MB each), against a memory target of 30 MB for the whole daemon. The
//! LZ4 encoder needs no context. The format is the standard LZ4 frame, so
//! `lz4 -d` reads a row exported by hand.
//!
//! Encoding is pure and done before the store is reached
//! ([`EncodedRaw::encode`]); decoding happens only when somebody asks for
//! the original ([`read`], `postdesk show --raw`). Rows written before
//! compression existed say `identity` and are returned as they are.

use std::io::{Read as _, Write as _};

use rusqlite::{Connection, OptionalExtension};

use super::StoreError;

/// Below this size compression saves too little to be worth a frame.
const MIN_COMPRESS_BYTES: usize = 256;

/// How the bytes in `message_raw.raw` are encoded (`message_raw.encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawEncoding {
    /// The bytes as received.
    Identity,
    /// One LZ4 frame holding the bytes as received.
    Lz4,
}

impl RawEncoding {
    /// The value stored in `message_raw.encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            RawEncoding::Identity => "identity",
            RawEncoding::Lz4 => "lz4",
        }
    }

    fn from_column(s: &str) -> Result<RawEncoding, StoreError> {
        match s {
            "identity" => Ok(RawEncoding::Identity),
            "lz4" => Ok(RawEncoding::Lz4),
            other => Err(StoreError::Corrupt(format!(
                "message_raw.encoding is {other:?}; this postdesk knows identity and lz4 (was the database written by a newer version?)"
            ))),
        }
    }
}

/// A message's original bytes as they are to be stored.
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedRaw {
    pub encoding: RawEncoding,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for EncodedRaw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedRaw")
            .field("encoding", &self.encoding)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl EncodedRaw {
    /// Compresses `raw` for storage, taking it: when compression does
    /// not pay (tiny or incompressible input), the bytes are kept as they
    /// are without a copy. Pure and infallible: should the encoder fail
    /// (it writes to memory, so it does not), the bytes are kept as well.
    pub fn encode(raw: Vec<u8>) -> EncodedRaw {
        if raw.len() >= MIN_COMPRESS_BYTES
            && let Some(packed) = compress(&raw)
            && packed.len() < raw.len()
        {
            return EncodedRaw {
                encoding: RawEncoding::Lz4,
                bytes: packed,
            };
        }
        EncodedRaw {
            encoding: RawEncoding::Identity,
            bytes: raw,
        }
    }

    /// The original bytes.
    pub fn decode(&self) -> Result<Vec<u8>, StoreError> {
        decode(self.encoding, &self.bytes)
    }
}

/// `raw` as one LZ4 frame, or `None` if the encoder failed.
fn compress(raw: &[u8]) -> Option<Vec<u8>> {
    // The frame's blocks hold at most 64 KiB (the format's default), so
    // the encoder's buffers stay small whatever the message size.
    let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(raw.len() / 2));
    encoder.write_all(raw).ok()?;
    let mut packed = encoder.finish().ok()?;
    // Held until the batch commits: give back what the guess over-reserved.
    packed.shrink_to_fit();
    Some(packed)
}

/// Turns stored bytes back into the message as received.
fn decode(encoding: RawEncoding, bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    match encoding {
        RawEncoding::Identity => Ok(bytes.to_vec()),
        RawEncoding::Lz4 => {
            let mut out = Vec::with_capacity(bytes.len().saturating_mul(3));
            lz4_flex::frame::FrameDecoder::new(bytes)
                .read_to_end(&mut out)
                .map_err(|e| {
                    StoreError::Corrupt(format!("a stored message does not decompress: {e}"))
                })?;
            Ok(out)
        }
    }
}

/// Writes the original bytes of stored message `message` (a `messages.id`).
pub fn insert(conn: &Connection, message: i64, raw: &EncodedRaw) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO message_raw (message, raw, encoding) VALUES (?1, ?2, ?3)")?
        .execute(rusqlite::params![message, raw.bytes, raw.encoding.as_str()])?;
    Ok(())
}

/// The original bytes of stored message `message` (a `messages.id`), or
/// `None` when there is no such message.
pub fn read(conn: &Connection, message: i64) -> Result<Option<Vec<u8>>, StoreError> {
    let row = conn
        .prepare_cached("SELECT encoding, raw FROM message_raw WHERE message = ?1")?
        .query_row([message], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .optional()?;
    match row {
        None => Ok(None),
        Some((encoding, bytes)) => decode(RawEncoding::from_column(&encoding)?, &bytes).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(body_lines: usize) -> Vec<u8> {
        let mut m = b"From: a@example.org\r\nSubject: printer\r\n\r\n".to_vec();
        for i in 0..body_lines {
            m.extend_from_slice(
                format!("line {i}: the printer on floor 3 jams again\r\n").as_bytes(),
            );
        }
        m
    }

    #[test]
    fn mail_is_compressed_and_comes_back_byte_for_byte() {
        let raw = mail(200);
        let enc = EncodedRaw::encode(raw.clone());
        assert_eq!(enc.encoding, RawEncoding::Lz4);
        assert!(
            enc.bytes.len() * 4 < raw.len(),
            "{} of {}",
            enc.bytes.len(),
            raw.len()
        );
        assert_eq!(enc.decode().unwrap(), raw);
    }

    #[test]
    fn tiny_and_incompressible_input_is_kept_as_is() {
        let tiny = b"Subject: x\r\n\r\ny".to_vec();
        let enc = EncodedRaw::encode(tiny.clone());
        assert_eq!(enc.encoding, RawEncoding::Identity);
        assert_eq!(enc.bytes, tiny);
        // pseudo-random bytes do not shrink
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let enc = EncodedRaw::encode(noise.clone());
        assert_eq!(enc.encoding, RawEncoding::Identity);
        assert_eq!(enc.decode().unwrap(), noise);
    }

    #[test]
    fn corrupt_frames_and_unknown_encodings_are_errors_not_panics() {
        let mut enc = EncodedRaw::encode(mail(50));
        enc.bytes.truncate(enc.bytes.len() / 2);
        assert!(matches!(enc.decode(), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            RawEncoding::from_column("brotli"),
            Err(StoreError::Corrupt(_))
        ));
    }
}
