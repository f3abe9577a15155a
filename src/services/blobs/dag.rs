//! UnixFS file nodes in dag-pb, the inner nodes of a file's DAG: links to the children (their
//! CIDs and cumulative sizes) and, in the UnixFS `Data`, the file size and the bytes under each
//! child. Encoded as IPFS tools encode them (links before data, empty link names written), so
//! the same file gives the same CID; decoded totally, with the limits below.

use super::cid::{CID_LEN, Cid};

/// Most links a node may have (the profile's DAG width; larger nodes are refused).
pub const MAX_LINKS: usize = 1024;
/// Largest node accepted: 1 024 links of at most 60 bytes each, and the sizes.
pub const MAX_NODE_BYTES: usize = MAX_LINKS * 80;
/// UnixFS `Data.Type` of a file.
const FILE: u64 = 2;

/// A link to a child block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// The child.
    pub cid: Cid,
    /// Its cumulative size: its block and every block under it.
    pub tsize: u64,
}

/// A UnixFS file node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileNode {
    /// The children, in file order.
    pub links: Vec<Link>,
    /// Bytes of the file under each child.
    pub blocksizes: Vec<u64>,
}

/// Why bytes are not a file node this node reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DagError {
    /// Not well-formed protobuf of the dag-pb / UnixFS shape.
    #[error("malformed dag-pb node: {0}")]
    Malformed(&'static str),
    /// Over [`MAX_LINKS`] or [`MAX_NODE_BYTES`].
    #[error("dag-pb node over the limits")]
    TooLarge,
    /// Not a UnixFS file node (a directory, a symlink...).
    #[error("not a UnixFS file node")]
    NotAFile,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A protobuf reader over a slice: total, each read bounded by what is left.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, DagError> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = self
                .0
                .split_first()
                .ok_or(DagError::Malformed("truncated"))?;
            self.0 = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DagError::Malformed("varint too long"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DagError> {
        let len = usize::try_from(self.varint()?).map_err(|_| DagError::TooLarge)?;
        if len > self.0.len() {
            return Err(DagError::Malformed("truncated"));
        }
        let (out, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(out)
    }

    /// The next field's number and wire type.
    fn key(&mut self) -> Result<(u64, u8), DagError> {
        let key = self.varint()?;
        Ok((key >> 3, (key & 7) as u8))
    }

    fn skip(&mut self, wire: u8) -> Result<(), DagError> {
        match wire {
            0 => self.varint().map(drop),
            2 => self.bytes().map(drop),
            _ => Err(DagError::Malformed("unexpected wire type")),
        }
    }
}

impl FileNode {
    /// Bytes of the file under this node.
    pub fn filesize(&self) -> u64 {
        self.blocksizes.iter().sum()
    }

    /// The dag-pb encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.links.len() * 50 + 16);
        for link in &self.links {
            let mut pb = Vec::with_capacity(CID_LEN + 12);
            put_bytes(&mut pb, 0x0a, &link.cid.to_bytes());
            put_bytes(&mut pb, 0x12, b"");
            pb.push(0x18);
            put_varint(&mut pb, link.tsize);
            put_bytes(&mut out, 0x12, &pb);
        }
        let mut data = vec![0x08];
        put_varint(&mut data, FILE);
        data.push(0x18);
        put_varint(&mut data, self.filesize());
        for size in &self.blocksizes {
            data.push(0x20);
            put_varint(&mut data, *size);
        }
        put_bytes(&mut out, 0x0a, &data);
        out
    }

    /// Reads a dag-pb file node (total: any bytes give a node or an error).
    pub fn decode(bytes: &[u8]) -> Result<Self, DagError> {
        if bytes.len() > MAX_NODE_BYTES {
            return Err(DagError::TooLarge);
        }
        let mut node = Reader(bytes);
        let mut links = Vec::new();
        let mut data = None;
        while !node.0.is_empty() {
            match node.key()? {
                (2, 2) if data.is_none() => {
                    if links.len() == MAX_LINKS {
                        return Err(DagError::TooLarge);
                    }
                    links.push(read_link(node.bytes()?)?);
                }
                (1, 2) if data.is_none() => data = Some(node.bytes()?),
                _ => return Err(DagError::Malformed("unexpected field")),
            }
        }
        let (filesize, blocksizes) = read_file_data(data.ok_or(DagError::NotAFile)?)?;
        if blocksizes.len() != links.len() || blocksizes.iter().sum::<u64>() != filesize {
            return Err(DagError::Malformed("block sizes do not match the links"));
        }
        Ok(Self { links, blocksizes })
    }
}

fn read_link(bytes: &[u8]) -> Result<Link, DagError> {
    let mut r = Reader(bytes);
    let mut cid = None;
    let mut tsize = None;
    while !r.0.is_empty() {
        match r.key()? {
            (1, 2) if cid.is_none() => {
                cid =
                    Some(Cid::from_bytes(r.bytes()?).map_err(|_| DagError::Malformed("link CID"))?);
            }
            (2, 2) => drop(r.bytes()?),
            (3, 0) => tsize = Some(r.varint()?),
            _ => return Err(DagError::Malformed("unexpected link field")),
        }
    }
    Ok(Link {
        cid: cid.ok_or(DagError::Malformed("link without a CID"))?,
        tsize: tsize.unwrap_or(0),
    })
}

fn read_file_data(bytes: &[u8]) -> Result<(u64, Vec<u64>), DagError> {
    let mut r = Reader(bytes);
    let (mut kind, mut filesize, mut sizes) = (None, None, Vec::new());
    while !r.0.is_empty() {
        match r.key()? {
            (1, 0) => kind = Some(r.varint()?),
            (2, 2) => {
                if !r.bytes()?.is_empty() {
                    return Err(DagError::NotAFile);
                }
            }
            (3, 0) => filesize = Some(r.varint()?),
            (4, 0) if sizes.len() < MAX_LINKS => sizes.push(r.varint()?),
            (4, _) => return Err(DagError::TooLarge),
            // Other UnixFS fields (mode, mtime...) do not change the bytes.
            (_, wire) => r.skip(wire)?,
        }
    }
    if kind != Some(FILE) {
        return Err(DagError::NotAFile);
    }
    Ok((filesize.unwrap_or(0), sizes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::blobs::cid::Codec;

    #[test]
    fn a_node_reads_back_and_bad_ones_are_refused() {
        let node = FileNode {
            links: (0..3u8)
                .map(|i| Link {
                    cid: Cid::of(Codec::Raw, &[i]),
                    tsize: 1 << 20,
                })
                .collect(),
            blocksizes: vec![1 << 20; 3],
        };
        let bytes = node.encode();
        assert_eq!(FileNode::decode(&bytes), Ok(node.clone()));
        assert_eq!(node.filesize(), 3 << 20);
        for end in 0..bytes.len() {
            assert!(
                FileNode::decode(&bytes[..end]).is_err(),
                "truncated at {end}"
            );
        }
        // A directory (Type 1) is not a file.
        let dir = [0x0a, 0x02, 0x08, 0x01];
        assert_eq!(FileNode::decode(&dir), Err(DagError::NotAFile));
        assert!(FileNode::decode(&[0xff; 20]).is_err());
    }
}
