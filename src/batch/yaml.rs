//! Positioned YAML: reading batch text into a node tree (`tree`: one
//! document, no duplicate keys, anchors or tags), and the readers stage 2
//! is built on: positions, a mapping's known fields (unknown keys reported),
//! scalars and lists, and [`Check`], which collects every error found.

use std::path::Path;
use std::str::FromStr;

use super::tree::{self, MappingNode, Mark, Node, Refusal, ScalarNode};

use super::{item_label, unknown_key, valid_id, BatchError, BatchErrors, Label};

/// Longest scalar text read for any field: every valid value is far shorter,
/// and this keeps error messages (which quote the text) short.
const MAX_SCALAR_CHARS: usize = 200;

// ---------------------------------------------------------------------------
// Stage 1: YAML text to a node tree with positions.

/// Parse `text` into a node tree, or report why not. On a duplicate key the
/// error is reported and the tree keeps the last value, so that stage 2
/// still reports everything else.
pub(crate) fn read_tree<'t>(text: &'t str, check: &mut Check<'_>) -> Option<Node<'t>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(pos) = second_document(text) {
        check.err(
            pos,
            "",
            "a batch file holds one YAML document, but a second one starts here; \
             delete this line and what follows, or move it to a file of its own"
                .into(),
        );
        return None;
    }
    let (root, refusal) = tree::load(text);
    let Some(refusal) = refusal else {
        return root;
    };
    if let Refusal::DuplicateKey { key, at, first } = &refusal {
        let mut field = match &root {
            Some(r) => field_at(r, *at),
            None => String::new(),
        };
        push_key(&mut field, key);
        check.err(
            mark_pos(*at),
            &field,
            format!(
                "duplicate key `{}` (first at line {}, column {}); keep one of them and delete the other",
                shown(key),
                first.line,
                first.column
            ),
        );
        return root;
    }
    let (at, message) = refusal_message(&refusal);
    check.err(mark_pos(at), "", message);
    None
}

/// Where a second YAML document starts, if there is one: the loader reads
/// only the first and would silently drop the rest.
fn second_document(text: &str) -> Option<Pos> {
    let mut content = false;
    let mut ended = false;
    for (i, line) in text.lines().enumerate() {
        let pos = Pos {
            line: i + 1,
            column: 1,
        };
        let marker = |m: &str| {
            line.strip_prefix(m)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
        };
        let rest_is_content = |m: &str| {
            let rest = line[m.len()..].trim();
            !rest.is_empty() && !rest.starts_with('#')
        };
        if marker("---") {
            if content || ended {
                return Some(pos);
            }
            content = rest_is_content("---");
        } else if marker("...") {
            ended = true;
        } else {
            let t = line.trim_start();
            if t.is_empty() || t.starts_with('#') || (t.starts_with('%') && !content) {
                continue;
            }
            if ended {
                return Some(pos);
            }
            content = true;
        }
    }
    None
}

/// The position and a user-facing message for a refusal.
fn refusal_message(r: &Refusal) -> (Mark, String) {
    match r {
        Refusal::Syntax(m, info) => (
            *m,
            format!(
                "YAML syntax error: {info}; check the indentation, the `key: value` colons, and that quotes and brackets are closed"
            ),
        ),
        Refusal::TopLevelNotMapping(m) => (
            *m,
            "a batch file must be a YAML mapping of keys, starting with `version: 1` and `batch: <id>`"
                .into(),
        ),
        Refusal::Anchor(m) => (
            *m,
            "YAML anchors and aliases (`&name`, `*name`) are not supported in batch files; write each value out in full (use `defaults` for shared fields)".into(),
        ),
        Refusal::KeyNotScalar(m) => (
            *m,
            "keys must be plain names like `quantity`, not lists or mappings".into(),
        ),
        Refusal::Tag(m) => (
            *m,
            "YAML tags (like `!!str`) are not supported; to make a value text, put it in quotes instead".into(),
        ),
        Refusal::DuplicateKey { key, at, .. } => (
            *at,
            format!(
                "duplicate key `{}`; keep one of them and delete the other",
                shown(key)
            ),
        ),
    }
}

