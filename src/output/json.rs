//! The JSON lines vocabulary, one constructor per record type. Every
//! record is one JSON object on one line with `type` first. Described by
//! `schemas/output.schema.json` and the README.
//!
//! | type | from | what |
//! |---|---|---|
//! | `version` | every command, first | `format`, `hqx`, `command` |
//! | `batch` | validate | a valid batch: `batch_id`, `file`, `orders`, `queries` |
//! | `order` | plan, run | one batch order: `action` (what this command does or did with it), `state`, ... |
//! | `query` | plan, run | one batch query: `action` (`to_run`) or `ok` and `result`/`error` |
//! | `change` | reconcile, resolve | a journaled change of an order that is not drift |
//! | `finding` | reconcile, ack | a reconcile finding |
//! | `unresolved`, `incomplete` | reconcile | an order not proven; something not read completely |
//! | `note` | run, reconcile | something to read |
//! | `row` | sql | one result row |
//! | `journal` | journal | what was done to the journal |
//! | `error` | every command | one error, with `file`/`line`/`column`/`field` when it points into a file |
//! | `summary` | every command, last | counts and `exit_code` |

use serde::Serialize;
use serde_json::{Map, Value};

use super::{Diagnostic, JSON_FORMAT};

/// One record: `type` then fields, in insertion order.
#[derive(Debug, Clone)]
pub struct Record(Map<String, Value>);

impl Record {
    /// A record of type `kind`.
    pub fn new(kind: &str) -> Record {
        let mut m = Map::new();
        m.insert("type".into(), Value::String(kind.into()));
        Record(m)
    }

    /// Add (or replace) a field.
    pub fn field(mut self, key: &str, v: impl Serialize) -> Record {
        self.0
            .insert(key.into(), serde_json::to_value(v).unwrap_or(Value::Null));
        self
    }

    /// A record from a JSON object that has `type` (other values give an
    /// empty `note`).
    pub fn from_json(v: Value) -> Record {
        match v {
            Value::Object(m) if m.contains_key("type") => Record(m),
            _ => Record::new("note"),
        }
    }

    /// The record as one line of JSON.
    pub fn to_line(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }

    /// The fields (for tests and the step summary).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }
}

/// The first record of every command.
pub fn version(command: &str) -> Record {
    Record::new("version")
        .field("format", JSON_FORMAT)
        .field("hqx", env!("CARGO_PKG_VERSION"))
        .field("command", command)
}

/// One error; where it points, when it points into a file.
pub fn error(message: &str, at: Option<&Diagnostic>) -> Record {
    let r = Record::new("error").field("message", message);
    match at {
        None => r,
        Some(d) => r
            .field("file", d.path.display().to_string())
            .field("line", d.line)
            .field("column", d.column)
            .field("field", &d.field)
            .field("order_id", d.order_id()),
    }
}

/// A note for the reader.
pub fn note(message: &str) -> Record {
    Record::new("note").field("message", message)
}

/// One batch order, as `plan` or `run` sees it.
pub struct OrderRecord<'a> {
    /// The batch.
    pub batch_id: &'a str,
    /// The order.
    pub order_id: &'a str,
    /// What this command does or did with it (see the README).
    pub action: &'a str,
    /// Its journal state (`null` when not journaled yet).
    pub state: Option<&'a str>,
    /// The exchange's id.
    pub exchange_order_id: Option<&'a str>,
    /// Filled quantity, exact text.
    pub filled_quantity: Option<&'a str>,
    /// The last error, or the conflicting journaled body.
    pub detail: Option<&'a str>,
}

/// An `order` record.
pub fn order(o: &OrderRecord<'_>) -> Record {
    Record::new("order")
        .field("batch_id", o.batch_id)
        .field("order_id", o.order_id)
        .field("action", o.action)
        .field("state", o.state)
        .field("exchange_order_id", o.exchange_order_id)
        .field("filled_quantity", o.filled_quantity)
        .field("detail", o.detail)
}

/// A `query` record: `result` is hqx's one-line summary of the answer.
pub fn query(batch_id: &str, query_id: &str, outcome: Result<&str, &str>) -> Record {
    let r = Record::new("query")
        .field("batch_id", batch_id)
        .field("query_id", query_id);
    match outcome {
        Ok(s) => r
            .field("ok", true)
            .field("result", s)
            .field("error", None::<&str>),
        Err(e) => r
            .field("ok", false)
            .field("result", None::<&str>)
            .field("error", e),
    }
}
