//! Files on a USB stick: CARv1 archives (the IPFS "Content Addressable aRchive" format), so a file can
//! travel between nodes with no link, and `ipfs dag import` / Helia read the same file.
//!
//! ```text
//! car     = header section*
//! header  = varint(len) dag-cbor { "roots": [CID...], "version": 1 }
//! section = varint(len) cid block                       len = cid length + block length
//! ```
//! The header is written in its one canonical dag-cbor form (map keys by length, then bytes; CIDs as
//! tag 42 over a byte string of 0x00 and the binary CID) and read back only in that form. Reading is
//! total and streaming ([`Reader`]): it takes any bytes in any slices and gives sections or an error,
//! holding at most one section (a block is at most [`MAX_BLOCK`]); each block is checked against its
//! CID before it is handed out, so a damaged stick gives an error, never a wrong file.

use super::Cid;
use super::cid::CID_LEN;
use super::exchange::MAX_BLOCK;

/// Roots one archive may name.
pub const MAX_ROOTS: usize = 64;

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The header naming `roots`.
pub fn header(roots: &[Cid]) -> Vec<u8> {
    let mut cbor = vec![0xa2, 0x65];
    cbor.extend_from_slice(b"roots");
    cbor_length(&mut cbor, 0x80, roots.len() as u64);
    for root in roots {
        cbor.extend_from_slice(&[0xd8, 0x2a, 0x58, (CID_LEN + 1) as u8, 0x00]);
        cbor.extend_from_slice(&root.to_bytes());
    }
    cbor.push(0x67);
    cbor.extend_from_slice(b"version");
    cbor.push(0x01);
    let mut out = Vec::with_capacity(cbor.len() + 2);
    put_varint(&mut out, cbor.len() as u64);
    out.extend_from_slice(&cbor);
    out
}

