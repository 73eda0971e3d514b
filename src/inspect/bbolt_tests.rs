//! The walker on crafted bbolt images: every check fires on the damage it names, and a good
//! image is walked in key order.

use super::*;

pub(crate) const PS: usize = 512;

pub(crate) fn header(id: u64, flags: u16, count: u16, overflow: u32) -> Vec<u8> {
    let mut h = id.to_le_bytes().to_vec();
    h.extend_from_slice(&flags.to_le_bytes());
    h.extend_from_slice(&count.to_le_bytes());
    h.extend_from_slice(&overflow.to_le_bytes());
    h
}

pub(crate) fn meta(id: u64, root: u64, freelist: u64, hwm: u64, txid: u64) -> Vec<u8> {
    let mut m = Vec::new();
    for v in [MAGIC, VERSION, PS as u32, 0] {
        m.extend_from_slice(&v.to_le_bytes());
    }
    for v in [root, 0, freelist, hwm, txid] {
        m.extend_from_slice(&v.to_le_bytes());
    }
    let sum = fnv1a64(&m);
    m.extend_from_slice(&sum.to_le_bytes());
    let mut page = header(id, META, 0, 0);
    page.extend_from_slice(&m);
    page
}

/// A leaf (header id `id`) with `(is_bucket, key, value)` elements, unpadded.
pub(crate) fn leaf(id: u64, items: &[(bool, &[u8], Vec<u8>)]) -> Vec<u8> {
    let mut page = header(id, LEAF, items.len() as u16, 0);
    let mut data = Vec::new();
    let table = items.len() * 16;
    for (i, (bucket, k, v)) in items.iter().enumerate() {
        let pos = (table - i * 16 + data.len()) as u32;
        for x in [u32::from(*bucket), pos, k.len() as u32, v.len() as u32] {
            page.extend_from_slice(&x.to_le_bytes());
        }
        data.extend_from_slice(k);
        data.extend_from_slice(v);
    }
    page.extend_from_slice(&data);
    page
}

pub(crate) fn branch(id: u64, children: &[(&[u8], u64)]) -> Vec<u8> {
    let mut page = header(id, BRANCH, children.len() as u16, 0);
    let mut data = Vec::new();
    let table = children.len() * 16;
    for (i, (k, child)) in children.iter().enumerate() {
        let pos = (table - i * 16 + data.len()) as u32;
        page.extend_from_slice(&pos.to_le_bytes());
        page.extend_from_slice(&(k.len() as u32).to_le_bytes());
        page.extend_from_slice(&child.to_le_bytes());
        data.extend_from_slice(k);
    }
    page.extend_from_slice(&data);
    page
}

pub(crate) fn bucket_at(root: u64) -> Vec<u8> {
    let mut v = root.to_le_bytes().to_vec();
    v.extend_from_slice(&0u64.to_le_bytes());
    v
}

pub(crate) fn inline_bucket(items: &[(bool, &[u8], Vec<u8>)]) -> Vec<u8> {
    let mut v = bucket_at(0);
    v.extend_from_slice(&leaf(0, items));
    v
}

/// Lays pages out at their ids; missing ids are zero pages.
pub(crate) fn image(pages: &[Vec<u8>], total: usize) -> Vec<u8> {
    let mut img = vec![0u8; total * PS];
    for p in pages {
        let id = u64::from_le_bytes(p[..8].try_into().unwrap()) as usize;
        img[id * PS..id * PS + p.len()].copy_from_slice(p);
    }
    img
}

#[derive(Default)]
struct Seen(Vec<String>);

impl Visit for Seen {
    fn bucket(&mut self, name: &[u8]) {
        self.0.push(format!("[{}]", String::from_utf8_lossy(name)));
    }
    fn entry(&mut self, key: &[u8], value: Option<&[u8]>) {
        let v = value.map_or("<bucket>".into(), |v| {
            String::from_utf8_lossy(v).into_owned()
        });
        self.0.push(format!("{}={v}", String::from_utf8_lossy(key)));
    }
}

/// Root leaf at 2: bucket "key" rooted at branch 3 (leaves 4, 5), bucket "meta" inline.
pub(crate) fn good_pages() -> Vec<Vec<u8>> {
    vec![
        meta(0, 2, NO_FREELIST, 7, 10),
        meta(1, 2, NO_FREELIST, 7, 9),
        leaf(
            2,
            &[
                (true, b"key", bucket_at(3)),
                (
                    true,
                    b"meta",
                    inline_bucket(&[(false, b"term", b"1".to_vec())]),
                ),
            ],
        ),
        branch(3, &[(b"a", 4), (b"c", 5)]),
        leaf(
            4,
            &[(false, b"a", b"1".to_vec()), (false, b"b", b"2".to_vec())],
        ),
        leaf(5, &[(false, b"c", b"3".to_vec())]),
    ]
}

fn walk_image(img: &[u8]) -> (Structure, Vec<String>) {
    let mut seen = Seen::default();
    let s = walk(&img, &mut seen);
    (s, seen.0)
}

fn has(s: &Structure, needle: &str) -> bool {
    s.problems.first.iter().any(|p| p.contains(needle))
}

