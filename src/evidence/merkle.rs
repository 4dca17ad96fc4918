//! RFC 9162 §2.1 Merkle tree hashing, inclusion and consistency proofs, and their verification.
//!
//! Hashes of perfect subtrees ("stored hashes": level `l`, index `i` covers leaves
//! `[i·2^l, (i+1)·2^l)`) are what the log keeps; every other subtree hash, root, and proof is
//! derived from O(log n) of them through [`Hashes`].

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Largest power of two strictly less than `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// Source of stored perfect-subtree hashes.
pub trait Hashes {
    type Error;
    /// The hash of leaves `[index·2^level, (index+1)·2^level)`.
    fn stored(&mut self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// MTH(D[start..end]) for a range that is a subtree of the RFC's recursion.
pub fn subtree<H: Hashes>(h: &mut H, start: u64, end: u64) -> Result<Hash, H::Error> {
    let n = end - start;
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return h.stored(n.trailing_zeros(), start >> n.trailing_zeros());
    }
    let k = split(n);
    let l = subtree(h, start, start + k)?;
    let r = subtree(h, start + k, end)?;
    Ok(node_hash(&l, &r))
}

/// Root of the tree of the first `n` leaves (`n ≥ 1`).
pub fn root<H: Hashes>(h: &mut H, n: u64) -> Result<Hash, H::Error> {
    subtree(h, 0, n)
}

/// PATH(m, D[n]) of RFC 9162 §2.1.3.1, leaf first.
pub fn inclusion_proof<H: Hashes>(h: &mut H, m: u64, n: u64) -> Result<Vec<Hash>, H::Error> {
    let mut out = Vec::new();
    path(h, m, 0, n, &mut out)?;
    Ok(out)
}

fn path<H: Hashes>(
    h: &mut H,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash>,
) -> Result<(), H::Error> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(h, m, start, start + k, out)?;
        out.push(subtree(h, start + k, end)?);
    } else {
        path(h, m - k, start + k, end, out)?;
        out.push(subtree(h, start, start + k)?);
    }
    Ok(())
}

/// PROOF(m, D[n]) of RFC 9162 §2.1.4.1 (0 < m ≤ n).
pub fn consistency_proof<H: Hashes>(h: &mut H, m: u64, n: u64) -> Result<Vec<Hash>, H::Error> {
    let mut out = Vec::new();
    if m < n {
        subproof(h, m, 0, n, true, &mut out)?;
    }
    Ok(out)
}

fn subproof<H: Hashes>(
    h: &mut H,
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), H::Error> {
    let n = end - start;
    if m == n {
        if !whole {
            out.push(subtree(h, start, end)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(h, m, start, start + k, whole, out)?;
        out.push(subtree(h, start + k, end)?);
    } else {
        subproof(h, m - k, start + k, end, false, out)?;
        out.push(subtree(h, start, start + k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.3.2: does `proof` show leaf `index` with `leaf` in the tree (`size`, `root`)?
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && &r == root
}

/// RFC 9162 §2.1.4.2: does `proof` show the tree (`n2`, `root2`) extends (`n1`, `root1`)?
pub fn verify_consistency(n1: u64, n2: u64, root1: &Hash, root2: &Hash, proof: &[Hash]) -> bool {
    if n1 == n2 {
        return proof.is_empty() && root1 == root2;
    }
    if n1 == 0 || n1 > n2 {
        return false;
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if n1.is_power_of_two() {
        path.insert(0, *root1);
    }
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut f_n, mut s_n) = (n1 - 1, n2 - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    &fr == root1 && &sr == root2 && s_n == 0
}

/// Stored hashes of a tree held in memory (tests, offline tools).
#[derive(Default)]
pub struct MemoryTree {
    /// levels[l][i]: hash of perfect subtree i at level l.
    pub levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    pub fn push(&mut self, leaf: Hash) {
        append_stored(&mut self.levels, leaf);
    }
    pub fn size(&self) -> u64 {
        self.levels.first().map(|l| l.len() as u64).unwrap_or(0)
    }
}

/// Adds a leaf and every perfect subtree it completes: the stored hashes to persist.
pub fn new_stored_hashes(
    index: u64,
    leaf: Hash,
    mut left_sibling: impl FnMut(u32, u64) -> Hash,
) -> Vec<(u32, u64, Hash)> {
    let mut out = vec![(0, index, leaf)];
    let (mut level, mut i, mut h) = (0u32, index, leaf);
    while i & 1 == 1 {
        let left = left_sibling(level, i - 1);
        h = node_hash(&left, &h);
        level += 1;
        i >>= 1;
        out.push((level, i, h));
    }
    out
}

fn append_stored(levels: &mut Vec<Vec<Hash>>, leaf: Hash) {
    let index = levels.first().map(|l| l.len() as u64).unwrap_or(0);
    let snapshot = levels.clone();
    for (level, i, h) in new_stored_hashes(index, leaf, |l, j| snapshot[l as usize][j as usize]) {
        if levels.len() <= level as usize {
            levels.push(Vec::new());
        }
        debug_assert_eq!(levels[level as usize].len() as u64, i);
        levels[level as usize].push(h);
    }
}

impl Hashes for MemoryTree {
    type Error = std::convert::Infallible;
    fn stored(&mut self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        Ok(self.levels[level as usize][index as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MTH straight from the RFC's definition.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn roots_and_proofs_agree_with_the_definition() {
        let mut t = MemoryTree::default();
        let mut leaves = Vec::new();
        for i in 0..70u64 {
            let l = leaf_hash(format!("entry {i}").as_bytes());
            t.push(l);
            leaves.push(l);
            let n = i + 1;
            let r = root(&mut t, n).unwrap();
            assert_eq!(r, mth(&leaves), "root of {n}");
            for m in 0..n {
                let p = inclusion_proof(&mut t, m, n).unwrap();
                assert!(
                    verify_inclusion(&leaves[m as usize], m, n, &p, &r),
                    "inclusion {m} in {n}"
                );
                if let Some(first) = p.first() {
                    let mut bad = p.clone();
                    bad[0] = node_hash(first, first);
                    assert!(!verify_inclusion(&leaves[m as usize], m, n, &bad, &r));
                }
                if n > 1 {
                    let other = (m + 1) % n;
                    assert!(!verify_inclusion(&leaves[other as usize], m, n, &p, &r));
                }
            }
            for m in 1..=n {
                let p = consistency_proof(&mut t, m, n).unwrap();
                let r1 = mth(&leaves[..m as usize]);
                assert!(
                    verify_consistency(m, n, &r1, &r, &p),
                    "consistency {m} -> {n}"
                );
                if m < n {
                    let forged = leaf_hash(b"forged");
                    assert!(!verify_consistency(m, n, &forged, &r, &p));
                }
            }
        }
    }
}
