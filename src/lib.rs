//! hqx: execute declarative order batches on the Haqqex exchange, exactly
//! once, with every step recorded in a SQLite journal.
//!
//! Module map (one concern each):
//! - [`model`]: sides, order types, pairs, the text-keeping decimal.
//! - [`batch`]: the YAML batch format, parsed with positions and validated.
//! - [`limits`]: pre-trade limits: read, merged (stricter wins), checked.
//! - [`reference`]: reference prices from the exchange's ticker, for limits.
//! - [`venue`]: every assumption about the exchange, overridable.
//! - [`sign`]: HMAC request signing and the secret type.
//! - [`key`]: the API key object, and the rules kept about it (file mode, expiry, ips).
//! - [`client`]: the signed, rate-limited REST client.
//! - [`transport`]: HTTP under it: hyper-util over rustls, or reqwest through a proxy.
//! - [`order`]: the order state machine: the only place states change.
//! - [`cancel`]: the cancel state machine (the cancel of one order).
//! - [`cancels`]: a run's cancels: resolved, sent once, checked after a lost answer.
//! - [`journal`]: the SQLite journal; all SQL lives there and in `migrations/`.
//! - [`account`]: what the exchange says about an account, read safely (shared by run and reconcile).
//! - [`positions`]: positions and realized PnL by average cost, exact (the `positions` view's figures).
//! - [`executor`]: runs a validated batch against a client and a journal.
//! - [`reconcile`]: keeps the journal true to the exchange account; finds drift.
//! - [`sandbox`]: a Haqqex-compatible exchange on loopback, with faults.
//! - [`connect`]: reaching the exchange: key, venue, sandbox, account.
//! - [`sql_functions`]: exact decimal functions for `hqx sql` (as sqlite3's decimal extension).
//! - [`output`]: how hqx speaks: human text, JSON lines, GitHub Actions, progress, colour.
//! - [`cli`]: the command line, parsed; [`cmd`]: one module per subcommand.

pub mod account;
pub mod batch;
pub mod cancel;
pub mod cancels;
pub mod cli;
pub mod client;
pub mod cmd;
pub mod connect;
pub mod executor;
pub mod journal;
pub mod key;
pub mod limits;
pub mod model;
pub mod order;
pub mod output;
pub mod positions;
pub mod reconcile;
pub mod reference;
pub mod sandbox;
pub mod sign;
pub mod sql_functions;
pub mod transport;
pub mod venue;
