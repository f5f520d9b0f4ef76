//! Corrections for the pairs whatlang confuses most, from letters and
//! words only one language of the pair uses.
//!
//! whatlang scores trigrams; close languages share most of them, so on a
//! sentence it mixes up Danish and Norwegian, Spanish and Portuguese,
//! Russian and Bulgarian, Czech and its neighbours. A handful of letters
//! settle most of these outright (Czech "ř", Polish "ł", Romanian "ș",
//! Russian "ы", Ukrainian "ї"), and a few dozen very frequent function
//! words settle the rest (Danish "mig/af/efter" vs Norwegian
//! "meg/av/etter"). These are facts about the orthographies, not tuned
//! weights, so they are written out here instead of training a model.

use whatlang::Lang;

/// How many more marker words the other language of a pair needs before
/// we override a pick that has marker words of its own.
const WORD_MARGIN: usize = 2;

/// Marker words by which the final language must lead its neighbour for
/// the vote to count as confirmation (see [`confirmed_by_words`]).
const CONFIRM_MARGIN: usize = 3;

/// True when the marker words of `lang`'s close neighbour lose clearly
/// against its own: whatlang's low confidence between close languages
/// ("es" vs "pt" at 0.3 on a plain Spanish sentence) is then no reason to
/// distrust the result.
pub(crate) fn confirmed_by_words(lang: Lang, text: &str) -> bool {
    let lower = text.to_lowercase();
    let (own, other) = match lang {
        Lang::Spa => word_scores(&lower, SPANISH, PORTUGUESE),
        Lang::Por => swap(word_scores(&lower, SPANISH, PORTUGUESE)),
        Lang::Dan => danish_norwegian_scores(&lower),
        Lang::Nob => swap(danish_norwegian_scores(&lower)),
        Lang::Ces => word_scores(&lower, CZECH, SLOVAK),
        Lang::Slk => swap(word_scores(&lower, CZECH, SLOVAK)),
        Lang::Rus => {
            let (ru, bg) = word_scores(&lower, RUSSIAN, BULGARIAN);
            let (_, uk) = word_scores(&lower, RUSSIAN, UKRAINIAN);
            (ru, bg.max(uk))
        }
        Lang::Bul => swap(word_scores(&lower, RUSSIAN, BULGARIAN)),
        Lang::Ukr => swap(word_scores(&lower, RUSSIAN, UKRAINIAN)),
        _ => return false,
    };
    own >= other + CONFIRM_MARGIN
}

fn swap((a, b): (usize, usize)) -> (usize, usize) {
    (b, a)
}

/// Returns the corrected language, or `lang` when nothing contradicts it.
/// `allowed` says which languages may be returned (the configured list).
pub(crate) fn refine(lang: Lang, text: &str, allowed: &dyn Fn(Lang) -> bool) -> Lang {
    // Mis-decoded text ("ďż˝", U+FFFD) is full of letters from the wrong
    // alphabet; letter evidence would only make it worse.
    if text.contains('\u{FFFD}') || text.contains("ďż") || text.contains("Ã") {
        return lang;
    }
    let lower = text.to_lowercase();
    // The distinct non-ASCII letters of the text, gathered in one pass:
    // `has` is asked up to a dozen times about sets of non-ASCII letters,
    // and scanning the whole text for each set cost more than whatlang's
    // alphabet scoring. Short texts have few distinct ones.
    let present = non_ascii_chars(&lower);
    // Only for sets of non-ASCII characters (`present` has no others).
    let has = |set: &str| {
        debug_assert!(!set.chars().any(|c| c.is_ascii()), "ASCII in {set:?}");
        set.chars().any(|c| present.contains(&c))
    };
    let pick = |candidate: Lang| if allowed(candidate) { candidate } else { lang };

    match lang {
        // Cyrillic.
        Lang::Rus | Lang::Bul | Lang::Mkd | Lang::Srp | Lang::Bel | Lang::Ukr => {
            if has("ўЎ") {
                return pick(Lang::Bel);
            }
            if has("їєґ") || (has("і") && !has("ыэ")) {
                return pick(Lang::Ukr);
            }
            if lang != Lang::Rus && lang != Lang::Bel && has("ыэё") {
                return pick(Lang::Rus);
            }
            if lang == Lang::Rus && has("ѓќљњџј") {
                return pick(Lang::Mkd);
            }
            let (ru, bg) = word_scores(&lower, RUSSIAN, BULGARIAN);
            if lang == Lang::Bul && outvotes(ru, bg) {
                return pick(Lang::Rus);
            }
            if lang == Lang::Rus && outvotes(bg, ru) {
                return pick(Lang::Bul);
            }
            let (ru, uk) = word_scores(&lower, RUSSIAN, UKRAINIAN);
            if lang == Lang::Ukr && outvotes(ru, uk) {
                return pick(Lang::Rus);
            }
            if lang == Lang::Rus && outvotes(uk, ru) {
                return pick(Lang::Ukr);
            }
            lang
        }
        // Latin.
        _ if is_latin_lang(lang) => refine_latin(lang, &lower, &has, &pick),
        _ => lang,
    }
}