/// The field path (as in [`BatchError::field`]) of the innermost mapping or
/// list that contains character `at`.
fn field_at(root: &Node<'_>, at: Mark) -> String {
    let mut field = String::new();
    let mut node = root;
    let contains = |n: &Node<'_>| node_start(n) <= at && n.end().is_none_or(|e| at < e);
    loop {
        let next = match node {
            Node::Mapping(m) => m
                .iter()
                .rfind(|(_, v)| !matches!(v, Node::Scalar(_)) && contains(v))
                .map(|(k, v)| {
                    push_key(&mut field, k.as_str());
                    v
                }),
            Node::Sequence(s) => s
                .iter()
                .enumerate()
                .rfind(|(_, v)| contains(v))
                .map(|(i, v)| {
                    let id = v
                        .as_mapping()
                        .and_then(|m| m.get_scalar("id"))
                        .map(|s| s.as_str())
                        .filter(|s| valid_id(s));
                    field = item_label(&field, i, id);
                    v
                }),
            Node::Scalar(_) => None,
        };
        match next {
            Some(n) => node = n,
            None => return field,
        }
    }
}

// ---------------------------------------------------------------------------
// Stage 2 readers: positions, fields, scalars, and the error collector.

/// A 1-based position in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

fn mark_pos(m: Mark) -> Pos {
    Pos {
        line: m.line as usize,
        column: m.column as usize,
    }
}

/// Where a node starts. A block mapping's own start mark lies after its
/// first key, so a mapping starts at the earlier of the two.
fn node_start(node: &Node<'_>) -> Mark {
    let own = node.start();
    match node.as_mapping().and_then(|m| m.keys().next()) {
        Some(k) if k.start() < own => k.start(),
        _ => own,
    }
}

pub(crate) fn node_pos(node: &Node<'_>) -> Pos {
    mark_pos(node_start(node))
}

/// One `key: value` of a mapping.
#[derive(Clone, Copy)]
pub(crate) struct Field<'a> {
    pub(crate) key: &'a ScalarNode<'a>,
    pub(crate) value: &'a Node<'a>,
}

impl<'a> Field<'a> {
    pub(crate) fn name(&self) -> &'a str {
        self.key.as_str()
    }
    pub(crate) fn key_pos(&self) -> Pos {
        mark_pos(self.key.start())
    }
    /// Where the value is; for an empty value (`price:`) that is the key.
    pub(crate) fn value_pos(&self) -> Pos {
        match self.value {
            Node::Scalar(s) if s.as_str().is_empty() && s.may_coerce() => self.key_pos(),
            v => node_pos(v),
        }
    }
}

/// The known fields of a mapping, looked up by name, and the fields that
/// unknown keys were taken to mean (reported already, so "missing" is not).
#[derive(Default)]
pub(crate) struct Fields<'a> {
    found: Vec<(&'static str, Field<'a>)>,
    meant: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    pub(crate) fn get(&self, name: &str) -> Option<Field<'a>> {
        self.found.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }
    /// Whether an unknown key was reported as a misspelling of `name`.
    pub(super) fn misspelt(&self, name: &str) -> bool {
        self.meant.contains(&name)
    }
}

/// A scalar value, as written.
pub(crate) struct Scalar<'a> {
    pub(crate) text: &'a str,
    /// Written without quotes.
    pub(super) plain: bool,
    pub(crate) pos: Pos,
}

/// Whether a scalar is YAML's null (`~`, `null`, or nothing).
pub(crate) fn is_null(s: &ScalarNode<'_>) -> bool {
    s.may_coerce() && matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL")
}

/// Stage 2 state: the file name and every error found so far.
pub(crate) struct Check<'p> {
    pub(crate) path: &'p Path,
    pub(crate) errors: Vec<BatchError>,
}

