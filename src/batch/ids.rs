//! Ids and item labels: the id rule, how an order's, query's or cancel's id
//! is checked (present, well formed, unique in its list), and the
//! `orders[1] (buy-1)` labels errors are filed under.

use std::borrow::Cow;
use std::collections::HashMap;

use super::tree::MappingNode;

use super::{shown, Check, Field, Fields, Pos};

impl Check<'_> {
    /// An id field: checked against the id rule.
    pub(super) fn id<'a>(
        &mut self,
        at: &(impl Label + ?Sized),
        f: Field<'a>,
        example: &str,
    ) -> Option<(&'a str, Pos)> {
        let s = self.scalar(at, f, example)?;
        if valid_id(s.text) {
            Some((s.text, s.pos))
        } else {
            self.err(s.pos, &at.text(), id_rule_message(s.text));
            None
        }
    }

    /// An order's or query's `id`: present, well formed, and not used by an
    /// earlier item of the same list (`seen`).
    pub(super) fn unique_id<'a>(
        &mut self,
        fields: &Fields<'a>,
        i: usize,
        pos: Pos,
        label: &str,
        seen: &mut HashMap<&'a str, (usize, Pos)>,
        kind: &IdKind,
    ) -> Option<&'a str> {
        let at = Dotted(label, "id");
        let Some(f) = fields.get("id") else {
            if !fields.misspelt("id") {
                self.err(pos, &at.text(), kind.missing.into());
            }
            return None;
        };
        let (id, id_pos) = self.id(&at, f, kind.example)?;
        if let Some(&(first, first_pos)) = seen.get(id) {
            // The first item's label, as it was: its id is this one.
            let first = item_label(kind.list, first, Some(id));
            self.err(
                id_pos,
                &at.text(),
                format!(
                    "{} id `{id}` is already used by {first} at line {}; {}: rename one of them",
                    kind.noun, first_pos.line, kind.rule
                ),
            );
            return None;
        }
        seen.insert(id, (i, id_pos));
        Some(id)
    }
}

/// The id rule: `^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`.
pub(super) fn valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
}

/// How an order's or a query's id is explained when it is missing or reused.
pub(super) struct IdKind {
    /// The list the items are in: `orders`, `queries` or `cancels`.
    pub(super) list: &'static str,
    pub(super) noun: &'static str,
    pub(super) example: &'static str,
    pub(super) missing: &'static str,
    pub(super) rule: &'static str,
}

fn id_rule_message(s: &str) -> String {
    format!(
        "`{}` is not a valid id; use 1 to 64 letters, digits, `.`, `_`, `:` or `-`, starting with a letter or digit",
        shown(s)
    )
}

/// The id of an order or query, if it has a valid one, for labels.
pub(super) fn peek_id<'a>(map: &'a MappingNode<'a>) -> Option<&'a str> {
    map.get_scalar("id")
        .map(|s| s.as_str())
        .filter(|s| valid_id(s))
}

/// `orders[1] (buy-1)`, or `orders[1]` without a valid id.
pub(super) fn item_label(list: &str, i: usize, id: Option<&str>) -> String {
    // Written out rather than with `format!`: one label per order, and a
    // batch holds up to 100,000.
    let mut digits = [0u8; 20];
    let mut n = i;
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let digits = std::str::from_utf8(&digits[at..]).expect("ASCII digits");
    let mut label =
        String::with_capacity(list.len() + digits.len() + id.map_or(2, |s| s.len() + 5));
    label.push_str(list);
    label.push('[');
    label.push_str(digits);
    label.push(']');
    if let Some(id) = id {
        label.push_str(" (");
        label.push_str(id);
        label.push(')');
    }
    label
}

/// `label.name`: a field of an item.
fn dotted(label: &str, name: &str) -> String {
    let mut s = String::with_capacity(label.len() + 1 + name.len());
    s.push_str(label);
    s.push('.');
    s.push_str(name);
    s
}

/// What an error is filed under (`orders[1] (buy-1).price`), as the checks
/// pass it along: the text is made only when there is an error to file,
/// not for each field of each order.
pub(crate) trait Label {
    fn text(&self) -> Cow<'_, str>;
}

impl Label for str {
    fn text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl Label for String {
    fn text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

/// [`dotted`], made when needed.
pub(crate) struct Dotted<'a>(pub(crate) &'a str, pub(crate) &'a str);

impl Label for Dotted<'_> {
    fn text(&self) -> Cow<'_, str> {
        Cow::Owned(dotted(self.0, self.1))
    }
}
