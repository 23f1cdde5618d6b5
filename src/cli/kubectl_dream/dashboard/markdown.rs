//! `MEMORY.md` as HTML that cannot act: memory text was learned from transcripts that customers
//! and tools wrote, so raw HTML in it is shown as text, and links and images become their text
//! (nothing on the page points or loads elsewhere because an entry says so).

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd, html};

/// Renders Markdown to inert HTML: text escaped, no raw HTML, no links, no images.
pub fn render(markdown: &str) -> String {
    let events = Parser::new_ext(markdown, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH).filter_map(
        |event| match event {
            Event::Html(text) | Event::InlineHtml(text) => Some(Event::Text(text)),
            Event::Start(Tag::Link { .. } | Tag::Image { .. } | Tag::HtmlBlock)
            | Event::End(TagEnd::Link | TagEnd::Image | TagEnd::HtmlBlock) => None,
            other => Some(other),
        },
    );
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, events);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structure_is_rendered() {
        let html = render("# Memory\n\n## Lessons\n\n- Look up by **billing id**.\n");
        assert!(html.contains("<h1>Memory</h1>"), "{html}");
        assert!(
            html.contains("<li>Look up by <strong>billing id</strong>.</li>"),
            "{html}"
        );
    }

    #[test]
    fn hostile_text_stays_text() {
        let html = render(
            "- <script>alert(1)</script>\n- <img src=x onerror=alert(1)>\n- [click](javascript:alert(1))\n- ![t](http://evil.example/x.png)\n\n<div onclick=\"x\">block</div>\n",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<a "), "{html}");
        assert!(!html.contains("<div"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(html.contains("click"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("evil.example"), "{html}");
    }
}