/// The distinct non-ASCII characters of `text`, in order of appearance.
/// Every character set [`refine`] asks about is non-ASCII, so the ASCII
/// bulk of the text is skipped without decoding.
fn non_ascii_chars(text: &str) -> Vec<char> {
    let mut found = Vec::new();
    if text.is_ascii() {
        return found;
    }
    for c in text.chars().filter(|c| !c.is_ascii()) {
        if !found.contains(&c) {
            found.push(c);
        }
    }
    found
}

fn refine_latin(
    lang: Lang,
    lower: &str,
    has: &dyn Fn(&str) -> bool,
    pick: &dyn Fn(Lang) -> Lang,
) -> Lang {
    // Letters one language owns among those whatlang models.
    let owned: [(&str, Lang); 8] = [
        ("řůě", Lang::Ces),
        ("ľĺŕô", Lang::Slk),
        ("łśźżń", Lang::Pol),
        ("őű", Lang::Hun),
        ("ığ", Lang::Tur),
        ("șțţ", Lang::Ron),
        ("đ", Lang::Hrv),
        ("ß", Lang::Deu),
    ];
    // Vietnamese uses "ă" and "đ"; Azerbaijani "ı" and "ğ".
    if lang == Lang::Vie {
        return lang;
    }
    for (letters, owner) in owned {
        if lang != owner && !(lang == Lang::Aze && owner == Lang::Tur) && has(letters) {
            return pick(owner);
        }
    }
    if has("ă")
        && matches!(
            lang,
            Lang::Ita | Lang::Por | Lang::Fra | Lang::Spa | Lang::Cat
        )
    {
        return pick(Lang::Ron);
    }
    match lang {
        Lang::Spa if has("ãõ") => return pick(Lang::Por),
        Lang::Por if has("ñ¿¡") && !has("ãõç") => return pick(Lang::Spa),
        Lang::Dan | Lang::Nob if has("äö") && !has("æø") => return pick(Lang::Swe),
        Lang::Ces | Lang::Slv | Lang::Slk if has("ć") => return pick(Lang::Hrv),
        _ => {}
    }
    if matches!(lang, Lang::Dan | Lang::Nob) {
        let (da, nb) = danish_norwegian_scores(lower);
        if lang == Lang::Dan && outvotes(nb, da) {
            return pick(Lang::Nob);
        }
        if lang == Lang::Nob && outvotes(da, nb) {
            return pick(Lang::Dan);
        }
    }
    let pairs: [(Lang, &[&str], Lang, &[&str]); 2] = [
        (Lang::Spa, SPANISH, Lang::Por, PORTUGUESE),
        (Lang::Ces, CZECH, Lang::Slk, SLOVAK),
    ];
    for (a, a_words, b, b_words) in pairs {
        if lang != a && lang != b {
            continue;
        }
        let (score_a, score_b) = word_scores(lower, a_words, b_words);
        if lang == a && outvotes(score_b, score_a) {
            return pick(b);
        }
        if lang == b && outvotes(score_a, score_b) {
            return pick(a);
        }
    }
    // Czech typed without diacritics ("takze", "ktery") looks like
    // Croatian, Slovene or even Portuguese to trigrams; its function words
    // are unmistakable.
    if lang != Lang::Ces && lang != Lang::Slk {
        let (cs, hr) = word_scores(lower, CZECH, CROATIAN);
        if cs >= CZECH_MIN_WORDS && cs >= hr + WORD_MARGIN {
            return pick(Lang::Ces);
        }
    }
    lang
}

