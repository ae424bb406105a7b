//! Idempotency keys of the older part of the log, without keeping them in memory.
//!
//! The log is cut into *segments* of [`SEGMENT`] order numbers. The keys of the newest,
//! unfilled segment live in a map in [`crate::log::Log`]; when a segment fills, its keys are
//! *sealed*: written to `orders.keys/<start>.seg` as a sorted array of (key hash, order number)
//! pairs, and dropped from memory. What stays in memory per sealed segment is a Bloom filter
//! (14 bits a key, ~0.1 % false positives) and every [`FENCE`]th hash, so a key that is not in a
//! segment costs no disk read at all (the common case: every new order's key is new), and one
//! that may be costs one read of at most a few KiB.
//!
//! A segment file also carries the log's index at the segment's end (a [`Boundary`]: the
//! record count, file length, the sparse offsets and epoch records since the previous
//! segment), so opening a long log reads the segment files and scans only the records after the
//! last one, instead of the whole log.
//!
//! The files are derived: the log stays the truth. The hash is a fixed function
//! ([`key_hash`], FNV-1a with a 64-bit finaliser: stable across builds and platforms), a hit is
//! only a *candidate* (the caller verifies it against the record), a file is used at open only
//! if its checksum holds and the log's line at its boundary is byte-for-byte the one it was
//! sealed after (otherwise it and every later one are removed and the log is scanned from the
//! last good boundary, resealing as it goes). A file that went bad after the open is caught by
//! its header check on the next read; the caller then falls back to the log.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Order numbers per sealed segment.
pub const SEGMENT: u64 = 16_384;
/// Every `FENCE`th hash of a segment is kept in memory (a lookup reads one block of pairs).
pub const FENCE: usize = 64;
/// The directory (inside the replica's data directory) that holds the segment files.
pub const DIR: &str = "orders.keys";
const MAGIC: &[u8; 8] = b"TSKEYS02";
/// Magic, first order number, pair count, checksum of everything after the header.
const HEADER: usize = 32;
const PAIR: usize = 16;
const BITS_PER_KEY: usize = 14;
const PROBES: u64 = 9;

/// The hash a key is filed under: FNV-1a 64 over its UTF-8 bytes, then the splitmix64
/// finaliser so that every bit depends on every byte (the Bloom filter uses both halves).
pub fn key_hash(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A 64-bit hash of bytes (the segment files' checksum, the boundary line's fingerprint).
pub fn bytes_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(0x0100_0000_01b3).rotate_left(29);
    }
    h ^ bytes.len() as u64
}

/// The log's index right after the order record that filled a segment: what an open needs to
/// go on from there without reading the records before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boundary {
    /// Records up to and including the one that filled the segment.
    pub count: u64,
    pub last_epoch: u64,
    /// Offset of that record's line, and the file length just after it.
    pub line_at: u64,
    pub len: u64,
    /// [`bytes_hash`] of that line (with its `\n`).
    pub line_hash: u64,
    /// The log's sparse offsets and epoch-record indexes added since the previous boundary.
    pub sparse: Vec<u64>,
    pub epochs: Vec<u64>,
}

impl Boundary {
    fn write(&self, out: &mut Vec<u8>) {
        let head = [self.count, self.last_epoch, self.line_at, self.len, self.line_hash, self.sparse.len() as u64, self.epochs.len() as u64];
        for v in head.iter().chain(&self.sparse).chain(&self.epochs) {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn read(bytes: &[u8]) -> Option<Boundary> {
        let mut words = bytes.chunks_exact(8).map(|c| <[u8; 8]>::try_from(c).map(u64::from_le_bytes).unwrap_or(0));
        let mut next = || words.next();
        let (count, last_epoch, line_at, len, line_hash) = (next()?, next()?, next()?, next()?, next()?);
        let (ns, ne) = (usize::try_from(next()?).ok()?, usize::try_from(next()?).ok()?);
        if bytes.len() != (7 + ns.checked_add(ne)?) * 8 {
            return None;
        }
        let sparse = (0..ns).map(|_| next()).collect::<Option<Vec<_>>>()?;
        let epochs = (0..ne).map(|_| next()).collect::<Option<Vec<_>>>()?;
        Some(Boundary { count, last_epoch, line_at, len, line_hash, sparse, epochs })
    }
}

/// The keys of the newest, unsealed segment, by hash: 16 bytes and a little a key instead of the
/// key itself (a hit is a candidate, verified against the record like a sealed one). A second
/// order under a hash already present (the same key logged twice, or a true 64-bit collision)
/// goes to a side list, so no order is ever hidden by another.
#[derive(Debug, Default)]
pub struct Recent {
    first: HashMap<u64, u64>,
    more: Vec<(u64, u64)>,
}

impl Recent {
    pub fn insert(&mut self, hash: u64, number: u64) {
        if let Some(&n) = self.first.get(&hash) {
            if n != number {
                self.more.push((hash, number));
            }
        } else {
            self.first.insert(hash, number);
        }
    }

    /// Order numbers that may carry a key with this hash.
    pub fn candidates(&self, hash: u64) -> impl Iterator<Item = u64> + '_ {
        self.first.get(&hash).copied().into_iter().chain(self.more.iter().filter(move |(h, _)| *h == hash).map(|(_, n)| *n))
    }

    /// Forget order `number` (cut from the log).
    pub fn remove(&mut self, hash: u64, number: u64) {
        self.more.retain(|&(h, n)| (h, n) != (hash, number));
        if self.first.get(&hash) == Some(&number) {
            self.first.remove(&hash);
            if let Some(i) = self.more.iter().position(|(h, _)| *h == hash) {
                let (h, n) = self.more.swap_remove(i);
                self.first.insert(h, n);
            }
        }
    }

    /// Take out every pair with a number below `to` (the segment being sealed).
    pub fn take_below(&mut self, to: u64) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = self.first.iter().filter(|(_, &n)| n < to).map(|(&h, &n)| (h, n)).collect();
        out.extend(self.more.iter().filter(|(_, n)| *n < to));
        self.first.retain(|_, n| *n >= to);
        self.more.retain(|(_, n)| *n >= to);
        out
    }

