//! Quote removal on the HTML part, where clients mark quotes explicitly.
//!
//! Gmail, Apple Mail, Thunderbird, Outlook, Yahoo and others wrap the
//! quoted message in an element with a known class or id. We parse the
//! HTML with html2text's html5ever DOM, remove those elements (or, for
//! Outlook's reply header, everything from it to the end), and render
//! what is left with html2text. The text rules then run on the result for
//! signatures and left-over attribution lines.

use html2text::{Element, Handle};

/// html2text wraps at this width. Wide enough that paragraphs stay single
/// lines (attribution lines are recognised on whole lines) and a hostile
/// document cannot make rendering quadratic in a tiny width.
const RENDER_WIDTH: usize = 1_000;

/// What a DOM element means for quote removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    /// Not a quote marker; look inside.
    None,
    /// The element is the quote (a blockquote, `div.gmail_quote`): drop it
    /// and keep what follows, so interleaved answers survive.
    Quote,
    /// The element starts the previous message (Outlook's reply header):
    /// drop it and everything after it in document order.
    CutRest,
}

/// The HTML with quote elements removed, rendered to text; `None` when the
/// HTML has no quote marker (then the caller uses the text rules alone) or
/// cannot be parsed.
pub(crate) fn strip_quotes(html: &str) -> Option<String> {
    if !MAY_HAVE_MARKER.is_match(html.as_bytes()) || too_deep(html) {
        return None;
    }
    let config = html2text::config::plain_no_decorate();
    let html = crate::parse::line_break_before_rules(html);
    let dom = config.parse_html(html.as_bytes()).ok()?;
    if !prune(&dom.document) {
        return None;
    }
    // An empty tree is an error in html2text; for us it is empty text.
    let text = config
        .dom_to_render_tree(&dom)
        .and_then(|tree| config.render_to_string(tree, RENDER_WIDTH))
        .unwrap_or_default();
    Some(text)
}

/// Every [`marker`] needs one of these words in the source (tag names,
/// classes and ids are matched in lower case there, so any case here).
/// Most HTML parts carry none: one scan then saves parsing and rendering
/// the document, the most expensive step of `extract` (a marker written
/// with character references, `gmail&#95;quote`, is not one a mail
/// client writes).
static MAY_HAVE_MARKER: std::sync::LazyLock<regex::bytes::Regex> = std::sync::LazyLock::new(|| {
    let words: Vec<&str> = CUT_REST_IDS
        .iter()
        .chain(CUT_REST_CLASSES)
        .chain(QUOTE_CLASSES)
        .chain(&[
            "blockquote",
            "border-top",
            QUOTE_ID_PREFIX,
            QUOTE_ID_CONTAINS,
            QUOTE_ID,
            QUOTE_DATA_MARKER,
        ])
        .copied()
        .collect();
    let pattern = format!("(?i-u){}", words.join("|"));
    regex::bytes::Regex::new(&pattern).unwrap_or_else(|e| panic!("invalid built-in pattern: {e}"))
});

/// Ids (substrings, lower case) of the header element Outlook, Hotmail
/// and Outlook for Mac put above the quoted message.
const CUT_REST_IDS: &[&str] = &[
    "divrplyfwdmsg",
    "appendonsend",
    "olk_src_body_section",
    "stopspelling",
];
/// Classes (substrings) of the same header element.
const CUT_REST_CLASSES: &[&str] = &["outlookmessageheader", "stopspelling"];
/// Classes (substrings) of an element that is the quote.
const QUOTE_CLASSES: &[&str] = &[
    "gmail_quote",
    "gmail_attr",
    "yahoo_quoted",
    "moz-cite-prefix",
    "protonmail_quote",
    "zmail_extra",
    "ms-outlook-mobile-reference-message",
];
/// Ids of an element that is the quote: a prefix, a substring, an exact id.
const QUOTE_ID_PREFIX: &str = "yahoo_quoted";
const QUOTE_ID_CONTAINS: &str = "mail-editor-reference-message-container";
const QUOTE_ID: &str = "isforwardcontent";
/// The `data-marker` value of a quote element.
const QUOTE_DATA_MARKER: &str = "__quoted_text__";

/// Renders the whole HTML to text (for a message whose text part is
/// empty).
pub(crate) fn to_text(html: &str) -> String {
    if too_deep(html) {
        return strip_tags(html);
    }
    let config = html2text::config::plain_no_decorate();
    config
        .string_from_read(
            crate::parse::line_break_before_rules(html).as_bytes(),
            RENDER_WIDTH,
        )
        .unwrap_or_default()
}

