//! The order state machine: every legal state change of a journaled order
//! is written in [`transition`], and nowhere else.
//!
//! The journal stores the state as text and records every change in its
//! append-only `order_events` table; the executor asks this module what
//! the next state is and refuses anything it calls illegal. The property
//! that matters for money: once the exchange has acknowledged an order
//! (`open`, `filled`, `cancelled`), no event leads back to a state from
//! which hqx would send it again. The only ways back to `pending` are
//! proofs that the exchange never got it (`NotSent`, `ProvenAbsent`,
//! `Refused` for a retryable refusal such as 429).

use std::fmt;
use std::str::FromStr;

/// Where an order is in its life, as far as hqx can prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderState {
    /// The intent is journaled; it has not left the process (or is proven
    /// not to have reached the exchange). Safe to send.
    Pending,
    /// Journaled as about to be sent; the request may be on the wire. If
    /// hqx stops here, the outcome is unknown.
    Sending,
    /// The exchange acknowledged it and it rests on the book.
    Open,
    /// The exchange reports it fully filled.
    Filled,
    /// Cancelled on the exchange.
    Cancelled,
    /// The exchange refused it (invalid, insufficient funds). Final: it
    /// will not be sent again under this id.
    Rejected,
    /// The request may have reached the exchange but hqx did not see the
    /// answer. Must be resolved (found or proven absent) before anything
    /// else in its batch is sent.
    Unknown,
}

impl OrderState {
    /// Every state, for tests and documentation.
    pub const ALL: [OrderState; 7] = [
        OrderState::Pending,
        OrderState::Sending,
        OrderState::Open,
        OrderState::Filled,
        OrderState::Cancelled,
        OrderState::Rejected,
        OrderState::Unknown,
    ];

    /// The journal's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Pending => "pending",
            OrderState::Sending => "sending",
            OrderState::Open => "open",
            OrderState::Filled => "filled",
            OrderState::Cancelled => "cancelled",
            OrderState::Rejected => "rejected",
            OrderState::Unknown => "unknown",
        }
    }

    /// Acknowledged by the exchange: it exists there.
    pub fn is_placed(self) -> bool {
        matches!(
            self,
            OrderState::Open | OrderState::Filled | OrderState::Cancelled
        )
    }

    /// Nothing more will happen to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderState::Filled | OrderState::Cancelled | OrderState::Rejected
        )
    }

    /// The state an exchange order status maps to (`open`,
    /// `partially_filled`, `filled`, `cancelled`/`canceled`, ...).
    pub fn from_exchange_status(status: &str) -> OrderState {
        match status.to_ascii_lowercase().as_str() {
            "filled" | "done" | "closed" => OrderState::Filled,
            "cancelled" | "canceled" | "expired" => OrderState::Cancelled,
            "rejected" => OrderState::Rejected,
            _ => OrderState::Open,
        }
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown order state `{s}` in the journal"))
    }
}

/// Something that happened to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// hqx is about to send the placement request.
    Send,
    /// The request provably never reached the exchange (connection refused).
    NotSent,
    /// The exchange answered that it did not act and may be asked again
    /// (429, 401, 403, 503 before acceptance is not included: see `Lost`).
    Refused,
    /// The exchange acknowledged the order with this status.
    Acknowledged(OrderState),
    /// The exchange refused the order for good (400, 422).
    Rejected,
    /// The request may have reached the exchange; no answer was seen.
    Lost,
    /// hqx restarted and found the order `Sending`: the process died
    /// between journaling and recording the answer.
    Recovered,
    /// Reconciliation found the order on the exchange with this status.
    Found(OrderState),
    /// Reconciliation proved the exchange does not have it.
    ProvenAbsent,
    /// A later status report from the exchange.
    StatusReport(OrderState),
    /// A person declared it placed (`hqx resolve --as placed`).
    DeclaredPlaced,
    /// A person declared it absent (`hqx resolve --as absent`).
    DeclaredAbsent,
    /// A batch cancel reached it before it was ever sent: it never will be.
    CancelledUnsent,
    /// A cancel (DELETE) of it is about to be sent; it stays open until
    /// the exchange confirms.
    CancelSent,
    /// The exchange confirmed a cancel of it.
    CancelConfirmed,
}

impl Event {
    /// The journal's spelling of the event kind.
    pub fn name(self) -> &'static str {
        match self {
            Event::Send => "send",
            Event::NotSent => "not_sent",
            Event::Refused => "refused",
            Event::Acknowledged(_) => "acknowledged",
            Event::Rejected => "rejected",
            Event::Lost => "lost",
            Event::Recovered => "recovered",
            Event::Found(_) => "found",
            Event::ProvenAbsent => "proven_absent",
            Event::StatusReport(_) => "status_report",
            Event::DeclaredPlaced => "declared_placed",
            Event::DeclaredAbsent => "declared_absent",
            Event::CancelledUnsent => "cancelled_unsent",
            Event::CancelSent => "cancel_sent",
            Event::CancelConfirmed => "cancel_confirmed",
        }
    }
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("order in state `{from}` cannot take event `{event}`")]
pub struct IllegalTransition {
    /// The state the order was in.
    pub from: OrderState,
    /// The event's name.
    pub event: &'static str,
}

