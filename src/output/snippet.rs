//! Errors in a file, shown as a compiler shows them: the line, a caret
//! under the column, grouped per order (annotate-snippets).

use std::collections::HashMap;
use std::path::Path;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

use super::{paint, style, Diagnostic};

/// Render every diagnostic (grouped by order, in file order) and the
/// failure's closing line (its last line says what happened overall).
pub fn render(diags: &[Diagnostic], message: &str) -> String {
    // Each file read once, and split into lines once: a batch of 100,000
    // orders may have as many errors.
    let mut texts: Vec<(&Path, Option<String>)> = Vec::new();
    for d in diags {
        if !texts.iter().any(|(p, _)| *p == d.path.as_path()) {
            texts.push((&d.path, std::fs::read_to_string(&d.path).ok()));
        }
    }
    let lines: HashMap<&Path, Vec<&str>> = texts
        .iter()
        .filter_map(|(p, t)| t.as_ref().map(|t| (*p, t.lines().collect())))
        .collect();
    // Groups in order of first appearance.
    let mut groups: Vec<(&str, Vec<&Diagnostic>)> = Vec::new();
    let mut group_of: HashMap<&str, usize> = HashMap::new();
    for d in diags {
        let g = d.group();
        match group_of.get(g) {
            Some(&i) => groups[i].1.push(d),
            None => {
                group_of.insert(g, groups.len());
                groups.push((g, vec![d]));
            }
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
            let line_text = lines
                .get(d.path.as_path())
                .filter(|_| d.line > 0)
                .and_then(|l| l.get(d.line - 1).copied());
            out.push_str(&one(&renderer, d, line_text));
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

/// One diagnostic; `line_text` is its line of the file, when there is one.
fn one(renderer: &Renderer, d: &Diagnostic, line_text: Option<&str>) -> String {
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

    #[test]
    fn diagnostics_are_grouped_by_first_appearance_each_under_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.yaml");
        std::fs::write(
            &p,
            "orders:\n  - { id: a, side: x }\n  - { id: b, side: y }\r\n  - z\n",
        )
        .unwrap();
        let d = |line: usize, column: usize, field: &str| Diagnostic {
            path: p.clone(),
            line,
            column,
            field: field.into(),
            message: "m".into(),
        };
        let diags = [
            d(2, 20, "orders[0] (a).side"),
            d(3, 20, "orders[1] (b).side"),
            d(2, 9, "orders[0] (a).id"),
            d(4, 5, "orders[2]"),
        ];
        let plain = anstream::adapter::strip_str(&render(&diags, "4 errors")).to_string();
        let at = |s: &str| plain.find(s).unwrap_or_else(|| panic!("{s:?} in {plain}"));
        assert!(
            at("orders[0] (a):") < at(":2:20: orders[0] (a).side"),
            "{plain}"
        );
        assert!(
            at(":2:20: orders[0] (a).side") < at(":2:9: orders[0] (a).id"),
            "{plain}"
        );
        assert!(
            at(":2:9: orders[0] (a).id") < at("orders[1] (b):"),
            "{plain}"
        );
        assert!(at("orders[1] (b):") < at("orders[2]:"), "{plain}");
        assert!(plain.contains("3 |   - { id: b, side: y }\n"), "{plain}");
        assert!(plain.contains("4 |   - z"), "{plain}");
    }
}
