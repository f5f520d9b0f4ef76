//! Real Dovecot + Postfix on loopback in a temp directory.
