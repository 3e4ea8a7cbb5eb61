//! The positioned node tree a batch (or limits) file is read into, built
//! straight from `yaml-rust2`'s parser events.
//!
//! Why not a general YAML tree: a batch of 100,000 orders holds 1.2 million
//! scalars, so the tree is kept small. A scalar written as it reads (plain,
//! or quoted without escapes) borrows its text from the file; only the rest
//! (escapes, folded lines, block scalars) own theirs. A position is a line
//! and a column (8 bytes): `(line, column)` order is file order.
//!
//! What the reader refuses is what the batch format refuses, each at the
//! position of the offending event: anchors and aliases, tags, keys that are
//! lists or mappings, a top level that is not a mapping, and duplicate keys.
//! A duplicate key is reported, and the tree still built with the last value
//! (under the first key's position, moved to the end of its mapping), so
//! that the rest of the file is still checked; the other refusals stop the
//! tree. A YAML syntax error anywhere wins over all of them.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};

mod subset;
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

/// A position in the text: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Mark {
    pub(crate) line: u32,
    pub(crate) column: u32,
}

impl Mark {
    fn of(m: Marker) -> Mark {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Mark {
            line: clamp(m.line()),
            column: clamp(m.col() + 1),
        }
    }
}

/// A scalar's text: borrowed from the file where it is written as it
/// reads, owned otherwise; and whether it was written plain (no quotes, not
/// a block scalar: YAML would give it a type, so `1` and `"1"` differ).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Text<'a> {
    Plain(&'a str),
    Quoted(&'a str),
    PlainOwned(Box<str>),
    QuotedOwned(Box<str>),
}

/// A scalar (a key or a value), with where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScalarNode<'a> {
    text: Text<'a>,
    start: Mark,
}

impl<'a> ScalarNode<'a> {
    /// The value, as YAML reads it (quotes and escapes resolved).
    pub(crate) fn as_str(&self) -> &str {
        match &self.text {
            Text::Plain(s) | Text::Quoted(s) => s,
            Text::PlainOwned(s) | Text::QuotedOwned(s) => s,
        }
    }
    /// Written without quotes (so `null`, `~` and nothing are null).
    pub(crate) fn may_coerce(&self) -> bool {
        matches!(self.text, Text::Plain(_) | Text::PlainOwned(_))
    }
    pub(crate) fn start(&self) -> Mark {
        self.start
    }
}

/// A mapping: its entries in file order, and where it starts and ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MappingNode<'a> {
    entries: Box<[(ScalarNode<'a>, Node<'a>)]>,
    start: Mark,
    end: Mark,
}

impl<'a> MappingNode<'a> {
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = (&ScalarNode<'a>, &Node<'a>)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
    pub(crate) fn keys(&self) -> impl Iterator<Item = &ScalarNode<'a>> {
        self.entries.iter().map(|(k, _)| k)
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// The value of `key`, if it is a scalar.
    pub(crate) fn get_scalar(&self, key: &str) -> Option<&ScalarNode<'a>> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .and_then(|(_, v)| v.as_scalar())
    }
}

/// A list: its items, and where it starts and ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SequenceNode<'a> {
    items: Box<[Node<'a>]>,
    start: Mark,
    end: Mark,
}

impl<'a> SequenceNode<'a> {
    pub(crate) fn as_slice(&self) -> &[Node<'a>] {
        &self.items
    }
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Node<'a>> {
        self.items.iter()
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// A node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node<'a> {
    Scalar(ScalarNode<'a>),
    Mapping(MappingNode<'a>),
    Sequence(SequenceNode<'a>),
}

impl<'a> Node<'a> {
    pub(crate) fn as_mapping(&self) -> Option<&MappingNode<'a>> {
        match self {
            Node::Mapping(m) => Some(m),
            _ => None,
        }
    }
    pub(crate) fn as_scalar(&self) -> Option<&ScalarNode<'a>> {
        match self {
            Node::Scalar(s) => Some(s),
            _ => None,
        }
    }
    /// Where the node's own event is (for a block mapping, after its first
    /// key: see `yaml::node_start`).
    pub(crate) fn start(&self) -> Mark {
        match self {
            Node::Scalar(s) => s.start,
            Node::Mapping(m) => m.start,
            Node::Sequence(s) => s.start,
        }
    }
    /// Where a mapping or list ends (its end event); `None` for a scalar.
    pub(crate) fn end(&self) -> Option<Mark> {
        match self {
            Node::Scalar(_) => None,
            Node::Mapping(m) => Some(m.end),
            Node::Sequence(s) => Some(s.end),
        }
    }
}

/// Why the text is not a tree the batch format takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// YAML syntax: the scanner's or parser's message.
    Syntax(Mark, String),
    /// The top level is a list or a scalar.
    TopLevelNotMapping(Mark),
    /// An anchor (or an alias).
    Anchor(Mark),
    /// A key that is a list or a mapping.
    KeyNotScalar(Mark),
    /// A tag.
    Tag(Mark),
    /// The first duplicate key: its text, where it is, and where the first
    /// one is.
    DuplicateKey { key: String, at: Mark, first: Mark },
}

