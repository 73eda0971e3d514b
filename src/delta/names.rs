//! Segment file names: `<from>-<to>` (each revision zero-padded to 20 digits, so names sort by
//! revision) and a suffix saying how the segment is stored: `.seg` plain, `.seg.gz` compressed,
//! `.seg.age` encrypted, `.seg.gz.age` compressed then encrypted (`delta::stored`). Names come
//! from disk and, with S3, from a bucket: the parser is strict (exact digits, a known suffix,
//! `1 <= from <= to`) and fuzzed. It is the only parser of these names; `delta::files`
//! re-exports it and `chain::parse_segment_file_name` wraps it.

use super::chain::REVISION_DIGITS;

/// How a published segment is stored, as its name says: `.seg` plain, `.seg.gz` compressed,
/// `.seg.age` encrypted, `.seg.gz.age` compressed then encrypted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentForm {
    pub compressed: bool,
    pub encrypted: bool,
}

impl SegmentForm {
    pub const PLAIN: SegmentForm = SegmentForm {
        compressed: false,
        encrypted: false,
    };
    /// Every form, plain first.
    pub const ALL: [SegmentForm; 4] = [
        SegmentForm::PLAIN,
        SegmentForm {
            compressed: true,
            encrypted: false,
        },
        SegmentForm {
            compressed: false,
            encrypted: true,
        },
        SegmentForm {
            compressed: true,
            encrypted: true,
        },
    ];

    /// The name's suffix after `<from>-<to>`.
    pub fn suffix(self) -> &'static str {
        match (self.compressed, self.encrypted) {
            (false, false) => ".seg",
            (true, false) => ".seg.gz",
            (false, true) => ".seg.age",
            (true, true) => ".seg.gz.age",
        }
    }
}

/// What a segment file name says: its revision range and how it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentName {
    pub from: i64,
    pub to: i64,
    pub form: SegmentForm,
}

impl SegmentName {
    /// `<from>-<to><suffix>`, each revision zero-padded to 20 digits, so names sort by revision.
    pub fn file_name(&self) -> String {
        format!("{:020}-{:020}{}", self.from, self.to, self.form.suffix())
    }
}

/// The segment a file name stands for; None for any other name (temp files, dotfiles, anything
/// hostile). `from` is at least 1 and `to` at least `from`. Every reader of segment names
/// (listing, capture, replay, retention, S3) goes through this one parser.
pub fn parse_segment_name(name: &str) -> Option<SegmentName> {
    let (stem, form) = SegmentForm::ALL
        .into_iter()
        .find_map(|form| Some((name.strip_suffix(form.suffix())?, form)))?;
    let (from, to) = stem.split_once('-')?;
    let revision = |text: &str| -> Option<i64> {
        let digits = text.len() == REVISION_DIGITS && text.bytes().all(|b| b.is_ascii_digit());
        digits.then(|| text.parse().ok()).flatten()
    };
    let (from, to) = (revision(from)?, revision(to)?);
    (from >= 1 && to >= from).then_some(SegmentName { from, to, form })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz_support::{Fuzz, hostile_text, mutated_text};
    use proptest::prelude::*;

    #[test]
    fn every_form_round_trips_and_nothing_else_parses() {
        for form in SegmentForm::ALL {
            let name = SegmentName {
                from: 11,
                to: 13,
                form,
            };
            let text = name.file_name();
            assert!(text.starts_with("00000000000000000011-00000000000000000013.seg"));
            assert_eq!(parse_segment_name(&text), Some(name), "{text}");
        }
        let named = |form| {
            SegmentName {
                from: 1,
                to: 2,
                form,
            }
            .file_name()
        };
        assert!(named(SegmentForm::PLAIN).ends_with("2.seg"));
        assert!(
            named(SegmentForm {
                compressed: true,
                encrypted: true
            })
            .ends_with(".seg.gz.age")
        );
        let stem = "00000000000000000011-00000000000000000013";
        for bad in [
            format!("{stem}.seg.age.gz"),
            format!("{stem}.gz"),
            format!("{stem}.age"),
            format!("{stem}.seg.gz.age.part"),
            format!("{stem}.seg.zip"),
            format!(".{stem}.seg.age"),
            format!("{stem}.SEG"),
            "00000000000000000013-00000000000000000011.seg.gz".to_string(),
            "00000000000000000000-00000000000000000001.seg.age".to_string(),
        ] {
            assert_eq!(parse_segment_name(&bad), None, "{bad:?}");
        }
    }

    fn any_name(text: String) -> proptest::test_runner::TestCaseResult {
        if let Some(name) = parse_segment_name(&text) {
            // Only our exact names parse, and they print back as they were read.
            prop_assert_eq!(name.file_name(), text);
            prop_assert!(name.from >= 1 && name.to >= name.from);
        }
        Ok(())
    }

    /// Fuzz target `delta_segment_names`: names listed from a chain dir or a bucket.
    #[test]
    fn fuzz_delta_segment_names() {
        let mut fuzz = Fuzz::new("delta_segment_names", 2);
        fuzz.check("hostile_names", 512, hostile_text(64), any_name);
        let sample = "00000000000000000011-00000000000000000013.seg.gz.age";
        fuzz.check("mutated_names", 512, mutated_text(sample), any_name);
        fuzz.finish();
    }
}