/// True when the other language's marker words outvote whatlang's pick:
/// by [`WORD_MARGIN`], or by any when the pick has none at all (whatlang's
/// choice between close languages on a short text is a coin toss).
fn outvotes(other: usize, own: usize) -> bool {
    other >= own + WORD_MARGIN || (own == 0 && other > 0)
}

/// Czech function words needed to override a non-Czech guess.
const CZECH_MIN_WORDS: usize = 3;

/// Danish and Norwegian scores from marker words and spellings:
/// Danish "øj", "-hed", "-tion", "-ej"; Norwegian "øy", "-het", "-sjon",
/// "kj-", "gj-", "-ei".
fn danish_norwegian_scores(text: &str) -> (usize, usize) {
    let (mut da, mut nb) = word_scores(text, DANISH, NORWEGIAN);
    for w in text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| w.chars().count() > 2)
    {
        if w.contains("øj") || w.ends_with("hed") || w.ends_with("tion") || w.ends_with("ej") {
            da += 1;
        }
        if w.contains("øy")
            || w.ends_with("het")
            || w.contains("sjon")
            || w.starts_with("kj")
            || w.starts_with("skj")
            || w.starts_with("gj")
            || w.ends_with("ei")
        {
            nb += 1;
        }
    }
    (da, nb)
}

/// Counts the words of `text` found in each list.
fn word_scores(text: &str, a: &[&str], b: &[&str]) -> (usize, usize) {
    let mut sa = 0;
    let mut sb = 0;
    for w in text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
    {
        sa += usize::from(a.contains(&w));
        sb += usize::from(b.contains(&w));
    }
    (sa, sb)
}

fn is_latin_lang(lang: Lang) -> bool {
    !matches!(
        lang,
        Lang::Rus
            | Lang::Ukr
            | Lang::Bul
            | Lang::Bel
            | Lang::Mkd
            | Lang::Srp
            | Lang::Ara
            | Lang::Heb
            | Lang::Yid
            | Lang::Hin
            | Lang::Mar
            | Lang::Nep
            | Lang::Pes
            | Lang::Urd
    )
}

/// Frequent Danish words whose Norwegian (Bokmål) form differs.
const DANISH: &[&str] = &[
    "af",
    "efter",
    "hvad",
    "nogen",
    "noget",
    "nogle",
    "blev",
    "blevet",
    "meget",
    "sidste",
    "købe",
    "uge",
    "ud",
    "op",
    "bliver",
    "gøre",
    "igennem",
    "sådan",
    "hende",
    "mellem",
    "tilbage",
    "løbet",
    "tage",
    "give",
    "have",
    "nu",
    "lidt",
    "dog",
    "mod",
    "ind",
    "været",
    "måske",
    "mere",
    "sige",
    "gik",
    "fik",
    "bruge",
    "uden",
    "vores",
    "jeres",
    "os",
    "hjælp",
    "hjælpe",
    "mig",
    "dig",
    "sig",
    "spørgsmål",
    "øjeblik",
];

/// Frequent Norwegian (Bokmål) words whose Danish form differs.
const NORWEGIAN: &[&str] = &[
    "av",
    "etter",
    "hva",
    "noen",
    "noe",
    "ble",
    "blitt",
    "mye",
    "siste",
    "kjøpe",
    "uke",
    "ut",
    "opp",
    "blir",
    "gjøre",
    "gjennom",
    "slik",
    "henne",
    "mellom",
    "tilbake",
    "løpet",
    "ta",
    "gi",
    "ha",
    "nå",
    "litt",
    "mot",
    "inn",
    "vært",
    "kanskje",
    "mer",
    "si",
    "gikk",
    "fikk",
    "bruke",
    "uten",
    "vår",
    "våre",
    "vårt",
    "oss",
    "hjelp",
    "hjelpe",
    "meg",
    "deg",
    "seg",
    "spørsmål",
    "øyeblikk",
    "dere",
];

/// Frequent Spanish words that Portuguese writes differently.
const SPANISH: &[&str] = &[
    "el", "los", "las", "del", "y", "es", "muy", "pero", "hay", "fue", "una", "con", "más", "esta",
    "sus", "le", "lo", "al", "ya", "donde", "puede", "tiene", "hace", "hasta", "años", "año",
    "nuevo", "nueva", "ahora", "así", "ella", "ellos", "les", "había", "han", "eso", "esto",
    "mucho", "muchos", "sí", "he", "son", "su", "un", "fueron", "cuenta", "también",
];

