//! The tree of a file written in the common subset of YAML that batches
//! use, read byte by byte without the general parser.
//!
//! Why: `yaml-rust2` makes a `char` iterator, tokens and an owned `String`
//! for every scalar: for a batch, about 33,000 instructions an order line,
//! most of `validate`. This reader takes about 5,000 for the same line, and
//! gives the same tree: the same texts, styles and positions, including
//! where `yaml-rust2` puts a collection's start and end.
//!
//! It reads only what it is sure of, and answers `None` for anything else,
//! so that `tree::load` hands the text to the general parser:
//! - ASCII text of printable characters and `\n` (no tabs, no `\r`);
//! - a top level that is a block mapping at column 1;
//! - block mappings whose keys are plain words (`[A-Za-z0-9_]` first, then
//!   those and `-./+=%@~()`), each followed by `:` and a space or the end of
//!   the line;
//! - block lists (`- item`, also at the indentation of their key), whose
//!   items are written on the line of their `-`, a mapping among them;
//! - flow mappings and lists (`{ a: 1, b: [x, y] }`) within one line;
//! - plain scalars of one line, made of the key characters, `:` before a
//!   letter or digit, and spaces before a letter, digit or `_`;
//! - quoted scalars of one line without escapes (`"..."` without `\`,
//!   `'...'` without `''`);
//! - comments and blank lines.
//!
//! Duplicate keys, anchors, tags, block scalars, multi-line scalars and
//! flows, document markers, and every error are left to the general parser,
//! which reports them.

use super::{insert, MappingNode, Mark, Node, ScalarNode, SequenceNode, Text};

/// Collections nested deeper than this are left to the general parser.
const MAX_DEPTH: usize = 64;

/// Keys longer than this are left to the general parser (YAML limits an
/// implicit key to 1024 characters).
const MAX_KEY: usize = 512;

/// The tree of `text`, if it is written in the subset and is one.
pub(super) fn load(text: &str) -> Option<Node<'_>> {
    if !text
        .bytes()
        .all(|b| b == b'\n' || (b' '..=b'~').contains(&b))
    {
        return None;
    }
    let mut r = Reader {
        text,
        b: text.as_bytes(),
        pos: 0,
        line: 1,
        line_start: 0,
        depth: 0,
        spare_entries: Vec::new(),
    };
    r.next_content();
    if r.indent() != 0 {
        return None;
    }
    let root = r.block_mapping(0)?;
    r.at_end().then_some(root)
}

/// Where the reader is: a byte offset, and its line and that line's start.
struct Reader<'a> {
    text: &'a str,
    b: &'a [u8],
    pos: usize,
    line: u32,
    line_start: usize,
    depth: usize,
    /// Emptied entry vectors of the mappings read, for the next ones: a
    /// mapping keeps an exact copy, not a vector grown by doubling (as in
    /// `tree::Loader`).
    spare_entries: Vec<Vec<Entry<'a>>>,
}

type Entry<'a> = (ScalarNode<'a>, Node<'a>);

