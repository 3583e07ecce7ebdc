//! The file a request path names: `…/<slot id>/<file name>`.
//!
//! Only the last two segments count, so the service works whether a
//! reverse proxy in front strips the public URL's path prefix or not.

use percent_encoding::percent_decode_str;

use crate::slot::valid_id;

/// The slot id and decoded file name of a request path, if it names one.
pub fn parse(path: &str) -> Option<(String, String)> {
    let mut segments = path.rsplit('/').filter(|s| !s.is_empty());
    let filename = segments.next()?;
    let id = segments.next()?;
    if !valid_id(id) {
        return None;
    }
    let filename = percent_decode_str(filename).decode_utf8().ok()?;
    if filename.contains('/') || filename.is_empty() {
        return None;
    }
    Some((id.to_owned(), filename.into_owned()))
}

/// The path of an absolute URL (`https://host/a/b?q` → `/a/b`); a string
/// that is not an absolute URL is taken as a path already.
pub fn url_path(url: &str) -> &str {
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => url,
    };
    path.split(['?', '#']).next().unwrap_or(path)
}

/// The decoded path below the public URL's own path (`/files/a/b.txt`
/// with a public URL of `https://host/files/` → `a/b.txt`); a path without
/// that prefix (a reverse proxy stripped it) is taken whole.
pub fn relative_path(path: &str, public_url: &str) -> Option<String> {
    let prefix = url_path(public_url);
    let rest = path.strip_prefix(prefix).unwrap_or(path);
    let segments: Option<Vec<String>> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(|d| d.into_owned())
        })
        .collect();
    Some(segments?.join("/"))
}

/// The value of `key` in a query string (percent-decoded).
pub fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| {
            percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_two_segments() {
        assert_eq!(
            parse("/AbCdEfGh12/tr%C3%A8s%20cool.jpg"),
            Some(("AbCdEfGh12".into(), "très cool.jpg".into()))
        );
        assert_eq!(
            parse("/upload/AbCdEfGh12/a.txt"),
            Some(("AbCdEfGh12".into(), "a.txt".into()))
        );
        assert_eq!(parse("/a.txt"), None);
        assert_eq!(parse("/../a.txt"), None);
        assert_eq!(parse("/AbCdEfGh12/a%2Fb"), None);
        assert_eq!(parse("/AbCdEfGh12/%FF"), None);
    }

    #[test]
    fn paths_of_urls() {
        assert_eq!(url_path("https://h:1/a/b.txt?token=x#f"), "/a/b.txt");
        assert_eq!(url_path("https://h"), "/");
        assert_eq!(url_path("/a/b"), "/a/b");
    }

    #[test]
    fn relative_to_the_public_url() {
        let r = |p, u| relative_path(p, u);
        assert_eq!(
            r("/abc/a%20b.txt", "http://h:1/").as_deref(),
            Some("abc/a b.txt")
        );
        assert_eq!(
            r("/files/u/r/f.txt", "https://h/files/").as_deref(),
            Some("u/r/f.txt")
        );
        assert_eq!(
            r("/u/r/f.txt", "https://h/files/").as_deref(),
            Some("u/r/f.txt")
        );
        assert_eq!(r("/a/%FF", "http://h/"), None);
    }

    #[test]
    fn query() {
        let q = Some("v2=abc&token=1.x%2Dy&flag");
        assert_eq!(query_param(q, "token").as_deref(), Some("1.x-y"));
        assert_eq!(query_param(q, "v2").as_deref(), Some("abc"));
        assert_eq!(query_param(q, "flag").as_deref(), Some(""));
        assert_eq!(query_param(q, "v"), None);
        assert_eq!(query_param(None, "v"), None);
    }
}
