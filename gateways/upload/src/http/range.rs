//! The `Range` header (RFC 9110 §14.2), single byte ranges.
//!
//! Only one range is ever served: a header listing several (a comma
//! anywhere) gets the whole file without being parsed any further, so a
//! header of tens of thousands of parts costs one scan of its bytes.

use std::ops::Range;

use http_range_header::{EndPosition, RangeUnsatisfiableError, StartPosition};

/// The byte range `value` asks of a `len`-byte file: `None` when the
/// whole file is to be served (the header is malformed or invalid, asks
/// for several ranges, or the file is empty: RFC 9110 lets a server
/// ignore Range), `Some(Err(()))` when unsatisfiable.
pub fn parse(value: &str, len: u64) -> Option<Result<Range<u64>, ()>> {
    if value.contains(',') || len == 0 {
        // An empty file has no byte to point at: `bytes=0-` must not be
        // answered with a 206 that promises one.
        return None;
    }
    let parsed = match http_range_header::parse_range_header(value) {
        Ok(p) => p,
        // `bytes=-0`: a well-formed range that selects nothing.
        Err(RangeUnsatisfiableError::ZeroSuffix) => return Some(Err(())),
        Err(_) => return None,
    };
    let [range] = parsed.ranges.as_slice() else {
        return None;
    };
    let last = len - 1;
    Some(match (range.start, range.end) {
        // A suffix longer than the file means the whole file (§14.1.2).
        (StartPosition::FromLast(n), _) => Ok(len.saturating_sub(n)..len),
        // `last < first` makes the range invalid, and an invalid Range
        // is ignored (§14.1.1, §14.2), not refused.
        (StartPosition::Index(first), EndPosition::Index(end)) if end < first => return None,
        (StartPosition::Index(first), _) if first > last => Err(()),
        (StartPosition::Index(first), EndPosition::Index(end)) => Ok(first..end.min(last) + 1),
        (StartPosition::Index(first), EndPosition::LastByte) => Ok(first..len),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges() {
        assert_eq!(parse("bytes=0-", 10), Some(Ok(0..10)));
        assert_eq!(parse("bytes=2-4", 10), Some(Ok(2..5)));
        assert_eq!(parse("bytes=-3", 10), Some(Ok(7..10)));
        assert_eq!(parse("bytes=5-100", 10), Some(Ok(5..10)));
        assert_eq!(parse("bytes=-100", 10), Some(Ok(0..10)));
        assert_eq!(parse("bytes=9-9", 10), Some(Ok(9..10)));
    }

    #[test]
    fn unsatisfiable_malformed_and_multiple() {
        assert_eq!(parse("bytes=10-", 10), Some(Err(())));
        assert_eq!(parse("bytes=20-30", 10), Some(Err(())));
        assert_eq!(parse("bytes=-0", 10), Some(Err(())));
        assert_eq!(parse("bytes=nonsense", 10), None);
        assert_eq!(parse("items=0-1", 10), None);
        assert_eq!(parse("bytes=0-1,4-5", 10), None);
    }

    #[test]
    fn reversed_ranges_are_ignored() {
        assert_eq!(parse("bytes=5-2", 10), None);
        assert_eq!(parse("bytes=50-20", 10), None);
    }

    #[test]
    fn an_empty_file_is_served_whole() {
        assert_eq!(parse("bytes=0-", 0), None);
        assert_eq!(parse("bytes=0-0", 0), None);
        assert_eq!(parse("bytes=-5", 0), None);
    }

    #[test]
    fn many_parts_are_not_compared_pairwise() {
        // 60 000 one-byte ranges (~700 KB): the whole file, at once. The
        // crate would compare every pair of them first (seconds of CPU).
        let many: Vec<String> = (0..60_000u64).map(|i| format!("{i}-{i}")).collect();
        let header = format!("bytes={}", many.join(","));
        let started = std::time::Instant::now();
        assert_eq!(parse(&header, 300 * 1024), None);
        assert!(
            started.elapsed() < std::time::Duration::from_millis(500),
            "took {:?}",
            started.elapsed()
        );
    }
}
