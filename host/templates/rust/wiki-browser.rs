//! A title browser over the shared Wikipedia index (the host needs `--index`):
//! `/titles/{prefix}` lists titles that start with a prefix as links
//! (`?limit=`, default 20); `/page/{title}` shows a page's wikitext.

use percore_guest::{Guest, Params, Request, Response, Router, html, url, wiki};

struct Browser;

impl Guest for Browser {
    fn handle(req: Request) -> Response {
        Router::new()
            .get("/titles/{prefix...}", titles)
            .get("/page/{title...}", page)
            .handle(&req)
    }
}

fn titles(req: &Request, params: &Params) -> Response {
    let prefix = params.get("prefix");
    let mut list = String::from("<ul>\n");
    for page in wiki::titles(prefix, req.query_or("limit", 20)) {
        let href = format!("{}/page/{}", params.base(), url::encode(&page.title));
        let title = html::escape(&page.title);
        list += &format!("<li><a href=\"{href}\">{title}</a></li>\n");
    }
    let heading = format!("Titles: {prefix}…");
    Response::html(200, html::page(&heading, &(list + "</ul>")))
}

fn page(_req: &Request, params: &Params) -> Response {
    match wiki::page_text(params.get("title")) {
        Some(article) => {
            let text = format!("<pre>{}</pre>", html::escape(&article.text));
            Response::html(200, html::page(&article.page.title, &text))
        }
        None => Response::html(404, html::page("No such page", "")),
    }
}

percore_guest::export_handler!(Browser);
