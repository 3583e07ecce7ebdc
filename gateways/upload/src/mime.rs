//! MIME types as the config and HTTP headers write them.

/// `type/subtype` of a Content-Type, lowercased, without parameters:
/// `Text/Plain; charset=utf-8` → `text/plain`. `None` when it is not of
/// that shape.
pub fn essence(content_type: &str) -> Option<String> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let (type_, subtype) = essence.split_once('/')?;
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    (token(type_) && token(subtype)).then_some(essence)
}

/// A configured MIME type: `image/png`, `image/*` or `*/*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MimePattern {
    type_: String,
    /// `None` for `type/*`.
    subtype: Option<String>,
}

impl MimePattern {
    /// Parses a pattern; the error says what was expected.
    pub fn parse(s: &str) -> Result<Self, String> {
        let expected = || format!("`{s}` is not a MIME type; expected `type/subtype` or `type/*`");
        if let Some(type_) = s.strip_suffix("/*") {
            if type_ == "*" {
                return Ok(Self {
                    type_: "*".to_owned(),
                    subtype: None,
                });
            }
            let e = essence(&format!("{type_}/x")).ok_or_else(expected)?;
            let type_ = e.split_once('/').map(|(t, _)| t.to_owned());
            return Ok(Self {
                type_: type_.ok_or_else(expected)?,
                subtype: None,
            });
        }
        let e = essence(s)
            .filter(|e| e.len() == s.trim().len())
            .ok_or_else(expected)?;
        let (type_, subtype) = e.split_once('/').ok_or_else(expected)?;
        Ok(Self {
            type_: type_.to_owned(),
            subtype: Some(subtype.to_owned()),
        })
    }

    /// Whether a Content-Type (any case, parameters ignored) matches.
    pub fn matches(&self, content_type: &str) -> bool {
        let Some(e) = essence(content_type) else {
            return false;
        };
        let Some((type_, subtype)) = e.split_once('/') else {
            return false;
        };
        (self.type_ == "*" || self.type_ == type_)
            && self.subtype.as_deref().is_none_or(|s| s == subtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn essence_drops_parameters_and_case() {
        assert_eq!(
            essence("Text/Plain; charset=UTF-8").as_deref(),
            Some("text/plain")
        );
        assert_eq!(essence("image/svg+xml").as_deref(), Some("image/svg+xml"));
        assert_eq!(essence("nonsense"), None);
        assert_eq!(essence("a/b/c"), None);
        assert_eq!(essence("/png"), None);
    }

    #[test]
    fn patterns() {
        let image = MimePattern::parse("image/*").expect("valid");
        assert!(image.matches("image/png"));
        assert!(!image.matches("video/mp4"));
        let plain = MimePattern::parse("text/plain").expect("valid");
        assert!(plain.matches("text/plain; charset=utf-8"));
        assert!(!plain.matches("text/html"));
        assert!(MimePattern::parse("*/*").expect("valid").matches("a/b"));
        assert!(MimePattern::parse("png").is_err());
        assert!(MimePattern::parse("image/png; q=1").is_err());
    }
}
