//! Stage 5: which ticket does a message belong to?
//!
//! The store gathers [`Candidates`] (what it found for this message's
//! references and subject tag) inside its write transaction; [`decide`]
//! is the pure rule that picks one, in this order:
//!
//! 1. a reply token in In-Reply-To / References: a Message-ID postdesk
//!    minted and signed ([`crate::token`]); only someone who received our
//!    mail can have it;
//! 2. In-Reply-To / References naming a message already stored on a ticket;
//! 3. a subject tag such as `[PD-42]`, **only** when the sender already
//!    takes part in that ticket (requester, Cc, or an agent of its queue);
//!    anyone can type a tag, so a stranger's tag opens a new ticket.
//!
//! Otherwise the message opens a new ticket, and the reason says why.

use serde::Serialize;

use crate::mail::ParsedMail;
use crate::token::TokenKey;

/// How a message was matched to its ticket; stored in the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThreadVia {
    Token,
    References,
    SubjectTag,
    /// A reply to one of our warnings or escalations: our own team.
    AlertReply,
}

impl ThreadVia {
    pub fn as_str(self) -> &'static str {
        match self {
            ThreadVia::Token => "token",
            ThreadVia::References => "references",
            ThreadVia::SubjectTag => "subject-tag",
            ThreadVia::AlertReply => "alert-reply",
        }
    }
}

/// The verdict of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadDecision {
    /// The same message (same Message-ID and content) is already stored.
    Duplicate { message: i64, ticket: Option<i64> },
    /// The message belongs to this existing ticket.
    Existing {
        ticket: i64,
        via: ThreadVia,
        detail: String,
    },
    /// No ticket matched (or a match was refused); `reason` says why.
    New { reason: String },
}

/// A ticket as far as a candidate match needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagCandidate {
    pub ticket: i64,
    /// Lowercased addresses taking part in the ticket.
    pub participants: Vec<String>,
    /// True when the sender is an agent of the ticket's queue.
    pub sender_is_agent: bool,
}

/// What the store found for one message. Each field is the best match of
/// its kind, already checked to exist.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Candidates {
    /// A stored message with the same Message-ID and content hash.
    pub duplicate: Option<(i64, Option<i64>)>,
    /// The ticket of one of our warnings or escalations this replies to.
    pub alert_reply: Option<(i64, String)>,
    /// The ticket named by a valid reply token (and which Message-ID).
    pub token: Option<(i64, String)>,
    /// The ticket of a stored message named by In-Reply-To/References.
    pub references: Option<(i64, String)>,
    /// The ticket named by the subject tag, if it exists.
    pub subject_tag: Option<TagCandidate>,
    /// The ticket number in the subject tag, even when no such ticket
    /// exists (so the reason can say so).
    pub subject_tag_number: Option<i64>,
}

/// The ticket numbers named by valid reply tokens among `ids` (as ordered
/// by [`referenced_ids`]), without repeats.
pub fn token_tickets(ids: &[String], key: &TokenKey) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = Vec::new();
    for id in ids {
        if TokenKey::looks_like_token(id)
            && let Some(t) = key.verify(id)
            && !out.iter().any(|(x, _)| *x == t)
        {
            out.push((t, id.clone()));
        }
    }
    out
}

/// The Message-IDs a reply refers to, In-Reply-To first, then References
/// newest first, without repeats.
pub fn referenced_ids(mail: &ParsedMail) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in mail.in_reply_to.iter().chain(mail.references.iter().rev()) {
        if !id.is_empty() && !out.contains(id) {
            out.push(id.clone());
        }
    }
    out
}

/// The ticket number in a subject tag `[<prefix>-<n>]` (prefix matched
/// case-insensitively, like `[pd-42]`), the first one if several.
pub fn subject_tag(subject: &str, prefix: &str) -> Option<i64> {
    let mut rest = subject;
    while let Some(open) = rest.find('[') {
        let after = rest.get(open + 1..)?;
        let close = after.find(']')?;
        let inner = after.get(..close)?.trim();
        if let Some((p, n)) = inner.split_once('-')
            && p.trim().eq_ignore_ascii_case(prefix)
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && let Ok(num) = n.parse::<i64>()
            && num > 0
        {
            return Some(num);
        }
        rest = after.get(close + 1..)?;
    }
    None
}

