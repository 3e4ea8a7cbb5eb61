//! The batch file: YAML in, validated domain values out.
//!
//! A batch is read in two stages, and nothing outside this module ever sees
//! YAML:
//!
//! 1. **Read**: `marked-yaml` turns the text into a node tree in which every
//!    key and value keeps its line and column, and every scalar keeps the
//!    exact text it was written as. YAML syntax errors, duplicate keys,
//!    anchors, tags and extra documents stop here, each with its position.
//! 2. **Validate**: the tree becomes a [`Batch`] of domain types from
//!    [`crate::model`], with defaults applied and ids checked. Every problem
//!    is collected rather than only the first, each with file, line, column
//!    and field, so one `hqx validate` shows everything there is to fix.
//!
//! Why not deserialize straight into structs: a serde derive loses positions,
//! stops at the first error, and would read `price: 24321.00` as a float and
//! hand the model `24321`, so hqx would sign text the user never wrote. The
//! node tree keeps `24321.00` as written; [`Amount`] validates it and keeps it.
//!
//! # Format, version 1
//!
//! ```yaml
//! version: 1
//! batch: rebalance-2026-11        # the batch's id: its idempotency namespace
//! defaults: { pair: BTC-USDC, type: limit }   # optional; may set pair, type, side
//! orders:
//!   - id: buy-1                   # unique within the batch, stable across reruns
//!     side: buy
//!     quantity: "2"
//!     price: "24321.00"
//! queries:
//!   - id: fills
//!     trades: { pair: BTC-USDC, from: 2026-11-01T00:00:00Z, limit: 100 }
//!   - id: open
//!     orders: { status: open }
//!   - id: funds
//!     balances: {}
//!   - id: addr
//!     deposit_address: { currency: USDC, network: ERC20 }
//! limits: { max_order_notional: "50000", price_band: "5%" }  # optional: see crate::limits
//! ```
//!
//! Fields in errors are written `orders[1] (buy-1).price`: the index counts
//! from 0 in file order, and the id follows in parentheses when it is valid.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{parse_yaml_with_options, LoadError, LoaderOptions, Marker, Node};
use sha2::{Digest, Sha256};

use crate::model::{OrderIntent, Pair};

mod cancels;
mod ids;
mod orders;
mod queries;
mod suggest;

pub use cancels::{CancelSpec, CancelTarget};
use ids::{item_label, peek_id, valid_id, IdKind};
use orders::{Defaults, Preset};
use suggest::unknown_key;

/// The only batch format version this hqx reads (`version: 1`).
pub const FORMAT_VERSION: u32 = 1;

/// The most orders one batch may hold.
pub const MAX_ORDERS: usize = 100_000;

/// The largest batch file [`load`] reads, in bytes (64 MiB: far above
/// [`MAX_ORDERS`] orders with comments).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The largest page size a `trades` query may ask for (`limit`).
pub const MAX_TRADES_LIMIT: u32 = 500;

/// How many errors [`BatchErrors`] prints before summarising the rest.
const MAX_SHOWN_ERRORS: usize = 100;

/// Longest scalar text read for any field: every valid value is far shorter,
/// and this keeps error messages (which quote the text) short.
const MAX_SCALAR_CHARS: usize = 200;

const TOP_KEYS: &[&str] = &[
    "version", "batch", "defaults", "orders", "queries", "limits", "cancels",
];

/// A validated batch: everything the executor needs, nothing of the YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The batch's id (`batch:`), the namespace of its order ids.
    pub id: String,
    /// The file the batch was read from, as given.
    pub path: PathBuf,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub file_sha256: String,
    /// The orders, in file order.
    pub orders: Vec<OrderSpec>,
    /// The queries, in file order.
    pub queries: Vec<QuerySpec>,
    /// The cancels, in file order (run before any placement).
    pub cancels: Vec<CancelSpec>,
    /// The batch's own pre-trade limits (`limits:`), if it sets any.
    pub limits: Option<crate::limits::Limits>,
}

/// One order of a batch, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSpec {
    /// The order's id, unique within the batch and stable across reruns.
    pub id: String,
    /// What the order asks the exchange to do.
    pub intent: OrderIntent,
    /// The 1-based line where the order starts in the file.
    pub line: usize,
    /// Where its fields are written, for messages about them.
    pub marks: OrderMarks,
}

