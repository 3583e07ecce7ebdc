//! The XEP-0363 slot request and the error payloads its refusals carry.
//!
//! The `<request/>` is read by hand rather than with xmpp-parsers'
//! `SlotRequest`, so that each malformed attribute gets the precise error
//! Prosody's mod_http_file_share gives (clients and Prosody's own
//! conformance scripts expect those texts), not one generic parse error.

use satellite::xmpp::stanza_error::{DefinedCondition, ErrorType};
use satellite::{Element, HandlerError};
/// `urn:xmpp:http:upload:0`.
pub const NS: &str = "urn:xmpp:http:upload:0";

/// Longest file name kept, in bytes (longer ones are shortened, keeping
/// the extension): the limit of common file systems, which a downloading
/// client will use.
pub const MAX_FILENAME: usize = 255;

/// A slot request, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRequest {
    /// The file name, sanitised.
    pub filename: String,
    /// Bytes.
    pub size: u64,
    /// The MIME type (lowercase `type/subtype`), if the client gave one.
    pub content_type: Option<String>,
}

impl SlotRequest {
    /// Reads a `<request filename size content-type/>`.
    pub fn parse(el: &Element) -> Result<Self, HandlerError> {
        let filename = el
            .attr("filename")
            .and_then(sanitise_filename)
            .ok_or_else(|| HandlerError::bad_request("Invalid filename"))?;
        let size = el
            .attr("size")
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| HandlerError::bad_request("File size must be positive integer"))?;
        let content_type = match el.attr("content-type").map(str::trim) {
            None | Some("") => None,
            Some(t) => Some(
                crate::mime::essence(t)
                    .ok_or_else(|| HandlerError::bad_request("Invalid content type"))?,
            ),
        };
        Ok(Self {
            filename,
            size,
            content_type,
        })
    }
}

/// The file name a slot is issued for, or `None` when it cannot be one:
/// empty, `.`/`..`, or holding a path separator (the URL path would then
/// not name one file). Control characters become `_`; a name longer than
/// [`MAX_FILENAME`] bytes is shortened, keeping its extension.
pub fn sanitise_filename(name: &str) -> Option<String> {
    if name.contains(['/', '\\']) {
        return None;
    }
    let cleaned: String = name
        .trim()
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        return None;
    }
    if cleaned.len() <= MAX_FILENAME {
        return Some(cleaned);
    }
    let ext = cleaned
        .rfind('.')
        .map(|i| &cleaned[i..])
        .filter(|e| e.len() <= 16)
        .unwrap_or("");
    let mut stem_end = MAX_FILENAME - ext.len();
    while !cleaned.is_char_boundary(stem_end) {
        stem_end -= 1;
    }
    // Cut inside a run of spaces, the name could end in white space, or
    // be `..` followed by spaces.
    let short = format!("{}{ext}", &cleaned[..stem_end]);
    let short = short.trim_end();
    (!short.is_empty() && short != "." && short != "..").then(|| short.to_owned())
}

pub use payload::{FileTooLarge, Retry};

mod payload {
    // The xso derive converts extracted text through `From` (u64 to u64).
    #![allow(clippy::useless_conversion)]

    use super::NS;
    use xso::{AsXml, FromXml};

    /// `<file-too-large><max-file-size>N</max-file-size></file-too-large>`.
    #[derive(FromXml, AsXml, Debug, Clone, PartialEq)]
    #[xml(namespace = NS, name = "file-too-large")]
    pub struct FileTooLarge {
        /// The largest file the service takes, in bytes.
        #[xml(extract(name = "max-file-size", fields(text(type_ = u64))))]
        pub max_file_size: u64,
    }

    /// `<retry stamp='…'/>`: when a quota allows the request again.
    #[derive(FromXml, AsXml, Debug, Clone, PartialEq)]
    #[xml(namespace = NS, name = "retry")]
    pub struct Retry {
        /// XEP-0082 date-time (UTC).
        #[xml(attribute)]
        pub stamp: String,
    }

    impl Retry {
        /// A retry at `unix` seconds.
        pub fn at(unix: i64) -> Self {
            let stamp = chrono::DateTime::from_timestamp(unix, 0)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            Self { stamp }
        }
    }
}

/// Which quota a slot request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// Bytes of slots per user per 24 h.
    Daily,
    /// Bytes stored per user.
    User,
    /// Bytes stored in all.
    Global,
    /// Slots of the user open for a PUT at once (`max_open_slots`).
    OpenSlots,
}

