//! The HTML documents around rendered articles: [`article_page`] and
//! [`message_page`] (redirect loops, missing pages). Both load the search
//! box's script from `/search.js` and nothing inline, so that a
//! `Content-Security-Policy` of `script-src 'self'` holds.

use crate::html::{escape, read_path};

/// The style sheet, inline (the policy allows inline styles, not scripts).
const STYLE: &str = "body{font:16px/1.6 Georgia,serif;margin:0 auto;max-width:62rem;padding:0 1rem 2rem;color:#202122}\
header{display:flex;gap:.75rem;align-items:center;padding:.5rem 0;border-bottom:1px solid #a2a9b1;font-family:system-ui,sans-serif;position:relative}\
header a.home{font-weight:bold;color:#202122;text-decoration:none;white-space:nowrap}\
header form{flex:1;position:relative}\
#q{width:100%;font-size:1rem;padding:.35rem .5rem;box-sizing:border-box}\
#suggestions{list-style:none;margin:0;padding:0;border:1px solid #ccc;position:absolute;left:0;right:0;background:#fff;z-index:2}\
#suggestions:empty{display:none}\
#suggestions li{padding:.25rem .5rem;cursor:pointer}\
#suggestions li[aria-selected=true],#suggestions li:hover{background:#eaf3ff}\
h1{font-weight:normal;border-bottom:1px solid #a2a9b1;margin:.75rem 0 .25rem}\
h2{font-weight:normal;border-bottom:1px solid #a2a9b1}\
.redirected{color:#54595d;font-size:.9rem;margin:0 0 .5rem}dt{font-weight:bold}\
a{color:#0645ad}a.new{color:#ba0000}a.external{color:#36b}\
.infobox{float:right;clear:right;margin:0 0 1rem 1rem;border:1px solid #a2a9b1;background:#f8f9fa;font-size:.88rem;max-width:22rem;border-collapse:collapse}\
.infobox caption{font-weight:bold;font-size:1.1rem}\
.infobox th,.infobox td{text-align:left;vertical-align:top;padding:.2rem .4rem;border-top:1px solid #eaecf0}\
.wikitable{border-collapse:collapse;background:#f8f9fa;margin:1rem 0}\
.wikitable th,.wikitable td{border:1px solid #a2a9b1;padding:.2rem .4rem}\
.wikitable th{background:#eaecf0}\
.toc{display:inline-block;border:1px solid #a2a9b1;background:#f8f9fa;padding:.5rem 1rem;font-size:.9rem}\
.toc ul{list-style:none;margin:0;padding:0}.toc h2{font-size:1rem;border:0;margin:0;font-weight:bold}\
.toclevel-2{padding-left:1.2em}.toclevel-3{padding-left:2.4em}.toclevel-4{padding-left:3.6em}\
.tocnumber{color:#54595d}\
pre{background:#f8f9fa;border:1px solid #eaecf0;padding:.75rem;white-space:pre-wrap}\
.references{font-size:.9rem}.reference{font-size:.75em}\
.catlinks{border:1px solid #a2a9b1;background:#f8f9fa;padding:.3rem .6rem;margin-top:1.5rem;font-size:.9rem;font-family:system-ui,sans-serif}\
.catlinks ul{display:inline;padding:0}.catlinks li{display:inline;margin-right:.75rem}\
.truncated,.message{color:#54595d;font-style:italic}";

/// The document around `main`, given in parts (so that a large article
/// is copied once).
fn document(title: &str, canonical: Option<&str>, main: &[&str]) -> String {
    let len: usize = main.iter().map(|part| part.len()).sum();
    let mut html = String::with_capacity(len + STYLE.len() + 1024);
    html.push_str("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    html.push_str(&format!(
        "<title>{} \u{2014} percore reader</title>",
        escape(title)
    ));
    if let Some(canonical) = canonical {
        html.push_str(&format!("<link rel=\"canonical\" href=\"{canonical}\">"));
    }
    html.push_str("<style>");
    html.push_str(STYLE);
    html.push_str("</style><script src=\"/search.js\" defer></script></head><body>");
    html.push_str(
        "<header><a class=\"home\" href=\"/\">percore reader</a>\
         <form id=\"search\" action=\"/read/\" autocomplete=\"off\">\
         <input id=\"q\" type=\"search\" name=\"title\" placeholder=\"Search the dump\" aria-label=\"Search\">\
         <ul id=\"suggestions\" role=\"listbox\"></ul></form>\
         <a href=\"/random\">Random article</a></header>",
    );
    html.push_str("<main>");
    for part in main {
        html.push_str(part);
    }
    html.push_str("</main></body></html>");
    html
}

/// The page of an article: `title`, the note "Redirected from" when it was
/// reached through a redirect, and the rendered `body` (trusted HTML from
/// [`crate::render`]).
pub fn article_page(title: &str, redirected_from: Option<&str>, body: &str) -> String {
    let mut head = format!("<h1 id=\"firstHeading\">{}</h1>", escape(title));
    if let Some(from) = redirected_from {
        head.push_str(&format!(
            "<p class=\"redirected\">(Redirected from <a href=\"{}?redirect=no\">{}</a>)</p>",
            read_path(from),
            escape(from)
        ));
    }
    head.push_str("<div id=\"content\">");
    document(title, Some(&read_path(title)), &[&head, body, "</div>"])
}

/// A page with a heading and a message (`message_html`: trusted HTML, for
/// example with links made by [`read_path`]).
pub fn message_page(heading: &str, message_html: &str) -> String {
    let main = format!(
        "<h1 id=\"firstHeading\">{}</h1><div id=\"content\"><p class=\"message\">{message_html}</p></div>",
        escape(heading)
    );
    document(heading, None, &[&main])
}