/// Where an order's fields are in the batch file. A field the order takes
/// from `defaults` (or, for a market order, the price it does not have) is
/// marked where the order starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderMarks {
    /// The `pair` value.
    pub pair: Pos,
    /// The `quantity` value.
    pub quantity: Pos,
    /// The `price` value.
    pub price: Pos,
}

/// One query of a batch: something to read from the exchange and journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuerySpec {
    /// The query's id, unique among the batch's queries.
    pub id: String,
    /// What to ask.
    pub kind: QueryKind,
    /// The 1-based line where the query starts in the file.
    pub line: usize,
}

/// What a query asks the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryKind {
    /// My trades (`trades`), optionally filtered.
    Trades {
        /// Only this pair.
        pair: Option<Pair>,
        /// Only trades at or after this time, in ms since the epoch.
        from_ms: Option<i64>,
        /// Only trades at or before this time, in ms since the epoch.
        to_ms: Option<i64>,
        /// Page size, 1 to [`MAX_TRADES_LIMIT`].
        limit: Option<u32>,
    },
    /// My orders (`orders`), optionally filtered.
    Orders {
        /// Only this pair.
        pair: Option<Pair>,
        /// Only orders in this state ([`OrderStatusFilter::All`] if not given).
        status: OrderStatusFilter,
    },
    /// My balances (`balances`).
    Balances,
    /// A deposit address (`deposit_address`).
    DepositAddress {
        /// The asset to deposit, e.g. `USDC`.
        currency: String,
        /// The chain to deposit on, e.g. `ERC20`.
        network: String,
    },
}

/// Which orders an `orders` query lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatusFilter {
    /// Orders still resting on the book.
    Open,
    /// Orders filled completely.
    Filled,
    /// Orders cancelled.
    Cancelled,
    /// Every order (the default).
    All,
}

impl OrderStatusFilter {
    /// The wire spelling: `open`, `filled`, `cancelled` or `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatusFilter::Open => "open",
            OrderStatusFilter::Filled => "filled",
            OrderStatusFilter::Cancelled => "cancelled",
            OrderStatusFilter::All => "all",
        }
    }
}

impl FromStr for OrderStatusFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(OrderStatusFilter::Open),
            "filled" => Ok(OrderStatusFilter::Filled),
            "cancelled" => Ok(OrderStatusFilter::Cancelled),
            "all" => Ok(OrderStatusFilter::All),
            other => Err(format!(
                "status must be `open`, `filled`, `cancelled` or `all`, not `{}`",
                shown(other)
            )),
        }
    }
}

impl fmt::Display for OrderStatusFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem with a batch file, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    /// The batch file.
    pub path: PathBuf,
    /// 1-based line; 0 when the problem is the file as a whole (unreadable).
    pub line: usize,
    /// 1-based column; 0 together with `line` 0.
    pub column: usize,
    /// The field at fault, like `orders[1] (buy-1).price`; empty when the
    /// problem is not about one field (a YAML syntax error, an unreadable file).
    pub field: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for BatchError {}

/// Every problem found in a batch file, in file order. Never empty when
/// returned by [`load`] or [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchErrors(pub Vec<BatchError>);

