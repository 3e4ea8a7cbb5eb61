//! Integration tests: the real `hqx` binary against the sandbox exchange on
//! loopback. One test binary, a module per topic (see `util` for the harness).

mod util;

mod auth;
mod cancels;
mod concurrency;
mod crash;
mod faults;
mod interrupt;
mod limits;
mod migrate;
mod output;
mod reconcile;
mod resolve;
mod run;
mod sandbox_market;
mod sql;
mod terminal;
mod transport;
mod validate;
mod views;
