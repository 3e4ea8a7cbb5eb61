//! The cancel state machine: every legal state change of one journaled
//! cancel of one order is written in [`transition`], and nowhere else.
//!
//! A batch's cancel (`cancels:` in the file) becomes one row of the
//! `cancels` table and, once hqx knows which exchange orders it is about,
//! one row of `cancel_orders` per order (one for `order:` and
//! `exchange_order_id:`, as many as were open for `all_open:`). Each of
//! those carries a [`CancelState`]; every change is an event in
//! `cancel_events`. The order's own state (`cancelled`) changes in
//! [`crate::order`].
//!
//! The property that matters: a DELETE is sent only from `pending`, and the
//! only ways back to `pending` after a DELETE may have reached the exchange
//! are proofs that the order is still open there (`CheckedOpen`) or that the
//! request never left (`NotSent`, `Refused`).

use std::fmt;
use std::str::FromStr;

/// Where the cancel of one order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelState {
    /// Journaled; no DELETE has left (or it is proven not to have acted).
    Pending,
    /// The target is a journal order whose own outcome is `unknown` (or
    /// `sending`): nothing is sent until it is resolved.
    Waiting,
    /// Journaled as about to be sent; the DELETE may be on the wire.
    Sending,
    /// The DELETE may have reached the exchange; its answer was not seen.
    /// The order's status is read before anything is sent again.
    Unknown,
    /// The exchange cancelled the order (our DELETE, or found cancelled
    /// after a DELETE whose answer was lost).
    Done,
    /// The order was already filled: nothing to cancel.
    AlreadyFilled,
    /// The order was already cancelled: nothing to do.
    AlreadyCancelled,
    /// The order never reached the exchange (never sent, or rejected): it
    /// is journaled as cancelled without a request.
    NotNeeded,
    /// The exchange refused the DELETE for good (e.g. no such order).
    Failed,
}

impl CancelState {
    /// Every state.
    pub const ALL: [CancelState; 9] = [
        CancelState::Pending,
        CancelState::Waiting,
        CancelState::Sending,
        CancelState::Unknown,
        CancelState::Done,
        CancelState::AlreadyFilled,
        CancelState::AlreadyCancelled,
        CancelState::NotNeeded,
        CancelState::Failed,
    ];

    /// The journal's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CancelState::Pending => "pending",
            CancelState::Waiting => "waiting",
            CancelState::Sending => "sending",
            CancelState::Unknown => "unknown",
            CancelState::Done => "done",
            CancelState::AlreadyFilled => "already_filled",
            CancelState::AlreadyCancelled => "already_cancelled",
            CancelState::NotNeeded => "not_needed",
            CancelState::Failed => "failed",
        }
    }

    /// Nothing more will be sent for it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CancelState::Done
                | CancelState::AlreadyFilled
                | CancelState::AlreadyCancelled
                | CancelState::NotNeeded
                | CancelState::Failed
        )
    }

    /// Final, and the order is not live.
    pub fn is_settled(self) -> bool {
        self.is_final() && self != CancelState::Failed
    }
}

impl fmt::Display for CancelState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CancelState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CancelState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown cancel state `{s}` in the journal"))
    }
}

/// Something that happened to the cancel of one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelEvent {
    /// The target journal order must be resolved first.
    Wait,
    /// The target journal order was resolved: the cancel may go ahead.
    Ready,
    /// hqx is about to send the DELETE.
    Send,
    /// The DELETE provably never reached the exchange.
    NotSent,
    /// The exchange answered that it did not act (429, 401, 403).
    Refused,
    /// The exchange cancelled the order.
    Acknowledged,
    /// The DELETE may have reached the exchange; no answer was seen.
    Lost,
    /// hqx restarted and found the cancel `sending`.
    Recovered,
    /// The order's status, read after a lost answer or at the start: open.
    CheckedOpen,
    /// The order's status, read after a lost answer: cancelled.
    CheckedCancelled,
    /// The order was filled before it could be cancelled.
    AlreadyFilled,
    /// The order was cancelled before our DELETE.
    AlreadyCancelled,
    /// The order never reached the exchange; cancelled without a request.
    NotNeeded,
    /// The exchange refused the DELETE for good.
    Failed,
}