impl fmt::Display for BatchErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in self.0.iter().take(MAX_SHOWN_ERRORS) {
            writeln!(f, "{e}")?;
        }
        if self.0.len() > MAX_SHOWN_ERRORS {
            writeln!(
                f,
                "... and {} more not shown; fix the ones above and validate again",
                self.0.len() - MAX_SHOWN_ERRORS
            )?;
        }
        let n = self.0.len();
        let path = self
            .0
            .first()
            .map(|e| e.path.display().to_string())
            .unwrap_or_else(|| "the batch file".to_string());
        write!(
            f,
            "{n} error{} in {path}; nothing was sent or written",
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for BatchErrors {}

/// Read and validate the batch file at `path`.
///
/// An unreadable, oversized or non-UTF-8 file is one [`BatchError`] (at
/// line 0 unless a position is known); otherwise this is [`parse`].
pub fn load(path: &Path) -> Result<Batch, BatchErrors> {
    let whole_file = |line: usize, column: usize, message: String| {
        BatchErrors(vec![BatchError {
            path: path.to_path_buf(),
            line,
            column,
            field: String::new(),
            message,
        }])
    };
    let mut bytes = Vec::new();
    let read =
        std::fs::File::open(path).and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes));
    if let Err(e) = read {
        return Err(whole_file(
            0,
            0,
            format!("cannot read the batch file: {e}; check the path and that you may read it"),
        ));
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(whole_file(
            0,
            0,
            format!(
                "the file is larger than {} MiB; split it into several batch files, each with its own `batch` id",
                MAX_FILE_BYTES >> 20
            ),
        ));
    }
    match String::from_utf8(bytes) {
        Ok(text) => parse(path, &text),
        Err(e) => {
            let good = e.utf8_error().valid_up_to();
            let bad = e.as_bytes()[good];
            let prefix = String::from_utf8_lossy(&e.as_bytes()[..good]);
            let line = prefix.matches('\n').count() + 1;
            let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            Err(whole_file(
                line,
                column,
                format!("the file is not UTF-8 text (byte 0x{bad:02x} here); save it as UTF-8"),
            ))
        }
    }
}

/// Validate batch `text` as if read from `path` (used for messages and
/// [`Batch::path`]; the file is not touched). The SHA-256 is of `text`.
pub fn parse(path: &Path, text: &str) -> Result<Batch, BatchErrors> {
    let mut check = Check {
        path,
        errors: Vec::new(),
    };
    // Stage 1: text to a positioned node tree.
    let Some(root) = read_tree(text, &mut check) else {
        return Err(check.into_errors());
    };
    // Stage 2: node tree to domain values.
    let checked = check.batch(&root);
    let limits = crate::limits::from_batch(&mut check, &root);
    match checked {
        Some((id, orders, queries, cancels)) if check.errors.is_empty() => Ok(Batch {
            id,
            path: path.to_path_buf(),
            file_sha256: hex::encode(Sha256::digest(text.as_bytes())),
            orders,
            queries,
            cancels,
            limits,
        }),
        _ => Err(check.into_errors()),
    }
}

// ---------------------------------------------------------------------------
// Stage 1: YAML text to a node tree with positions.

