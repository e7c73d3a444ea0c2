//! A minimal XML well-formedness checker and element helpers for the tests (the
//! crate takes no dependencies, so no XML parser).

/// Panics unless `doc` is one well-formed element: balanced, properly nested tags,
/// quoted and unique attributes, only known entity references, no text outside the
/// root, and no `NaN`/`inf` in any attribute.
pub(crate) fn assert_well_formed(doc: &str) {
    if let Err(e) = check(doc) {
        let excerpt: String = doc.chars().take(600).collect();
        panic!("not well-formed XML: {e}\n{excerpt}…");
    }
}

fn check(doc: &str) -> Result<(), String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = doc;
    let mut seen_root = false;
    let mut root_closed = false;
    while let Some(open) = rest.find('<') {
        let text = &rest[..open];
        check_text(text)?;
        if stack.is_empty() && !text.trim().is_empty() {
            return Err(format!("text outside the root: {text:?}"));
        }
        let after = &rest[open + 1..];
        let close = after.find('>').ok_or("unterminated tag")?;
        let tag = &after[..close];
        rest = &after[close + 1..];
        if root_closed {
            return Err(format!("content after the root element: <{tag}>"));
        }
        if let Some(name) = tag.strip_prefix('/') {
            let expected = stack.pop().ok_or(format!("stray </{name}>"))?;
            if expected != name.trim() {
                return Err(format!("</{name}> closes <{expected}>"));
            }
            root_closed = stack.is_empty();
            continue;
        }
        if tag.starts_with('!') || tag.starts_with('?') {
            return Err(format!("unexpected markup <{tag}>"));
        }
        let self_closing = tag.ends_with('/');
        let inner = tag.strip_suffix('/').unwrap_or(tag);
        let (name, attrs) = match inner.find(char::is_whitespace) {
            Some(i) => (&inner[..i], &inner[i..]),
            None => (inner, ""),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':' || c == '_')
        {
            return Err(format!("bad element name {name:?}"));
        }
        check_attributes(attrs)?;
        if stack.is_empty() {
            if seen_root {
                return Err("a second root element".to_owned());
            }
            seen_root = true;
        }
        if self_closing {
            root_closed = stack.is_empty();
        } else {
            stack.push(name);
        }
    }
    check_text(rest)?;
    if !rest.trim().is_empty() {
        return Err(format!("text after the root: {rest:?}"));
    }
    if !seen_root {
        return Err("no root element".to_owned());
    }
    if let Some(open) = stack.last() {
        return Err(format!("<{open}> is never closed"));
    }
    Ok(())
}

fn check_attributes(mut attrs: &str) -> Result<(), String> {
    let mut names = Vec::new();
    loop {
        attrs = attrs.trim_start();
        if attrs.is_empty() {
            return Ok(());
        }
        let eq = attrs
            .find('=')
            .ok_or(format!("attribute without value: {attrs:?}"))?;
        let name = &attrs[..eq];
        if name.is_empty() || name.contains(char::is_whitespace) || name.contains('"') {
            return Err(format!("bad attribute name {name:?}"));
        }
        if names.contains(&name) {
            return Err(format!("duplicate attribute {name}"));
        }
        names.push(name);
        let after = &attrs[eq + 1..];
        let quote = after.chars().next().ok_or("missing attribute value")?;
        if quote != '"' && quote != '\'' {
            return Err(format!("unquoted attribute {name}"));
        }
        let end = after[1..]
            .find(quote)
            .ok_or(format!("unterminated attribute {name}"))?;
        let value = &after[1..1 + end];
        if value.contains('<') {
            return Err(format!("'<' in attribute {name}"));
        }
        if value.contains("NaN") || value.contains("inf") {
            return Err(format!("non-finite number in {name}={value:?}"));
        }
        check_text(value)?;
        attrs = &after[end + 2..];
        if !(attrs.is_empty() || attrs.starts_with(char::is_whitespace)) {
            return Err(format!("no space after attribute {name}"));
        }
    }
}

fn check_text(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        let after = &rest[amp + 1..];
        let semi = after.find(';').ok_or("'&' without ';'")?;
        let entity = &after[..semi];
        let known = matches!(entity, "amp" | "lt" | "gt" | "quot" | "apos")
            || entity
                .strip_prefix("#x")
                .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
            || entity
                .strip_prefix('#')
                .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
        if !known {
            return Err(format!("unknown entity &{entity};"));
        }
        rest = &after[semi + 1..];
    }
    Ok(())
}

/// The start tags (`<name …>` / `<name …/>`) of every `name` element, in order.
pub(crate) fn start_tags<'a>(doc: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name} ");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = doc[from..].find(&open) {
        let start = from + i;
        let end = doc[start..].find('>').map_or(doc.len(), |e| start + e + 1);
        out.push(&doc[start..end]);
        from = end;
    }
    out
}

/// The value of attribute `name` in a start tag.
pub(crate) fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let i = tag.find(&key)? + key.len();
    let end = tag[i..].find('"')?;
    Some(&tag[i..i + end])
}

/// Whether the start tag's `class` includes `class`.
pub(crate) fn has_class(tag: &str, class: &str) -> bool {
    attr(tag, "class").is_some_and(|c| c.split_whitespace().any(|c| c == class))
}

#[test]
fn checker_rejects_malformed_documents() {
    for bad in [
        "<svg><g></svg>",
        "<svg></g>",
        "<svg>a & b</svg>",
        "<svg a=\"1\" a=\"2\"/>",
        "<svg a=1/>",
        "<svg x=\"NaN\"/>",
        "<svg/><svg/>",
        "text<svg/>",
        "<svg><text>&bogus;</text></svg>",
        "",
    ] {
        assert!(check(bad).is_err(), "accepted {bad:?}");
    }
    assert!(check("<svg a=\"1\" b='&amp;'><g/><t>x &lt; y</t></svg>").is_ok());
}