/// The one place an order's next state is decided.
pub fn transition(from: OrderState, event: Event) -> Result<OrderState, IllegalTransition> {
    use Event as E;
    use OrderState as S;
    let to = match (from, event) {
        (S::Pending, E::Send) => S::Sending,
        (S::Sending, E::NotSent | E::Refused) => S::Pending,
        (S::Sending, E::Acknowledged(s)) if s.is_placed() => s,
        (S::Sending, E::Rejected) => S::Rejected,
        (S::Sending, E::Lost | E::Recovered) => S::Unknown,
        // Found on the exchange, placed or rejected there: either is final
        // for sending.
        (S::Unknown, E::Found(s)) if s.is_placed() || s == S::Rejected => s,
        (S::Unknown, E::ProvenAbsent | E::DeclaredAbsent) => S::Pending,
        (S::Unknown, E::DeclaredPlaced) => S::Open,
        // Cancels (src/cancels.rs): a never-sent order is never sent; an
        // open one stays open until the exchange says it is cancelled.
        (S::Pending, E::CancelledUnsent) => S::Cancelled,
        (S::Open, E::CancelSent) => S::Open,
        (S::Open, E::CancelConfirmed) => S::Cancelled,
        (S::Open, E::StatusReport(s)) if s.is_placed() => s,
        // A final exchange status may be reported again; it stays put.
        (S::Filled | S::Cancelled, E::StatusReport(s)) if s == from => from,
        _ => {
            return Err(IllegalTransition {
                from,
                event: event.name(),
            })
        }
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_state() -> impl Strategy<Value = OrderState> {
        prop::sample::select(OrderState::ALL.to_vec())
    }

    fn any_event() -> impl Strategy<Value = Event> {
        prop_oneof![
            Just(Event::Send),
            Just(Event::NotSent),
            Just(Event::Refused),
            any_state().prop_map(Event::Acknowledged),
            Just(Event::Rejected),
            Just(Event::Lost),
            Just(Event::Recovered),
            any_state().prop_map(Event::Found),
            Just(Event::ProvenAbsent),
            any_state().prop_map(Event::StatusReport),
            Just(Event::DeclaredPlaced),
            Just(Event::DeclaredAbsent),
            Just(Event::CancelledUnsent),
            Just(Event::CancelSent),
            Just(Event::CancelConfirmed),
        ]
    }

    proptest! {
        /// Once the exchange has acknowledged an order, no sequence of
        /// events makes hqx send it again (reach `Pending` or `Sending`),
        /// nor forget it (`Unknown`, `Rejected`).
        #[test]
        fn placed_orders_are_never_sent_again(
            start in prop::sample::select(vec![OrderState::Open, OrderState::Filled, OrderState::Cancelled]),
            events in prop::collection::vec(any_event(), 0..40),
        ) {
            let mut s = start;
            for e in events {
                if let Ok(next) = transition(s, e) {
                    s = next;
                }
                prop_assert!(s.is_placed(), "reached {s} from a placed order");
            }
        }

        /// From anywhere, reaching `Sending` needs a `Send` from
        /// `Pending`, and leaving `Unknown` for `Pending` needs proof.
        #[test]
        fn only_proof_makes_an_unknown_order_sendable(
            events in prop::collection::vec(any_event(), 0..60),
        ) {
            let mut s = OrderState::Pending;
            for e in events {
                if let Ok(next) = transition(s, e) {
                    if s == OrderState::Unknown && next == OrderState::Pending {
                        prop_assert!(matches!(e, Event::ProvenAbsent | Event::DeclaredAbsent));
                    }
                    if next == OrderState::Sending {
                        prop_assert_eq!(s, OrderState::Pending);
                    }
                    s = next;
                }
            }
        }
    }

    #[test]
    fn a_cancelled_order_is_never_sent() {
        assert_eq!(
            transition(OrderState::Pending, Event::CancelledUnsent),
            Ok(OrderState::Cancelled)
        );
        assert!(transition(OrderState::Cancelled, Event::Send).is_err());
        assert!(transition(OrderState::Unknown, Event::CancelledUnsent).is_err());
        assert!(transition(OrderState::Sending, Event::CancelledUnsent).is_err());
        assert_eq!(
            transition(OrderState::Open, Event::CancelConfirmed),
            Ok(OrderState::Cancelled)
        );
    }

    #[test]
    fn final_states_are_final() {
        assert!(transition(OrderState::Filled, Event::StatusReport(OrderState::Open)).is_err());
        assert!(transition(OrderState::Rejected, Event::Send).is_err());
        assert!(transition(OrderState::Sending, Event::Send).is_err());
    }

    #[test]
    fn an_unknown_order_found_rejected_on_the_exchange_is_rejected() {
        assert_eq!(
            transition(OrderState::Unknown, Event::Found(OrderState::Rejected)),
            Ok(OrderState::Rejected)
        );
        assert!(transition(OrderState::Unknown, Event::Found(OrderState::Pending)).is_err());
        assert!(transition(OrderState::Unknown, Event::Found(OrderState::Unknown)).is_err());
    }

    #[test]
    fn names_round_trip() {
        for s in OrderState::ALL {
            assert_eq!(s.as_str().parse::<OrderState>().unwrap(), s);
        }
    }
}