/// The tree of `text`, and the first refusal if any. The tree is there
/// unless the text was refused for something other than a duplicate key.
pub(crate) fn load(text: &str) -> (Option<Node<'_>>, Option<Refusal>) {
    if let Some(root) = subset::load(text) {
        return (Some(root), None);
    }
    general(text)
}

/// The tree through `yaml-rust2`'s parser: any YAML, and every refusal.
fn general(text: &str) -> (Option<Node<'_>>, Option<Refusal>) {
    let mut loader = Loader {
        text,
        ascii: text.is_ascii(),
        cursor: (0, 0),
        stack: Vec::new(),
        spare: Vec::new(),
        started: false,
        root: None,
        first: None,
        broken: false,
    };
    let mut parser = Parser::new(text.chars());
    if let Err(e) = parser.load(&mut loader, false) {
        return (None, Some(syntax(&e)));
    }
    if loader.broken {
        return (None, loader.first);
    }
    (loader.root, loader.first)
}

fn syntax(e: &ScanError) -> Refusal {
    Refusal::Syntax(Mark::of(*e.marker()), e.info().to_string())
}

/// A mapping or list being read.
enum Open<'a> {
    Mapping {
        entries: Vec<(ScalarNode<'a>, Node<'a>)>,
        start: Mark,
        /// The key read, waiting for its value.
        key: Option<ScalarNode<'a>>,
        /// Keys to their entry, once the mapping is large enough that a
        /// linear search would cost (a top level of many keys).
        index: Option<HashMap<String, usize>>,
    },
    Sequence {
        items: Vec<Node<'a>>,
        start: Mark,
    },
}

/// Entries a mapping holds before duplicate keys are found through an index.
const LINEAR_KEYS: usize = 16;

struct Loader<'a> {
    text: &'a str,
    ascii: bool,
    /// The last character index converted to a byte offset, and that offset.
    cursor: (usize, usize),
    stack: Vec<Open<'a>>,
    /// Emptied entry vectors of mappings read, for the next mappings: a
    /// mapping keeps an exact copy, not a vector grown by doubling (an
    /// order's 6 entries would keep room for 8).
    spare: Vec<Vec<(ScalarNode<'a>, Node<'a>)>>,
    /// The document has started (a node now would be the top level).
    started: bool,
    root: Option<Node<'a>>,
    /// The first refusal, in event order.
    first: Option<Refusal>,
    /// A refusal other than a duplicate key: no tree.
    broken: bool,
}

impl<'a> Loader<'a> {
    fn refuse(&mut self, r: Refusal) {
        if !matches!(r, Refusal::DuplicateKey { .. }) {
            self.broken = true;
        }
        if self.first.is_none() {
            self.first = Some(r);
        }
    }

    /// The byte offset of character `index` of the text, if it is one.
    fn byte_at(&mut self, index: usize) -> Option<usize> {
        if self.ascii {
            return (index <= self.text.len()).then_some(index);
        }
        let (mut ci, mut bi) = self.cursor;
        if index < ci {
            (ci, bi) = (0, 0);
        }
        for c in self.text[bi..].chars() {
            if ci == index {
                break;
            }
            ci += 1;
            bi += c.len_utf8();
        }
        self.cursor = (ci, bi);
        (ci == index).then_some(bi)
    }

