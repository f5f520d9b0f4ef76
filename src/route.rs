//! Routing: which queue a new ticket goes to.
//!
//! Rules are tried in config order and the first match wins: a rule
//! matches when the ticket's language is one of its `languages` (or it
//! lists none) and its mailbox is one of its `mailboxes` (or it lists
//! none). No match: the mailbox's `default_queue`. The decision carries
//! its reason for the event log.

use crate::config::RouteConfig;

/// The chosen queue and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDecision {
    pub queue: String,
    pub reason: String,
}

/// Picks the queue for a ticket in `language` arriving at `mailbox`.
pub fn route(
    routes: &[RouteConfig],
    language: &str,
    mailbox: &str,
    default_queue: &str,
) -> RouteDecision {
    for (i, r) in routes.iter().enumerate() {
        let lang_ok = r.languages.is_empty() || r.languages.iter().any(|l| l == language);
        let mailbox_ok = r.mailboxes.is_empty() || r.mailboxes.iter().any(|m| m == mailbox);
        if lang_ok && mailbox_ok {
            let mut why = Vec::new();
            if !r.languages.is_empty() {
                why.push(format!("language {language}"));
            }
            if !r.mailboxes.is_empty() {
                why.push(format!("mailbox {mailbox}"));
            }
            return RouteDecision {
                queue: r.queue.clone(),
                reason: format!("route {} matched {}", i + 1, why.join(" and ")),
            };
        }
    }
    RouteDecision {
        queue: default_queue.to_owned(),
        reason: format!(
            "no route matched language {language} at mailbox {mailbox}; default queue of the mailbox"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(languages: &[&str], mailboxes: &[&str], queue: &str) -> RouteConfig {
        RouteConfig {
            languages: languages.iter().map(|s| s.to_string()).collect(),
            mailboxes: mailboxes.iter().map(|s| s.to_string()).collect(),
            queue: queue.into(),
        }
    }

    #[test]
    fn first_match_wins_then_default() {
        let routes = [
            r(&["de"], &["sales"], "dach-sales"),
            r(&["de", "nl"], &[], "dach"),
            r(&[], &["vip"], "vip"),
        ];
        assert_eq!(route(&routes, "de", "sales", "world").queue, "dach-sales");
        assert_eq!(route(&routes, "de", "support", "world").queue, "dach");
        assert_eq!(route(&routes, "nl", "vip", "world").queue, "dach");
        assert_eq!(route(&routes, "en", "vip", "world").queue, "vip");
        let d = route(&routes, "ja", "support", "world");
        assert_eq!(d.queue, "world");
        assert!(d.reason.contains("default queue"));
        assert!(
            route(&routes, "de", "support", "w")
                .reason
                .contains("route 2 matched language de")
        );
    }
}