#[test]
fn a_good_image_is_walked_in_key_order_with_no_problems() {
    let (s, seen) = walk_image(&image(&good_pages(), 7));
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(seen, ["[key]", "a=1", "b=2", "c=3", "[meta]", "term=1"]);
    assert_eq!(
        (s.page_size, s.high_water_mark, s.txid, s.meta_page),
        (512, 7, 10, 0)
    );
    // Pages 0-5 reachable, 6 free (no stored freelist: bbolt frees unreachable pages).
    assert_eq!((s.reachable_pages, s.free_pages), (6, 1));
}

#[test]
fn a_damaged_meta_page_is_reported_and_the_other_is_used() {
    let mut img = image(&good_pages(), 7);
    img[16 + 44] ^= 0x01; // inside meta 0's hwm field: the checksum no longer matches
    let (s, seen) = walk_image(&img);
    assert!(has(&s, "meta page 0: checksum"), "{:?}", s.problems);
    assert_eq!(s.meta_page, 1);
    assert_eq!(seen.len(), 6);
}

#[test]
fn a_page_referenced_twice_is_reported() {
    let mut pages = good_pages();
    pages[2] = leaf(2, &[(true, b"a", bucket_at(4)), (true, b"b", bucket_at(4))]);
    let (s, _) = walk_image(&image(&pages, 7));
    assert!(has(&s, "page 4: multiple references"), "{:?}", s.problems);
}

#[test]
fn a_page_beyond_the_high_water_mark_is_reported() {
    let mut pages = good_pages();
    pages[3] = branch(3, &[(b"a", 4), (b"c", 9)]);
    let (s, _) = walk_image(&image(&pages, 10));
    assert!(
        has(&s, "page 9: beyond the high-water mark 7"),
        "{:?}",
        s.problems
    );
}

#[test]
fn keys_out_of_order_across_pages_are_reported() {
    let mut pages = good_pages();
    pages[5] = leaf(5, &[(false, b"a0", b"3".to_vec())]);
    let (s, _) = walk_image(&image(&pages, 7));
    assert!(has(&s, "page 5: keys out of order"), "{:?}", s.problems);
}

#[test]
fn a_wrong_page_type_and_a_mismatched_header_id_are_reported() {
    let mut pages = good_pages();
    pages[5] = header(5, FREELIST, 0, 0);
    let (s, _) = walk_image(&image(&pages, 7));
    assert!(has(&s, "page 5: invalid type 0x10"), "{:?}", s.problems);
    let mut img = image(&good_pages(), 7);
    img[4 * PS] = 9; // page 4's header now says it is page 9
    let (s, _) = walk_image(&img);
    assert!(
        has(&s, "page 4: its header says it is page 9"),
        "{:?}",
        s.problems
    );
}

#[test]
fn a_stored_freelist_must_account_for_every_page() {
    let mut pages = good_pages();
    pages[0] = meta(0, 2, 6, 8, 10);
    pages[1] = meta(1, 2, 6, 8, 9);
    // Frees page 5, which is reachable; page 7 is neither reachable nor free.
    let mut fl = header(6, FREELIST, 1, 0);
    fl.extend_from_slice(&5u64.to_le_bytes());
    pages.push(fl);
    let (s, _) = walk_image(&image(&pages, 8));
    assert!(has(&s, "page 5: reachable freed"), "{:?}", s.problems);
    assert!(has(&s, "page 7: unreachable unfreed"), "{:?}", s.problems);
    assert!(s.freelist_stored);
}

#[test]
fn hostile_element_offsets_are_errors_not_panics() {
    let mut pages = good_pages();
    let mut bad = leaf(5, &[(false, b"c", b"3".to_vec())]);
    bad[16 + 12..16 + 16].copy_from_slice(&u32::MAX.to_le_bytes()); // vsize
    pages[5] = bad;
    let (s, _) = walk_image(&image(&pages, 7));
    assert!(
        has(&s, "page 5: element 0: value runs past the page"),
        "{:?}",
        s.problems
    );
    // A count that cannot fit, an overflow past the end, a truncated file.
    let mut img = image(&good_pages(), 7);
    img[4 * PS + 10..4 * PS + 12].copy_from_slice(&u16::MAX.to_le_bytes());
    assert!(has(
        &walk_image(&img).0,
        "page 4: 65535 elements do not fit"
    ));
    let mut img = image(&good_pages(), 7);
    img[5 * PS + 12..5 * PS + 16].copy_from_slice(&1000u32.to_le_bytes());
    assert!(has(&walk_image(&img).0, "page 5: 1000 overflow pages"));
    let img = image(&good_pages(), 7);
    let (s, _) = walk_image(&img[..5 * PS]);
    assert!(
        has(&s, "shorter than its high-water mark"),
        "{:?}",
        s.problems
    );
}

#[test]
fn garbage_has_no_valid_meta_page() {
    let (s, seen) = walk_image(&[0xAAu8; 4 * PS]);
    assert!(has(&s, "meta page 0: magic"));
    assert!(has(&s, "meta page 1: no valid meta page"));
    assert!(seen.is_empty());
}