    /// The scalar's text: borrowed from the file if it is written there as
    /// it reads, at the scalar's start (after its quote when quoted).
    fn text(&mut self, value: String, style: TScalarStyle, at: Marker) -> Text<'a> {
        let plain = matches!(style, TScalarStyle::Plain);
        let skip = match style {
            TScalarStyle::Plain => 0,
            TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => 1,
            TScalarStyle::Literal | TScalarStyle::Folded => {
                return Text::QuotedOwned(value.into_boxed_str())
            }
        };
        let text = self.text;
        if let Some(start) = self.byte_at(at.index()).map(|b| b + skip) {
            if let Some(s) = text.get(start..start + value.len()) {
                if s == value {
                    return if plain {
                        Text::Plain(s)
                    } else {
                        Text::Quoted(s)
                    };
                }
            }
        }
        if plain {
            Text::PlainOwned(value.into_boxed_str())
        } else {
            Text::QuotedOwned(value.into_boxed_str())
        }
    }

    /// A finished node: the top level, a key, a mapping's value or a list's item.
    fn place(&mut self, node: Node<'a>) {
        let Some(open) = self.stack.last_mut() else {
            self.root = Some(node);
            return;
        };
        let dup = match open {
            Open::Sequence { items, .. } => {
                items.push(node);
                return;
            }
            Open::Mapping { key: k @ None, .. } => match node {
                Node::Scalar(s) => {
                    *k = Some(s);
                    return;
                }
                _ => unreachable!("a key that is not a scalar was refused at its start"),
            },
            Open::Mapping {
                entries,
                key: k @ Some(_),
                index,
                ..
            } => {
                let key = k.take().expect("matched Some");
                insert(entries, index, key, node)
            }
        };
        if let Some(dup) = dup {
            self.refuse(dup);
        }
    }
}

/// Add `key: value` to `map`. A key already there keeps its first position,
/// takes the new value and moves to the end; the duplicate is returned.
fn insert<'a>(
    entries: &mut Vec<(ScalarNode<'a>, Node<'a>)>,
    index: &mut Option<HashMap<String, usize>>,
    key: ScalarNode<'a>,
    value: Node<'a>,
) -> Option<Refusal> {
    let found = match index {
        Some(ix) => ix.get(key.as_str()).copied(),
        None => entries.iter().position(|(k, _)| k.as_str() == key.as_str()),
    };
    match found {
        None => {
            if let Some(ix) = index {
                ix.insert(key.as_str().to_string(), entries.len());
            }
            entries.push((key, value));
            if index.is_none() && entries.len() > LINEAR_KEYS {
                *index = Some(
                    entries
                        .iter()
                        .enumerate()
                        .map(|(i, (k, _))| (k.as_str().to_string(), i))
                        .collect(),
                );
            }
            None
        }
        Some(i) => {
            let (first_key, _) = entries.remove(i);
            let dup = Refusal::DuplicateKey {
                key: key.as_str().to_string(),
                at: key.start,
                first: first_key.start,
            };
            entries.push((first_key, value));
            if let Some(ix) = index {
                for (j, (k, _)) in entries.iter().enumerate().skip(i) {
                    ix.insert(k.as_str().to_string(), j);
                }
            }
            Some(dup)
        }
    }
}