/// The refusals of a slot request, as XEP-0363 §5 and Prosody word them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The requester is not allowed (`forbidden`, auth).
    Access,
    /// Larger than `max_file_size` (`not-acceptable` + `<file-too-large/>`).
    TooLarge(u64),
    /// The type is not in `allowed_types` (`not-acceptable`).
    Type,
    /// A quota is used up (`resource-constraint`, wait, + `<retry/>` when
    /// known).
    Quota {
        /// Which quota.
        which: Quota,
        /// When the request would fit again (unix seconds), if known.
        retry_at: Option<i64>,
    },
    /// The disk is too full (`resource-constraint`, wait).
    Disk,
}

impl Refusal {
    /// A label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Access => "forbidden",
            Self::TooLarge(_) => "too_large",
            Self::Type => "type",
            Self::Quota { which, .. } => match which {
                Quota::Daily => "daily_quota",
                Quota::User => "user_quota",
                Quota::Global => "global_quota",
                Quota::OpenSlots => "open_slots",
            },
            Self::Disk => "disk_full",
        }
    }
}

impl From<Refusal> for HandlerError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Access => HandlerError::forbidden("You may not upload files here"),
            Refusal::TooLarge(max) => HandlerError::not_acceptable("File too large")
                .with_app_condition(FileTooLarge { max_file_size: max }.into()),
            Refusal::Type => HandlerError::not_acceptable("File type not allowed"),
            Refusal::Quota { which, retry_at } => {
                let text = match which {
                    Quota::Daily => "Daily quota reached",
                    Quota::User => "Your storage quota is used up",
                    Quota::Global => "Server storage quota reached",
                    Quota::OpenSlots => "Too many uploads not yet made; finish them first",
                };
                let e = HandlerError::new(
                    ErrorType::Wait,
                    DefinedCondition::ResourceConstraint,
                    Some(text),
                );
                match retry_at {
                    Some(t) => e.with_app_condition(Retry::at(t).into()),
                    None => e,
                }
            }
            Refusal::Disk => HandlerError::resource_constraint("The server is out of storage"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(attrs: &str) -> Result<SlotRequest, String> {
        let el: Element = format!("<request xmlns='{NS}' {attrs}/>")
            .parse()
            .expect("xml");
        SlotRequest::parse(&el).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_the_xep_example() {
        // XEP-0363 Example 4.
        let r = request("filename='très cool.jpg' size='23456' content-type='image/jpeg'")
            .expect("valid");
        assert_eq!(r.filename, "très cool.jpg");
        assert_eq!(r.size, 23456);
        assert_eq!(r.content_type.as_deref(), Some("image/jpeg"));
        let r = request("filename='a' size='0'").expect("valid");
        assert_eq!(r.content_type, None);
    }

    #[test]
    fn refuses_bad_attributes_as_prosody_does() {
        assert_eq!(
            request("filename='invalid/filename.dat' size='1000'").expect_err("slash"),
            "stanza error bad-request: Invalid filename"
        );
        assert_eq!(
            request("filename='negative.dat' size='-1000'").expect_err("negative"),
            "stanza error bad-request: File size must be positive integer"
        );
        assert!(request("size='1'").is_err());
        assert!(request("filename='..' size='1'").is_err());
        assert!(request("filename='x' size='1.5'").is_err());
        assert!(request("filename='x' size='1' content-type='bogus'").is_err());
    }

    #[test]
    fn sanitises_names() {
        assert_eq!(
            sanitise_filename("a\tb\u{7}.txt").as_deref(),
            Some("a_b_.txt")
        );
        let long = format!("{}.jpeg", "é".repeat(200));
        let short = sanitise_filename(&long).expect("kept");
        assert!(
            short.len() <= MAX_FILENAME && short.ends_with(".jpeg"),
            "{short}"
        );
        assert_eq!(sanitise_filename("a\\b"), None);
        // Found by the filename_sanitise fuzz target: shortened, this was
        // `..` and 253 spaces.
        let dots = format!("..{}x", " ".repeat(300));
        assert_eq!(sanitise_filename(&dots), None);
        let spaced = format!("{}{}x", "a".repeat(250), " ".repeat(20));
        assert_eq!(sanitise_filename(&spaced), Some("a".repeat(250)));
    }

    #[test]
    fn error_payloads_round_trip() {
        // XEP-0363 Example 6.
        let xml = format!(
            "<file-too-large xmlns='{NS}'><max-file-size>20000</max-file-size></file-too-large>"
        );
        let el: Element = xml.parse().expect("xml");
        let parsed = FileTooLarge::try_from(el.clone()).expect("parses");
        assert_eq!(parsed.max_file_size, 20000);
        assert_eq!(Element::from(parsed), el);
        // XEP-0363 Example 7.
        let el: Element = format!("<retry xmlns='{NS}' stamp='2017-12-03T23:42:05Z'/>")
            .parse()
            .expect("xml");
        assert_eq!(
            Retry::try_from(el.clone()).expect("parses"),
            Retry::at(1_512_344_525)
        );
        assert_eq!(Element::from(Retry::at(1_512_344_525)), el);
    }
}
