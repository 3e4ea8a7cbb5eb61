//! Ids and item labels: the id rule, how an order's, query's or cancel's id
//! is checked (present, well formed, unique in its list), and the
//! `orders[1] (buy-1)` labels errors are filed under.

use std::collections::HashMap;

use marked_yaml::types::MarkedMappingNode;

use super::{shown, Check, Field, Fields, Pos};

impl Check<'_> {
    /// An id field: checked against the id rule.
    pub(super) fn id<'a>(
        &mut self,
        at: &str,
        f: Field<'a>,
        example: &str,
    ) -> Option<(&'a str, Pos)> {
        let s = self.scalar(at, f, example)?;
        if valid_id(s.text) {
            Some((s.text, s.pos))
        } else {
            self.err(s.pos, at, id_rule_message(s.text));
            None
        }
    }

    /// An order's or query's `id`: present, well formed, and not used by an
    /// earlier item of the same list (`seen`).
    pub(super) fn unique_id<'a>(
        &mut self,
        fields: &Fields<'a>,
        pos: Pos,
        label: &str,
        seen: &mut HashMap<&'a str, (String, Pos)>,
        kind: &IdKind,
    ) -> Option<&'a str> {
        let at = format!("{label}.id");
        let Some(f) = fields.get("id") else {
            if !fields.misspelt("id") {
                self.err(pos, &at, kind.missing.into());
            }
            return None;
        };
        let (id, id_pos) = self.id(&at, f, kind.example)?;
        if let Some((first, first_pos)) = seen.get(id) {
            self.err(
                id_pos,
                &at,
                format!(
                    "{} id `{id}` is already used by {first} at line {}; {}: rename one of them",
                    kind.noun, first_pos.line, kind.rule
                ),
            );
            return None;
        }
        seen.insert(id, (label.to_string(), id_pos));
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
pub(super) fn peek_id(map: &MarkedMappingNode) -> Option<&str> {
    map.get_scalar("id")
        .map(|s| s.as_str())
        .filter(|s| valid_id(s))
}

/// `orders[1] (buy-1)`, or `orders[1]` without a valid id.
pub(super) fn item_label(list: &str, i: usize, id: Option<&str>) -> String {
    match id {
        Some(id) => format!("{list}[{i}] ({id})"),
        None => format!("{list}[{i}]"),
    }
}
