//! [`Router`]: a handler's routes by method and path pattern, matched below
//! the route prefix the handler is mounted at, with 404 and 405 answers.
//!
//! A pattern is a path whose segments are literals, `{name}` (one segment)
//! or, last, `{name...}` (the rest of the path, slashes included, possibly
//! empty): `/`, `/titles`, `/page/{title}`, `/files/{path...}`. Parameters
//! reach the handler percent-decoded, through [`Params`].
//!
//! Where a handler is mounted: percore passes a handler the whole path it
//! was asked for (`/browse/page/Rust` for a handler deployed at `/browse`),
//! and the route's prefix and the path below it in the request's header
//! fields [`ROUTE_HEADER`] (`/browse`) and [`PATH_INFO_HEADER`]
//! (`/page/Rust`). The router matches its patterns against the path below
//! the prefix, and hands the prefix on as [`Params::base`], for links that
//! work wherever the handler is deployed. (Without those fields, as from
//! another host, it matches the whole path.)

use crate::{Request, Response, url};

/// The request header field that holds the prefix of the route the
/// handler is deployed at (`/browse`; `/` at the root). The host sets it.
pub const ROUTE_HEADER: &str = "x-percore-route";

/// The request header field that holds the path below the route's prefix
/// (`/page/Rust`; `/` for the prefix itself), still percent-encoded and
/// without the query. The host sets it.
pub const PATH_INFO_HEADER: &str = "x-percore-path-info";

/// A handler of a route: the request and its path parameters in, the
/// response out.
type Handler = Box<dyn Fn(&Request, &Params) -> Response>;

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches exactly this text (compared before percent-decoding).
    Literal(String),
    /// `{name}`: one non-empty segment.
    One(String),
    /// `{name...}`: the rest of the path.
    Rest(String),
}

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// As written, for messages.
    text: String,
    segments: Vec<Segment>,
}

impl Pattern {
    /// Parses `text`; panics with the pattern named when it is malformed
    /// (a pattern is part of the program, not of its input).
    fn parse(text: &str) -> Pattern {
        assert!(
            text.starts_with('/'),
            "route pattern {text:?} must start with '/'"
        );
        let mut segments = Vec::new();
        let parts: Vec<&str> = segments_of(text).collect();
        for (i, part) in parts.iter().enumerate() {
            let segment = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => match name.strip_suffix("...") {
                    Some(name) => {
                        assert!(
                            i + 1 == parts.len(),
                            "route pattern {text:?}: {{{name}...}} must be the last segment"
                        );
                        Segment::Rest(name.to_owned())
                    }
                    None => Segment::One(name.to_owned()),
                },
                None => {
                    assert!(
                        !part.contains(['{', '}']),
                        "route pattern {text:?}: write a parameter as a whole segment, /{{name}}"
                    );
                    Segment::Literal((*part).to_owned())
                }
            };
            segments.push(segment);
        }
        Pattern {
            text: text.to_owned(),
            segments,
        }
    }

    /// The parameters when `path` (below the mount point) matches.
    fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let mut params = Vec::new();
        let mut rest = path.strip_prefix('/').unwrap_or(path);
        for segment in &self.segments {
            if let Segment::Rest(name) = segment {
                params.push((name.clone(), url::decode(rest)));
                return Some(params);
            }
            if rest.is_empty() {
                return None;
            }
            let (part, after) = rest.split_once('/').unwrap_or((rest, ""));
            match segment {
                Segment::Literal(literal) if literal == part => {}
                Segment::One(name) if !part.is_empty() => {
                    params.push((name.clone(), url::decode(part)));
                }
                _ => return None,
            }
            rest = after;
        }
        rest.is_empty().then_some(params)
    }
}

/// The segments of a pattern or path, without the leading `/` and without
/// a trailing empty one (`/a/b/` is `a`, `b`; `/` is none).
fn segments_of(path: &str) -> impl Iterator<Item = &str> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    path.split('/').filter(move |_| !path.is_empty())
}

