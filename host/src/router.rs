//! The router: longest-prefix matching of request paths to routes, at
//! segment boundaries. Pure and unit-tested; it knows nothing of HTTP or wasm.

/// Longest route prefix, in bytes.
pub const MAX_PREFIX_LEN: usize = 256;

/// A prefix as users write it, normalised: trailing slashes dropped
/// (`/page/` is `/page`; `/`, `//` are `/`). Everything else is left for
/// [`validate_prefix`] to judge.
pub fn normalize_prefix(prefix: &str) -> &str {
    match prefix.trim_end_matches('/') {
        "" if prefix.starts_with('/') => "/",
        trimmed => trimmed,
    }
}

/// Checks that `prefix` is a valid route prefix: `/`, or `/` followed by
/// segments separated by single `/`s, each made of the characters RFC 3986
/// calls unreserved (ASCII letters, digits, `-`, `.`, `_`, `~`) and none
/// `.` or `..`; at most [`MAX_PREFIX_LEN`] bytes, no trailing `/`. So a
/// prefix means one thing: no percent-encoding (`/a%2Fb`, `/%00`), no
/// empty or dot segments (`/a//b`, `/..`), no query or fragment.
pub fn validate_prefix(prefix: &str) -> Result<(), String> {
    let shown = || {
        let mut shown: String = prefix.chars().take(64).collect();
        if shown.len() < prefix.len() {
            shown.push('…');
        }
        format!("{shown:?}")
    };
    if !prefix.starts_with('/') {
        return Err(format!("route prefix {} must start with '/'", shown()));
    }
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(format!(
            "route prefix {} is {} bytes long; the most is {MAX_PREFIX_LEN}",
            shown(),
            prefix.len()
        ));
    }
    if prefix == "/" {
        return Ok(());
    }
    if prefix.ends_with('/') {
        return Err(format!("route prefix {} must not end with '/'", shown()));
    }
    for segment in prefix[1..].split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(format!(
                "route prefix {} has an empty, '.' or '..' segment",
                shown()
            ));
        }
        if let Some(bad) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')))
        {
            return Err(format!(
                "route prefix {} holds {bad:?}: a prefix's segments are made of ASCII letters, digits, '-', '.', '_' and '~'",
                shown()
            ));
        }
    }
    Ok(())
}

/// The part of `path` below the route `prefix` that matched it (the
/// `x-percore-path-info` a handler gets): it starts with `/`, and is `/`
/// when the path is the prefix itself.
pub fn path_info<'a>(prefix: &str, path: &'a str) -> &'a str {
    let rest = if prefix == "/" {
        path
    } else {
        path.strip_prefix(prefix).unwrap_or(path)
    };
    if rest.is_empty() { "/" } else { rest }
}

/// Maps path prefixes to values of `T`.
#[derive(Clone, Debug)]
pub struct Router<T> {
    /// Routes sorted by prefix length, longest first, so the first match is
    /// the longest. A linear scan beats a trie for the handful of routes a
    /// host serves.
    routes: Vec<(String, T)>,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Router { routes: Vec::new() }
    }
}

impl<T> Router<T> {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route, replacing one with the same prefix. The prefix must pass
    /// [`validate_prefix`].
    pub fn insert(&mut self, prefix: &str, value: T) -> Result<(), String> {
        validate_prefix(prefix)?;
        self.routes.retain(|(p, _)| p != prefix);
        let at = self
            .routes
            .iter()
            .position(|(p, _)| p.len() < prefix.len())
            .unwrap_or(self.routes.len());
        self.routes.insert(at, (prefix.to_owned(), value));
        Ok(())
    }

    /// The value of the longest prefix that matches `path`.
    pub fn route(&self, path: &str) -> Option<&T> {
        self.routes
            .iter()
            .find(|(prefix, _)| matches(prefix, path))
            .map(|(_, value)| value)
    }

    /// All routes, longest prefix first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.routes.iter().map(|(p, v)| (p.as_str(), v))
    }

    /// The number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// Whether `prefix` matches `path` at a segment boundary.
fn matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router<&'static str> {
        let mut r = Router::new();
        r.insert("/", "root").unwrap();
        r.insert("/api", "api").unwrap();
        r.insert("/api/v2", "v2").unwrap();
        r
    }

    #[test]
    fn trailing_slashes_are_dropped() {
        for (given, normal) in [
            ("/page/", "/page"),
            ("/a/b//", "/a/b"),
            ("/", "/"),
            ("//", "/"),
            ("/page", "/page"),
            ("page/", "page"),
        ] {
            assert_eq!(normalize_prefix(given), normal, "{given}");
        }
        assert!(validate_prefix(normalize_prefix("/page/")).is_ok());
    }

    #[test]
    fn longest_prefix_wins() {
        let r = router();
        assert_eq!(r.route("/api/v2/x"), Some(&"v2"));
        assert_eq!(r.route("/api/v2"), Some(&"v2"));
        assert_eq!(r.route("/api/v3"), Some(&"api"));
        assert_eq!(r.route("/api"), Some(&"api"));
        assert_eq!(r.route("/"), Some(&"root"));
        assert_eq!(r.route("/other"), Some(&"root"));
    }

    #[test]
    fn segment_boundaries() {
        let mut r = Router::new();
        r.insert("/api", 1).unwrap();
        assert_eq!(r.route("/apix"), None);
        assert_eq!(r.route("/ap"), None);
        assert_eq!(r.route("/"), None);
        assert_eq!(r.route("/api/"), Some(&1));
    }

    #[test]
    fn path_info_is_the_path_below_the_prefix() {
        for (prefix, path, info) in [
            ("/", "/", "/"),
            ("/", "/a/b", "/a/b"),
            ("/api", "/api", "/"),
            ("/api", "/api/", "/"),
            ("/api", "/api/v1/x", "/v1/x"),
            ("/a/b", "/a/b/c%20d", "/c%20d"),
        ] {
            assert_eq!(path_info(prefix, path), info, "{prefix} {path}");
        }
    }

    #[test]
    fn insert_replaces_and_validates() {
        let mut r = router();
        r.insert("/api", "new").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r.route("/api/x"), Some(&"new"));
        assert!(r.insert("api", "x").is_err());
        assert!(r.insert("/api/", "x").is_err());
        assert!(r.insert("/a?b", "x").is_err());
    }

    #[test]
    fn prefixes_mean_one_thing() {
        for good in ["/", "/a", "/api/v2", "/a.b/c-d/e_f~g", "/v1.2"] {
            assert!(validate_prefix(good).is_ok(), "{good}");
        }
        let long = format!("/{}", "a".repeat(60_000));
        for bad in [
            "",
            "a",
            "/a/",
            "/..%2F..%2Fetc",
            "/a//b",
            "/%00",
            "/a/../b",
            "/.",
            "/a b",
            "/a?b",
            "/a#b",
            "/caf\u{e9}",
            long.as_str(),
        ] {
            let err = validate_prefix(bad).unwrap_err();
            assert!(err.len() < 300, "a short message for {bad:?}: {err}");
        }
    }
}