impl<'p> Check<'p> {
    /// No errors yet, for the file at `path`.
    pub(crate) fn new(path: &'p Path) -> Check<'p> {
        Check {
            path,
            errors: Vec::new(),
        }
    }

    pub(crate) fn err(&mut self, pos: Pos, field: &str, message: String) {
        self.errors.push(BatchError {
            path: self.path.to_path_buf(),
            line: pos.line,
            column: pos.column,
            field: printable(field),
            message: printable(&message),
        });
    }

    pub(crate) fn into_errors(mut self) -> BatchErrors {
        self.errors.sort_by_key(|e| (e.line, e.column));
        BatchErrors(self.errors)
    }

    /// The known fields of `map`; unknown keys are reported.
    pub(crate) fn fields<'a>(
        &mut self,
        map: &'a MappingNode<'a>,
        allowed: &[&'static str],
        at: &str,
        what: &str,
    ) -> Fields<'a> {
        let mut fields = Fields::default();
        for (key, value) in map.iter() {
            let field = Field { key, value };
            match allowed.iter().find(|a| **a == key.as_str()) {
                Some(name) => fields.found.push((*name, field)),
                None => {
                    let mut path = at.to_string();
                    push_key(&mut path, key.as_str());
                    let (message, meant) = unknown_key(key.as_str(), allowed, what);
                    fields.meant.extend(meant);
                    self.err(field.key_pos(), &path, message);
                }
            }
        }
        fields
    }

    /// The text of a scalar field; lists, mappings, null and overlong text
    /// are reported.
    pub(crate) fn scalar<'a>(
        &mut self,
        at: &(impl Label + ?Sized),
        f: Field<'a>,
        example: &str,
    ) -> Option<Scalar<'a>> {
        let pos = f.value_pos();
        let shape = match f.value {
            Node::Scalar(s) if is_null(s) => {
                let name = shown(f.name());
                self.err(
                    pos,
                    &at.text(),
                    format!(
                        "`{name}` has no value; write one, like `{name}: {example}`, or delete the line"
                    ),
                );
                return None;
            }
            // Bytes first: a text of few bytes has no more characters.
            Node::Scalar(s)
                if s.as_str().len() > MAX_SCALAR_CHARS
                    && s.as_str().chars().count() > MAX_SCALAR_CHARS =>
            {
                let name = shown(f.name());
                self.err(
                    pos,
                    &at.text(),
                    format!(
                        "`{name}` is {} characters long; it takes a short value like `{name}: {example}`",
                        s.as_str().chars().count()
                    ),
                );
                return None;
            }
            Node::Scalar(s) => {
                return Some(Scalar {
                    text: s.as_str(),
                    plain: s.may_coerce(),
                    pos,
                })
            }
            Node::Mapping(_) => "a mapping",
            Node::Sequence(_) => "a list",
        };
        let name = shown(f.name());
        self.err(
            pos,
            &at.text(),
            format!(
                "`{name}` must be a single value, not {shape}; write it like `{name}: {example}`"
            ),
        );
        None
    }

    /// A scalar field parsed with `T::from_str`, whose message is reported.
    pub(crate) fn value<T: FromStr<Err = String>>(
        &mut self,
        at: &(impl Label + ?Sized),
        f: Field<'_>,
        example: &str,
    ) -> Option<T> {
        let s = self.scalar(at, f, example)?;
        match s.text.parse() {
            Ok(v) => Some(v),
            Err(message) => {
                self.err(s.pos, &at.text(), message);
                None
            }
        }
    }

    /// A list under `orders` or `queries`: its entries, or `None` if it is
    /// not a list (reported).
    pub(super) fn list<'a>(&mut self, f: Field<'a>, example: &str) -> Option<&'a [Node<'a>]> {
        match f.value {
            Node::Sequence(s) => Some(s.as_slice()),
            v => {
                let name = f.name();
                let what = match v {
                    Node::Scalar(s) if is_null(s) => "is empty",
                    Node::Mapping(_) => "is a mapping",
                    _ => "is a single value",
                };
                self.err(
                    f.value_pos(),
                    name,
                    format!("`{name}` {what}; it must be a list with one entry per line below it, each starting with `- `, like `- {example}` (or delete `{name}`)"),
                );
                None
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Wording.

fn push_key(field: &mut String, key: &str) {
    if !field.is_empty() {
        field.push('.');
    }
    field.push_str(key);
}

/// User text for a message: control characters escaped, long text cut.
pub(crate) fn shown(s: &str) -> String {
    pub(super) const MAX: usize = 40;
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        out.push(c);
    }
    printable(&out)
}

/// Escape control characters so that each error stays on one line.
fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