    pub fn clear(&mut self) {
        self.first.clear();
        self.more.clear();
    }
}

/// A Bloom filter over one segment's key hashes.
#[derive(Debug)]
struct Bloom {
    words: Vec<u64>,
}

impl Bloom {
    fn new(keys: usize) -> Bloom {
        Bloom { words: vec![0; (keys * BITS_PER_KEY).div_ceil(64).max(1)] }
    }

    /// The filter's bits for `hash`: [`PROBES`] positions from one 64-bit hash by double
    /// hashing, each mapped onto the filter by a multiply and a shift (Lemire's reduction)
    /// rather than a division. Opening a 1 M-order log rebuilds ~60 filters, 9 M positions.
    /// Filters live only in memory (rebuilt from the segment files' pairs at open), so this
    /// function may change between builds.
    fn bits(words: usize, hash: u64) -> impl Iterator<Item = usize> {
        let m = words as u128 * 64;
        let step = hash.rotate_left(32) | 1;
        (0..PROBES).map(move |i| ((u128::from(hash.wrapping_add(i.wrapping_mul(step))) * m) >> 64) as usize)
    }

    fn insert(&mut self, hash: u64) {
        for bit in Self::bits(self.words.len(), hash) {
            self.words[bit / 64] |= 1 << (bit % 64);
        }
    }

