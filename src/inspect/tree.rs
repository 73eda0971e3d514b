//! Finding one key in a bbolt file without walking it: meta page -> root bucket tree -> a root
//! bucket -> its key, following branches the way bbolt's cursor does, a handful of pages in
//! all. Each value found comes with its offset in the file, so a restore can rewrite a
//! fixed-size value in place (`restore::direct`).
//!
//! It checks only what it reads (meta checksum, page ids, bounds, page types); whether the
//! file is whole is the trailer check's and the walker's job. Pure over positioned reads;
//! damage is an error string, never a panic.

use super::bbolt::{BRANCH, LEAF, MAX_SPAN, Meta, PAGE_HEADER, PageSource, Problems, read_meta};
use super::pages::{Element, ElementKind, elements, parse_header};

/// Deepest tree followed; real trees are a handful of levels deep.
const MAX_DEPTH: usize = 64;
/// Size of a bucket header (`root` page id and `sequence`) before an inline bucket's page.
const BUCKET_HEADER: u64 = 16;

/// A value and where it sits in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub value: Vec<u8>,
    pub offset: u64,
}

/// A bucket's root: a page of its own, or a page inline in its parent's value at an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    Page(u64),
    Inline { page: Vec<u8>, offset: u64 },
}

/// The value of `key` in the root bucket `bucket` of the database image `src` (None when the
/// bucket or the key is missing).
pub fn value_in(src: &dyn PageSource, bucket: &[u8], key: &[u8]) -> Result<Option<Found>, String> {
    let tree = Tree::open(src)?;
    match tree.bucket(&tree.root(), bucket)? {
        None => Ok(None),
        Some(root) => tree.lookup(&root, key),
    }
}

/// One database's pages, read through its valid meta page.
pub struct Tree<'a> {
    src: &'a dyn PageSource,
    meta: Meta,
}

impl<'a> Tree<'a> {
    pub fn open(src: &'a dyn PageSource) -> Result<Self, String> {
        let mut problems = Problems::default();
        let (meta, _) = read_meta(src, &mut problems)
            .ok_or_else(|| format!("no valid meta page: {}", problems.first.join("; ")))?;
        Ok(Self { src, meta })
    }

    /// The tree of root buckets.
    pub fn root(&self) -> Root {
        Root::Page(self.meta.root)
    }

    /// The root of the nested bucket `name` under `parent` (None when missing).
    pub fn bucket(&self, parent: &Root, name: &[u8]) -> Result<Option<Root>, String> {
        self.lookup(parent, name)?
            .map(|f| bucket_root(&f))
            .transpose()
    }

    /// The value stored under `key` in the tree at `root`, as bbolt's cursor finds it: in a
    /// branch, the last child whose first key is <= `key`.
    pub fn lookup(&self, root: &Root, key: &[u8]) -> Result<Option<Found>, String> {
        let mut node = self.node(root)?;
        for _ in 0..MAX_DEPTH {
            let (page, offset) = (&node.0, node.1);
            let flags = parse_header(page).flags;
            if flags == BRANCH {
                let elems = elements(page, ElementKind::Branch)?;
                let child = elems
                    .iter()
                    .take_while(|e| e.key <= key)
                    .last()
                    .unwrap_or(&elems[0])
                    .child;
                node = self.node(&Root::Page(child))?;
                continue;
            }
            let elems = leaf_elements(page, flags, offset)?;
            return Ok(elems.iter().find(|e| e.key == key).map(|e| Found {
                value: e.value.to_vec(),
                offset: offset + e.value_at as u64,
            }));
        }
        Err(format!("the tree is deeper than {MAX_DEPTH} levels"))
    }

    /// The last key of the tree at `root` (None when it is empty).
    pub fn last_key(&self, root: &Root) -> Result<Option<Vec<u8>>, String> {
        let mut node = self.node(root)?;
        for _ in 0..MAX_DEPTH {
            let flags = parse_header(&node.0).flags;
            if flags == BRANCH {
                let elems = elements(&node.0, ElementKind::Branch)?;
                let child = elems.last().map_or(0, |e| e.child);
                node = self.node(&Root::Page(child))?;
                continue;
            }
            let elems = leaf_elements(&node.0, flags, node.1)?;
            return Ok(elems.last().map(|e| e.key.to_vec()));
        }
        Err(format!("the tree is deeper than {MAX_DEPTH} levels"))
    }

    /// The page at `root` and its offset in the file.
    fn node(&self, root: &Root) -> Result<(Vec<u8>, u64), String> {
        match root {
            Root::Inline { page, offset } => Ok((page.clone(), *offset)),
            Root::Page(id) => {
                let page = self.read_page(*id)?;
                Ok((page, id * u64::from(self.meta.page_size)))
            }
        }
    }

