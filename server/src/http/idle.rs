//! The connections waiting for a request, which a newcomer at the connection cap may evict.

use mio::Token;
use std::collections::BTreeMap;

/// The connections waiting for a request, oldest first, so that a newcomer at the cap can
/// evict the one idle longest. Connections that have not yet sent a single request go first:
/// a client between two requests of a keep-alive connection has shown it is one, while a
/// connection that never sends a byte is what an attacker holding slots opens.
#[derive(Default)]
pub(super) struct IdleConnections {
    next_ticket: u64,
    never_used: BTreeMap<u64, Token>,
    between_requests: BTreeMap<u64, Token>,
}

impl IdleConnections {
    pub(super) fn insert(&mut self, token: Token, used: bool) -> IdleTicket {
        let ticket = IdleTicket {
            number: self.next_ticket,
            used,
        };
        self.next_ticket += 1;
        self.map(used).insert(ticket.number, token);
        ticket
    }

    pub(super) fn remove(&mut self, ticket: IdleTicket) {
        self.map(ticket.used).remove(&ticket.number);
    }

    /// The connection to evict: the oldest never used, else the oldest between requests.
    pub(super) fn pop_oldest(&mut self) -> Option<Token> {
        let (_, token) =
            (self.never_used.pop_first()).or_else(|| self.between_requests.pop_first())?;
        Some(token)
    }

    fn map(&mut self, used: bool) -> &mut BTreeMap<u64, Token> {
        if used {
            &mut self.between_requests
        } else {
            &mut self.never_used
        }
    }
}

/// A connection's place in [`IdleConnections`].
#[derive(Debug, Clone, Copy)]
pub(super) struct IdleTicket {
    number: u64,
    used: bool,
}