/// Parse `text` into a node tree, or report why not. On a duplicate key the
/// error is reported and the tree is read again keeping the last value, so
/// that stage 2 still reports everything else.
pub(crate) fn read_tree(text: &str, check: &mut Check<'_>) -> Option<Node> {
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
    let options = || LoaderOptions::default().prevent_coercion(true);
    match parse_yaml_with_options(0, text, options().error_on_duplicate_keys(true)) {
        Ok(root) => Some(root),
        Err(LoadError::DuplicateKey(dup)) => {
            let root = parse_yaml_with_options(0, text, options()).ok();
            let name = dup.key.as_str();
            let at = dup.key.span().start().copied();
            let mut field = match (&root, at) {
                (Some(r), Some(m)) => field_at(r, m.character()),
                _ => String::new(),
            };
            push_key(&mut field, name);
            let first = marker_pos(dup.prev_key.span().start());
            check.err(
                marker_pos(at.as_ref()),
                &field,
                format!(
                    "duplicate key `{}` (first at line {}, column {}); keep one of them and delete the other",
                    shown(name),
                    first.line,
                    first.column
                ),
            );
            root
        }
        Err(e) => {
            let (marker, message) = load_error_message(&e);
            check.err(marker_pos(marker), "", message);
            None
        }
    }
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

/// The position and a user-facing message for a loader error.
fn load_error_message(e: &LoadError) -> (Option<&Marker>, String) {
    match e {
        LoadError::ScanError(m, se) => (
            Some(m),
            format!(
                "YAML syntax error: {}; check the indentation, the `key: value` colons, and that quotes and brackets are closed",
                se.info()
            ),
        ),
        LoadError::TopLevelMustBeMapping(m) | LoadError::TopLevelMustBeSequence(m) => (
            Some(m),
            "a batch file must be a YAML mapping of keys, starting with `version: 1` and `batch: <id>`"
                .into(),
        ),
        LoadError::UnexpectedAnchor(m) => (
            Some(m),
            "YAML anchors and aliases (`&name`, `*name`) are not supported in batch files; write each value out in full (use `defaults` for shared fields)".into(),
        ),
        LoadError::MappingKeyMustBeScalar(m) => (
            Some(m),
            "keys must be plain names like `quantity`, not lists or mappings".into(),
        ),
        LoadError::UnexpectedTag(m) => (
            Some(m),
            "YAML tags (like `!!str`) are not supported; to make a value text, put it in quotes instead".into(),
        ),
        LoadError::DuplicateKey(dup) => (
            dup.key.span().start(),
            format!(
                "duplicate key `{}`; keep one of them and delete the other",
                shown(dup.key.as_str())
            ),
        ),
    }
}

/// The field path (as in [`BatchError::field`]) of the innermost mapping or
/// list that contains character `at`.
fn field_at(root: &Node, at: usize) -> String {
    let mut field = String::new();
    let mut node = root;
    let contains = |n: &Node| {
        node_start(n).is_some_and(|s| s.character() <= at)
            && n.span().end().is_none_or(|e| at < e.character())
    };
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
// Stage 2: node tree to domain values.

/// A 1-based position in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

fn marker_pos(m: Option<&Marker>) -> Pos {
    m.map_or(Pos { line: 1, column: 1 }, |m| Pos {
        line: m.line(),
        column: m.column(),
    })
}

/// Where a node starts. A block mapping's own start mark lies after its
/// first key, so a mapping starts at the earlier of the two.
fn node_start(node: &Node) -> Option<&Marker> {
    let own = node.span().start();
    let first_key = node
        .as_mapping()
        .and_then(|m| m.keys().next())
        .and_then(|k| k.span().start());
    match (own, first_key) {
        (Some(a), Some(b)) if b.character() < a.character() => Some(b),
        (None, b) => b,
        (a, _) => a,
    }
}

pub(crate) fn node_pos(node: &Node) -> Pos {
    marker_pos(node_start(node))
}

/// One `key: value` of a mapping.
#[derive(Clone, Copy)]
pub(crate) struct Field<'a> {
    pub(crate) key: &'a MarkedScalarNode,
    pub(crate) value: &'a Node,
}

impl<'a> Field<'a> {
    pub(crate) fn name(&self) -> &'a str {
        self.key.as_str()
    }
    pub(crate) fn key_pos(&self) -> Pos {
        marker_pos(self.key.span().start())
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
    fn misspelt(&self, name: &str) -> bool {
        self.meant.contains(&name)
    }
}

/// A scalar value, as written.
pub(crate) struct Scalar<'a> {
    pub(crate) text: &'a str,
    /// Written without quotes.
    plain: bool,
    pub(crate) pos: Pos,
}