/// The path parameters of a matched route, percent-decoded, and the path
/// the handler is mounted at.
#[derive(Debug, Clone, Default)]
pub struct Params {
    values: Vec<(String, String)>,
    base: String,
    pattern: String,
}

impl Params {
    /// The value of parameter `name` of the matched pattern.
    ///
    /// # Panics
    ///
    /// When the pattern has no parameter `name` (a mistake in the program,
    /// reported with the pattern; use [`Params::try_get`] to ask).
    pub fn get(&self, name: &str) -> &str {
        self.try_get(name).unwrap_or_else(|| {
            panic!(
                "route pattern {:?} has no parameter {{{name}}}",
                self.pattern
            )
        })
    }

    /// The value of parameter `name`, if the matched pattern has one.
    pub fn try_get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path the handler is mounted at, without a trailing `/` (`""` at
    /// the root, `/browse` when deployed at `/browse`), still
    /// percent-encoded: prefix it to the links a handler writes,
    /// `format!("{}/page/{}", params.base(), url::encode(title))`.
    pub fn base(&self) -> &str {
        &self.base
    }
}

/// A handler's routes: `(method, pattern, handler)`, tried in the order
/// they were added.
///
/// ```ignore
/// Router::new()
///     .get("/", index)
///     .get("/page/{title}", page)
///     .post("/notes", add_note)
///     .handle(&req)
/// ```
///
/// [`handle`](Router::handle) answers with the first route whose method
/// and pattern match (`HEAD` is served by `GET` routes); when a pattern
/// matches but no method does, with `405 Method Not Allowed` and an
/// `Allow` header; when nothing matches, with `404 Not Found`.
#[derive(Default)]
pub struct Router {
    routes: Vec<(String, Pattern, Handler)>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.routes.iter().map(|(m, p, _)| (m, &p.text)))
            .finish()
    }
}

impl Router {
    /// A router without routes (it answers 404 to everything).
    pub fn new() -> Router {
        Router::default()
    }

    /// Adds a route for `method` (upper case, e.g. `"PATCH"`).
    ///
    /// # Panics
    ///
    /// When `pattern` is malformed (it must start with `/`, and `{x...}`
    /// must be its last segment).
    pub fn route(
        mut self,
        method: &str,
        pattern: &str,
        handler: impl Fn(&Request, &Params) -> Response + 'static,
    ) -> Router {
        self.routes.push((
            method.to_ascii_uppercase(),
            Pattern::parse(pattern),
            Box::new(handler),
        ));
        self
    }

    /// Adds a `GET` (and `HEAD`) route.
    pub fn get(
        self,
        pattern: &str,
        handler: impl Fn(&Request, &Params) -> Response + 'static,
    ) -> Router {
        self.route("GET", pattern, handler)
    }

    /// Adds a `POST` route.
    pub fn post(
        self,
        pattern: &str,
        handler: impl Fn(&Request, &Params) -> Response + 'static,
    ) -> Router {
        self.route("POST", pattern, handler)
    }

    /// Adds a `PUT` route.
    pub fn put(
        self,
        pattern: &str,
        handler: impl Fn(&Request, &Params) -> Response + 'static,
    ) -> Router {
        self.route("PUT", pattern, handler)
    }

    /// Adds a `DELETE` route.
    pub fn delete(
        self,
        pattern: &str,
        handler: impl Fn(&Request, &Params) -> Response + 'static,
    ) -> Router {
        self.route("DELETE", pattern, handler)
    }

    /// Answers `req` with the matching route's handler, or 404 or 405.
    pub fn handle(&self, req: &Request) -> Response {
        let found = match req.header(PATH_INFO_HEADER) {
            Some(path) => self.find(&req.method, &path),
            None => self.find(&req.method, &req.path),
        };
        match found {
            Found::Route(index, mut params) => {
                if let Some(route) = req.header(ROUTE_HEADER) {
                    params.base = route.trim_end_matches('/').to_owned();
                }
                (self.routes[index].2)(req, &params)
            }
            Found::WrongMethod(allow) => {
                Response::text(405, format!("method {} not allowed here\n", req.method))
                    .with_header("allow", &allow)
            }
            Found::Nothing => Response::not_found(),
        }
    }

