//! The outbox edge: rendering queued mail and handing it to a transport.

pub mod template;
