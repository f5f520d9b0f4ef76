//! The original bytes of every stored message (`message_raw`), kept
//! losslessly and compressed.
//!
//! Why compress: the raw message is most of what the single writer thread
//! copies (into SQLite's pages, the WAL, its checksums and, at checkpoint,
//! the database file). Measured on the benchmark mailbox, the raw bytes
//! were half of the writer's CPU per message; zstd at level 1 shrinks mail
//! about five-fold and runs on the analysis threads, which work in
//! parallel, so the writer only copies the small result (BENCHMARKS.md,
//! "IMAP ingest"). The database shrinks with it.
//!
//! Encoding is pure and done before the store is reached
//! ([`EncodedRaw::encode`]); decoding happens only when somebody asks for
//! the original ([`read`], `postdesk show --raw`). Rows written before
//! compression existed say `identity` and are returned as they are.

use rusqlite::{Connection, OptionalExtension};

use super::StoreError;

/// zstd level 1: the fastest level with a ratio close to the best on mail
/// (level 3 compressed the benchmark mailbox by 5.42 instead of 5.40 at a
/// quarter more CPU; the negative "fast" levels lost a quarter of the
/// ratio for 15% less CPU).
const ZSTD_LEVEL: i32 = 1;

/// Below this size compression saves too little to be worth a frame.
const MIN_COMPRESS_BYTES: usize = 256;

/// How the bytes in `message_raw.raw` are encoded (`message_raw.encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawEncoding {
    /// The bytes as received.
    Identity,
    /// One zstd frame holding the bytes as received.
    Zstd,
}

impl RawEncoding {
    /// The value stored in `message_raw.encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            RawEncoding::Identity => "identity",
            RawEncoding::Zstd => "zstd",
        }
    }

    fn from_column(s: &str) -> Result<RawEncoding, StoreError> {
        match s {
            "identity" => Ok(RawEncoding::Identity),
            "zstd" => Ok(RawEncoding::Zstd),
            other => Err(StoreError::Corrupt(format!(
                "message_raw.encoding is {other:?}; this postdesk knows identity and zstd (was the database written by a newer version?)"
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
    /// Compresses `raw` for storage. Pure and infallible: should zstd fail
    /// (it does not on any input, but it is C code allocating memory) or
    /// not shrink the bytes, they are stored as they are.
    pub fn encode(raw: &[u8]) -> EncodedRaw {
        if raw.len() >= MIN_COMPRESS_BYTES
            && let Some(packed) = compress(raw)
            && packed.len() < raw.len()
        {
            return EncodedRaw {
                encoding: RawEncoding::Zstd,
                bytes: packed,
            };
        }
        EncodedRaw {
            encoding: RawEncoding::Identity,
            bytes: raw.to_vec(),
        }
    }

    /// The original bytes.
    pub fn decode(&self) -> Result<Vec<u8>, StoreError> {
        decode(self.encoding, &self.bytes)
    }
}

thread_local! {
    /// One compression context per thread (in practice, per analysis
    /// thread), reused: a fresh context per message allocates and clears
    /// its tables every time, which measured 15-25% slower.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// `raw` as one zstd frame, or `None` if zstd failed.
fn compress(raw: &[u8]) -> Option<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        if slot.is_none() {
            *slot = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        slot.as_mut()?.compress(raw).ok()
    })
}

/// Turns stored bytes back into the message as received.
fn decode(encoding: RawEncoding, bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    match encoding {
        RawEncoding::Identity => Ok(bytes.to_vec()),
        RawEncoding::Zstd => zstd::stream::decode_all(bytes)
            .map_err(|e| StoreError::Corrupt(format!("a stored message does not decompress: {e}"))),
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
        let enc = EncodedRaw::encode(&raw);
        assert_eq!(enc.encoding, RawEncoding::Zstd);
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
        let enc = EncodedRaw::encode(&tiny);
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
        let enc = EncodedRaw::encode(&noise);
        assert_eq!(enc.encoding, RawEncoding::Identity);
        assert_eq!(enc.decode().unwrap(), noise);
    }

    #[test]
    fn corrupt_frames_and_unknown_encodings_are_errors_not_panics() {
        let mut enc = EncodedRaw::encode(&mail(50));
        enc.bytes.truncate(enc.bytes.len() / 2);
        assert!(matches!(enc.decode(), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            RawEncoding::from_column("brotli"),
            Err(StoreError::Corrupt(_))
        ));
    }
}