/// A plain word's first character.
fn word_start(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// A plain word's other characters.
fn word(c: u8) -> bool {
    word_start(c)
        || matches!(
            c,
            b'-' | b'.' | b'/' | b'+' | b'=' | b'%' | b'@' | b'~' | b'(' | b')'
        )
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }
    fn at(&self, i: usize) -> Option<u8> {
        self.b.get(i).copied()
    }
    fn at_end(&self) -> bool {
        self.pos >= self.b.len()
    }
    fn indent(&self) -> usize {
        self.pos - self.line_start
    }
    fn mark(&self) -> Mark {
        self.mark_at(self.pos)
    }
    fn mark_at(&self, pos: usize) -> Mark {
        Mark {
            line: self.line,
            column: u32::try_from(pos - self.line_start + 1).unwrap_or(u32::MAX),
        }
    }
    /// Where `yaml-rust2` marks the end of the stream: the start of the line
    /// after the last (a last line without `\n` counts as ended).
    fn end_mark(&self) -> Mark {
        let line = if self.pos == self.line_start {
            self.line
        } else {
            self.line + 1
        };
        Mark { line, column: 1 }
    }
    /// The mark of what ends a block collection at indentation `n` (and an
    /// empty value in it): the next content line's first character, or at
    /// the end of the text, the end of the stream. But `yaml-rust2` closes
    /// the collections indented deeper than a last line's (unended) text
    /// where that text ends, before it ends the line.
    fn block_end_mark(&self, n: usize) -> Mark {
        if self.at_end() && n <= self.indent() {
            self.end_mark()
        } else {
            self.mark()
        }
    }
    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }
    fn exact_entries(&mut self, mut entries: Vec<Entry<'a>>) -> Box<[Entry<'a>]> {
        let exact = entries.drain(..).collect();
        self.spare_entries.push(entries);
        exact
    }
    fn deeper(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// From the start of a line, or the `\n` that ends one: past blank and
    /// comment lines to the first character of the next content line, or to
    /// the end of the text.
    fn next_content(&mut self) {
        loop {
            self.skip_spaces();
            match self.peek() {
                Some(b'\n') => self.newline(),
                Some(b'#') => self.skip_comment(),
                _ => return,
            }
        }
    }
    fn newline(&mut self) {
        self.pos += 1;
        self.line += 1;
        self.line_start = self.pos;
    }
    fn skip_comment(&mut self) {
        match self.b[self.pos..].iter().position(|&c| c == b'\n') {
            Some(n) => self.pos += n,
            None => self.pos = self.b.len(),
        }
    }
    /// After a value: spaces, then a comment (after a space) or the end of
    /// the line; then on to the next content line.
    fn end_line(&mut self) -> Option<()> {
        self.skip_spaces();
        match self.peek() {
            None | Some(b'\n') => {}
            Some(b'#') if self.b[self.pos - 1] == b' ' => self.skip_comment(),
            Some(_) => return None,
        }
        self.next_content();
        Some(())
    }

    /// A `-` that starts a list item: followed by a space.
    fn at_item(&self) -> bool {
        self.peek() == Some(b'-') && self.at(self.pos + 1) == Some(b' ')
    }

    /// A plain word followed by `:` and a space or the end of the line,
    /// starting here; its end.
    fn key_end(&self) -> Option<usize> {
        if !self.peek().is_some_and(word_start) {
            return None;
        }
        let mut i = self.pos + 1;
        while self.at(i).is_some_and(word) {
            i += 1;
        }
        (i - self.pos <= MAX_KEY
            && self.at(i) == Some(b':')
            && matches!(self.at(i + 1), None | Some(b' ' | b'\n')))
        .then_some(i)
    }

    /// A block mapping whose keys are at column `n + 1`, from its first key.
    /// Ends at the first content line indented less, or the end of the text.
    fn block_mapping(&mut self, n: usize) -> Option<Node<'a>> {
        self.deeper()?;
        let mut entries = self.spare_entries.pop().unwrap_or_default();
        let mut index = None;
        let mut start = None;
        loop {
            let end = self.key_end()?;
            let key = ScalarNode {
                text: Text::Plain(&self.text[self.pos..end]),
                start: self.mark(),
            };
            self.pos = end;
            start.get_or_insert(self.mark());
            self.pos += 1;
            let value = self.value_of_key(n)?;
            if insert(&mut entries, &mut index, key, value).is_some() {
                return None;
            }
            if self.at_end() || self.indent() < n {
                break;
            }
            if self.indent() > n {
                return None;
            }
        }
        self.depth -= 1;
        Some(Node::Mapping(MappingNode {
            entries: self.exact_entries(entries),
            start: start.expect("a first key"),
            end: self.block_end_mark(n),
        }))
    }

    /// The value of a block mapping's key at indentation `n`, from after its
    /// `:`; the reader is left at the next content line.
    fn value_of_key(&mut self, n: usize) -> Option<Node<'a>> {
        // `key_end` saw a space or the end of the line after the `:`, so a
        // `#` here starts a comment.
        self.skip_spaces();
        if !matches!(self.peek(), None | Some(b'\n' | b'#')) {
            let value = self.inline_value()?;
            self.end_line()?;
            return Some(value);
        }
        self.end_line()?;
        if self.at_end() {
            return Some(empty(self.block_end_mark(n)));
        }
        let m = self.indent();
        if m > n {
            if self.at_item() {
                self.block_sequence(m, false)
            } else {
                self.block_mapping(m)
            }
        } else if m == n && self.at_item() {
            self.block_sequence(n, true)
        } else {
            Some(empty(self.mark()))
        }
    }

    /// A block list whose `-` are at column `n + 1`, from its first `-`.
    /// A list at its key's indentation (`indentless`) ends at the next line
    /// there that is not an item; `yaml-rust2` marks its start at its first
    /// item, not at the `-`.
    fn block_sequence(&mut self, n: usize, indentless: bool) -> Option<Node<'a>> {
        self.deeper()?;
        let mut items = Vec::new();
        let mut start = (!indentless).then(|| self.mark());
        loop {
            self.pos += 1;
            self.skip_spaces();
            start.get_or_insert(self.mark());
            let item = match self.peek() {
                None | Some(b'\n' | b'#') => return None,
                Some(_) if self.key_end().is_some() => {
                    let m = self.indent();
                    self.block_mapping(m)?
                }
                Some(_) => {
                    let value = self.inline_value()?;
                    self.end_line()?;
                    value
                }
            };
            items.push(item);
            if self.at_end() || self.indent() < n {
                break;
            }
            if self.indent() > n {
                return None;
            }
            if !self.at_item() {
                if indentless {
                    break;
                }
                return None;
            }
        }
        self.depth -= 1;
        Some(Node::Sequence(SequenceNode {
            items: items.into_boxed_slice(),
            start: start.expect("a first item"),
            end: self.block_end_mark(n),
        }))
    }

    /// A scalar or a flow collection, within this line.
    fn inline_value(&mut self) -> Option<Node<'a>> {
        match self.peek()? {
            b'{' => self.flow_mapping(),
            b'[' => self.flow_sequence(),
            _ => self.scalar().map(Node::Scalar),
        }
    }

    /// A scalar: quoted without escapes, or a plain one (whose characters
    /// leave out `,`, `[`, `]`, `{` and `}`, so it ends the same in a flow).
    fn scalar(&mut self) -> Option<ScalarNode<'a>> {
        let start = self.mark();
        let c = self.peek()?;
        if c == b'"' || c == b'\'' {
            let from = self.pos + 1;
            let len = self.b[from..].iter().position(|&b| b == c)?;
            let body = &self.b[from..from + len];
            if body.contains(&b'\n') || (c == b'"' && body.contains(&b'\\')) {
                return None;
            }
            self.pos = from + len + 1;
            if c == b'\'' && self.peek() == Some(b'\'') {
                return None;
            }
            return Some(ScalarNode {
                text: Text::Quoted(&self.text[from..from + len]),
                start,
            });
        }
        let first_ok = word_start(c)
            || (matches!(c, b'-' | b'.' | b'+' | b'/')
                && self
                    .at(self.pos + 1)
                    .is_some_and(|d| d.is_ascii_alphanumeric()));
        if !first_ok {
            return None;
        }
        let from = self.pos;
        let mut end = self.pos + 1;
        let mut i = end;
        loop {
            match self.at(i) {
                Some(c) if word(c) => {
                    i += 1;
                    end = i;
                }
                Some(b':') if self.at(i + 1).is_some_and(|d| d.is_ascii_alphanumeric()) => {
                    i += 1;
                    end = i;
                }
                // Spaces, then a word: `yaml-rust2` refuses some other
                // characters there (`-` before `}` in a flow).
                Some(b' ') => {
                    i += 1;
                    while self.at(i) == Some(b' ') {
                        i += 1;
                    }
                    if !self.at(i).is_some_and(word_start) {
                        break;
                    }
                }
                _ => break,
            }
        }
        self.pos = end;
        Some(ScalarNode {
            text: Text::Plain(&self.text[from..end]),
            start,
        })
    }

    /// Past a flow's opening bracket, from it: where it is, and whether an
    /// item follows (rather than `close`).
    fn open_flow(&mut self, close: u8) -> Option<(Mark, bool)> {
        self.deeper()?;
        let start = self.mark();
        self.pos += 1;
        self.skip_spaces();
        Some((start, self.peek() != Some(close)))
    }

    /// After a flow's item: past a `,` (another item follows: `true`), or at
    /// the flow's `close` (`false`).
    fn flow_next(&mut self, close: u8) -> Option<bool> {
        self.skip_spaces();
        match self.peek()? {
            b',' => {
                self.pos += 1;
                self.skip_spaces();
                Some(true)
            }
            c if c == close => Some(false),
            _ => None,
        }
    }

    /// Past a flow's closing bracket, from it: where it is.
    fn close_flow(&mut self) -> Mark {
        let end = self.mark();
        self.pos += 1;
        self.depth -= 1;
        end
    }

    /// `{ key: value, ... }` within this line, from its `{`.
    fn flow_mapping(&mut self) -> Option<Node<'a>> {
        let (start, mut more) = self.open_flow(b'}')?;
        let mut entries = self.spare_entries.pop().unwrap_or_default();
        let mut index = None;
        while more {
            let end = self.key_end()?;
            if self.at(end + 1) != Some(b' ') {
                return None;
            }
            let key = ScalarNode {
                text: Text::Plain(&self.text[self.pos..end]),
                start: self.mark(),
            };
            self.pos = end + 1;
            self.skip_spaces();
            let value = self.flow_value()?;
            if insert(&mut entries, &mut index, key, value).is_some() {
                return None;
            }
            more = self.flow_next(b'}')?;
        }
        let end = self.close_flow();
        Some(Node::Mapping(MappingNode {
            entries: self.exact_entries(entries),
            start,
            end,
        }))
    }

    /// `[ item, ... ]` within this line, from its `[`.
    fn flow_sequence(&mut self) -> Option<Node<'a>> {
        let (start, mut more) = self.open_flow(b']')?;
        let mut items = Vec::new();
        while more {
            items.push(self.flow_value()?);
            more = self.flow_next(b']')?;
        }
        let end = self.close_flow();
        Some(Node::Sequence(SequenceNode {
            items: items.into_boxed_slice(),
            start,
            end,
        }))
    }

    /// A value inside a flow: a scalar or a nested flow collection.
    fn flow_value(&mut self) -> Option<Node<'a>> {
        match self.peek()? {
            b'{' => self.flow_mapping(),
            b'[' => self.flow_sequence(),
            _ => self.scalar().map(Node::Scalar),
        }
    }
}

/// The empty plain scalar of a key written without a value, where
/// `yaml-rust2` puts it: at whatever comes next.
fn empty<'a>(at: Mark) -> Node<'a> {
    Node::Scalar(ScalarNode {
        text: Text::Plain(""),
        start: at,
    })
}