/// Frequent Portuguese words that Spanish writes differently.
const PORTUGUESE: &[&str] = &[
    "não", "em", "uma", "um", "os", "as", "do", "da", "dos", "das", "ao", "aos", "você", "é",
    "são", "foi", "mais", "muito", "muitos", "com", "pelo", "pela", "pelos", "pelas", "isso",
    "isto", "essa", "esse", "ele", "ela", "eles", "seu", "sua", "seus", "suas", "já", "onde",
    "pode", "tem", "faz", "até", "anos", "novo", "nova", "agora", "assim", "lhe", "eu", "há",
    "havia", "mas", "ou", "na", "nas", "ainda", "então", "depois", "sem", "também", "conta",
];

/// Frequent Czech words whose Slovak (and Croatian) form differs, also
/// as typed without diacritics.
const CZECH: &[&str] = &[
    "jako", "nebo", "který", "která", "které", "ktery", "ktera", "ktere", "jsem", "jsme", "jste",
    "jsou", "byl", "byla", "bylo", "byt", "být", "také", "take", "jen", "když", "kdyz", "pouze",
    "mezi", "proto", "již", "jiz", "před", "pred", "pro", "není", "neni", "může", "muze", "ještě",
    "jeste", "však", "vsak", "protože", "protoze", "podle", "pokud", "tedy", "velmi", "jejich",
];

/// Frequent Croatian words whose Czech form differs.
const CROATIAN: &[&str] = &[
    "koji", "koja", "koje", "što", "sam", "smo", "su", "bio", "bila", "bilo", "nije", "ali", "ili",
    "kao", "sve", "samo", "biti", "ima", "kako", "ovo", "će", "iz", "u", "i", "da", "njegov",
    "mogu", "može", "treba", "jer", "kad", "kada", "gdje", "još", "već", "vrlo", "zbog", "prema",
];

/// Frequent Russian words Bulgarian writes differently.
const RUSSIAN: &[&str] = &[
    "что",
    "это",
    "как",
    "он",
    "она",
    "они",
    "его",
    "её",
    "ее",
    "был",
    "была",
    "было",
    "были",
    "чтобы",
    "только",
    "уже",
    "если",
    "когда",
    "где",
    "вы",
    "мы",
    "меня",
    "мне",
    "бы",
    "ещё",
    "еще",
    "нет",
    "всё",
    "можно",
    "нужно",
    "очень",
    "сейчас",
    "потом",
    "этот",
    "эта",
    "тоже",
    "который",
    "которая",
    "которые",
    "к",
    "своей",
    "своих",
    "перед",
    "вот",
    "хоть",
    "теперь",
];

/// Frequent Ukrainian words Russian writes differently.
const UKRAINIAN: &[&str] = &[
    "що",
    "це",
    "як",
    "він",
    "вона",
    "вони",
    "його",
    "був",
    "була",
    "було",
    "тільки",
    "якщо",
    "коли",
    "де",
    "ви",
    "ми",
    "мене",
    "мені",
    "ні",
    "немає",
    "ще",
    "дуже",
    "зараз",
    "теж",
    "який",
    "яка",
    "які",
    "також",
    "але",
    "бо",
    "та",
    "й",
    "із",
    "від",
    "для",
    "саме",
    "щоб",
];

/// Frequent Bulgarian words Russian writes differently.
const BULGARIAN: &[&str] = &[
    "се",
    "ще",
    "че",
    "това",
    "този",
    "тази",
    "тя",
    "той",
    "аз",
    "ние",
    "вие",
    "във",
    "със",
    "към",
    "като",
    "когато",
    "къде",
    "който",
    "която",
    "които",
    "няма",
    "са",
    "е",
    "сме",
    "сте",
    "бил",
    "била",
    "било",
    "може",
    "трябва",
    "нещо",
    "нищо",
    "всички",
    "след",
    "днес",
    "вече",
];

/// Frequent Slovak words whose Czech form differs.
const SLOVAK: &[&str] = &[
    "sa", "nie", "ako", "alebo", "ktorý", "ktorá", "ktoré", "som", "sme", "ste", "bol", "bola",
    "bolo", "tiež", "len", "keď", "iba", "medzi", "preto", "pred", "aj",
];