/// A CBOR head of major type `major` (0x80: array) with the shortest argument.
fn cbor_length(out: &mut Vec<u8>, major: u8, n: u64) {
    match n {
        0..=23 => out.push(major | n as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, n as u8]),
        _ => {
            out.push(major | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
}

/// The section carrying `block` (which must be what `cid` names).
pub fn section(cid: &Cid, block: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(block.len() + CID_LEN + 5);
    put_varint(&mut out, (CID_LEN + block.len()) as u64);
    out.extend_from_slice(&cid.to_bytes());
    out.extend_from_slice(block);
    out
}

/// Why an archive was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CarError {
    /// Not the header this reads.
    #[error("not a CARv1 archive of files (the header is not {{roots, version: 1}})")]
    Header,
    /// A section that cannot be one.
    #[error("damaged archive: {0}")]
    Section(&'static str),
    /// A block that is not what its CID names.
    #[error("damaged archive: block {0} does not match its CID")]
    Mismatch(Cid),
    /// The archive stops inside a section.
    #[error("the archive is cut short")]
    Truncated,
}

/// Reads an archive given in slices of any size.
#[derive(Debug, Default)]
pub struct Reader {
    buffer: Vec<u8>,
    roots: Option<Vec<Cid>>,
    failed: bool,
}

impl Reader {
    /// A reader at the start of an archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// The roots the header names, once it was read.
    pub fn roots(&self) -> Option<&[Cid]> {
        self.roots.as_deref()
    }

    /// Takes the next bytes of the archive.
    pub fn write(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole section (its CID and checked block), `Ok(None)` if more bytes are needed, or
    /// the error that ends the reading.
    pub fn poll_section(&mut self) -> Result<Option<(Cid, Vec<u8>)>, CarError> {
        if self.failed {
            return Err(CarError::Section("reading stopped at an earlier error"));
        }
        let result = self.next();
        if result.is_err() {
            self.failed = true;
            self.buffer = Vec::new();
        }
        result
    }

    /// Call at the end of the archive: an error if it stopped inside the header or a section.
    pub fn finish(&self) -> Result<(), CarError> {
        match (&self.roots, self.buffer.is_empty()) {
            (Some(_), true) => Ok(()),
            _ => Err(CarError::Truncated),
        }
    }

    fn next(&mut self) -> Result<Option<(Cid, Vec<u8>)>, CarError> {
        let Some((len, used)) = varint(&self.buffer)? else {
            return Ok(None);
        };
        if self.roots.is_none() {
            let len = usize::try_from(len).map_err(|_| CarError::Header)?;
            if len > 8 + MAX_ROOTS * (CID_LEN + 5) + 16 {
                return Err(CarError::Header);
            }
            if self.buffer.len() < used + len {
                return Ok(None);
            }
            let roots = parse_header(&self.buffer[used..used + len])?;
            self.buffer.drain(..used + len);
            self.roots = Some(roots);
            return self.next();
        }
        let len = usize::try_from(len).map_err(|_| CarError::Section("length"))?;
        if !(CID_LEN..=CID_LEN + MAX_BLOCK).contains(&len) {
            return Err(CarError::Section(
                "a section's length is not a CID and a block",
            ));
        }
        if self.buffer.len() < used + len {
            return Ok(None);
        }
        let cid = Cid::from_bytes(&self.buffer[used..used + CID_LEN])
            .map_err(|_| CarError::Section("a block named by a CID this node does not take"))?;
        let block = self.buffer[used + CID_LEN..used + len].to_vec();
        self.buffer.drain(..used + len);
        if !cid.matches(&block) {
            return Err(CarError::Mismatch(cid));
        }
        Ok(Some((cid, block)))
    }
}

/// A varint at the start of `bytes`: `(value, bytes used)`, `None` if it is not all there yet.
fn varint(bytes: &[u8]) -> Result<Option<(u64, usize)>, CarError> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && *b == 0 {
                return Err(CarError::Section("a length not in its shortest form"));
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= 9 {
        return Err(CarError::Section("a length too long"));
    }
    Ok(None)
}

fn parse_header(cbor: &[u8]) -> Result<Vec<Cid>, CarError> {
    let rest = cbor
        .strip_prefix(&[0xa2, 0x65])
        .and_then(|r| r.strip_prefix(b"roots"))
        .ok_or(CarError::Header)?;
    let (count, mut rest) = match rest {
        [n @ 0x80..=0x97, rest @ ..] => (usize::from(n - 0x80), rest),
        [0x98, n, rest @ ..] if *n >= 24 => (usize::from(*n), rest),
        _ => return Err(CarError::Header),
    };
    if count == 0 || count > MAX_ROOTS {
        return Err(CarError::Header);
    }
    let mut roots = Vec::with_capacity(count);
    for _ in 0..count {
        let [0xd8, 0x2a, 0x58, 37, 0x00, tail @ ..] = rest else {
            return Err(CarError::Header);
        };
        let (cid, tail) = tail.split_at_checked(CID_LEN).ok_or(CarError::Header)?;
        roots.push(Cid::from_bytes(cid).map_err(|_| CarError::Header)?);
        rest = tail;
    }
    match rest {
        [0x67, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x01] => Ok(roots),
        _ => Err(CarError::Header),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::services::blobs::Codec;

    fn archive() -> (Vec<u8>, Vec<(Cid, Vec<u8>)>) {
        let blocks: Vec<(Cid, Vec<u8>)> = (0..3u8)
            .map(|i| {
                let data = vec![i; 1000 + usize::from(i)];
                (Cid::of(Codec::Raw, &data), data)
            })
            .collect();
        let mut car = header(&[blocks[0].0, blocks[2].0]);
        for (cid, data) in &blocks {
            car.extend(section(cid, data));
        }
        (car, blocks)
    }

    #[test]
    fn an_archive_reads_back_in_any_slices() {
        let (car, blocks) = archive();
        for step in [1, 7, 100, car.len()] {
            let mut reader = Reader::new();
            let mut got = Vec::new();
            for chunk in car.chunks(step) {
                reader.write(chunk);
                while let Some(s) = reader.poll_section().unwrap() {
                    got.push(s);
                }
            }
            reader.finish().unwrap();
            assert_eq!(got, blocks);
            assert_eq!(reader.roots().unwrap(), &[blocks[0].0, blocks[2].0]);
        }
    }

    #[test]
    fn the_header_is_the_canonical_dag_cbor_one() {
        // {"roots": [CID], "version": 1} as go-car writes it (dag-cbor, tag 42, 0x00 prefix).
        let cid = Cid::of(Codec::Raw, b"x");
        let h = header(&[cid]);
        assert_eq!(h[0] as usize, h.len() - 1);
        assert_eq!(&h[1..9], &[0xa2, 0x65, b'r', b'o', b'o', b't', b's', 0x81]);
        assert_eq!(&h[9..14], &[0xd8, 0x2a, 0x58, 0x25, 0x00]);
        assert_eq!(&h[h.len() - 9..], b"\x67version\x01");
    }

    #[test]
    fn more_roots_than_the_limit_are_refused() {
        let roots: Vec<Cid> = (0..=MAX_ROOTS as u32)
            .map(|i| Cid::of(Codec::Raw, &i.to_le_bytes()))
            .collect();
        let mut ok = Reader::new();
        ok.write(&header(&roots[..MAX_ROOTS]));
        assert_eq!(ok.poll_section(), Ok(None));
        assert_eq!(ok.roots().map(<[Cid]>::len), Some(MAX_ROOTS));
        let mut over = Reader::new();
        over.write(&header(&roots));
        assert_eq!(over.poll_section(), Err(CarError::Header));
    }

    #[test]
    fn damage_is_an_error_never_a_wrong_block() {
        let (car, _) = archive();
        let header_len = header(&[Cid::of(Codec::Raw, b""), Cid::of(Codec::Raw, b"")]).len();
        for i in 0..car.len() {
            let mut bad = car.clone();
            bad[i] ^= 0x01;
            let mut reader = Reader::new();
            reader.write(&bad);
            let mut result = Ok(());
            loop {
                match reader.poll_section() {
                    Ok(Some((cid, block))) => assert!(cid.matches(&block)),
                    Ok(None) => break,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            let refused = result.is_err() || reader.finish().is_err();
            // A flipped bit in a root CID's digest still reads (it names another file, which the
            // import then lacks); anywhere else it is refused.
            let in_root_digest = (14..header_len - 9).contains(&i);
            assert!(refused || in_root_digest, "byte {i}");
        }
        // A cut between sections reads as a shorter archive (the import then lacks blocks and
        // records no file); anywhere else it is an error.
        let (_, blocks) = archive();
        let mut boundaries = vec![header_len];
        for (cid, data) in &blocks {
            boundaries.push(boundaries.last().unwrap() + section(cid, data).len());
        }
        for cut in 0..car.len() {
            let mut reader = Reader::new();
            reader.write(&car[..cut]);
            while let Ok(Some(_)) = reader.poll_section() {}
            assert_eq!(
                reader.finish().is_err(),
                !boundaries.contains(&cut),
                "cut at {cut}"
            );
        }
    }
}