    /// Page `id` with its overflow, after the checks that keep every read in bounds.
    fn read_page(&self, id: u64) -> Result<Vec<u8>, String> {
        let page_size = u64::from(self.meta.page_size);
        if id < 2 || id >= self.meta.hwm {
            return Err(format!("page {id}: outside 2..{}", self.meta.hwm));
        }
        let mut buf = vec![0u8; page_size as usize];
        self.src
            .read_at(&mut buf, id * page_size)
            .map_err(|e| format!("page {id}: cannot be read: {e}"))?;
        let header = parse_header(&buf);
        if header.id != id {
            return Err(format!("page {id}: its header says page {}", header.id));
        }
        let span = (u64::from(header.overflow) + 1) * page_size;
        if id + u64::from(header.overflow) >= self.meta.hwm || span > MAX_SPAN {
            return Err(format!(
                "page {id}: {} overflow pages out of bounds",
                header.overflow
            ));
        }
        if header.overflow > 0 {
            buf.resize(span as usize, 0);
            self.src
                .read_at(&mut buf[page_size as usize..], (id + 1) * page_size)
                .map_err(|e| format!("page {id}: overflow cannot be read: {e}"))?;
        }
        Ok(buf)
    }
}

fn leaf_elements(page: &[u8], flags: u16, offset: u64) -> Result<Vec<Element<'_>>, String> {
    if flags != LEAF {
        return Err(format!(
            "the page at byte {offset}: flags {flags:#x}, expected a branch or leaf"
        ));
    }
    elements(page, ElementKind::Leaf)
}

/// A bucket value: its root page, or its inline page when the root is 0.
pub fn bucket_root(found: &Found) -> Result<Root, String> {
    let value = &found.value;
    let root = value
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .ok_or("a bucket header shorter than 8 bytes")?;
    if root != 0 {
        return Ok(Root::Page(root));
    }
    match value
        .get(BUCKET_HEADER as usize..)
        .filter(|p| <[u8]>::len(p) >= PAGE_HEADER)
    {
        Some(page) => Ok(Root::Inline {
            page: page.to_vec(),
            offset: found.offset + BUCKET_HEADER,
        }),
        None => Err("an inline bucket without its page".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::bbolt::NO_FREELIST;
    use crate::inspect::bbolt::tests::{PS, bucket_at, image, inline_bucket, leaf, meta};

    /// `meta` inline in the root leaf (page 2), `members` rooted at page 3.
    fn db() -> Vec<u8> {
        image(
            &[
                meta(0, 2, NO_FREELIST, 4, 7),
                meta(1, 2, NO_FREELIST, 4, 6),
                leaf(
                    2,
                    &[
                        (
                            true,
                            b"meta",
                            inline_bucket(&[
                                (false, b"consistent_index", 56u64.to_be_bytes().to_vec()),
                                (false, b"term", 2u64.to_be_bytes().to_vec()),
                            ]),
                        ),
                        (true, b"members", bucket_at(3)),
                    ],
                ),
                leaf(3, &[(false, b"8e9e05c52164694d", b"{\"id\":1}".to_vec())]),
            ],
            4,
        )
    }

    #[test]
    fn a_value_found_names_its_offset_in_the_file_inline_or_in_its_own_page() {
        let img = db();
        for (bucket, key, want) in [
            (
                &b"meta"[..],
                &b"consistent_index"[..],
                &56u64.to_be_bytes()[..],
            ),
            (b"meta", b"term", &2u64.to_be_bytes()),
            (b"members", b"8e9e05c52164694d", b"{\"id\":1}"),
        ] {
            let found = value_in(&img.as_slice(), bucket, key).unwrap().unwrap();
            assert_eq!(found.value, want);
            let at = found.offset as usize;
            assert_eq!(&img[at..at + want.len()], want, "{key:?}");
        }
        assert_eq!(value_in(&img.as_slice(), b"meta", b"nope").unwrap(), None);
        assert_eq!(value_in(&img.as_slice(), b"lease", b"x").unwrap(), None);
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let mut bad = db();
        bad[2 * PS + 8] = 0x10; // the root leaf's flags: now a freelist page
        let err = value_in(&bad.as_slice(), b"meta", b"term").unwrap_err();
        assert!(err.contains("expected a branch or leaf"), "{err}");
        let mut bad = db();
        bad[2 * PS..3 * PS].fill(0xff);
        assert!(value_in(&bad.as_slice(), b"members", b"x").is_err());
    }
}