/// Picks the ticket for a message from what the store found. `sender` is
/// the lowercased From address.
pub fn decide(sender: &str, c: &Candidates) -> ThreadDecision {
    if let Some((message, ticket)) = c.duplicate {
        return ThreadDecision::Duplicate { message, ticket };
    }
    if let Some((ticket, id)) = &c.alert_reply {
        return ThreadDecision::Existing {
            ticket: *ticket,
            via: ThreadVia::AlertReply,
            detail: format!("reply to our alert <{id}>"),
        };
    }
    if let Some((ticket, id)) = &c.token {
        return ThreadDecision::Existing {
            ticket: *ticket,
            via: ThreadVia::Token,
            detail: format!("reply token in <{id}>"),
        };
    }
    if let Some((ticket, id)) = &c.references {
        return ThreadDecision::Existing {
            ticket: *ticket,
            via: ThreadVia::References,
            detail: format!("refers to stored message <{id}>"),
        };
    }
    match (&c.subject_tag, c.subject_tag_number) {
        (Some(tag), _) => {
            let takes_part = tag.sender_is_agent || tag.participants.iter().any(|p| p == sender);
            if takes_part {
                ThreadDecision::Existing {
                    ticket: tag.ticket,
                    via: ThreadVia::SubjectTag,
                    detail: format!("subject tag of ticket {} from a participant", tag.ticket),
                }
            } else {
                ThreadDecision::New {
                    reason: format!(
                        "subject tag names ticket {} but {sender} does not take part in it; a new ticket keeps strangers out of other customers' tickets",
                        tag.ticket
                    ),
                }
            }
        }
        (None, Some(n)) => ThreadDecision::New {
            reason: format!("subject tag names ticket {n}, which does not exist"),
        },
        (None, None) => ThreadDecision::New {
            reason: "no reply token, known reference or subject tag".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail_with_refs(in_reply_to: &[&str], references: &[&str]) -> ParsedMail {
        ParsedMail {
            message_id: "m@x".into(),
            message_id_synthetic: false,
            in_reply_to: in_reply_to.iter().map(|s| s.to_string()).collect(),
            references: references.iter().map(|s| s.to_string()).collect(),
            from: None,
            sender: None,
            reply_to: vec![],
            to: vec![],
            cc: vec![],
            return_path: None,
            subject: String::new(),
            date: None,
            content_language: None,
            headers: vec![],
            text: String::new(),
            html: None,
            text_from_html: false,
            attachments: vec![],
            report: None,
            content_hash: String::new(),
            size_bytes: 0,
        }
    }

    #[test]
    fn subject_tags() {
        assert_eq!(subject_tag("Re: [PD-42] Order problem", "PD"), Some(42));
        assert_eq!(subject_tag("AW: [pd-7]", "PD"), Some(7));
        assert_eq!(subject_tag("[Ticket#1] [PD-3]", "PD"), Some(3));
        assert_eq!(subject_tag("[PD-0] [PD-x] [XX-5] PD-9", "PD"), None);
        assert_eq!(subject_tag("[PD-", "PD"), None);
        assert_eq!(subject_tag("[PD-99999999999999999999999]", "PD"), None);
        assert_eq!(subject_tag("Ünïcödé [PD-5] ✓", "PD"), Some(5));
    }

    #[test]
    fn tokens_are_verified_and_ordered() {
        let key = TokenKey::new(b"a secret that is long enough".to_vec());
        let t1 = key.mint(1, "ex.com");
        let t2 = key.mint(2, "ex.com");
        let forged = TokenKey::new(b"another secret, not ours!!!".to_vec()).mint(3, "ex.com");
        let m = mail_with_refs(&[&t2], &[&t1, "other@x", &forged, &t2]);
        let found: Vec<i64> = token_tickets(&referenced_ids(&m), &key)
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(found, vec![2, 1]);
    }

    #[test]
    fn referenced_ids_prefer_in_reply_to_then_newest() {
        let m = mail_with_refs(&["c"], &["a", "b", "c"]);
        assert_eq!(referenced_ids(&m), vec!["c", "b", "a"]);
    }

    #[test]
    fn order_of_precedence() {
        let tag = TagCandidate {
            ticket: 9,
            participants: vec!["a@x".into()],
            sender_is_agent: false,
        };
        let all = Candidates {
            duplicate: None,
            alert_reply: None,
            token: Some((1, "t".into())),
            references: Some((2, "r".into())),
            subject_tag: Some(tag.clone()),
            subject_tag_number: Some(9),
        };
        assert!(matches!(
            decide("a@x", &all),
            ThreadDecision::Existing {
                ticket: 1,
                via: ThreadVia::Token,
                ..
            }
        ));
        let no_token = Candidates {
            token: None,
            ..all.clone()
        };
        assert!(matches!(
            decide("a@x", &no_token),
            ThreadDecision::Existing {
                ticket: 2,
                via: ThreadVia::References,
                ..
            }
        ));
        let tag_only = Candidates {
            token: None,
            references: None,
            ..all.clone()
        };
        assert!(matches!(
            decide("a@x", &tag_only),
            ThreadDecision::Existing {
                ticket: 9,
                via: ThreadVia::SubjectTag,
                ..
            }
        ));
        let alert = Candidates {
            alert_reply: Some((7, "a".into())),
            ..all.clone()
        };
        assert!(matches!(
            decide("lead@us", &alert),
            ThreadDecision::Existing {
                ticket: 7,
                via: ThreadVia::AlertReply,
                ..
            }
        ));
        let dup = Candidates {
            duplicate: Some((5, Some(1))),
            ..all
        };
        assert_eq!(
            decide("a@x", &dup),
            ThreadDecision::Duplicate {
                message: 5,
                ticket: Some(1)
            }
        );
    }

    #[test]
    fn a_stranger_cannot_use_a_subject_tag() {
        let c = Candidates {
            subject_tag: Some(TagCandidate {
                ticket: 9,
                participants: vec!["owner@x".into()],
                sender_is_agent: false,
            }),
            subject_tag_number: Some(9),
            ..Candidates::default()
        };
        let ThreadDecision::New { reason } = decide("stranger@evil", &c) else {
            panic!("stranger threaded")
        };
        assert!(reason.contains("does not take part"), "{reason}");
        let agent = Candidates {
            subject_tag: Some(TagCandidate {
                ticket: 9,
                participants: vec![],
                sender_is_agent: true,
            }),
            ..c
        };
        assert!(matches!(
            decide("agent@us", &agent),
            ThreadDecision::Existing { ticket: 9, .. }
        ));
    }

    #[test]
    fn a_missing_tagged_ticket_is_explained() {
        let c = Candidates {
            subject_tag_number: Some(77),
            ..Candidates::default()
        };
        let ThreadDecision::New { reason } = decide("a@x", &c) else {
            panic!()
        };
        assert!(reason.contains("77") && reason.contains("does not exist"));
    }
}