/// Whether a scalar is YAML's null (`~`, `null`, or nothing).
pub(crate) fn is_null(s: &MarkedScalarNode) -> bool {
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
        map: &'a MarkedMappingNode,
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
        at: &str,
        f: Field<'a>,
        example: &str,
    ) -> Option<Scalar<'a>> {
        let name = shown(f.name());
        let pos = f.value_pos();
        let shape = match f.value {
            Node::Scalar(s) if is_null(s) => {
                self.err(
                    pos,
                    at,
                    format!(
                        "`{name}` has no value; write one, like `{name}: {example}`, or delete the line"
                    ),
                );
                return None;
            }
            Node::Scalar(s) if s.as_str().chars().count() > MAX_SCALAR_CHARS => {
                self.err(
                    pos,
                    at,
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
        self.err(
            pos,
            at,
            format!(
                "`{name}` must be a single value, not {shape}; write it like `{name}: {example}`"
            ),
        );
        None
    }

    /// A scalar field parsed with `T::from_str`, whose message is reported.
    pub(crate) fn value<T: FromStr<Err = String>>(
        &mut self,
        at: &str,
        f: Field<'_>,
        example: &str,
    ) -> Option<T> {
        let s = self.scalar(at, f, example)?;
        match s.text.parse() {
            Ok(v) => Some(v),
            Err(message) => {
                self.err(s.pos, at, message);
                None
            }
        }
    }

    /// The whole batch: its id, orders and queries.
    #[allow(clippy::type_complexity)]
    fn batch(
        &mut self,
        root: &Node,
    ) -> Option<(String, Vec<OrderSpec>, Vec<QuerySpec>, Vec<CancelSpec>)> {
        let Some(map) = root.as_mapping() else {
            self.err(
                node_pos(root),
                "",
                "a batch file must be a YAML mapping of keys, starting with `version: 1` and `batch: <id>`".into(),
            );
            return None;
        };
        let top = node_pos(root);
        let fields = self.fields(map, TOP_KEYS, "", "a batch file");

        match fields.get("version") {
            None if fields.misspelt("version") => {}
            None => self.err(
                top,
                "version",
                "missing `version`; add `version: 1` as the first line".into(),
            ),
            Some(f) => self.version(f),
        }

        let id = match fields.get("batch") {
            None if fields.misspelt("batch") => None,
            None => {
                self.err(
                    top,
                    "batch",
                    "missing `batch`; add `batch: <id>`, a name for this batch (like `rebalance-2026-11`) that stays the same across reruns: order ids are unique within it".into(),
                );
                None
            }
            Some(f) => self
                .id("batch", f, "rebalance-2026-11")
                .map(|(s, _)| s.to_string()),
        };

        let defaults = match fields.get("defaults") {
            None => Defaults {
                pair: Preset::Unset,
                side: Preset::Unset,
                kind: Preset::Unset,
            },
            Some(f) => self.defaults(f),
        };

        let orders = fields.get("orders").map(|f| self.orders(f, &defaults));
        let queries = fields.get("queries").map(|f| self.queries(f));
        let empty = |x: &Option<Option<usize>>| matches!(x, None | Some(Some(0)));
        let (order_count, query_count) = (
            orders.as_ref().map(|o| o.as_ref().map(|(n, _)| *n)),
            queries.as_ref().map(|q| q.as_ref().map(|(n, _)| *n)),
        );
        let misspelt =
            fields.misspelt("orders") || fields.misspelt("queries") || fields.misspelt("cancels");
        let orders = orders.flatten().map(|(_, o)| o).unwrap_or_default();
        let queries = queries.flatten().map(|(_, q)| q).unwrap_or_default();
        let cancels = fields
            .get("cancels")
            .map(|f| self.cancels(f, id.as_deref(), &orders, &queries));
        let cancel_count = cancels.as_ref().map(|c| c.as_ref().map(|(n, _)| *n));
        if empty(&order_count) && empty(&query_count) && empty(&cancel_count) && !misspelt {
            self.err(
                top,
                "orders",
                "the batch has no orders, queries or cancels; add at least one under `orders:`, `queries:` or `cancels:`".into(),
            );
        }
        let cancels = cancels.flatten().map(|(_, c)| c).unwrap_or_default();
        Some((id?, orders, queries, cancels))
    }

    fn version(&mut self, f: Field<'_>) {
        let Some(s) = self.scalar("version", f, "1") else {
            return;
        };
        if s.text == "1" && s.plain {
            return;
        }
        let message = if s.text.trim() == "1" {
            "`version` must be the number 1, not the text \"1\"; write `version: 1` without quotes"
                .to_string()
        } else {
            format!(
                "unsupported batch format version `{}`; this hqx reads version {FORMAT_VERSION}: write `version: 1` and use the fields described in the README",
                shown(s.text)
            )
        };
        self.err(s.pos, "version", message);
    }

    /// A list under `orders` or `queries`: its entries, or `None` if it is
    /// not a list (reported).
    fn list<'a>(&mut self, f: Field<'a>, example: &str) -> Option<&'a [Node]> {
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
// Small rules and wording.

fn push_key(field: &mut String, key: &str) {
    if !field.is_empty() {
        field.push('.');
    }
    field.push_str(key);
}

/// User text for a message: control characters escaped, long text cut.
pub(crate) fn shown(s: &str) -> String {
    const MAX: usize = 40;
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

#[cfg(test)]
mod tests;