/// Nesting beyond which we do not hand HTML to html5ever: its tree
/// builder is quadratic in depth (20,000 nested `<div>`s take seconds),
/// while real mail, even a long Gmail thread, stays in the hundreds.
const MAX_DEPTH: usize = 1_000;

/// Elements that never (void) or rarely (implied end tags) get a closing
/// tag; they do not count towards the depth estimate.
const UNCLOSED: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr", "p", "li", "td", "th", "tr", "option", "dt", "dd", "o:p",
];

/// A linear scan estimating the element nesting depth from start and end
/// tags; true when it exceeds [`MAX_DEPTH`].
pub(crate) fn too_deep(html: &str) -> bool {
    let mut depth: usize = 0;
    let mut rest = html;
    while let Some(pos) = rest.find('<') {
        rest = rest.get(pos + 1..).unwrap_or("");
        let closing = rest.starts_with('/');
        let name_part = if closing {
            rest.get(1..).unwrap_or("")
        } else {
            rest
        };
        let name: String = name_part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == ':')
            .take(16)
            .collect::<String>()
            .to_ascii_lowercase();
        if name.is_empty() || UNCLOSED.contains(&name.as_str()) {
            continue;
        }
        if closing {
            depth = depth.saturating_sub(1);
        } else {
            // Look only up to the next '<' or '>', so a tag without an
            // end never makes the scan quadratic.
            let self_closing = rest
                .find(['<', '>'])
                .filter(|&end| rest.get(end..).is_some_and(|r| r.starts_with('>')))
                .and_then(|end| rest.get(..end))
                .is_some_and(|tag| tag.ends_with('/'));
            if !self_closing {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
        }
    }
    false
}

/// Text of HTML too deep to parse: tags dropped, nothing else done. Only
/// for hostile input; its quotes are not found.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Removes quote elements below `root`; true when something was removed.
/// Iterative (an explicit stack of `(node, next child)`), because hostile
/// HTML can nest deeper than the thread's stack.
fn prune(root: &Handle) -> bool {
    let mut removed = false;
    let mut stack: Vec<(Handle, usize)> = vec![(root.clone(), 0)];
    while let Some((node, idx)) = stack.last().map(|(n, i)| (n.clone(), *i)) {
        let child = node.children.borrow().get(idx).cloned();
        let Some(child) = child else {
            stack.pop();
            continue;
        };
        match marker(&child) {
            Marker::Quote => {
                let mut children = node.children.borrow_mut();
                if idx < children.len() {
                    children.remove(idx);
                }
                removed = true;
            }
            Marker::CutRest => {
                node.children.borrow_mut().truncate(idx);
                // Ancestors keep the path down to here (their stored index
                // is already one past it) and lose everything after.
                for (ancestor, next) in stack.iter().rev().skip(1) {
                    ancestor.children.borrow_mut().truncate(*next);
                }
                return true;
            }
            Marker::None => {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                stack.push((child, 0));
            }
        }
    }
    removed
}

/// Classifies one node by its tag, class, id and style.
fn marker(node: &Handle) -> Marker {
    let Element { name, attrs, .. } = &node.data else {
        return Marker::None;
    };
    let tag: &str = &name.local;
    let attrs = attrs.borrow();
    let attr = |key: &str| -> String {
        attrs
            .iter()
            .find(|a| &*a.name.local == key)
            .map(|a| a.value.to_lowercase())
            .unwrap_or_default()
    };
    let class = attr("class");
    let id = attr("id");

    // Outlook (desktop, web, mobile), Hotmail and Outlook for Mac start
    // the quoted message with a header element; the quote is its
    // following siblings, not its children.
    if CUT_REST_IDS.iter().any(|m| id.contains(m))
        || CUT_REST_CLASSES.iter().any(|m| class.contains(m))
    {
        return Marker::CutRest;
    }
    // Outlook desktop: <div style="border:none;border-top:solid #E1E1E1
    // 1.0pt;padding:3.0pt 0in 0in 0in"> around "From: … Sent: …".
    if tag == "div" {
        let style = attr("style").replace(' ', "");
        if style.contains("border-top:solid") && style.contains("padding:3.0pt0") {
            return Marker::CutRest;
        }
    }

    if tag == "blockquote" {
        return Marker::Quote;
    }
    if QUOTE_CLASSES.iter().any(|c| class.contains(c))
        || id.starts_with(QUOTE_ID_PREFIX)
        || id.contains(QUOTE_ID_CONTAINS)
        || id == QUOTE_ID
        || attr("data-marker") == QUOTE_DATA_MARKER
    {
        return Marker::Quote;
    }
    Marker::None
}
