//! JSON output without serde: [`ToJson`] for strings, numbers, `bool`,
//! `Option`, slices and `Vec`s, [`wiki::Page`](crate::wiki::Page), and
//! objects built with [`json!`](crate::json!) or [`Object`]. (For parsing
//! JSON, or deriving it for your own types, add `serde_json`.)

use std::fmt::Write as _;

/// A value that writes itself as JSON.
pub trait ToJson {
    /// Appends the value's JSON text to `out`.
    fn write_json(&self, out: &mut String);
}

/// `value` as JSON text.
pub fn to_string(value: &(impl ToJson + ?Sized)) -> String {
    let mut out = String::new();
    value.write_json(&mut out);
    out
}

/// JSON text, written as it is: what [`json!`](crate::json!) and
/// [`Object::finish`] return, so that objects nest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Json(pub String);

impl ToJson for Json {
    fn write_json(&self, out: &mut String) {
        out.push_str(&self.0);
    }
}

impl std::fmt::Display for Json {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A JSON object, one field at a time:
/// `Object::new().field("id", &7).field("title", &"Rust").finish()`.
#[derive(Debug, Default)]
pub struct Object {
    out: String,
}

impl Object {
    /// An empty object.
    pub fn new() -> Object {
        Object::default()
    }

    /// The object with the field `key` set to `value` added.
    pub fn field(mut self, key: &str, value: &(impl ToJson + ?Sized)) -> Object {
        self.out.push(if self.out.is_empty() { '{' } else { ',' });
        key.write_json(&mut self.out);
        self.out.push(':');
        value.write_json(&mut self.out);
        self
    }

    /// The object's JSON text.
    pub fn finish(mut self) -> Json {
        if self.out.is_empty() {
            self.out.push('{');
        }
        self.out.push('}');
        Json(self.out)
    }
}

/// A JSON object from `"key": value` pairs, each value anything
/// [`ToJson`] (nested `json!` objects too):
///
/// ```
/// use percore_guest::json;
/// let id = 7;
/// let object = json!({"id": id, "tags": vec!["a", "b"], "next": json!({"ok": true})});
/// assert_eq!(object.0, r#"{"id":7,"tags":["a","b"],"next":{"ok":true}}"#);
/// ```
#[macro_export]
macro_rules! json {
    ({ $($key:literal : $value:expr),* $(,)? }) => {{
        let object = $crate::json::Object::new();
        $( let object = object.field($key, &$value); )*
        object.finish()
    }};
}

impl ToJson for str {
    fn write_json(&self, out: &mut String) {
        percore_httpkit::json_string(out, self);
    }
}

impl ToJson for String {
    fn write_json(&self, out: &mut String) {
        self.as_str().write_json(out);
    }
}

impl ToJson for bool {
    fn write_json(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl ToJson for $t {
            fn write_json(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
integers!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

impl ToJson for f64 {
    /// A finite number; `null` for NaN and the infinities (JSON has none).
    fn write_json(&self, out: &mut String) {
        if self.is_finite() {
            let _ = write!(out, "{self}");
        } else {
            out.push_str("null");
        }
    }
}

impl<T: ToJson + ?Sized> ToJson for &T {
    fn write_json(&self, out: &mut String) {
        (**self).write_json(out);
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn write_json(&self, out: &mut String) {
        match self {
            Some(value) => value.write_json(out),
            None => out.push_str("null"),
        }
    }
}

impl<T: ToJson> ToJson for [T] {
    fn write_json(&self, out: &mut String) {
        out.push('[');
        for (i, value) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            value.write_json(out);
        }
        out.push(']');
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn write_json(&self, out: &mut String) {
        self.as_slice().write_json(out);
    }
}

impl ToJson for crate::wiki::Page {
    /// `{"title", "id", "namespace", "first", "last", "redirect"}`
    /// (`redirect` is `null` when the page is not a redirect).
    fn write_json(&self, out: &mut String) {
        let object = Object::new()
            .field("title", &self.title)
            .field("id", &self.id)
            .field("namespace", &self.namespace)
            .field("first", &self.first)
            .field("last", &self.last)
            .field("redirect", &self.redirect);
        object.finish().write_json(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_objects_and_escapes() {
        assert_eq!(to_string("a\"b\n"), r#""a\"b\n""#);
        assert_eq!(to_string(&vec![1u32, 2]), "[1,2]");
        assert_eq!(to_string(&Option::<u8>::None), "null");
        assert_eq!(to_string(&f64::NAN), "null");
        assert_eq!(to_string(&1.5f64), "1.5");
        assert_eq!(Object::new().finish().0, "{}");
        let name = String::from("x");
        let object = crate::json!({"name": name, "n": -3i64, "nested": crate::json!({}),});
        assert_eq!(object.0, r#"{"name":"x","n":-3,"nested":{}}"#);
    }
}
