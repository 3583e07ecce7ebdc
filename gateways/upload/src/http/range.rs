//! The `Range` header (RFC 9110 §14.2), single byte ranges.

use std::ops::Range;

/// The byte range `value` asks of a `len`-byte file: `None` when the
/// header is malformed or asks for several ranges (the whole file is then
/// served, as RFC 9110 allows), `Some(Err(()))` when unsatisfiable.
pub fn parse(value: &str, len: u64) -> Option<Result<Range<u64>, ()>> {
    // A suffix longer than the file means the whole file (RFC 9110
    // §14.1.2), which http-range-header calls unsatisfiable.
    if let Some(suffix) = value.trim().strip_prefix("bytes=-")
        && let Ok(n) = suffix.trim().parse::<u64>()
    {
        return Some(if n == 0 || len == 0 {
            Err(())
        } else {
            Ok(len.saturating_sub(n)..len)
        });
    }
    let parsed = http_range_header::parse_range_header(value).ok()?;
    match parsed.validate(len) {
        Ok(ranges) if ranges.len() == 1 => {
            let r = &ranges[0];
            Some(Ok(*r.start()..r.end() + 1))
        }
        Ok(_) => None,
        Err(_) => Some(Err(())),
    }
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
    }

    #[test]
    fn unsatisfiable_malformed_and_multiple() {
        assert_eq!(parse("bytes=10-", 10), Some(Err(())));
        assert_eq!(parse("bytes=20-30", 10), Some(Err(())));
        assert_eq!(parse("bytes=nonsense", 10), None);
        assert_eq!(parse("items=0-1", 10), None);
        assert_eq!(parse("bytes=0-1,4-5", 10), None);
    }
}
