//! The words robots use, lowercased. Kept apart from the decision logic so
//! a new MTA's wording is a one-line change.

/// Display names of mail systems sending bounces.
pub(super) const DAEMON_NAMES: &[&str] = &[
    "mail delivery",
    "mailer-daemon",
    "mailer daemon",
    "mail administrator",
    "delivery subsystem",
    "mail system",
    "postmaster",
];

/// Sentences only delivery software writes: with a bounce-like subject or
/// a null return path they decide a bounce. Nothing a person would write
/// about a failed mail ("my message could not be delivered") belongs here;
/// that is [`FAILURE_WORDS`].
pub(super) const MTA_BOILERPLATE: &[&str] = &[
    "this is the mail system at host",
    "this is the qmail-send program",
    "i'm afraid i wasn't able to deliver",
    "i'm sorry to have to inform you that your message could not",
    "this message was created automatically by mail delivery software",
    "the following address(es) failed",
    "delivery to the following recipient",
    "delivery has failed to these recipients",
    "could not be delivered to one or more recipients",
    "your message did not reach some or all of the intended recipients",
    "did not reach the following recipient",
    "the following recipients could not be reached",
    "this is an automatically generated delivery status notification",
    "unable to deliver message to the following",
    "could not be delivered to the following recipient",
    "delivery attempts will continue",
    "please do not resend your original message",
    "original message follows",
    "below this line is a copy of the message",
    "this is a copy of the message, including all the headers",
    "the original message was received at",
    "transcript of session follows",
    "permanent fatal errors",
    "diagnostic-code:",
    "final-recipient:",
    "remote host said:",
    "smtp error from remote",
    "we had trouble delivering your message",
    "error: invalid user address",
    "konnte nicht zugestellt werden",
    "n'a pas pu être remis",
    "n'a pas pu etre delivre",
    "no pudo ser entregado",
    "non è stato possibile recapitare",
    "送信できませんでした",
    "配信できませんでした",
    "届きませんでした",
];

/// Failure vocabulary: enough with a mail-system sender, not otherwise (a
/// person may write "user unknown" or "could not be delivered").
pub(super) const FAILURE_WORDS: &[&str] = &[
    "could not be delivered",
    "couldn't be delivered",
    "wasn't delivered",
    "was not delivered",
    "not be delivered",
    "not delivered",
    "could not deliver",
    "failed to deliver",
    "unable to deliver",
    "delivery failed",
    "delivery has failed",
    "delivery failure",
    "undeliverable",
    "undelivered",
    "permanent error",
    "has not yet been delivered",
    "will continue to try",
    "rejected recipient",
    "user unknown",
    "unknown user",
    "no such user",
    "mailbox unavailable",
    "mailbox not found",
    "mailbox full",
    "quota exceeded",
    "over quota",
    "address rejected",
    "recipient rejected",
    "does not exist",
    "returned to sender",
    "host unknown",
    "delivery",
    "bounce",
    "rejected",
    "550 ",
    "554 ",
    "553 ",
    "#5.",
    " 5.1.1",
];

/// Subject prefixes of auto-replies across the major languages. With any
/// support (a weak signal, a null return path, a reply reference) they
/// decide an auto-reply.
pub(super) const AUTOREPLY_SUBJECT_PREFIXES: &[&str] = &[
    "automatic reply:",
    "auto reply:",
    "autoreply:",
    "auto-reply:",
    "auto response:",
    "autoresponse:",
    "auto-response:",
    "automatic response:",
    "autorespons",
    "out of office:",
    "out of office autoreply:",
    "out of office reply:",
    "out of the office:",
    "ooo:",
    "abwesenheitsnotiz:",
    "automatische antwort:",
    "automatische antwort",
    "abwesend:",
    "réponse automatique",
    "reponse automatique",
    "absence du bureau",
    "respuesta automática:",
    "respuesta automatica:",
    "fuera de la oficina",
    "risposta automatica:",
    "fuori ufficio",
    "resposta automática:",
    "resposta automatica:",
    "automatisch antwoord:",
    "afwezig:",
    "autosvar:",
    "automatisk svar:",
    "automatiskt svar:",
    "automaattinen vastaus:",
    "odpowiedź automatyczna:",
    "automatická odpověď:",
    "automatikus válasz:",
    "otomatik yanıt:",
    "otomatik cevap:",
    "автоответ:",
    "автоматический ответ:",
    "αυτόματη απάντηση:",
    "自動返信:",
    "自動応答:",
    "自动回复:",
    "自動回覆:",
    "자동 회신:",
    "자동 응답:",
    "vacation reply:",
    "on vacation:",
    "away from my mail",
];

/// Subjects auto-responders use that people also use ("Out of office",
/// "Vacation"): they count only as the whole subject or followed by a
/// colon, and need a supporting header signal besides.
pub(super) const WEAK_AUTOREPLY_SUBJECTS: &[&str] = &[
    "auto",
    "away",
    "out of office",
    "out of the office",
    "vacation",
    "on vacation",
    "abwesenheit",
    "absence",
    "absent",
];

/// X-Mailer / User-Agent values of auto-responders.
pub(super) const AUTOREPLY_MAILERS: &[&str] = &[
    "vacation",
    "autoresponder",
    "auto-responder",
    "auto responder",
    "autoreply",
    "auto-reply",
];

/// Body sentences of out-of-office replies: support for a subject prefix.
pub(super) const AUTOREPLY_BODY: &[&str] = &[
    "out of the office",
    "out of office",
    "i am away",
    "i'm away",
    "i am currently away",
    "on vacation",
    "on holiday",
    "on leave",
    "limited access to email",
    "limited access to e-mail",
    "will be back",
    "i will return",
    "i'll be back",
    "bin ich nicht im büro",
    "nicht im büro",
    "abwesend",
    "je suis absent",
    "en congé",
    "estoy fuera",
    "sono assente",
    "automatically generated",
    "automatic reply",
    "auto-reply",
    "autoreply",
    "this is an automated",
    "this is an automatic",
];

/// Subjects of delay warnings (not permanent failures).
pub(super) const DELAY_SUBJECT: &[&str] = &[
    "delay",
    "warning: message",
    "still being retried",
    "has not yet been delivered",
    "not yet delivered",
];

/// Body sentences of delay warnings.
pub(super) const DELAY_BODY: &[&str] = &[
    "has not yet been delivered",
    "will continue to try",
    "delivery attempts will continue",
    "still trying",
    "will be retried",
    "will retry",
    "this is a warning message only",
    "no action is required on your part",
    "message has been delayed",
    "delivery has been delayed",
];

/// What list servers (Mailman, ezmlm, fml, Sympa) say when they refuse a
/// post: with list headers on the notice, the post bounced.
pub(super) const LIST_REJECTIONS: &[&str] = &[
    "are not member",
    "you are not a member",
    "not a member of this list",
    "not a member of this mailing list",
    "only members may post",
    "non-member submission",
    "post by non-member",
    "loop alert",
    "duplicated message-id",
    "posting to this list is restricted",
    "your message has been rejected",
];