impl<'a> MarkedEventReceiver for Loader<'a> {
    fn on_event(&mut self, ev: Event, marker: Marker) {
        if self.broken {
            return;
        }
        let mark = Mark::of(marker);
        let awaiting_key = matches!(self.stack.last(), Some(Open::Mapping { key: None, .. }));
        let top_level = self.started && self.stack.is_empty() && self.root.is_none();
        match ev {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::DocumentStart => self.started = true,
            Event::StreamEnd => {
                if !self.started && self.root.is_none() {
                    // An empty file: an empty mapping.
                    self.root = Some(Node::Mapping(MappingNode {
                        entries: Box::default(),
                        start: mark,
                        end: mark,
                    }));
                }
            }
            Event::Alias(_) => self.refuse(Refusal::Anchor(mark)),
            Event::MappingStart(anchor, tag) => {
                if tag.is_some() {
                    self.refuse(Refusal::Tag(mark));
                } else if anchor != 0 {
                    self.refuse(Refusal::Anchor(mark));
                } else if awaiting_key {
                    self.refuse(Refusal::KeyNotScalar(mark));
                } else {
                    self.stack.push(Open::Mapping {
                        entries: self.spare.pop().unwrap_or_default(),
                        start: mark,
                        key: None,
                        index: None,
                    });
                }
            }
            Event::SequenceStart(anchor, tag) => {
                if tag.is_some() {
                    self.refuse(Refusal::Tag(mark));
                } else if anchor != 0 {
                    self.refuse(Refusal::Anchor(mark));
                } else if top_level {
                    self.refuse(Refusal::TopLevelNotMapping(mark));
                } else if awaiting_key {
                    self.refuse(Refusal::KeyNotScalar(mark));
                } else {
                    self.stack.push(Open::Sequence {
                        items: Vec::new(),
                        start: mark,
                    });
                }
            }
            Event::MappingEnd => match self.stack.pop() {
                Some(Open::Mapping {
                    mut entries, start, ..
                }) => {
                    // Moved into a vector of the exact size; the emptied one is reused.
                    let mut exact = Vec::with_capacity(entries.len());
                    exact.append(&mut entries);
                    self.spare.push(entries);
                    let node = MappingNode {
                        entries: exact.into_boxed_slice(),
                        start,
                        end: mark,
                    };
                    self.place(Node::Mapping(node));
                }
                _ => unreachable!("the parser balances mappings"),
            },
            Event::SequenceEnd => match self.stack.pop() {
                Some(Open::Sequence { items, start }) => {
                    let node = SequenceNode {
                        items: items.into_boxed_slice(),
                        start,
                        end: mark,
                    };
                    self.place(Node::Sequence(node));
                }
                _ => unreachable!("the parser balances lists"),
            },
            Event::Scalar(value, style, anchor, tag) => {
                if anchor != 0 {
                    self.refuse(Refusal::Anchor(mark));
                } else if tag.is_some() {
                    self.refuse(Refusal::Tag(mark));
                } else if top_level {
                    self.refuse(Refusal::TopLevelNotMapping(mark));
                } else {
                    let text = self.text(value, style, marker);
                    let node = ScalarNode { text, start: mark };
                    self.place(Node::Scalar(node));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The tree and refusals compared with `marked-yaml`'s, which this
    //! reader replaced: same texts, styles, positions and refusals.

    use super::*;
    use marked_yaml::{parse_yaml_with_options, LoadError, LoaderOptions};
    use proptest::prelude::*;

    fn show(n: &Node<'_>, out: &mut String) {
        let m = |m: Mark| format!("{}:{}", m.line, m.column);
        match n {
            Node::Scalar(s) => out.push_str(&format!(
                "S({:?},{},{})",
                s.as_str(),
                s.may_coerce(),
                m(s.start)
            )),
            Node::Mapping(map) => {
                out.push_str(&format!("M({},{})[", m(map.start), m(map.end)));
                for (k, v) in map.iter() {
                    show(&Node::Scalar(k.clone()), out);
                    out.push_str(": ");
                    show(v, out);
                    out.push_str(", ");
                }
                out.push(']');
            }
            Node::Sequence(s) => {
                out.push_str(&format!("L({},{})[", m(s.start), m(s.end)));
                for v in s.iter() {
                    show(v, out);
                    out.push_str(", ");
                }
                out.push(']');
            }
        }
    }

    fn show_marked(n: &marked_yaml::Node, out: &mut String) {
        let m = |m: Option<&marked_yaml::Marker>| {
            let m = m.expect("marked");
            format!("{}:{}", m.line(), m.column())
        };
        match n {
            marked_yaml::Node::Scalar(s) => out.push_str(&format!(
                "S({:?},{},{})",
                s.as_str(),
                s.may_coerce(),
                m(s.span().start())
            )),
            marked_yaml::Node::Mapping(map) => {
                out.push_str(&format!(
                    "M({},{})[",
                    m(map.span().start()),
                    m(map.span().end())
                ));
                for (k, v) in map.iter() {
                    show_marked(&marked_yaml::Node::Scalar(k.clone()), out);
                    out.push_str(": ");
                    show_marked(v, out);
                    out.push_str(", ");
                }
                out.push(']');
            }
            marked_yaml::Node::Sequence(s) => {
                out.push_str(&format!(
                    "L({},{})[",
                    m(s.span().start()),
                    m(s.span().end())
                ));
                for v in s.iter() {
                    show_marked(v, out);
                    out.push_str(", ");
                }
                out.push(']');
            }
        }
    }

    fn ours(text: &str) -> String {
        let (root, refusal) = load(text);
        let mut out = format!("{refusal:?} ");
        if let Some(r) = root {
            show(&r, &mut out);
        }
        out
    }

    /// What `marked-yaml` made of `text`, as the reader used it: a first
    /// load refusing duplicates, and a second keeping the last one.
    fn theirs(text: &str) -> String {
        let options = || LoaderOptions::default().prevent_coercion(true);
        let mark = |m: &marked_yaml::Marker| Mark {
            line: m.line() as u32,
            column: m.column() as u32,
        };
        let (root, refusal) =
            match parse_yaml_with_options(0, text, options().error_on_duplicate_keys(true)) {
                Ok(root) => (Some(root), None),
                Err(LoadError::DuplicateKey(dup)) => (
                    parse_yaml_with_options(0, text, options()).ok(),
                    Some(Refusal::DuplicateKey {
                        key: dup.key.as_str().to_string(),
                        at: mark(dup.key.span().start().expect("key mark")),
                        first: mark(dup.prev_key.span().start().expect("key mark")),
                    }),
                ),
                Err(LoadError::ScanError(m, e)) => {
                    (None, Some(Refusal::Syntax(mark(&m), e.info().to_string())))
                }
                Err(LoadError::TopLevelMustBeMapping(m) | LoadError::TopLevelMustBeSequence(m)) => {
                    (None, Some(Refusal::TopLevelNotMapping(mark(&m))))
                }
                Err(LoadError::UnexpectedAnchor(m)) => (None, Some(Refusal::Anchor(mark(&m)))),
                Err(LoadError::MappingKeyMustBeScalar(m)) => {
                    (None, Some(Refusal::KeyNotScalar(mark(&m))))
                }
                Err(LoadError::UnexpectedTag(m)) => (None, Some(Refusal::Tag(mark(&m)))),
            };
        let mut out = format!("{refusal:?} ");
        if let Some(r) = root {
            show_marked(&r, &mut out);
        }
        out
    }

    const SEEDS: &[&str] = &[
        "version: 1\nbatch: b\norders:\n  - { id: o1, pair: BTC-USDC, side: buy, type: limit, quantity: \"0.001\", price: \"25000.00\" }\n  - { id: o2, pair: BTC-USDC, side: sell, type: market, quantity: '0.5' }\n",
        "version: 1\nbatch: b\ndefaults: { pair: BTC-USDC, type: limit }\norders:\n  - id: buy-1\n    side: buy\n    quantity: \"2\"\n    price: 24321.00\n  - id: sell-é\n    side: sell\n    quantity: \"1\\u00e9\"\n    price:\nqueries:\n  - id: fills\n    trades: { pair: BTC-USDC, from: 1793491200000, limit: 500 }\n  - id: funds\n    balances: {}\nlimits: { pairs: [BTC-USDC, ETH-USDC], max_quantity: { BTC-USDC: \"2\" } }\n",
        "# comment\n---\nversion: 1\nbatch: \"b b\"\ncancels:\n  - { id: c1, order: o1 }\n  - id: c2\n    all_open: { pair: ETH-USDC }\n  - id: c3\n    exchange_order_id: >\n      folded\n      text\n...\n",
        "version: 1\nbatch: b\nbatch: c\norders: [{ id: a, quantity: 1, quantity: 2 }, b, [c], {}]\nnote: |\n  literal ü\n  text\n",
        "",
        "# only a comment\n",
    ];

    #[test]
    fn seeds_read_as_marked_yaml_read_them() {
        for text in SEEDS {
            assert_eq!(ours(text), theirs(text), "{text}");
        }
        let many_keys: String = (0..40).map(|i| format!("k{}: {i}\n", i % 30)).collect();
        assert_eq!(ours(&many_keys), theirs(&many_keys));
        for text in [
            "- a\n",
            "a",
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "? [a]\n: b\n",
            "{ [a]: b }\n",
            "a: !t { b: 1 }\n",
            "a: &x [1]\n",
            "a: 1\na: { b: 1, b: 2 }\n",
            "a: { b: 1, b: 2 }\na: 2\n",
            "a: 1\na: 2\nb: &x 3\n",
            "a: \"x\\ty\"\nb: 'it''s'\nc: plain\n  folded\n",
            "a: [1, 2\n",
            "ü: é\nx: \"ü\"\n",
        ] {
            assert_eq!(ours(text), theirs(text), "{text}");
        }
    }

    /// The subset reader's tree, if it takes `text`, and the general
    /// parser's, shown the same way.
    fn subset_and_general(text: &str) -> Option<(String, String)> {
        let root = subset::load(text)?;
        let mut fast = format!("{:?} ", None::<Refusal>);
        show(&root, &mut fast);
        let (root, refusal) = general(text);
        let mut slow = format!("{refusal:?} ");
        if let Some(r) = root {
            show(&r, &mut slow);
        }
        Some((fast, slow))
    }

    /// Texts the subset reader must take (it would be no faster otherwise),
    /// with every construct it reads.
    const SUBSET: &[&str] = &[
        "version: 1\nbatch: b1\norders:\n  - { id: o0, pair: BTC-USDC, side: buy, type: limit, quantity: \"0.00001\", price: \"25000.00\" }\n  - { id: o1, pair: BTC-USDC, side: buy, type: limit, quantity: '0.5', price: 1e3 }\n",
        "# A batch\n\nversion: 1   # the format\nbatch: b-2 c\ndefaults: { pair: BTC-USDC, type: limit }\n\norders:\n  # first\n  - id: buy-1\n    side: buy\n    quantity: \"2\"\n    price: 24321.00\n\n  - id: sell-2\n    side: sell\n    price:\n    quantity: -1\n# trailing\n",
        "version: 1\nbatch: b\norders:\n- id: a\n  quantity: 1\n- { id: b }\n- plain words here\ncancels:\n- id: c1\n  order: a\nqueries:\n  - id: fills\n    trades: { pair: BTC-USDC, from: 1793491200000, limit: 500 }\n  - id: funds\n    balances: {}\n  -   id: t\n      at: 10:30\n",
        "limits:\n  pairs: [BTC-USDC, ETH-USDC]      # only these\n  max_quantity: { BTC-USDC: \"2\", ETH-USDC: [x, [y, {}], {a: b}] }\n  price_band: 5%\n  nested:\n    deeper:\n      k: v\n    back: 1\n  empty:\nlast:",
        "a:\n  b:\n  - x\n  - y\n  c: ''\nd: \"\"\ne: []\n",
        "z: 1 # c",
        "z: 1\n# c",
        "z: 1\n   ",
        // Ends inside an item's mapping, on a comment without a newline:
        // that mapping ends where the text does, its list a line later.
        "z:  #\n- x: c\n#",
        "a:\n  b:\n ",
    ];

    #[test]
    fn the_subset_reads_as_the_general_parser() {
        for text in SUBSET {
            let (fast, slow) =
                subset_and_general(text).unwrap_or_else(|| panic!("not read: {text}"));
            assert_eq!(fast, slow, "{text}");
        }
        for name in ["quickstart.yaml", "invalid.yaml", "fat-finger.yaml"] {
            let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).expect("example");
            let (fast, slow) =
                subset_and_general(&text).unwrap_or_else(|| panic!("not read: {name}"));
            assert_eq!(fast, slow, "{name}");
        }
        // Left to the general parser: what it reads differently or refuses
        // (the first was found by the tests below), and what the subset
        // leaves out.
        for text in [
            "d: { type: limit -}\n",
            "a: b\n  c\n",
            "a: 'it''s'\n",
            "a: \"x\\ty\"\n",
            "a:\n\t b: 1\n",
            "a: 1\r\n",
            "a: 1\na: 2\n",
            "- a\n",
            "a: &x 1\n",
            "a: [1,\n  2]\n",
            "a: |\n  x\n",
            "---\na: 1\n",
            "a: é\n",
        ] {
            assert!(subset::load(text).is_none(), "{text}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn edited_batches_read_as_marked_yaml_read_them(
            seed in 0..SEEDS.len() - 2,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0..3u8, prop::sample::select(vec![
                ":", " ", "\n", "-", "{", "}", "[", "]", ",", "\"", "'", "&a", "*a", "!", "#", "|", ">", "?",
                "a", "1", "é", "  ", "\\", "\t", "---", "...", "id", "quantity: 1", "\n  - ", "%",
            ])), 1..6),
        ) {
            let text = edit(SEEDS[seed], edits);
            prop_assert_eq!(ours(&text), theirs(&text), "{}", text);
        }
    }

    /// An edit of a text: insert, delete or replace at an index.
    fn edit(text: &str, edits: Vec<(prop::sample::Index, u8, &str)>) -> String {
        let mut text: Vec<char> = text.chars().collect();
        for (at, op, s) in edits {
            let i = at.index(text.len() + 1);
            match op {
                0 => {
                    text.splice(i..i, s.chars());
                }
                1 if i < text.len() => {
                    text.remove(i);
                }
                _ if i < text.len() => {
                    text.splice(i..i + 1, s.chars());
                }
                _ => {}
            }
        }
        text.into_iter().collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10000))]
        /// Near misses of the subset: what the subset reader takes, it reads
        /// as the general parser does.
        #[test]
        fn edited_subset_texts_read_as_the_general_parser(
            seed in 0..SUBSET.len(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0..3u8, prop::sample::select(vec![
                ":", " ", "\n", "-", "{", "}", "[", "]", ",", "\"", "'", "&a", "*a", "!", "#", "|", ">", "?",
                "a", "1", "é", "  ", "\\", "\t", "---", "...", "id", "quantity: 1", "\n  - ", "%", ": ",
                " #", "\n- ", "\n  ", "\n    ", "\r", "- ", "{}", "[]", "x: ", "\n#", ".", "@", "~", "(",
            ])), 1..6),
        ) {
            let text = edit(SUBSET[seed], edits);
            if let Some((fast, slow)) = subset_and_general(&text) {
                prop_assert_eq!(fast, slow, "{}", text);
            }
        }
    }

    /// A random tree, to be written out in random YAML styles.
    #[derive(Debug, Clone)]
    enum Shape {
        Scalar(&'static str),
        Map(Vec<(&'static str, Shape)>),
        List(Vec<Shape>),
    }

    fn shape() -> impl Strategy<Value = Shape> {
        let scalar = prop::sample::select(vec![
            "a",
            "1",
            "-1",
            ".5",
            "+2",
            "0.00001",
            "\"25000.00\"",
            "'0.5'",
            "x-y",
            "BTC-USDC",
            "10:30",
            "a:b",
            "a b",
            "a  b",
            "\"\"",
            "''",
            "\"a # b\"",
            "'x: y'",
            "5%",
            "1e3",
            "null",
            "~",
            "yes",
            "\"it's\"",
            "'say \"hi\"'",
            "/p",
            "f(x)",
            "a=b",
            "u@h",
            "a - b",
            "\"\\\\n\"",
            "'it''s'",
            "a:",
            "-",
            "- a",
            "#a",
            "a #b",
            "a# b",
            "[a",
            "a]",
            "{a",
            "&a",
            "*a",
            "!t",
            "|",
            ">",
            "?",
            "@",
            "`",
            "%x",
            "a,b",
            "a:,",
            "\"a\"b",
            "",
        ])
        .prop_map(Shape::Scalar);
        let key = prop::sample::select(vec![
            "id", "side", "quantity", "price", "pair", "a", "b", "BTC-USDC", "k_1", "x.y", "-k",
            "a b", "\"q\"", "1", "on", "?", "k:", "a#", "id",
        ]);
        scalar.prop_recursive(4, 40, 5, move |inner| {
            prop_oneof![
                proptest::collection::vec((key.clone(), inner.clone()), 0..5).prop_map(Shape::Map),
                proptest::collection::vec(inner, 0..5).prop_map(Shape::List),
            ]
        })
    }

    /// Writes shapes out, taking each style choice from `choices`.
    struct Writer {
        choices: Vec<u8>,
        next: usize,
        out: String,
    }

    impl Writer {
        fn pick(&mut self, n: u8) -> u8 {
            let c = self.choices.get(self.next).copied().unwrap_or(0);
            self.next += 1;
            c % n
        }
        /// Maybe blank or comment lines.
        fn filler(&mut self, indent: usize) {
            match self.pick(8) {
                0 => self.out.push('\n'),
                1 => self
                    .out
                    .push_str(&format!("{}# note\n", " ".repeat(indent))),
                2 => self.out.push_str("#\n   \n"),
                _ => {}
            }
        }
        fn end(&mut self) {
            match self.pick(6) {
                0 => self.out.push_str("   # c\n"),
                1 => self.out.push_str("  \n"),
                _ => self.out.push('\n'),
            }
        }
        fn flow(&mut self, s: &Shape) {
            match s {
                Shape::Scalar(t) => self.out.push_str(t),
                Shape::Map(entries) => {
                    let open = if self.pick(2) == 0 { "{ " } else { "{" };
                    self.out.push_str(open);
                    for (i, (k, v)) in entries.iter().enumerate() {
                        if i > 0 {
                            self.out.push_str(", ");
                        }
                        self.out.push_str(k);
                        self.out.push_str(": ");
                        self.flow(v);
                    }
                    let close = if self.pick(2) == 0 { " }" } else { "}" };
                    self.out.push_str(close);
                }
                Shape::List(items) => {
                    self.out.push('[');
                    for (i, v) in items.iter().enumerate() {
                        if i > 0 {
                            let comma = if self.pick(3) == 0 { " ,  " } else { ", " };
                            self.out.push_str(comma);
                        }
                        self.flow(v);
                    }
                    self.out.push(']');
                }
            }
        }
        /// The entries of a block mapping at `indent`; the first one's key is
        /// already placed when `inline` (a list item's mapping).
        fn block_map(&mut self, entries: &[(&str, Shape)], indent: usize, inline: bool) {
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 || !inline {
                    self.filler(indent);
                    self.out.push_str(&" ".repeat(indent));
                }
                self.out.push_str(k);
                self.out.push(':');
                self.value(v, indent);
            }
        }
        /// A mapping's value, after its key's `:`.
        fn value(&mut self, v: &Shape, indent: usize) {
            let nonempty = match v {
                Shape::Map(e) => !e.is_empty(),
                Shape::List(l) => !l.is_empty(),
                Shape::Scalar(_) => false,
            };
            if !nonempty || self.pick(3) == 0 {
                if !matches!(v, Shape::Scalar("")) {
                    self.out.push(' ');
                }
                self.flow(v);
                self.end();
                return;
            }
            self.end();
            let deeper = indent + 1 + self.pick(4) as usize;
            match v {
                Shape::Map(e) => self.block_map(e, deeper, false),
                Shape::List(l) => {
                    let at = if self.pick(2) == 0 { indent } else { deeper };
                    self.block_list(l, at)
                }
                Shape::Scalar(_) => unreachable!(),
            }
        }
        fn block_list(&mut self, items: &[Shape], indent: usize) {
            for v in items {
                self.filler(indent);
                self.out.push_str(&" ".repeat(indent));
                self.out.push('-');
                let gap = 1 + self.pick(3) as usize;
                self.out.push_str(&" ".repeat(gap));
                match v {
                    Shape::Map(e) if !e.is_empty() && self.pick(3) != 0 => {
                        self.block_map(e, indent + 1 + gap, true)
                    }
                    _ => {
                        self.flow(v);
                        self.end();
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10000))]
        /// Trees written out in random styles: what the subset reader takes,
        /// it reads as the general parser does.
        #[test]
        fn written_trees_read_as_the_general_parser(
            entries in proptest::collection::vec((prop::sample::select(vec!["version", "batch", "orders", "a", "b"]), shape()), 1..5),
            choices in proptest::collection::vec(any::<u8>(), 200),
            last_newline in any::<bool>(),
        ) {
            let mut w = Writer { choices, next: 0, out: String::new() };
            w.block_map(&entries, 0, false);
            let mut text = w.out;
            if !last_newline {
                text.pop();
            }
            if let Some((fast, slow)) = subset_and_general(&text) {
                prop_assert_eq!(fast, slow, "{}", text);
            }
        }
    }
}