    /// Which route answers `method` on `path` (below the route's prefix).
    fn find(&self, method: &str, path: &str) -> Found {
        let mut allow: Vec<&str> = Vec::new();
        for (index, (route_method, pattern, _)) in self.routes.iter().enumerate() {
            let Some(values) = pattern.matches(path) else {
                continue;
            };
            if route_method == method || (method == "HEAD" && route_method == "GET") {
                return Found::Route(
                    index,
                    Params {
                        values,
                        base: String::new(),
                        pattern: pattern.text.clone(),
                    },
                );
            }
            if !allow.contains(&route_method.as_str()) {
                allow.push(route_method);
            }
        }
        if allow.is_empty() {
            return Found::Nothing;
        }
        if allow.contains(&"GET") {
            allow.push("HEAD");
        }
        Found::WrongMethod(allow.join(", "))
    }
}

/// What [`Router::find`] found.
#[derive(Debug, PartialEq)]
enum Found {
    /// The route at this index, with the parameters.
    Route(usize, Params),
    /// Patterns match but not for this method: the `Allow` value.
    WrongMethod(String),
    Nothing,
}

impl PartialEq for Params {
    fn eq(&self, other: &Params) -> bool {
        self.values == other.values && self.base == other.base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let ok = |_: &Request, _: &Params| Response::not_found();
        Router::new()
            .get("/", ok)
            .get("/titles/{prefix...}", ok)
            .get("/page/{title}", ok)
            .post("/page/{title}", ok)
            .get("/page/{title}/links", ok)
    }

    fn params(values: &[(&str, &str)]) -> Params {
        Params {
            values: values
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            base: String::new(),
            pattern: String::new(),
        }
    }

    #[test]
    fn routes_match_by_method_and_pattern() {
        let r = router();
        assert_eq!(r.find("GET", "/"), Found::Route(0, params(&[])));
        assert_eq!(r.find("GET", ""), Found::Route(0, params(&[])));
        assert_eq!(
            r.find("GET", "/page/Rust%20(film)"),
            Found::Route(2, params(&[("title", "Rust (film)")]))
        );
        assert_eq!(
            r.find("HEAD", "/page/AT%26T/links"),
            Found::Route(4, params(&[("title", "AT&T")]))
        );
        assert_eq!(
            r.find("GET", "/titles/AC/DC"),
            Found::Route(1, params(&[("prefix", "AC/DC")]))
        );
        assert_eq!(
            r.find("GET", "/titles"),
            Found::Route(1, params(&[("prefix", "")]))
        );
        assert_eq!(
            r.find("GET", "/titles/"),
            Found::Route(1, params(&[("prefix", "")]))
        );
        assert_eq!(
            r.find("POST", "/page/x"),
            Found::Route(3, params(&[("title", "x")]))
        );
    }

    #[test]
    fn wrong_methods_and_unknown_paths() {
        let r = router();
        assert_eq!(
            r.find("DELETE", "/page/x"),
            Found::WrongMethod("GET, POST, HEAD".into())
        );
        assert_eq!(r.find("POST", "/"), Found::WrongMethod("GET, HEAD".into()));
        assert_eq!(r.find("GET", "/nope"), Found::Nothing);
        assert_eq!(r.find("GET", "/w/page/x"), Found::Nothing);
        let r = Router::new().get("/page/{title}", |_, _| Response::not_found());
        assert_eq!(r.find("GET", "/page"), Found::Nothing);
        assert_eq!(r.find("GET", "/page/"), Found::Nothing);
        assert_eq!(r.find("GET", "/page/a/b"), Found::Nothing);
        assert_eq!(Router::new().find("GET", "/"), Found::Nothing);
    }

    #[test]
    #[should_panic(expected = "must be the last segment")]
    fn a_rest_parameter_must_come_last() {
        Pattern::parse("/a/{rest...}/b");
    }
}