    fn may_contain(&self, hash: u64) -> bool {
        Self::bits(self.words.len(), hash).all(|bit| self.words[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

/// One sealed segment as memory keeps it.
#[derive(Debug)]
struct Segment {
    start: u64,
    count: usize,
    /// The hash of pair `i * FENCE`, for each block of pairs.
    fences: Vec<u64>,
    bloom: Bloom,
}

/// The sealed segments, oldest first: segment `i` holds the keys of order numbers
/// `i * SEGMENT .. (i + 1) * SEGMENT`.
#[derive(Debug)]
pub struct Sealed {
    dir: PathBuf,
    segments: Vec<Segment>,
}

fn file_name(start: u64) -> String {
    format!("{start:020}.seg")
}

fn bad(path: &Path, what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what}", path.display()))
}

impl Sealed {
    /// No segments yet; files go to `data_dir/orders.keys/`.
    pub fn new(data_dir: &Path) -> Sealed {
        Sealed { dir: data_dir.join(DIR), segments: Vec::new() }
    }

    /// Order numbers below this have their keys sealed; the log keeps the rest in memory.
    pub fn upto(&self) -> u64 {
        self.segments.len() as u64 * SEGMENT
    }

    fn path(&self, start: u64) -> PathBuf {
        self.dir.join(file_name(start))
    }

    /// Seal the next segment from the (key hash, order number) pairs of its orders (numbers
    /// `upto() .. upto() + SEGMENT`) and, when known, the log's index at its end. The file is
    /// written only when it is missing or differs (a reopened log finds its own files again).
    pub fn seal(&mut self, mut pairs: Vec<(u64, u64)>, boundary: Option<&Boundary>) -> io::Result<()> {
        let start = self.upto();
        pairs.sort_unstable();
        let mut body = Vec::with_capacity(pairs.len() * PAIR + 64);
        for (h, n) in &pairs {
            body.extend_from_slice(&h.to_le_bytes());
            body.extend_from_slice(&n.to_le_bytes());
        }
        if let Some(b) = boundary {
            b.write(&mut body);
        }
        let mut bytes = Vec::with_capacity(HEADER + body.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&start.to_le_bytes());
        bytes.extend_from_slice(&(pairs.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&bytes_hash(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        let path = self.path(start);
        let same = match fs::read(&path) {
            Ok(old) => old == bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        if !same {
            fs::create_dir_all(&self.dir)?;
            // Not fsync'd: a cache that the next open checks and rewrites.
            let tmp = path.with_extension("tmp");
            fs::write(&tmp, &bytes)?;
            fs::rename(&tmp, &path)?;
        }
        self.push(start, &pairs);
        Ok(())
    }

    fn push(&mut self, start: u64, pairs: &[(u64, u64)]) {
        let mut bloom = Bloom::new(pairs.len());
        for (h, _) in pairs {
            bloom.insert(*h);
        }
        let fences = pairs.iter().step_by(FENCE).map(|(h, _)| *h).collect();
        self.segments.push(Segment { start, count: pairs.len(), fences, bloom });
    }

    /// Take the next segment's file as sealed, if it is whole (magic, numbers, checksum, sorted
    /// pairs of its numbers) and carries a boundary, which is returned for the caller to check
    /// against the log (and [`Self::cut`] the segment if it does not hold). None: no usable file.
    pub fn load_next(&mut self) -> Option<Boundary> {
        let start = self.upto();
        let bytes = fs::read(self.path(start)).ok()?;
        let word = |at: usize| bytes.get(at..at + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()).map(u64::from_le_bytes);
        if bytes.get(..8)? != MAGIC || word(8)? != start {
            return None;
        }
        let count = usize::try_from(word(16)?).ok()?;
        let body = bytes.get(HEADER..)?;
        if bytes_hash(body) != word(24)? || count > SEGMENT as usize {
            return None;
        }
        let pairs: Vec<(u64, u64)> = body
            .get(..count * PAIR)?
            .chunks_exact(PAIR)
            .map(|p| (u64::from_le_bytes(p[..8].try_into().unwrap_or_default()), u64::from_le_bytes(p[8..].try_into().unwrap_or_default())))
            .collect();
        let ordered = pairs.windows(2).all(|w| w[0] <= w[1]) && pairs.iter().all(|(_, n)| (start..start + SEGMENT).contains(n));
        let boundary = Boundary::read(body.get(count * PAIR..)?)?;
        if !ordered {
            return None;
        }
        self.push(start, &pairs);
        Some(boundary)
    }

    /// Order numbers whose key may hash to `hash`, oldest segment first (to be verified
    /// against the records). Reads a segment's file only when its filter says the hash may be
    /// there.
    pub fn candidates(&self, hash: u64) -> io::Result<Vec<u64>> {
        let mut out = Vec::new();
        for s in self.segments.iter().filter(|s| s.bloom.may_contain(hash)) {
            // Blocks whose first hash is ≤ `hash`, from the last one starting below it.
            let first = s.fences.partition_point(|&f| f < hash).saturating_sub(1);
            let end = s.fences.partition_point(|&f| f <= hash);
            if end <= first {
                continue;
            }
            let (from, to) = (first * FENCE, (end * FENCE).min(s.count));
            let path = self.path(s.start);
            let mut f = File::open(&path)?;
            let mut head = [0u8; HEADER];
            f.read_exact(&mut head)?;
            if &head[..8] != MAGIC || head[8..16] != s.start.to_le_bytes() || head[16..24] != (s.count as u64).to_le_bytes() {
                // (The checksum is checked at open, when the whole file is read.)
                return Err(bad(&path, "key segment does not match the one sealed"));
            }
            f.seek(SeekFrom::Start((HEADER + from * PAIR) as u64))?;
            let mut block = vec![0u8; (to - from) * PAIR];
            f.read_exact(&mut block)?;
            for pair in block.chunks_exact(PAIR) {
                let (h, n) = pair.split_at(8);
                let (Ok(h), Ok(n)) = (<[u8; 8]>::try_from(h), <[u8; 8]>::try_from(n)) else { continue };
                if u64::from_le_bytes(h) == hash {
                    out.push(u64::from_le_bytes(n));
                }
            }
        }
        Ok(out)
    }

    /// Keep the first `keep` segments, forgetting the rest and removing their files (the log
    /// was cut below their end).
    pub fn cut(&mut self, keep: usize) {
        self.segments.truncate(keep);
        self.remove_files_from(self.upto());
    }

    /// Remove segment files for numbers ≥ `from` (left by a longer log, or by a cut): a later
    /// seal must not find them and take them for its own.
    pub fn remove_files_from(&self, from: u64) {
        let Ok(dir) = fs::read_dir(&self.dir) else { return };
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(start) = name.to_str().and_then(|n| n.strip_suffix(".seg")).and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            if start >= from {
                if let Err(e) = fs::remove_file(entry.path()) {
                    eprintln!("order: cannot remove stale key segment {}: {e}", entry.path().display());
                }
            }
        }
    }

    /// Bytes of memory the segments hold (filters and fences), for tests and the docs.
    pub fn memory(&self) -> usize {
        self.segments.iter().map(|s| s.bloom.words.len() * 8 + s.fences.len() * 8).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_pinned() {
        // Files written by one build are read by the next: the function must never change.
        assert_eq!(key_hash(""), 0xf52a_15e9_a9b5_e89b);
        assert_eq!(key_hash("k-7f3a"), 0x94e6_0bb7_e9c0_15d7);
        assert_ne!(key_hash("k1"), key_hash("k2"));
    }

    #[test]
    fn sealed_keys_are_found_and_absent_keys_mostly_cost_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sealed::new(dir.path());
        for seg in 0..3u64 {
            let pairs = (seg * SEGMENT..(seg + 1) * SEGMENT).map(|n| (key_hash(&format!("k{n}")), n)).collect();
            s.seal(pairs, None).unwrap();
        }
        assert_eq!(s.upto(), 3 * SEGMENT);
        for n in [0, 1, SEGMENT - 1, SEGMENT, 2 * SEGMENT + 77, 3 * SEGMENT - 1] {
            assert!(s.candidates(key_hash(&format!("k{n}"))).unwrap().contains(&n), "{n}");
        }
        let false_hits = (0..10_000).filter(|i| !s.candidates(key_hash(&format!("absent{i}"))).unwrap().is_empty()).count();
        assert_eq!(false_hits, 0, "a 64-bit hash match for an absent key");
        // Memory: filter + fences, ~1.9 bytes a key.
        assert!(s.memory() < 3 * SEGMENT as usize * 2, "{}", s.memory());
        // A damaged file is an error, not a silent miss.
        let path = s.path(SEGMENT);
        let mut bytes = fs::read(&path).unwrap();
        bytes[0] = b'X';
        fs::write(&path, bytes).unwrap();
        assert!(s.candidates(key_hash(&format!("k{}", SEGMENT + 5))).is_err());
        s.cut(1);
        assert!(!path.exists());
        assert_eq!(s.upto(), SEGMENT);
    }

    #[test]
    fn a_filter_answers_a_false_maybe_for_about_one_absent_key_in_a_thousand() {
        // Every new order's key is looked up in every sealed segment (~60 at 1 M orders): each
        // false "maybe" costs a file read on the order path.
        let mut bloom = Bloom::new(SEGMENT as usize);
        for n in 0..SEGMENT {
            bloom.insert(key_hash(&format!("k{n}")));
        }
        assert!((0..SEGMENT).all(|n| bloom.may_contain(key_hash(&format!("k{n}")))));
        let false_maybes = (0..100_000).filter(|i| bloom.may_contain(key_hash(&format!("absent{i}")))).count();
        assert!(false_maybes < 300, "{false_maybes} false maybes in 100 000");
    }

    #[test]
    fn recent_keys_never_hide_a_second_order_under_one_hash() {
        let mut r = Recent::default();
        r.insert(7, 1);
        r.insert(7, 4);
        r.insert(9, 2);
        assert_eq!(r.candidates(7).collect::<Vec<_>>(), vec![1, 4]);
        r.remove(7, 1);
        assert_eq!(r.candidates(7).collect::<Vec<_>>(), vec![4]);
        r.insert(7, 5);
        let mut taken = r.take_below(5);
        taken.sort_unstable();
        assert_eq!(taken, vec![(7, 4), (9, 2)]);
        assert_eq!(r.candidates(7).collect::<Vec<_>>(), vec![5]);
        assert_eq!(r.candidates(9).count(), 0);
    }

    #[test]
    fn a_segment_file_is_loaded_only_whole_and_with_its_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let pairs: Vec<(u64, u64)> = (0..SEGMENT).map(|n| (key_hash(&format!("k{n}")), n)).collect();
        let b = Boundary { count: SEGMENT + 2, last_epoch: 3, line_at: 900, len: 940, line_hash: 77, sparse: vec![30, 95], epochs: vec![0, 5] };
        let mut s = Sealed::new(dir.path());
        s.seal(pairs.clone(), Some(&b)).unwrap();
        let mut again = Sealed::new(dir.path());
        assert_eq!(again.load_next(), Some(b.clone()));
        assert!(again.candidates(key_hash("k77")).unwrap().contains(&77));
        assert_eq!(again.load_next(), None, "no second file");
        // Without a boundary, or with one flipped bit, a file is not used.
        let path = dir.path().join(DIR).join(file_name(0));
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(Sealed::new(dir.path()).load_next(), None);
        fs::remove_file(&path).unwrap();
        Sealed::new(dir.path()).seal(pairs, None).unwrap();
        assert_eq!(Sealed::new(dir.path()).load_next(), None);
    }
}