impl CancelEvent {
    /// The journal's spelling.
    pub fn name(self) -> &'static str {
        match self {
            CancelEvent::Wait => "wait",
            CancelEvent::Ready => "ready",
            CancelEvent::Send => "send",
            CancelEvent::NotSent => "not_sent",
            CancelEvent::Refused => "refused",
            CancelEvent::Acknowledged => "acknowledged",
            CancelEvent::Lost => "lost",
            CancelEvent::Recovered => "recovered",
            CancelEvent::CheckedOpen => "checked_open",
            CancelEvent::CheckedCancelled => "checked_cancelled",
            CancelEvent::AlreadyFilled => "already_filled",
            CancelEvent::AlreadyCancelled => "already_cancelled",
            CancelEvent::NotNeeded => "not_needed",
            CancelEvent::Failed => "failed",
        }
    }
}

/// A transition the cancel state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cancel in state `{from}` cannot take event `{event}`")]
pub struct IllegalCancelTransition {
    /// The state it was in.
    pub from: CancelState,
    /// The event's name.
    pub event: &'static str,
}

/// The one place a cancel's next state is decided.
pub fn transition(
    from: CancelState,
    event: CancelEvent,
) -> Result<CancelState, IllegalCancelTransition> {
    use CancelEvent as E;
    use CancelState as S;
    let to = match (from, event) {
        (S::Pending, E::Wait) => S::Waiting,
        (S::Waiting, E::Ready) => S::Pending,
        (S::Pending, E::Send) => S::Sending,
        (S::Sending, E::NotSent | E::Refused) => S::Pending,
        (S::Sending, E::Acknowledged) => S::Done,
        (S::Sending, E::Lost | E::Recovered) => S::Unknown,
        (S::Pending | S::Waiting | S::Sending | S::Unknown, E::Failed) => S::Failed,
        // Before any DELETE (pending, waiting) or after one whose answer
        // was lost or refused (sending, unknown): what the order is now.
        (S::Pending | S::Waiting | S::Sending | S::Unknown, E::AlreadyFilled) => S::AlreadyFilled,
        (S::Pending | S::Waiting | S::Sending, E::AlreadyCancelled) => S::AlreadyCancelled,
        (S::Pending | S::Waiting, E::NotNeeded) => S::NotNeeded,
        (S::Unknown, E::CheckedCancelled) => S::Done,
        // Still open after a lost DELETE: sending it again is safe (a
        // second DELETE of a cancelled order is refused, never doubled).
        (S::Unknown, E::CheckedOpen) => S::Pending,
        _ => {
            return Err(IllegalCancelTransition {
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

    fn any_event() -> impl Strategy<Value = CancelEvent> {
        prop::sample::select(vec![
            CancelEvent::Wait,
            CancelEvent::Ready,
            CancelEvent::Send,
            CancelEvent::NotSent,
            CancelEvent::Refused,
            CancelEvent::Acknowledged,
            CancelEvent::Lost,
            CancelEvent::Recovered,
            CancelEvent::CheckedOpen,
            CancelEvent::CheckedCancelled,
            CancelEvent::AlreadyFilled,
            CancelEvent::AlreadyCancelled,
            CancelEvent::NotNeeded,
            CancelEvent::Failed,
        ])
    }

    proptest! {
        /// After a DELETE may have reached the exchange, nothing is sent
        /// again without a status read (`CheckedOpen`) or proof it never
        /// left; and final states stay final.
        #[test]
        fn a_cancel_is_resent_only_after_proof(events in prop::collection::vec(any_event(), 0..60)) {
            let mut s = CancelState::Pending;
            for e in events {
                if let Ok(next) = transition(s, e) {
                    prop_assert!(!s.is_final(), "left final state {s}");
                    if next == CancelState::Pending && matches!(s, CancelState::Unknown) {
                        prop_assert_eq!(e, CancelEvent::CheckedOpen);
                    }
                    if next == CancelState::Sending {
                        prop_assert_eq!(s, CancelState::Pending);
                    }
                    s = next;
                }
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in CancelState::ALL {
            assert_eq!(s.as_str().parse::<CancelState>().unwrap(), s);
        }
    }

    #[test]
    fn a_lost_cancel_found_cancelled_is_done() {
        assert_eq!(
            transition(CancelState::Unknown, CancelEvent::CheckedCancelled),
            Ok(CancelState::Done)
        );
        assert!(transition(CancelState::Unknown, CancelEvent::Send).is_err());
    }
}
