//! Errors in a file, shown as a compiler shows them: the line, a caret
//! under the column, grouped per order (annotate-snippets).

use std::collections::HashMap;
use std::path::PathBuf;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

use super::{paint, style, Diagnostic};

/// Render every diagnostic (grouped by order, in file order) and the
/// failure's closing line (its last line says what happened overall).
pub fn render(diags: &[Diagnostic], message: &str) -> String {
    let mut sources: HashMap<PathBuf, Option<String>> = HashMap::new();
    // Groups in order of first appearance.
    let mut groups: Vec<(&str, Vec<&Diagnostic>)> = Vec::new();
    for d in diags {
        match groups.iter_mut().find(|(g, _)| *g == d.group()) {
            Some((_, v)) => v.push(d),
            None => groups.push((d.group(), vec![d])),
        }
    }
    let renderer = Renderer::styled();
    let mut out = String::new();
    for (group, ds) in groups {
        if !group.is_empty() {
            out.push_str(&paint(style::HEADER, format!("{group}:")));
            out.push('\n');
        }
        for d in ds {
            let src = sources
                .entry(d.path.clone())
                .or_insert_with(|| std::fs::read_to_string(&d.path).ok());
            out.push_str(&one(&renderer, d, src.as_deref()));
            out.push('\n');
        }
    }
    // The failure's message ends with the count and "nothing was sent";
    // its last line is the one to keep.
    if let Some(last) = message.lines().last() {
        out.push_str(&paint(style::ERROR, last));
    }
    out
}

fn one(renderer: &Renderer, d: &Diagnostic, source: Option<&str>) -> String {
    // The title is the classic `file:line:col: field: message` line, which
    // grep, editors (quickfix, compilation-mode) and old scripts read; the
    // snippet under it shows the line and the caret.
    let path = d.path.display().to_string();
    let mut title = path.clone();
    if d.line > 0 {
        title.push_str(&format!(":{}:{}", d.line, d.column));
    }
    if !d.field.is_empty() {
        title.push_str(&format!(": {}", d.field));
    }
    title.push_str(&format!(": {}", d.message));
    let line_text = source
        .filter(|_| d.line > 0)
        .and_then(|s| s.lines().nth(d.line - 1));
    let level = Level::ERROR.no_name();
    let Some(text) = line_text else {
        return renderer.render(&[Group::with_title(level.primary_title(title))]);
    };
    let span = span_at(text, d.column);
    renderer.render(&[level.primary_title(title).element(
        Snippet::source(text)
            .line_start(d.line)
            .annotation(AnnotationKind::Primary.span(span)),
    )])
}

/// The byte range of the token at 1-based character `column` of `line`:
/// a quoted string with its quotes; inside a flow collection (`{ .. }`)
/// up to a space, `,`, `}` or `]`; else the rest of the line before a
/// ` #` comment (so `24,321.00` is underlined whole).
fn span_at(line: &str, column: usize) -> std::ops::Range<usize> {
    let start = line
        .char_indices()
        .nth(column.saturating_sub(1))
        .map_or(line.len(), |(i, _)| i);
    let rest = &line[start..];
    let len = if let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') {
        rest[1..].find(q).map_or(rest.len(), |i| i + 2)
    } else if line[..start].contains(['{', '[']) {
        rest.find([' ', ',', '}', ']', '#']).unwrap_or(rest.len())
    } else {
        rest[..rest.find(" #").unwrap_or(rest.len())]
            .trim_end()
            .len()
    };
    start..start + len.max(usize::from(!rest.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        assert_eq!(span_at(r#"    quantity: "-2""#, 15), 14..18);
        assert_eq!(span_at("    price: 1e5", 12), 11..14);
        assert_eq!(span_at("  - { id: a, side: x }", 20), 19..20);
        assert_eq!(span_at("x", 5), 1..1);
        assert_eq!(span_at("    price: 24,321.00  # typo", 12), 11..20);
    }

    #[test]
    fn a_caret_under_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.yaml");
        std::fs::write(&p, "orders:\n  - id: a\n    side: bye\n").unwrap();
        let d = Diagnostic {
            path: p,
            line: 3,
            column: 11,
            field: "orders[0] (a).side".into(),
            message: "side must be `buy` or `sell`, not `bye`".into(),
        };
        let text = render(
            std::slice::from_ref(&d),
            "1 error in b.yaml; nothing was sent",
        );
        let plain = anstream::adapter::strip_str(&text).to_string();
        assert!(plain.contains("orders[0] (a):"), "{plain}");
        assert!(plain.contains("3 |     side: bye"), "{plain}");
        assert!(plain.contains("^^^"), "{plain}");
        assert!(
            plain.ends_with("1 error in b.yaml; nothing was sent"),
            "{plain}"
        );
    }
}
