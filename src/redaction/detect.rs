//! PII and secret detectors that replace matches with typed placeholders
//! (`[email]`, `[secret]`, `[label]` for user rules) before text is stored as
//! a memory.
//!
//! # Why it is built this way
//!
//! **Precision over recall.** A false positive is not harmless here: the
//! redacted text is what gets remembered, so every wrongly replaced date,
//! version string or order number is information destroyed for good. Each
//! detector therefore pairs a permissive regex (cheap, linear, finds
//! candidates) with a validation step in plain Rust that can say no: Luhn and
//! issuer prefixes for cards, ISO 13616 mod-97 plus per-country length for
//! IBANs, `Ipv6Addr::from_str` for IPv6, octet ranges for IPv4, digit counts
//! and separator consistency for phones, character-class mix for tokens.
//! Things that are deliberately *not* matched are listed next to each
//! detector and pinned by tests.
//!
//! **Boundaries are checked in code, not with `\b`.** The `regex` crate has
//! no look-around, and a Unicode `\b` makes its fast DFA give up on non-ASCII
//! text. Instead each candidate's neighbours are inspected: a match glued to
//! a letter, a digit or `_` (e.g. inside a hash, a longer number, a base64
//! blob) is dropped. Only letters of scripts that separate words with spaces
//! (Latin, Greek, Cyrillic, …) count as glue, so `联系bob@example.com谢谢`
//! still redacts the address: CJK text runs words together and adjacency
//! there says nothing about token boundaries.
//!
//! **Overlaps are resolved once, globally.** Every enabled rule reports its
//! spans; then the earliest start wins, the longer span wins at an equal
//! start, and at an identical span custom rules beat `Secret`, which beats the
//! other built-ins (a key must be remembered as `[secret]`, not as
//! `[phone]`). Spans overlapping an already chosen one are dropped. This keeps
//! every detector independent and the result deterministic.
//!
//! **Idempotent.** No built-in can match a placeholder (they contain no
//! digits, `@`, `:` or `=`, and key/value values never start with `[`). And
//! because a candidate rejected only for touching another match would become
//! valid next to that match's placeholder, `redact` re-scans its own output
//! with the built-ins until nothing changes (only when something matched).
//! Redacting redacted text is therefore a no-op; the tests assert it for
//! every input they use and for thousands of generated mixtures.
//!
//! **Cheap when nothing matches**, which is the common case. No regex is
//! compiled per call (built-ins live in `Lazy` statics). The email regex
//! only runs when the text contains `@`; phone, card, IBAN and IP only when
//! it contains an ASCII digit, and then only at runs of digits (found eight
//! bytes at a time), where each tries a short anchored pattern, instead of
//! running four unanchored regexes whose leading byte classes defeat the
//! engine's prefilters. Secrets are one regex whose alternatives all start
//! with literals (vectorised prefilter), plus key/value pairs found from
//! their `:`/`=` backwards rather than by a keyword regex that would have to
//! consider almost every letter. Everything is linear in the input length.
//! When `redact` returns `None` it has built nothing: spans are only pushed
//! after validation, and rejected candidates are checked without allocating
//! (no regex captures, no temporary strings).

use std::cmp::Reverse;
use std::net::Ipv6Addr;
use std::str::FromStr;

use once_cell::sync::Lazy;
use regex::Regex;

/// A built-in detector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detector {
    Email,
    Phone,
    Card,
    Iban,
    Ip,
    Secret,
}

impl Detector {
    pub const ALL: [Detector; 6] = [
        Detector::Email,
        Detector::Phone,
        Detector::Card,
        Detector::Iban,
        Detector::Ip,
        Detector::Secret,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::Card => "card",
            Detector::Iban => "iban",
            Detector::Ip => "ip",
            Detector::Secret => "secret",
        }
    }

    pub fn placeholder(self) -> &'static str {
        match self {
            Detector::Email => "[email]",
            Detector::Phone => "[phone]",
            Detector::Card => "[card]",
            Detector::Iban => "[iban]",
            Detector::Ip => "[ip]",
            Detector::Secret => "[secret]",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Tie-break between built-ins reporting the identical span: a secret
    /// must never be remembered as something milder. The rest are rarely
    /// tied; the order only makes the outcome deterministic.
    fn tie_rank(self) -> u8 {
        match self {
            Detector::Secret => 0,
            Detector::Iban => 1,
            Detector::Card => 2,
            Detector::Email => 3,
            Detector::Ip => 4,
            Detector::Phone => 5,
        }
    }
}

/// A user-defined rule: matches become `[label]`. Label validity is checked by the caller.
#[derive(Clone, Debug)]
pub struct CustomPattern {
    pub label: String,
    pub regex: Regex,
}

/// Which rule produced a replacement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleId {
    Builtin(Detector),
    /// Index into the custom list given to [`Rules::new`].
    Custom(usize),
}

/// The redacted text and how many matches each rule replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redaction {
    pub text: String,
    /// Only rules that matched, sorted by `RuleId`.
    pub counts: Vec<(RuleId, u32)>,
}

/// The enabled detectors and custom patterns.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    enabled: [bool; 6],
    custom: Vec<CustomPattern>,
}

/// Re-scans of the output after the first pass (see `Rules::redact`). Each
/// one that finds something replaces real text, so this converges, and in
/// ordinary text the first re-scan finds nothing. Only matches glued end to
/// end without any separator (`…4567+1 555 123 4567+1 …`) unlock one
/// another pass by pass; the cap bounds the work on such input.
const MAX_EXTRA_PASSES: usize = 8;

#[derive(Clone, Copy, Debug)]
struct Span {
    start: usize,
    end: usize,
    rule: RuleId,
}

impl Span {
    /// Sort key: earlier start first, then longer first, then precedence
    /// (custom rules before every built-in, then `Detector::tie_rank`).
    fn order_key(&self) -> (usize, Reverse<usize>, u8, usize) {
        let (class, index) = match self.rule {
            RuleId::Custom(i) => (0, i),
            RuleId::Builtin(d) => (1 + d.tie_rank(), 0),
        };
        (self.start, Reverse(self.end), class, index)
    }
}

impl Rules {
    pub fn new(detectors: &[Detector], custom: Vec<CustomPattern>) -> Self {
        let mut enabled = [false; 6];
        for d in detectors {
            enabled[d.index()] = true;
        }
        Rules { enabled, custom }
    }

    /// Nothing enabled: `redact()` is a no-op.
    pub fn is_empty(&self) -> bool {
        !self.enabled.iter().any(|e| *e) && self.custom.is_empty()
    }

    pub fn custom_label(&self, i: usize) -> Option<&str> {
        self.custom.get(i).map(|c| c.label.as_str())
    }

    fn on(&self, d: Detector) -> bool {
        self.enabled[d.index()]
    }

    /// None when nothing matched (and then nothing was allocated); else the text with every
    /// match replaced by its placeholder, and how many matches each rule had.
    pub fn redact(&self, text: &str) -> Option<Redaction> {
        if text.is_empty() || self.is_empty() {
            return None;
        }
        let mut result = self.pass(text, true)?;
        // A candidate rejected only because it touched another match
        // (`2001:db8::1(555) 123-4567`: the phone is glued to the address)
        // becomes valid once its neighbour is a placeholder. Re-scanning the
        // output with the built-ins until nothing changes makes `redact`
        // idempotent; in ordinary text the second pass finds nothing, and it
        // only runs when the first one matched. Custom patterns are not
        // re-run: they could match inside placeholders.
        for _ in 0..MAX_EXTRA_PASSES {
            let Some(next) = self.pass(&result.text, false) else {
                break;
            };
            let mut counts = result.counts;
            for (rule, n) in next.counts {
                match counts.binary_search_by_key(&rule, |(r, _)| *r) {
                    Ok(i) => counts[i].1 = counts[i].1.saturating_add(n),
                    Err(i) => counts.insert(i, (rule, n)),
                }
            }
            result = Redaction {
                text: next.text,
                counts,
            };
        }
        Some(result)
    }

    fn pass(&self, text: &str, with_custom: bool) -> Option<Redaction> {
        let mut spans: Vec<Span> = Vec::new();

        if self.on(Detector::Secret) {
            scan_secrets(text, &mut spans);
        }
        if self.on(Detector::Email) && text.contains('@') {
            scan_emails(text, &mut spans);
        }
        let numeric = [
            Detector::Phone,
            Detector::Card,
            Detector::Iban,
            Detector::Ip,
        ]
        .map(|d| self.on(d));
        if numeric.iter().any(|on| *on) && has_ascii_digit(text) {
            scan_numbers(text, numeric, &mut spans);
            if self.on(Detector::Ip) && text.contains(':') {
                scan_ipv6(text, &mut spans);
            }
        }
        let custom = if with_custom { &self.custom[..] } else { &[] };
        for (i, pattern) in custom.iter().enumerate() {
            // Empty matches carry nothing to hide, and replacing them would
            // put a placeholder between every character for patterns like `x*`.
            spans.extend(
                pattern
                    .regex
                    .find_iter(text)
                    .filter(|m| !m.is_empty())
                    .map(|m| Span {
                        start: m.start(),
                        end: m.end(),
                        rule: RuleId::Custom(i),
                    }),
            );
        }

        if spans.is_empty() {
            return None;
        }
        spans.sort_unstable_by_key(Span::order_key);
        Some(self.apply(text, &spans))
    }

    fn apply(&self, text: &str, spans: &[Span]) -> Redaction {
        let mut out = String::with_capacity(text.len());
        let mut builtin_counts = [0u32; 6];
        let mut custom_counts = vec![0u32; self.custom.len()];
        let mut cursor = 0;
        for span in spans {
            // Sorted by start then longest first, so anything starting before
            // the cursor overlaps a span that already won.
            if span.start < cursor {
                continue;
            }
            out.push_str(&text[cursor..span.start]);
            match span.rule {
                RuleId::Builtin(d) => {
                    out.push_str(d.placeholder());
                    builtin_counts[d.index()] = builtin_counts[d.index()].saturating_add(1);
                }
                RuleId::Custom(i) => {
                    out.push('[');
                    out.push_str(&self.custom[i].label);
                    out.push(']');
                    custom_counts[i] = custom_counts[i].saturating_add(1);
                }
            }
            cursor = span.end;
        }
        out.push_str(&text[cursor..]);

        // Detector::ALL is in declaration order, which is RuleId's order.
        let counts = Detector::ALL
            .iter()
            .map(|d| (RuleId::Builtin(*d), builtin_counts[d.index()]))
            .chain(
                custom_counts
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (RuleId::Custom(i), *n)),
            )
            .filter(|(_, n)| *n > 0)
            .collect();
        Redaction { text: out, counts }
    }
}

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// Compiles a built-in pattern. The patterns are compile-time string
/// constants, exercised by every test run, so a failure is a programming
/// error rather than a runtime condition; that is the only reason `expect`
/// is acceptable here (and it is only called from `Lazy` initialisers).
fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in redaction pattern must compile")
}

/// Branch-free per chunk so the compiler can vectorise it: this runs on
/// every text and decides whether four detectors run at all.
fn has_ascii_digit(text: &str) -> bool {
    text.as_bytes()
        .chunks(64)
        .any(|chunk| chunk.iter().fold(false, |acc, b| acc | b.is_ascii_digit()))
}

fn prev_char(text: &str, i: usize) -> Option<char> {
    text[..i].chars().next_back()
}

fn next_char(text: &str, i: usize) -> Option<char> {
    text[i..].chars().next()
}

/// Characters that make two things one token: ASCII alphanumerics, `_`, and
/// letters/digits of space-separated scripts (everything below U+0530:
/// Latin, Greek, Cyrillic, Armenian). CJK and other scriptio-continua text is
/// deliberately not glue.
fn is_glue(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || c == '_'
        || (!c.is_ascii() && (c as u32) < 0x0530 && c.is_alphanumeric())
}

/// A number-ish match is part of something bigger when glued to a word, or
/// joined to another digit through `.`, `,`, `-`, `/` or `:` (`1,234`,
/// `2024-01-15`, `1.2.3.4.5`, `12:30`).
fn joined_before(text: &str, start: usize) -> bool {
    let mut it = text[..start].chars().rev();
    match it.next() {
        None => false,
        Some(c) if is_glue(c) => true,
        Some('.' | ',' | '-' | '/' | ':') => it.next().is_some_and(|d| d.is_ascii_digit()),
        Some(_) => false,
    }
}

fn joined_after(text: &str, end: usize) -> bool {
    let mut it = text[end..].chars();
    match it.next() {
        None => false,
        Some(c) if is_glue(c) => true,
        Some('%') => true,
        Some('.' | ',' | '-' | '/' | ':') => it.next().is_some_and(|d| d.is_ascii_digit()),
        Some(_) => false,
    }
}

/// Phone, card, IBAN and IPv4 candidates all start at (or one or two bytes
/// before) a run of digits, so one pass over the digit runs drives all four,
/// each trying its anchored pattern there. Every run is tried, so a rejected
/// candidate (`4567 4111 1111 1111 1111`, the tail of a phone glued to a
/// card) cannot hide a real match starting inside it. `covered` skips runs
/// inside a detector's previous hit.
fn scan_numbers(text: &str, enabled: [bool; 4], out: &mut Vec<Span>) {
    const DETECTORS: [Detector; 4] = [
        Detector::Phone,
        Detector::Card,
        Detector::Iban,
        Detector::Ip,
    ];
    let mut covered = [0usize; 4];
    for (start, run_end) in digit_runs(text) {
        for (slot, d) in DETECTORS.iter().enumerate() {
            // An IBAN starts two letters before its first digit run.
            let lead = if *d == Detector::Iban { 2 } else { 0 };
            if !enabled[slot] || start < covered[slot] + lead {
                continue;
            }
            let hit = match d {
                Detector::Phone => phone_at(text, start, run_end),
                Detector::Card => card_at(text, start, run_end),
                Detector::Iban => iban_at(text, start),
                _ => ipv4_at(text, start),
            };
            if let Some((hit_start, hit_end)) = hit {
                push(out, *d, hit_start, hit_end);
                covered[slot] = hit_end;
            }
        }
    }
}

/// Maximal runs of ASCII digits. Numeric candidates can only start at (or
/// just before) one, and trying an anchored pattern there is much cheaper
/// than letting an unanchored regex consider every byte: these patterns
/// start with byte classes the engine cannot prefilter well. Eight bytes are
/// examined at a time (`digit_mask`), since prose has few digits and a
/// byte-at-a-time loop here dominated the cost of the numeric detectors.
fn digit_runs(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let b = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        let start = next_where(b, i, true)?;
        i = next_where(b, start, false).unwrap_or(b.len());
        Some((start, i))
    })
}

/// First index `>= from` whose byte is (`digit`) or is not (`!digit`) an
/// ASCII digit.
fn next_where(b: &[u8], mut i: usize, digit: bool) -> Option<usize> {
    while i + 8 <= b.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&b[i..i + 8]);
        let mask = digit_mask(u64::from_le_bytes(word));
        let hits = if digit { mask } else { !mask & HIGH_BITS };
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    (i..b.len()).find(|&j| b[j].is_ascii_digit() == digit)
}

const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `w` that is `b'0'..=b'9'`. Works on the low
/// seven bits so the additions cannot carry between bytes, then masks out
/// non-ASCII bytes.
fn digit_mask(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let low7 = w & !HIGH_BITS;
    let at_least_0 = (low7 + (0x80 - 0x30) * ONES) & HIGH_BITS;
    let above_9 = (low7 + (0x80 - 0x3A) * ONES) & HIGH_BITS;
    !w & HIGH_BITS & at_least_0 & !above_9
}

/// End of the match of `re` (anchored with `^`) at `start`, looking at most
/// `window` bytes ahead; a candidate cut by the window fails its boundary
/// check, and every real candidate is far shorter.
fn match_at(re: &Regex, text: &str, start: usize, window: usize) -> Option<usize> {
    let mut end = (start + window).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    re.find(&text[start..end]).map(|m| start + m.end())
}

fn push(out: &mut Vec<Span>, d: Detector, start: usize, end: usize) {
    if start < end {
        out.push(Span {
            start,
            end,
            rule: RuleId::Builtin(d),
        });
    }
}

/// Character-class mix of a token: (lowercase, uppercase, digit, other).
fn classes(s: &str) -> (bool, bool, bool, bool) {
    s.chars()
        .fold((false, false, false, false), |(l, u, d, o), c| {
            (
                l || c.is_lowercase(),
                u || c.is_uppercase(),
                d || c.is_ascii_digit(),
                o || !c.is_alphanumeric(),
            )
        })
}

/// Random tokens mix at least two of lowercase/uppercase/digits; words and
/// kebab-case names do not.
fn mixes_classes(s: &str) -> bool {
    let (l, u, d, _) = classes(s);
    (l as u8 + u as u8 + d as u8) >= 2
}

// ---------------------------------------------------------------------------
// Email
// ---------------------------------------------------------------------------

/// Letters of space-separated scripts plus combining marks, so `josé@…`
/// (precomposed or not) matches whole.
const EMAIL_CHARS: &str = r"\p{Latin}\p{Greek}\p{Cyrillic}\p{M}0-9";

static EMAIL_RE: Lazy<Regex> = Lazy::new(|| {
    let c = EMAIL_CHARS;
    // Local part: no leading/trailing dot. Domain: one or more labels then an
    // alphabetic TLD of at least two letters, so `a@b`, `user@localhost`,
    // `name@domain` and `pkg@1.2.3` never match. The TLD excludes `.` and
    // punctuation, so sentence-final `.` stays outside.
    compile(&format!(
        r"[{c}_%+\-](?:[{c}_%+.\-]*[{c}_%+\-])?@(?:[{c}](?:[{c}\-]*[{c}])?\.)+[A-Za-z]{{2,63}}"
    ))
});

/// File extensions that are not TLDs: `icon@2x.png` is an asset name.
const ASSET_EXTENSIONS: [&str; 15] = [
    "png", "jpg", "jpeg", "gif", "svg", "webp", "avif", "heic", "bmp", "ico", "tif", "tiff", "css",
    "js", "json",
];

fn scan_emails(text: &str, out: &mut Vec<Span>) {
    for m in EMAIL_RE.find_iter(text) {
        if email_ok(text, m.start(), m.end()) {
            push(out, Detector::Email, m.start(), m.end());
        }
    }
}

fn email_ok(text: &str, start: usize, end: usize) -> bool {
    match next_char(text, end) {
        Some(c) if is_glue(c) || c == '-' || c == '@' => return false,
        // `git@github.com:org/repo` is an SSH remote (a host locator for a
        // service account), not a mailbox; keeping it keeps the memory of
        // where the code lives. `bob@example.com: hi` still redacts.
        Some(':') if next_char(text, end + 1).is_some_and(|c| !c.is_whitespace()) => return false,
        _ => {}
    }
    if in_url_userinfo(text, start) {
        return false;
    }
    let s = &text[start..end];
    let Some((_, domain)) = s.split_once('@') else {
        return false;
    };
    let Some((labels, tld)) = domain.rsplit_once('.') else {
        return false;
    };
    if ASSET_EXTENSIONS.iter().any(|e| tld.eq_ignore_ascii_case(e)) {
        return false;
    }
    // Retina asset names: `logo@3x.jpg`, `sprite@2x.co` — a `<digits>x` label.
    !labels.split('.').any(|l| {
        l.len() >= 2
            && l.ends_with(['x', 'X'])
            && l[..l.len() - 1].bytes().all(|b| b.is_ascii_digit())
    })
}

/// `ssh://git@host/…` and `postgres://user:pw@host/…`: the part before `@`
/// is URL userinfo (an account on that host, or a password the secret rule
/// takes), not a mailbox. Looks back a bounded distance to stay linear.
fn in_url_userinfo(text: &str, start: usize) -> bool {
    let before = &text[..start];
    let Some((i, c)) = before
        .char_indices()
        .rev()
        .take(256)
        .find(|(_, c)| c.is_whitespace() || matches!(c, '/' | '@'))
    else {
        return false;
    };
    let user = &before[i + c.len_utf8()..];
    c == '/'
        && before[..i + 1].ends_with("://")
        && (user.is_empty() || (user.ends_with(':') && user.matches(':').count() == 1))
}

// ---------------------------------------------------------------------------
// Phone
// ---------------------------------------------------------------------------

/// Anchored; tried only where `phone_at` sees a plausible start.
static PHONE_RE: Lazy<Regex> = Lazy::new(|| {
    compile(concat!(
        // International: +country then groups split by at most one of
        // space/dot/dash, optionally a parenthesised group: `+49 (0)30 1234567`.
        r"^(?:\+[0-9]{1,3}(?:[ .\-]?\([0-9]{1,4}\)|[ .\-]?[0-9]{1,5})+",
        // North American: `(555) 123-4567`, optional leading `1-`.
        r"|(?:1[ .\-])?\([2-9][0-9]{2}\) ?[0-9]{3}[ .\-][0-9]{4}",
        // North American: `555-123-4567`, `555.123.4567`, `555 123 4567`.
        r"|(?:1[ .\-])?[2-9][0-9]{2}[ .\-][0-9]{3}[ .\-][0-9]{4}",
        // National with trunk 0: `030 1234567`, `020 7946 0958`, `06 12 34 56 78`.
        r"|0[1-9][0-9]{0,3}(?:[ /\-][0-9]{2,8}){1,4})",
    ))
});

const PHONE_WINDOW: usize = 48;

/// Cheap shape test before the regex: most digit runs in prose (`3 items`,
/// `2024`, `1.2.3`) cannot start a phone number.
fn phone_at(text: &str, run_start: usize, run_end: usize) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let len = run_end - run_start;
    let before = run_start.checked_sub(1).map(|i| b[i]);
    let sep_then_digit = matches!(b.get(run_end), Some(b' ' | b'.' | b'-' | b'/'))
        && b.get(run_end + 1)
            .is_some_and(|c| c.is_ascii_digit() || *c == b'(');
    let start = match before {
        Some(b'+') if len <= 15 => run_start - 1,
        Some(b'(') if len == 3 => run_start - 1,
        _ if !sep_then_digit => return None,
        _ => match b[run_start] {
            b'1' if len == 1 => run_start,
            b'2'..=b'9' if len == 3 => run_start,
            b'0' if (2..=5).contains(&len) => run_start,
            _ => return None,
        },
    };
    let end = match_at(&PHONE_RE, text, start, PHONE_WINDOW)?;
    phone_ok(text, start, end).then_some((start, end))
}

fn phone_ok(text: &str, start: usize, end: usize) -> bool {
    if joined_before(text, start) || joined_after(text, end) {
        return false;
    }
    let s = &text[start..end];
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    match s.as_bytes()[0] {
        b'+' => {
            // E.164 allows at most 15 digits. Without any separator, demand
            // a realistic length so `+10000000` style deltas stay.
            let separated = s.bytes().any(|b| matches!(b, b' ' | b'.' | b'-' | b'('));
            (8..=15).contains(&digits) && (separated || digits >= 10)
        }
        // `+` before a national form means it is the tail of something else,
        // and so does a digit group before it: `DE89 3704 0044 0532 0130 00`
        // must not yield a phone `0532 0130 00` when the IBAN is rejected.
        _ if prev_char(text, start) == Some('+') || digit_group_before(text, start) => false,
        b'0' => trunk_ok(s, digits),
        _ => {
            if s.contains('(') {
                return true;
            }
            // `555-123.4567` mixes separators; real numbers do not.
            let mut seps = s.bytes().filter(|b| !b.is_ascii_digit());
            match seps.next() {
                Some(first) => seps.all(|b| b == first),
                None => false,
            }
        }
    }
}

fn digit_group_before(text: &str, start: usize) -> bool {
    let b = text.as_bytes();
    start >= 2 && b[start - 1] == b' ' && b[start - 2].is_ascii_digit()
}

fn trunk_ok(s: &str, digits: usize) -> bool {
    if !(9..=12).contains(&digits) {
        return false;
    }
    let mut seps = s.bytes().filter(|b| !b.is_ascii_digit());
    let first_sep = seps.next();
    let mut groups = s.split([' ', '/', '-']).map(str::len);
    let (Some(area), Some(subscriber)) = (groups.next(), groups.next()) else {
        return false;
    };
    // A slash only separates the area code (`030/1234567`); `01/02/2024` is a date.
    if seps.any(|b| b == b'/') || (first_sep == Some(b'/') && area < 3) {
        return false;
    }
    // Subscriber part of at least 3 digits, or French-style five pairs;
    // `05-12-2024` style dates fail both.
    let (mut count, mut all_pairs) = (2, area == 2 && subscriber == 2);
    for g in groups {
        count += 1;
        all_pairs &= g == 2;
    }
    subscriber >= 3 || (count == 5 && all_pairs)
}

// ---------------------------------------------------------------------------
// Card
// ---------------------------------------------------------------------------

/// Anchored: tried only at digit runs of four or more (see `scan_numbers`).
static CARD_RE: Lazy<Regex> = Lazy::new(|| {
    compile(concat!(
        // 4-4-4[-4][-1..4] grouped (Visa/Mastercard/Discover, 19-digit cards).
        r"^(?:[0-9]{4}(?:[ \-][0-9]{4}){2,3}(?:[ \-][0-9]{1,4})?",
        // 4-6-5 / 4-6-4 (Amex, Diners).
        r"|[0-9]{4}[ \-][0-9]{6}[ \-][0-9]{4,5}",
        r"|[0-9]{13,19})",
    ))
});

/// Longest candidate the card regex can produce, plus slack.
const CARD_WINDOW: usize = 32;

fn card_at(text: &str, start: usize, run_end: usize) -> Option<(usize, usize)> {
    if run_end - start < 4 {
        return None;
    }
    let end = match_at(&CARD_RE, text, start, CARD_WINDOW)?;
    card_end(text, start, end).map(|end| (start, end))
}

fn card_end(text: &str, start: usize, end: usize) -> Option<usize> {
    if joined_before(text, start) || matches!(prev_char(text, start), Some('+' | '-' | '.' | '/')) {
        return None;
    }
    if card_ok(text, start, end) {
        return Some(end);
    }
    // The grouped form greedily takes a following number
    // (`4111 1111 1111 1111 2024`); retry without the last group.
    let cut = start + text[start..end].rfind([' ', '-'])?;
    card_ok(text, start, cut).then_some(cut)
}

fn card_ok(text: &str, start: usize, end: usize) -> bool {
    if joined_after(text, end) {
        return false;
    }
    let s = &text[start..end];
    let mut seps = s.bytes().filter(|b| !b.is_ascii_digit());
    if let Some(first) = seps.next() {
        if !seps.all(|b| b == first) {
            return false;
        }
    }
    let mut digits = [0u8; 19];
    let mut n = 0;
    for b in s.bytes().filter(u8::is_ascii_digit) {
        if n == digits.len() {
            return false;
        }
        digits[n] = b - b'0';
        n += 1;
    }
    n >= 13 && luhn(&digits[..n]) && issuer_plausible(&digits[..n])
}

fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x);
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// One random digit run in ten passes Luhn, so a Luhn-valid number must also
/// start like a card that exists (major issuer prefixes and their lengths).
/// Order ids starting with 1, 7, 8, 9 or 0 are therefore never cards.
fn issuer_plausible(d: &[u8]) -> bool {
    let n = d.len();
    let prefix = |k: usize| d[..k].iter().fold(0u32, |acc, &x| acc * 10 + u32::from(x));
    let (p2, p3, p4) = (prefix(2), prefix(3), prefix(4));
    let long = (14..=19).contains(&n);
    match d[0] {
        4 => matches!(n, 13 | 16 | 19),
        2 => n == 16 && (2221..=2720).contains(&p4),
        5 => ((51..=55).contains(&p2) && n == 16) || p2 == 50 || (56..=59).contains(&p2),
        3 => {
            ((p2 == 34 || p2 == 37) && n == 15)
                || ((p2 == 36 || p2 == 38 || p2 == 39 || (300..=305).contains(&p3)) && long)
                || ((3528..=3589).contains(&p4) && (16..=19).contains(&n))
        }
        // Discover, UnionPay, Maestro: 13-19 digits.
        6 => true,
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// IBAN
// ---------------------------------------------------------------------------

/// Candidate: country, check digits, then up to 32 alphanumerics each
/// optionally preceded by one space. Deliberately over-long; `iban_end`
/// cuts it to the country's exact length. Anchored: tried only where two
/// uppercase letters precede a digit run.
static IBAN_RE: Lazy<Regex> = Lazy::new(|| compile(r"^[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,32}"));

const IBAN_WINDOW: usize = 80;

/// `run_start` is a digit run; an IBAN starts two uppercase letters before.
/// Every run is tried, so `AB12 DE89 …` still finds the second one.
fn iban_at(text: &str, run_start: usize) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let start = run_start.checked_sub(2)?;
    if !(b[start].is_ascii_uppercase() && b[start + 1].is_ascii_uppercase()) {
        return None;
    }
    let cand_end = match_at(&IBAN_RE, text, start, IBAN_WINDOW)?;
    iban_end(text, start, cand_end).map(|end| (start, end))
}

fn iban_end(text: &str, start: usize, cand_end: usize) -> Option<usize> {
    if prev_char(text, start).is_some_and(is_glue) {
        return None;
    }
    let b = &text.as_bytes()[start..cand_end];
    let expected = iban_length(b[0], b[1])?;
    let mut buf = [0u8; 34];
    buf[..4].copy_from_slice(&b[..4]);
    let mut n = 4;
    let mut i = 4;
    if b.get(4) == Some(&b' ') {
        // Printed form: groups of four, only the last may be shorter.
        while n < expected && b.get(i) == Some(&b' ') {
            let mut j = i + 1;
            let mut g = 0;
            while g < 4 && n < expected && j < b.len() && b[j].is_ascii_alphanumeric() {
                buf[n] = b[j];
                n += 1;
                g += 1;
                j += 1;
            }
            if g == 0 {
                break;
            }
            i = j;
            if g < 4 {
                break;
            }
        }
    } else {
        while n < expected && i < b.len() && b[i].is_ascii_alphanumeric() {
            buf[n] = b[i];
            n += 1;
            i += 1;
        }
    }
    let end = start + i;
    if n != expected || next_char(text, end).is_some_and(is_glue) {
        return None;
    }
    let check = u32::from(buf[2] - b'0') * 10 + u32::from(buf[3] - b'0');
    ((2..=98).contains(&check) && mod97(&buf[..n]) == 1).then_some(end)
}

/// ISO 13616: move the first four characters to the end, letters become
/// 10..35, the number mod 97 must be 1.
fn mod97(iban: &[u8]) -> u32 {
    iban[4..].iter().chain(&iban[..4]).fold(0u32, |r, &c| {
        if c.is_ascii_digit() {
            (r * 10 + u32::from(c - b'0')) % 97
        } else {
            (r * 100 + u32::from(c.to_ascii_uppercase() - b'A') + 10) % 97
        }
    })
}

/// Per-country IBAN lengths (SWIFT IBAN registry). Unknown country codes are
/// rejected outright: a two-letter, two-digit uppercase code that merely
/// passes mod-97 (1 in 97 random strings do) is more likely a product or
/// ticket code than a bank account.
fn iban_length(a: u8, b: u8) -> Option<usize> {
    let len = match [a, b] {
        [b'N', b'O'] => 15,
        [b'B', b'E'] => 16,
        [b'D', b'K'] | [b'F', b'I'] | [b'F', b'O'] | [b'G', b'L'] | [b'N', b'L'] | [b'S', b'D'] => {
            18
        }
        [b'M', b'K'] | [b'S', b'I'] => 19,
        [b'A', b'T']
        | [b'B', b'A']
        | [b'E', b'E']
        | [b'K', b'Z']
        | [b'L', b'T']
        | [b'L', b'U']
        | [b'X', b'K'] => 20,
        [b'C', b'H'] | [b'H', b'R'] | [b'L', b'I'] | [b'L', b'V'] => 21,
        [b'B', b'G']
        | [b'B', b'H']
        | [b'C', b'R']
        | [b'D', b'E']
        | [b'G', b'B']
        | [b'G', b'E']
        | [b'I', b'E']
        | [b'M', b'E']
        | [b'R', b'S']
        | [b'V', b'A'] => 22,
        [b'A', b'E'] | [b'G', b'I'] | [b'I', b'L'] | [b'I', b'Q'] | [b'T', b'L'] => 23,
        [b'A', b'D']
        | [b'C', b'Z']
        | [b'E', b'S']
        | [b'M', b'D']
        | [b'P', b'K']
        | [b'R', b'O']
        | [b'S', b'A']
        | [b'S', b'E']
        | [b'S', b'K']
        | [b'T', b'N']
        | [b'V', b'G'] => 24,
        [b'L', b'Y'] | [b'P', b'T'] | [b'S', b'T'] => 25,
        [b'I', b'S'] | [b'T', b'R'] => 26,
        [b'F', b'R'] | [b'G', b'R'] | [b'I', b'T'] | [b'M', b'C'] | [b'M', b'R'] | [b'S', b'M'] => {
            27
        }
        [b'A', b'L']
        | [b'A', b'Z']
        | [b'B', b'Y']
        | [b'C', b'Y']
        | [b'D', b'O']
        | [b'G', b'T']
        | [b'H', b'U']
        | [b'L', b'B']
        | [b'P', b'L']
        | [b'S', b'V'] => 28,
        [b'B', b'R'] | [b'E', b'G'] | [b'P', b'S'] | [b'Q', b'A'] | [b'U', b'A'] => 29,
        [b'J', b'O'] | [b'K', b'W'] | [b'M', b'U'] => 30,
        [b'M', b'T'] | [b'S', b'C'] => 31,
        [b'L', b'C'] => 32,
        _ => return None,
    };
    Some(len)
}

// ---------------------------------------------------------------------------
// IP
// ---------------------------------------------------------------------------

/// `d{1,3}.d{1,3}.d{1,3}.d{1,3}` at `start`, parsed by hand: simpler and
/// cheaper than a regex for a fixed shape.
fn ipv4_at(text: &str, start: usize) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let mut i = start;
    for octet in 0..4 {
        if octet > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let group = i;
        while i < b.len() && i - group < 3 && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == group {
            return None;
        }
    }
    ipv4_ok(text, start, i).then_some((start, i))
}

/// IPv6 candidates grow outwards from each `:` over hex digits, colons and
/// dots (for the `::ffff:1.2.3.4` form), bounded to the longest textual
/// form; `Ipv6Addr::from_str` decides.
fn scan_ipv6(text: &str, out: &mut Vec<Span>) {
    let b = text.as_bytes();
    let is_v6 = |c: u8| c.is_ascii_hexdigit() || c == b':';
    let mut covered = 0;
    for p in COLON_RE.find_iter(text).map(|m| m.start()) {
        if p < covered {
            continue;
        }
        let mut start = p;
        while start > 0 && p - start < 40 && is_v6(b[start - 1]) {
            start -= 1;
        }
        let mut end = p;
        while end < b.len() && end - p < 46 && (is_v6(b[end]) || b[end] == b'.') {
            end += 1;
        }
        covered = end;
        if let Some(end) = ipv6_end(text, start, end) {
            push(out, Detector::Ip, start, end);
        }
    }
}

fn ipv4_ok(text: &str, start: usize, end: usize) -> bool {
    // Part of a longer dotted number (`1.2.3.4.5`) or a version (`v1.2.3.4`).
    // A `-` is allowed on both sides so ranges `10.0.0.1-10.0.0.9` work.
    if prev_char(text, start).is_some_and(|c| is_glue(c) || c == '.') {
        return false;
    }
    let mut after = text[end..].chars();
    match after.next() {
        Some(c) if is_glue(c) => return false,
        Some('.') if after.next().is_some_and(|c| c.is_ascii_digit()) => return false,
        _ => {}
    }
    if follows_version_word(text, start) {
        return false;
    }
    let mut octets = [0u8; 4];
    for (slot, part) in octets.iter_mut().zip(text[start..end].split('.')) {
        // `010` is octal to some parsers and decimal to others; such
        // strings are almost never addresses in prose.
        if part.len() > 1 && part.starts_with('0') {
            return false;
        }
        match part.parse::<u8>() {
            Ok(v) => *slot = v,
            Err(_) => return false,
        }
    }
    !ipv4_is_generic(octets)
}

/// `version 2.0.0.1`, `build: 10.0.19041.1`: four-part versions look
/// exactly like addresses; the word before them tells them apart.
fn follows_version_word(text: &str, start: usize) -> bool {
    let before = text[..start].trim_end_matches([' ', '\t', ':', '=']);
    let word_start = before
        .char_indices()
        .rev()
        .take(16)
        .take_while(|(_, c)| c.is_ascii_alphabetic())
        .last()
        .map_or(before.len(), |(i, _)| i);
    let word = &before[word_start..];
    [
        "version", "ver", "v", "release", "build", "firmware", "fw", "rev", "revision",
    ]
    .iter()
    .any(|w| word.eq_ignore_ascii_case(w))
}

/// Addresses that identify nobody and carry meaning in technical chats:
/// loopback, the unspecified address, broadcast and netmasks.
fn ipv4_is_generic(o: [u8; 4]) -> bool {
    let v = u32::from_be_bytes(o);
    let netmask = o[0] == 255 && v.leading_ones() + v.trailing_zeros() == 32;
    o[0] == 127 || v == 0 || netmask
}

fn ipv6_end(text: &str, start: usize, end: usize) -> Option<usize> {
    if prev_char(text, start).is_some_and(|c| is_glue(c) || c == '.')
        || next_char(text, end).is_some_and(is_glue)
    {
        return None;
    }
    // Sentence punctuation: `reach fe80::1: it answers`, `at 2001:db8::1.`
    let mut s = text[start..end].trim_end_matches('.');
    if s.ends_with(':') && !s.ends_with("::") {
        s = &s[..s.len() - 1];
    }
    let end = start + s.len();
    let s = &text[start..end];
    // Times (`12:30:45`) and MACs (`00:1a:2b:3c:4d:5e`) fail to parse; the
    // digit requirement keeps hex-only code paths (`dead::beef`) out.
    if s.bytes().filter(|b| *b == b':').count() < 2 || !s.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    // Python slices (`a[1::2]`, `x[::-1]`) parse as IPv6 too; with fewer
    // than three groups, demand a full four-digit group like `fe80`.
    // `4567::` and lone groups are too thin to call an address.
    let groups = s.split(':').filter(|g| !g.is_empty()).count();
    if groups < 2 || (groups < 3 && !s.split(':').any(|g| g.len() == 4)) {
        return None;
    }
    let addr = Ipv6Addr::from_str(s).ok()?;
    (!addr.is_loopback() && !addr.is_unspecified()).then_some(end)
}

// ---------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------

/// Provider tokens by prefix and shape, JWTs and PEM private keys, in one
/// regex: all alternatives start with literals, so the engine's prefilter
/// jumps between candidate positions instead of running the automaton over
/// every byte.
static TOKEN_RE: Lazy<Regex> = Lazy::new(|| {
    compile(concat!(
        r"sk-ant-[A-Za-z0-9_\-]{20,}",
        r"|sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,}",
        // Legacy OpenAI keys have no dashes; `sk-some-long-kebab-name` stays.
        r"|sk-[A-Za-z0-9]{20,}",
        r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}",
        r"|A(?:KIA|SIA)[A-Z0-9]{16}",
        r"|gh[pousr]_[A-Za-z0-9]{36,}",
        r"|glpat-[A-Za-z0-9_\-]{20,}",
        r"|xox[abprs]-[A-Za-z0-9\-]{10,}",
        r"|AIza[A-Za-z0-9_\-]{35}",
        r"|hf_[A-Za-z0-9]{30,}",
        // `Bearer <token>`; the usual spellings only, since a
        // case-insensitive literal would defeat the prefilter.
        r"|(?:Bearer|bearer|BEARER)[ \t]+[A-Za-z0-9._~+/\-]+=*",
        // JWT: base64url('{"') is `eyJ` for header and payload.
        r"|eyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*",
        // PEM private key, whole block. Without an END line (a truncated
        // paste) take the header and the base64 lines that follow.
        r"|-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----",
        r"(?:[\s\S]*?-----END (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----",
        r"|(?:[ \t\r\n]+[A-Za-z0-9+/=]{16,})*)",
    ))
});

/// Fine-grained GitHub tokens, on their own: in the combined regex the
/// `git` prefix made the literal prefilter (which looks at three bytes)
/// fire so often in prose that it quadrupled the cost of the whole scan;
/// alone it gets a single-literal memmem search.
static GITHUB_PAT_RE: Lazy<Regex> = Lazy::new(|| compile(r"github_pat_[A-Za-z0-9_]{22,}"));

/// Longest first: the shape check looks only at the random part.
const TOKEN_PREFIXES: [&str; 19] = [
    "sk-svcacct-",
    "github_pat_",
    "sk-admin-",
    "sk-proj-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "rk_test_",
    "sk-ant-",
    "glpat-",
    "xoxa-",
    "xoxb-",
    "xoxp-",
    "xoxr-",
    "xoxs-",
    "AKIA",
    "ASIA",
    "AIza",
    "sk-",
];

/// Identifier endings that make `key = value` / `key: value` a credential,
/// compared case-insensitively. No two is a suffix of another, so at most
/// one matches; the identifier may carry a prefix (`DB_`, `x-`, `client_`).
const KV_KEYWORDS: [&str; 18] = [
    "password",
    "passwd",
    "pwd",
    "pass",
    "secret",
    "token",
    "api_key",
    "api-key",
    "apikey",
    "access_key",
    "access-key",
    "accesskey",
    "secret_key",
    "secret-key",
    "secretkey",
    "private_key",
    "private-key",
    "privatekey",
];

/// Finds `:` and `=`. The regex engine searches a two-byte class with a
/// vectorised memchr2, several times faster than two passes of `str::find`.
static SEPARATOR_RE: Lazy<Regex> = Lazy::new(|| compile("[:=]"));

/// Finds `:` for IPv6 candidates (vectorised memchr, unlike `str::find`).
static COLON_RE: Lazy<Regex> = Lazy::new(|| compile(":"));

/// Longest tail examined after a separator; bounds the work per `:`/`=`.
const KV_WINDOW: usize = 4096;

/// `scheme://user:password@host`: only the password goes.
static URL_PASSWORD_RE: Lazy<Regex> =
    Lazy::new(|| compile(r"://[^\s:/@\[\]]+:[^\s/@\[\]]+@[A-Za-z0-9\-]"));

fn scan_secrets(text: &str, out: &mut Vec<Span>) {
    for m in TOKEN_RE
        .find_iter(text)
        .chain(GITHUB_PAT_RE.find_iter(text))
    {
        if let Some((start, end)) = token_span(text, m.start(), m.end()) {
            push(out, Detector::Secret, start, end);
        }
    }
    scan_key_values(text, out);
    // The regex's own `://` literal prefilter (vectorised memmem) is faster
    // than a `str::contains` gate in front of it.
    for m in URL_PASSWORD_RE.find_iter(text) {
        // `://user:` then the password up to the `@` before the host's
        // first character.
        let Some(colon) = m.as_str()[3..].find(':') else {
            continue;
        };
        let (start, end) = (m.start() + 3 + colon + 1, m.end() - 2);
        if value_is_plausible(&text[start..end]) {
            push(out, Detector::Secret, start, end);
        }
    }
}

fn token_span(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let s = &text[start..end];
    if s.starts_with("-----BEGIN") {
        return Some((start, start + s.trim_end().len()));
    }
    if s.starts_with(['B', 'b']) {
        return bearer_token(text, start, end);
    }
    // Inside a longer word or a base64 blob (`+`, `/`), e.g. an image payload
    // that happens to contain `AIza`.
    if prev_char(text, start).is_some_and(|c| is_glue(c) || matches!(c, '+' | '/' | '-')) {
        return None;
    }
    if next_char(text, end).is_some_and(is_glue) {
        return None;
    }
    if s.starts_with("eyJ") {
        // Unsigned JWT (`alg: none`): keep the sentence's full stop.
        return Some((start, start + s.trim_end_matches('.').len()));
    }
    // Keys do not end in `-`/`_`; a run of them is a separator glued on
    // (`sk-…-----BEGIN`).
    let s = s.trim_end_matches(['-', '_']);
    let end = start + s.len();
    let body = TOKEN_PREFIXES
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .or_else(|| s.get(4..))
        .unwrap_or(s);
    mixes_classes(body).then_some((start, end))
}

/// `Bearer <token>`: only the token is replaced, the scheme word stays.
fn bearer_token(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    if prev_char(text, start).is_some_and(is_glue) {
        return None;
    }
    let after_word = start + "bearer".len();
    let token_start = after_word + (end - after_word)
        - text[after_word..end].trim_start_matches([' ', '\t']).len();
    let token = text[token_start..end].trim_end_matches('.');
    let (l, u, d, _) = classes(token);
    // `Bearer token`, `bearer authentication` and `Bearer YOUR_API_KEY`
    // are prose; real tokens are long and mix letters with digits.
    let n = token.len();
    ((n >= 16 && (l || u) && d) || (n >= 32 && mixes_classes(token)))
        .then_some((token_start, token_start + n))
}

/// Values that describe a secret rather than being one: types, nulls,
/// booleans, scheme names. Compared case-insensitively.
const NON_SECRET_VALUES: [&str; 35] = [
    "true",
    "false",
    "null",
    "nil",
    "none",
    "nullptr",
    "undefined",
    "yes",
    "no",
    "on",
    "off",
    "n/a",
    "required",
    "optional",
    "hidden",
    "redacted",
    "masked",
    "removed",
    "secret",
    "password",
    "token",
    "string",
    "str",
    "bool",
    "boolean",
    "int",
    "integer",
    "number",
    "float",
    "double",
    "object",
    "any",
    "bytes",
    "bearer",
    "basic",
];

/// Keys are found from their separator backwards rather than by a regex
/// over the keywords: `:` and `=` are rare and found with memchr, while a
/// case-insensitive keyword regex has to consider nearly every letter.
fn scan_key_values(text: &str, out: &mut Vec<Span>) {
    for p in SEPARATOR_RE.find_iter(text).map(|m| m.start()) {
        let Some((key_start, key_end)) = keyword_before(text.as_bytes(), p) else {
            continue;
        };
        if let Some((start, end)) =
            parse_kv(text, key_end).and_then(|kv| kv_value(text, key_start, key_end, &kv))
        {
            push(out, Detector::Secret, start, end);
        }
    }
}

/// What follows a key, parsed by hand (no regex captures, so nothing is
/// allocated for rejected candidates).
struct KvMatch {
    key_quoted: bool,
    sep: u8,
    /// The value, without its quotes.
    start: usize,
    end: usize,
    quoted: bool,
}

/// After the key: an optional closing quote, markdown emphasis
/// (`**Password:**`, chat models format credentials that way), the
/// separator, an optional scheme word (`token: Bearer x`), then a double-,
/// single- or backtick-quoted value or a bare one. Values never span lines,
/// and bare ones exclude `[`, so placeholders never match.
fn parse_kv(text: &str, key_end: usize) -> Option<KvMatch> {
    let b = text.as_bytes();
    let skip = |mut i: usize, set: &[u8]| {
        while b.get(i).is_some_and(|c| set.contains(c)) {
            i += 1;
        }
        i
    };
    let key_quoted = matches!(b.get(key_end), Some(b'"' | b'\''));
    let mut i = skip(skip(key_end + usize::from(key_quoted), b"*"), b" \t");
    let sep = *b.get(i).filter(|c| matches!(c, b':' | b'='))?;
    i = skip(skip(i + 1, b"*"), b" \t");
    for word in ["bearer", "token"] {
        let after = i + word.len();
        if b.get(i..after)
            .is_some_and(|w| w.eq_ignore_ascii_case(word.as_bytes()))
            && matches!(b.get(after), Some(b' ' | b'\t'))
        {
            i = skip(after, b" \t");
            break;
        }
    }
    let limit = (i + KV_WINDOW).min(b.len());
    match *b.get(i)? {
        quote @ (b'"' | b'\'' | b'`') => {
            let start = i + 1;
            let len = b[start..limit]
                .iter()
                .position(|c| matches!(c, b'\n' | b'\r') || *c == quote)?;
            (b[start + len] == quote).then_some(KvMatch {
                key_quoted,
                sep,
                start,
                end: start + len,
                quoted: true,
            })
        }
        _ => {
            let len = text[i..]
                .char_indices()
                .take_while(|(k, c)| i + k < limit && is_bare_value_char(*c))
                .last()
                .map_or(0, |(k, c)| k + c.len_utf8());
            (len > 0).then_some(KvMatch {
                key_quoted,
                sep,
                start: i,
                end: i + len,
                quoted: false,
            })
        }
    }
}

/// Printable ASCII and Latin letters, minus quotes and the punctuation that
/// delimits values in code, JSON and query strings.
fn is_bare_value_char(c: char) -> bool {
    (c.is_ascii_graphic() && !"\"'`,;<>(){}[]".contains(c)) || ('\u{C0}'..='\u{24F}').contains(&c)
}

/// The keyword ending just before separator `p`, skipping what `parse_kv`
/// allows between the two (one closing quote, `*`, spaces).
fn keyword_before(b: &[u8], p: usize) -> Option<(usize, usize)> {
    let mut j = p;
    while j > 0 && matches!(b[j - 1], b' ' | b'\t') {
        j -= 1;
    }
    while j > 0 && b[j - 1] == b'*' {
        j -= 1;
    }
    if j > 0 && matches!(b[j - 1], b'"' | b'\'') {
        j -= 1;
    }
    // Every keyword ends in one of these letters; most separators in prose
    // (`Note:`, `a = 1`) are rejected here without comparing strings.
    let last = b.get(j.checked_sub(1)?)?.to_ascii_lowercase();
    if !matches!(last, b'd' | b's' | b't' | b'n' | b'y') {
        return None;
    }
    KV_KEYWORDS.iter().find_map(|kw| {
        let start = j.checked_sub(kw.len())?;
        b[start..j]
            .eq_ignore_ascii_case(kw.as_bytes())
            .then_some((start, j))
    })
}

/// Decides whether the parsed value is a credential; returns its span.
fn kv_value(text: &str, key_start: usize, key_end: usize, kv: &KvMatch) -> Option<(usize, usize)> {
    let key = &text[key_start..key_end];

    // The key must be a whole identifier segment: `DB_PASSWORD`, `x-api-key`,
    // `accessToken`, `--password` yes; `bypass`, `mytoken` no. The walk back
    // is bounded so a huge token before a key cannot make this quadratic.
    let id_start = {
        let lo = key_start.saturating_sub(128);
        let b = &text.as_bytes()[lo..key_start];
        match b
            .iter()
            .rposition(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')))
        {
            Some(i) => lo + i + 1,
            None if lo == 0 => 0,
            None => return None,
        }
    };
    let prefix = &text[id_start..key_start];
    if let Some(last) = prefix.chars().next_back() {
        let camel = (last.is_ascii_lowercase() || last.is_ascii_digit())
            && key.starts_with(|c: char| c.is_ascii_uppercase());
        if !(matches!(last, '_' | '-' | '.') || camel) {
            return None;
        }
    }
    if prev_char(text, id_start).is_some_and(is_glue) {
        return None;
    }

    // Bare `token` and `pass` also mean an LLM token (`"token": "Hello"` in
    // logprobs) and a test verdict (`pass: partial`); there the value itself
    // must look like a credential: no spaces, six or more characters, and a
    // digit, a symbol or mixed case.
    let ambiguous = prefix.is_empty()
        && (key.eq_ignore_ascii_case("token") || key.eq_ignore_ascii_case("pass"));
    let credential_like = |v: &str| {
        let (_, _, d, o) = classes(v);
        v.len() >= 6 && !v.contains(char::is_whitespace) && (d || o || mixes_classes(v))
    };

    if kv.quoted {
        // Quoted: the author delimited the value, so trust its extent.
        let value = &text[kv.start..kv.end];
        let ok = value_is_plausible(value) && (!ambiguous || credential_like(value));
        return ok.then_some((kv.start, kv.end));
    }

    let mut value = &text[kv.start..kv.end];
    if kv.sep == b'=' {
        // Query strings: `?token=abc&state=x`. After `:` an `&` is part of
        // the password (`Password: Tr0ub4dor&3`).
        value = value.split('&').next().unwrap_or(value);
    }
    let value = value.trim_end_matches(['.', '!', '?', ':', '*']);
    let (start, end) = (kv.start, kv.start + value.len());
    if !value_is_plausible(value) || (ambiguous && !credential_like(value)) {
        return None;
    }
    // Code, not data: `get_token()`, `Option<String>`, `env["TOKEN"]`,
    // `self.config.password`, `a == b`, Go's `:=`.
    if matches!(next_char(text, kv.end), Some('(' | '<' | '['))
        || value.starts_with(['=', ':'])
        || is_dotted_path(value)
    {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) && value.len() < 4 {
        return None;
    }
    if kv.sep == b'=' {
        // `token = response` is an assignment in code; `.env` lines and
        // query strings (`TOKEN=abc`, `?token=abc`) have no spaces.
        let spaced = text[key_end..start].contains([' ', '\t']);
        if spaced && is_identifier(value) && !value.bytes().any(|b| b.is_ascii_digit()) {
            return None;
        }
        return Some((start, end));
    }

    // `key: value` is also how prose and type annotations look
    // (`the secret: always test`, `password: string`). Accept a value that
    // looks like a credential, or a plain one only in config shape: the key
    // quoted, compound, technical or first on its line, and the value the
    // last thing on its line or item.
    let (l, u, d, o) = classes(value);
    let inner_upper = u && value.chars().skip(1).any(|c| c.is_uppercase()) && l;
    if d || o || inner_upper {
        return Some((start, end));
    }
    let technical = !["password", "pass", "secret", "token"]
        .iter()
        .any(|k| key.eq_ignore_ascii_case(k));
    let config_key =
        kv.key_quoted || !prefix.is_empty() || technical || at_line_start(text, id_start);
    let rest = text[end..].trim_start_matches([' ', '\t']);
    let clean_end = rest.is_empty() || rest.starts_with(['\n', '\r', ',', '}', ';', ']']);
    (config_key && clean_end).then_some((start, end))
}

fn value_is_plausible(v: &str) -> bool {
    let mut chars = v.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if v.chars().count() < 3 || chars.all(|c| c == first) {
        // Too short to be a real secret, or a mask like `****` / `xxxx`.
        return false;
    }
    let starts_with_ci = |p: &str| {
        v.as_bytes()
            .get(..p.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(p.as_bytes()))
    };
    !(NON_SECRET_VALUES.iter().any(|w| v.eq_ignore_ascii_case(w))
        // Template and environment references point at a secret; they are
        // not one: `${DB_PASSWORD}`, `%s`, `<token>`, `{{ secret }}`,
        // `process.env.TOKEN`, and `YOUR_API_KEY`-style placeholders.
        || v.starts_with(['$', '%', '<', '{', '[', '&', '*'])
        || starts_with_ci("your")
        || starts_with_ci("process.env")
        // Paths: `pwd: /home/bob`, `PWD=/srv/app` are the working directory.
        || v.starts_with(['/', '~'])
        || v.starts_with("./")
        || v.starts_with("../"))
}

fn is_identifier(v: &str) -> bool {
    v.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_dotted_path(v: &str) -> bool {
    v.contains('.')
        && v.split('.')
            .all(|seg| !seg.is_empty() && is_identifier(seg))
}

/// Only indentation, list markers, comment or quote characters between the
/// line start and the key.
fn at_line_start(text: &str, id_start: usize) -> bool {
    text[..id_start]
        .chars()
        .rev()
        .take_while(|c| *c != '\n')
        .all(|c| matches!(c, ' ' | '\t' | '-' | '*' | '#' | '>' | '"' | '\''))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Rules {
        Rules::new(&Detector::ALL, vec![])
    }

    fn only(d: Detector) -> Rules {
        Rules::new(&[d], vec![])
    }

    /// Redacts and asserts idempotence: a second pass must find nothing.
    fn run(rules: &Rules, input: &str) -> String {
        let out = match rules.redact(input) {
            Some(r) => r.text,
            None => input.to_string(),
        };
        assert_eq!(
            rules.redact(&out),
            None,
            "not idempotent: {input:?} -> {out:?}"
        );
        // Every test input also goes through the full rule set.
        let full = all();
        if let Some(r) = full.redact(input) {
            assert_eq!(
                full.redact(&r.text),
                None,
                "all rules not idempotent: {input:?} -> {:?}",
                r.text
            );
        }
        out
    }

    fn assert_redacts(rules: &Rules, input: &str, expected: &str) {
        assert_eq!(run(rules, input), expected, "input: {input:?}");
    }

    fn assert_kept(rules: &Rules, input: &str) {
        let out = run(rules, input);
        assert_eq!(out, input, "should be kept: {input:?}");
    }

    fn custom(label: &str, re: &str) -> CustomPattern {
        CustomPattern {
            label: label.to_string(),
            regex: Regex::new(re).unwrap(),
        }
    }

    // --- API basics ---------------------------------------------------------

    #[test]
    fn names_and_placeholders() {
        for d in Detector::ALL {
            assert_eq!(d.placeholder(), format!("[{}]", d.name()));
        }
        assert_eq!(Detector::ALL.len(), 6);
    }

    #[test]
    fn empty_rules_are_a_no_op() {
        let r = Rules::new(&[], vec![]);
        assert!(r.is_empty());
        assert_eq!(
            r.redact("bob@example.com sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t"),
            None
        );
        assert!(Rules::default().is_empty());
        assert_eq!(Rules::default().redact("password=hunter2"), None);
        assert!(!only(Detector::Email).is_empty());
        assert!(!Rules::new(&[], vec![custom("x", "x")]).is_empty());
    }

    #[test]
    fn no_match_returns_none() {
        assert_eq!(all().redact("just a normal sentence about lunch."), None);
        assert_eq!(all().redact(""), None);
    }

    #[test]
    fn custom_label_lookup() {
        let r = Rules::new(
            &[],
            vec![custom("ticket", "TCK-[0-9]+"), custom("host", "db[0-9]")],
        );
        assert_eq!(r.custom_label(0), Some("ticket"));
        assert_eq!(r.custom_label(1), Some("host"));
        assert_eq!(r.custom_label(2), None);
    }

    #[test]
    fn duplicate_detectors_are_harmless() {
        let r = Rules::new(&[Detector::Email, Detector::Email], vec![]);
        let out = r.redact("a bob@example.com").unwrap();
        assert_eq!(out.counts, vec![(RuleId::Builtin(Detector::Email), 1)]);
    }

    #[test]
    fn digit_runs_match_a_bytewise_scan() {
        let text = "a1 22 333x4444 é5 ६ 0123456789abcdef9 ٣ /:09";
        let expected: Vec<(usize, usize)> = {
            let b = text.as_bytes();
            let mut v = Vec::new();
            let mut i = 0;
            while i < b.len() {
                if b[i].is_ascii_digit() {
                    let s = i;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    v.push((s, i));
                } else {
                    i += 1;
                }
            }
            v
        };
        assert_eq!(digit_runs(text).collect::<Vec<_>>(), expected);
        for byte in 0..=255u8 {
            let mask = digit_mask(u64::from(byte) << 16);
            assert_eq!(mask != 0, byte.is_ascii_digit(), "byte {byte:#x}");
        }
    }

    // --- email --------------------------------------------------------------

    #[test]
    fn emails_are_redacted() {
        let r = only(Detector::Email);
        assert_redacts(&r, "mail me at bob@example.com.", "mail me at [email].");
        assert_redacts(
            &r,
            "Bob.Smith+tag@mail.example.co.uk wrote",
            "[email] wrote",
        );
        assert_redacts(&r, "<alice_99@sub.domain.io>", "<[email]>");
        assert_redacts(&r, "(carol-x@example.org)", "([email])");
        assert_redacts(&r, "josé.garcía@correo.es, hola", "[email], hola");
        assert_redacts(&r, "a@b.co and c@d.io", "[email] and [email]");
        assert_redacts(
            &r,
            "mailto:dave@example.com?subject=hi",
            "mailto:[email]?subject=hi",
        );
        assert_redacts(
            &r,
            "email: bob@example.com: reply soon",
            "email: [email]: reply soon",
        );
    }

    #[test]
    fn email_look_alikes_are_kept() {
        let r = only(Detector::Email);
        for s in [
            "thanks @mention for the review",
            "ssh user@localhost",
            "a@b",
            "name@domain without dot",
            "icon@2x.png",
            "logo@3x.jpg and banner@2X.webp",
            "npm i lodash@4.17.21",
            "pin @types/node@latest",
            "docker pull nginx@sha256:abcdef",
            "@app.route('/')",
            "bob@example.com2",
        ] {
            assert_kept(&r, s);
        }
    }

    #[test]
    fn git_remotes_and_url_userinfo_are_not_emails() {
        let r = only(Detector::Email);
        assert_kept(&r, "git clone git@github.com:org/repo.git");
        assert_kept(&r, "git clone ssh://git@github.com/org/repo.git");
        assert_kept(&r, "scp file deploy@host.example.com:/srv/");
        assert_kept(&r, "open https://bob@example.com/path");
        // The password in userinfo is the secret rule's job, not an address.
        assert_kept(&r, "postgres://bob:hunter2@db.example.com/app");
        assert_redacts(
            &all(),
            "postgres://bob:hunter2@db.example.com/app",
            "postgres://bob:[secret]@db.example.com/app",
        );
    }

    // --- phone --------------------------------------------------------------

    #[test]
    fn phones_are_redacted() {
        let r = only(Detector::Phone);
        for (input, expected) in [
            ("call +1 555 123 4567 now", "call [phone] now"),
            ("+44 20 7946 0958", "[phone]"),
            ("Büro: +49 (0)30 1234567.", "Büro: [phone]."),
            ("+4915112345678", "[phone]"),
            ("+1-555-123-4567", "[phone]"),
            ("(555) 123-4567", "[phone]"),
            ("555-123-4567", "[phone]"),
            ("555.123.4567", "[phone]"),
            ("1-800-555-1234", "[phone]"),
            ("Tel. 030 1234567", "Tel. [phone]"),
            ("030/1234567", "[phone]"),
            ("06 12 34 56 78", "[phone]"),
            ("UK: 020 7946 0958!", "UK: [phone]!"),
            ("tel:+1-555-123-4567", "tel:[phone]"),
            ("1 (555) 123-4567", "[phone]"),
        ] {
            assert_redacts(&r, input, expected);
        }
    }

    #[test]
    fn phone_look_alikes_are_kept() {
        let r = only(Detector::Phone);
        for s in [
            "on 2024-01-15 we shipped",
            "at 12:30:45 exactly",
            "back in 1999",
            "version 1.2.3 and v10.20.30",
            "host 192.168.1.1",
            "card 4111 1111 1111 1111",
            "2024-01-15T10:30:00+01:00",
            "order 1234567890",
            "epoch 1705312800",
            "raised $1,234,567 in 2023",
            "dated 01/02/2024 and 05-12-2024",
            "offset +05:30",
            "555-123.4567",
            "+5 points",
            "growth of +10000000",
            "id 9555-123-4567",
            "uuid 550e8400-e29b-41d4-a716-446655440000",
            "sha e83c5163316f89bfbde7d9ab23ca2e25604af290",
            "1.555.123.45678",
            // Groups inside an IBAN-like number (here failing mod-97) are
            // not a trunk-prefixed national number.
            "DE89 3704 0044 0532 0130 01",
        ] {
            assert_kept(&r, s);
        }
    }

    // --- card ---------------------------------------------------------------

    #[test]
    fn luhn_valid_cards_are_redacted() {
        let r = only(Detector::Card);
        for (input, expected) in [
            (
                "card 4111 1111 1111 1111 exp 12/29",
                "card [card] exp 12/29",
            ),
            ("5500-0000-0000-0004", "[card]"),
            ("amex 378282246310005.", "amex [card]."),
            ("4111111111111111", "[card]"),
            ("3782 822463 10005", "[card]"),
            ("6011 1111 1111 1117", "[card]"),
            ("5555555555554444", "[card]"),
            ("4111 1111 1111 1111 2024", "[card] 2024"),
        ] {
            assert_redacts(&r, input, expected);
        }
    }

    #[test]
    fn card_numbers_failing_luhn_are_kept() {
        let r = only(Detector::Card);
        assert_kept(&r, "4111 1111 1111 1112");
        assert_kept(&r, "5500-0000-0000-0005");
        assert_kept(&r, "378282246310006");
    }

    #[test]
    fn card_look_alikes_are_kept() {
        let r = only(Detector::Card);
        for s in [
            "uuid 550e8400-e29b-41d4-a716-446655440000",
            "uuid 12345678-1234-1234-1234-123456789012",
            // Luhn-valid, but no issuer starts with 1 / 8.
            "order 1234567890123452",
            "tracking 8000000000000003",
            "+1 555 123 4567",
            "+49 151 1234 5678",
            "id 4111-1111 1111-1111",
            "x4111111111111111",
            "41111111111111111111111",
            "sha e83c5163316f89bfbde7d9ab23ca2e25604af290",
        ] {
            assert_kept(&r, s);
        }
        assert!(luhn(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 2]));
        assert!(luhn(&[8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]));
    }

    // --- iban ---------------------------------------------------------------

    #[test]
    fn valid_ibans_are_redacted() {
        let r = only(Detector::Iban);
        for (input, expected) in [
            ("IBAN: DE89 3704 0044 0532 0130 00.", "IBAN: [iban]."),
            ("GB82 WEST 1234 5698 7654 32", "[iban]"),
            ("DE89370400440532013000", "[iban]"),
            ("FR14 2004 1010 0505 0001 3M02 606 merci", "[iban] merci"),
            ("NL91 ABNA 0417 1643 00", "[iban]"),
            ("BE68 5390 0754 7034 TEST", "[iban] TEST"),
            ("AB12 DE89 3704 0044 0532 0130 00", "AB12 [iban]"),
        ] {
            assert_redacts(&r, input, expected);
        }
    }

    #[test]
    fn ibans_failing_mod97_or_length_are_kept() {
        let r = only(Detector::Iban);
        for s in [
            "DE89 3704 0044 0532 0130 01",
            "DE89 3704 0044 0532 0130",
            "DE89 3704 0044 0532 0130 0012",
            "GB82 WEST 1234 5698 7654 33",
            "de89 3704 0044 0532 0130 00",
            "XX89 3704 0044 0532 0130 00",
            "DE8 93704 0044 0532 0130 00",
            "XDE89370400440532013000",
            "ticket AB12CDEFGH3456789",
        ] {
            assert_kept(&r, s);
        }
    }

    // --- ip -----------------------------------------------------------------

    #[test]
    fn ips_are_redacted() {
        let r = only(Detector::Ip);
        for (input, expected) in [
            ("ping 192.168.1.1", "ping [ip]"),
            ("10.0.0.1:8080", "[ip]:8080"),
            ("from 8.8.8.8.", "from [ip]."),
            ("range 10.0.0.1-10.0.0.9", "range [ip]-[ip]"),
            ("net 10.0.0.0/8", "net [ip]/8"),
            ("2001:db8::1", "[ip]"),
            ("fe80::1%eth0", "[ip]%eth0"),
            ("[2001:db8:85a3::8a2e:370:7334]:443", "[[ip]]:443"),
            ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "[ip]"),
            ("mapped ::ffff:192.0.2.128 here", "mapped [ip] here"),
            ("reach fe80::1: it answers", "reach [ip]: it answers"),
        ] {
            assert_redacts(&r, input, expected);
        }
    }

    #[test]
    fn ip_look_alikes_are_kept() {
        let r = only(Detector::Ip);
        for s in [
            "1.2.3.4.5",
            "release v1.2.3",
            "tag v1.2.3.4",
            "256.1.1.1",
            "01.02.03.04",
            "192.168.001.001",
            "at 12:30:45",
            "mac 00:1A:2B:3C:4D:5E",
            "use std::io::Result;",
            "dead::beef",
            "u8::MAX and i64::MIN",
            "Chrome/120.0.6099.109",
            "ratio 1:2:3",
            // Generic addresses identify nobody.
            "bind 0.0.0.0 or 127.0.0.1",
            "::1 and ::",
            "fe80:: and 4567::",
            "mask 255.255.255.0",
            // Python slices parse as IPv6 but have no full group.
            "a[1::2] x[::2] y[::-1] z[2::] w[10::20]",
            "version 2.0.0.1 released",
            "build: 10.0.19041.1",
        ] {
            assert_kept(&r, s);
        }
    }

    // --- secrets ------------------------------------------------------------

    const OPENAI_PROJ: &str = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z_Q7-Zc0";
    const OPENAI_LEGACY: &str = "sk-4fGh7Jk2Lm9Np3Qr6St8Vw1Xy5Za0BcT3BlbkFJ2dE4fG6hJ8kL";
    const ANTHROPIC: &str =
        "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe-AbCdEfGhIjKlMnOpQrSt_uvwxyzAA";
    const GITHUB: &str = "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8";
    const HF: &str = "hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh";
    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

    #[test]
    fn provider_keys_are_redacted() {
        let r = only(Detector::Secret);
        let google = format!("AIza{}", "SyD-1234567890abcdefghijklmnopqrstu");
        assert_eq!(google.len(), 39);
        let keys = [
            OPENAI_PROJ.to_string(),
            OPENAI_LEGACY.to_string(),
            ANTHROPIC.to_string(),
            "AKIAIOSFODNN7EXAMPLE".to_string(),
            "ASIA2B3C4D5E6F7G8H9J".to_string(),
            GITHUB.to_string(),
            "gho_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8".to_string(),
            "ghs_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8".to_string(),
            "github_pat_11ABCDEFG0123456789abc_DefGhiJklMnoPqrStuVwxYz0123456789AbCdEfGhIjKlMnOpQrStUv".to_string(),
            "glpat-xY9zAb8CdE7fGh6IjK5L".to_string(),
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx".to_string(),
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc".to_string(),
            "rk_live_51H8abcDEFghiJKLmnoPQRstu".to_string(),
            "sk_test_4eC39HqLyjWDarjtT1zdp7dc".to_string(),
            google,
            HF.to_string(),
            JWT.to_string(),
        ];
        for key in keys {
            assert_redacts(&r, &format!("use {key} here"), "use [secret] here");
            assert_redacts(&r, &format!("\"{key}\","), "\"[secret]\",");
        }
    }

    #[test]
    fn bearer_tokens_keep_the_scheme_word() {
        let r = only(Detector::Secret);
        assert_redacts(
            &r,
            "Authorization: Bearer abc123def456ghi789jkl",
            "Authorization: Bearer [secret]",
        );
        assert_redacts(
            &r,
            &format!("-H 'authorization: bearer {JWT}'"),
            "-H 'authorization: bearer [secret]'",
        );
        assert_redacts(
            &r,
            "BEARER dGhpcyBpcyBhIHRva2VuMTIz== ok",
            "BEARER [secret] ok",
        );
        assert_redacts(&r, "Bearer abc123def456ghi789jkl.", "Bearer [secret].");
    }

    #[test]
    fn pem_private_key_blocks_are_redacted_whole() {
        let r = only(Detector::Secret);
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234567890abcdefghij\nklmnopqrstuvwxyzABCDEFGH==\n-----END RSA PRIVATE KEY-----";
        assert_redacts(
            &r,
            &format!("key:\n{pem}\nthanks"),
            "key:\n[secret]\nthanks",
        );
        let openssh = "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAA -----END OPENSSH PRIVATE KEY-----";
        assert_redacts(&r, openssh, "[secret]");
        let plain = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----";
        assert_redacts(&r, plain, "[secret]");
        let truncated = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpY\nRGTANBgkqhkiG9w0BAQEFAASC\n\nis it valid?";
        assert_redacts(&r, truncated, "[secret]\n\nis it valid?");
        let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\r\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkq\r\n-----END ENCRYPTED PRIVATE KEY-----";
        assert_redacts(&r, &format!("x {encrypted} y"), "x [secret] y");
        // Public material is not a secret.
        assert_kept(&r, "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----");
        assert_kept(&r, "-----BEGIN CERTIFICATE-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END CERTIFICATE-----");
    }

    #[test]
    fn key_value_secrets_redact_only_the_value() {
        let r = only(Detector::Secret);
        for (input, expected) in [
            ("password=hunter2", "password=[secret]"),
            (r#""api_key": "abc123""#, r#""api_key": "[secret]""#),
            ("DB_PASSWORD=supersecret", "DB_PASSWORD=[secret]"),
            ("login with pwd=hunter2.", "login with pwd=[secret]."),
            (
                "  password: supersecret\n  user: bob",
                "  password: [secret]\n  user: bob",
            ),
            ("- token: abc123def\n", "- token: [secret]\n"),
            ("client_secret: 8f3kLm2Q", "client_secret: [secret]"),
            (
                "GET /cb?token=abc123&state=x",
                "GET /cb?token=[secret]&state=x",
            ),
            ("accessToken: 'xyz789'", "accessToken: '[secret]'"),
            (
                "mysql --password=s3cret -u root",
                "mysql --password=[secret] -u root",
            ),
            ("x-api-key: Zm9vYmFyYmF6", "x-api-key: [secret]"),
            (
                "Passwort? no: PASSWORD = \"correct horse battery\"",
                "Passwort? no: PASSWORD = \"[secret]\"",
            ),
            (
                "the password: hunter2 worked",
                "the password: [secret] worked",
            ),
            (
                "He said the secret: 'swordfish'",
                "He said the secret: '[secret]'",
            ),
            (
                "{user: bob, pass: hunter2, x: 1}",
                "{user: bob, pass: [secret], x: 1}",
            ),
            ("auth_token = 'abc'", "auth_token = '[secret]'"),
            ("token: Bearer abc123def", "token: Bearer [secret]"),
            ("password = hunter2", "password = [secret]"),
            ("private_key=MIIEvQIBADAN", "private_key=[secret]"),
            ("**Password:** hunter2", "**Password:** [secret]"),
            ("Password: `hunter2`", "Password: `[secret]`"),
            ("Password: Tr0ub4dor&3", "Password: [secret]"),
            (
                "postgres://bob:hunter2@db.example.com/app",
                "postgres://bob:[secret]@db.example.com/app",
            ),
            (
                "redis://default:s3cr3tPw@cache:6379/0",
                "redis://default:[secret]@cache:6379/0",
            ),
        ] {
            assert_redacts(&r, input, expected);
        }
    }

    #[test]
    fn token_shapes_trim_glued_separators() {
        let r = only(Detector::Secret);
        assert_redacts(
            &r,
            &format!("key {OPENAI_PROJ}-- end"),
            "key [secret]-- end",
        );
        // An unsigned JWT keeps the full stop after it.
        assert_redacts(
            &r,
            "jwt eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjMifQ.",
            "jwt [secret].",
        );
    }

    #[test]
    fn env_key_holding_provider_key_counts_once() {
        let r = only(Detector::Secret);
        let out = r
            .redact(&format!("export OPENAI_API_KEY={OPENAI_PROJ}\n"))
            .unwrap();
        assert_eq!(out.text, "export OPENAI_API_KEY=[secret]\n");
        assert_eq!(out.counts, vec![(RuleId::Builtin(Detector::Secret), 1)]);
    }

    #[test]
    fn secret_look_alikes_are_kept() {
        let r = only(Detector::Secret);
        for s in [
            "we use sk-learn for that",
            "pip install scikit-learn (sk-learn)",
            "sk-this-is-a-long-kebab-case-project-name",
            "sk-abcdefghijklmnopqrstuvwxyz",
            "the token: it expired",
            "Here's the secret: always test first.",
            "password=",
            "password=\"\"",
            "pass: true",
            "password: string,",
            "pub token: Option<String>,",
            "let token = get_token();",
            "token = response.token",
            "token = response",
            "password = ${DB_PASSWORD}",
            "PASSWORD: ${{ secrets.PASSWORD }}",
            "password=<your-password>",
            "api_key=YOUR_API_KEY",
            "password: ********",
            "bypass=yes123",
            "mytoken=abc123",
            "max_tokens: 4096",
            "token_count: 17",
            "if password == other {",
            "token := os.Getenv(\"TOKEN\")",
            "pass: 3",
            // An LLM token and tokenizer specials, not credentials.
            r#"{"token": "Hello", "logprob": -0.31}"#,
            r#"{"token": " world", "bytes": [32, 119]}"#,
            r#""eos_token": "</s>", "pad_token": "[PAD]""#,
            "pass: partial",
            // Working directories.
            "pwd: /home/bob",
            "PWD=/srv/app",
            "https://user:${PASS}@host.example.com",
            "use a Bearer token in the header",
            "bearer authentication scheme",
            "Bearer YOUR_API_KEY",
            "ghp_short",
            "AKIAIOSFODNN7EXAMPL",
            "AKIAIOSFODNN7EXAMPLEX",
            "commit e83c5163316f89bfbde7d9ab23ca2e25604af290",
            "id 550e8400-e29b-41d4-a716-446655440000",
            "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+AIzaSyD1234567890abcdefghijklmnopqrstuAAAAAElFTkSuQmCC",
            "base64 blob iVBORw0KGgo/sk-4fGh7Jk2Lm9Np3Qr6St8Vw1Xy5Za0Bc",
        ] {
            assert_kept(&r, s);
        }
    }

    // --- overlaps, precedence, counts ---------------------------------------

    #[test]
    fn secrets_win_identical_spans() {
        let out = all().redact("password=4111111111111111").unwrap();
        assert_eq!(out.text, "password=[secret]");
        assert_eq!(out.counts, vec![(RuleId::Builtin(Detector::Secret), 1)]);
        let out = all().redact("api_key=bob@example.com").unwrap();
        assert_eq!(out.text, "api_key=[secret]");
        assert_eq!(out.counts, vec![(RuleId::Builtin(Detector::Secret), 1)]);
        assert_eq!(run(&all(), &format!("Bearer {JWT}")), "Bearer [secret]");
    }

    #[test]
    fn earlier_start_then_longer_span_wins() {
        // Custom `example` starts later inside the email: the email wins.
        let r = Rules::new(&[Detector::Email], vec![custom("word", "example")]);
        assert_eq!(r.redact("bob@example.com").unwrap().text, "[email]");
        // Custom `me bob` starts earlier and overlaps: it wins, the email goes.
        let r = Rules::new(&[Detector::Email], vec![custom("greet", "me bob")]);
        let out = r.redact("mail me bob@example.com").unwrap();
        assert_eq!(out.text, "mail [greet]@example.com");
        assert_eq!(out.counts, vec![(RuleId::Custom(0), 1)]);
        // Same start: the longer custom span wins over a shorter one.
        let r = Rules::new(&[], vec![custom("short", "abc"), custom("long", "abcdef")]);
        assert_eq!(r.redact("xx abcdef yy").unwrap().text, "xx [long] yy");
    }

    #[test]
    fn custom_rules_win_identical_spans() {
        let r = Rules::new(
            &Detector::ALL,
            vec![custom("ticket", r"[0-9]{3}-[0-9]{3}-[0-9]{4}")],
        );
        let out = r.redact("see 555-123-4567").unwrap();
        assert_eq!(out.text, "see [ticket]");
        assert_eq!(out.counts, vec![(RuleId::Custom(0), 1)]);
        // Among customs at an identical span, the first listed wins.
        let r = Rules::new(&[], vec![custom("a", "foo"), custom("b", "foo")]);
        assert_eq!(r.redact("foo").unwrap().text, "[a]");
    }

    #[test]
    fn counts_are_per_rule_and_sorted() {
        let r = Rules::new(
            &Detector::ALL,
            vec![custom("proj", r"PRJ-[0-9]+"), custom("unused", "zzz-never")],
        );
        let text = format!(
            "PRJ-7: ping a@x.io and b@y.io, call 555-123-4567, key {GITHUB}, host 10.1.2.3, PRJ-8"
        );
        let out = r.redact(&text).unwrap();
        assert_eq!(
            out.text,
            "[proj]: ping [email] and [email], call [phone], key [secret], host [ip], [proj]"
        );
        assert_eq!(
            out.counts,
            vec![
                (RuleId::Builtin(Detector::Email), 2),
                (RuleId::Builtin(Detector::Phone), 1),
                (RuleId::Builtin(Detector::Ip), 1),
                (RuleId::Builtin(Detector::Secret), 1),
                (RuleId::Custom(0), 2),
            ]
        );
        assert!(out.counts.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn custom_patterns_become_labels() {
        let r = Rules::new(
            &[],
            vec![
                custom("employee", r"EMP[0-9]{5}"),
                custom("codename", "(?i)bluebird"),
            ],
        );
        let out = r
            .redact("EMP12345 joined Project BlueBird; EMP54321 too")
            .unwrap();
        assert_eq!(
            out.text,
            "[employee] joined Project [codename]; [employee] too"
        );
        assert_eq!(
            out.counts,
            vec![(RuleId::Custom(0), 2), (RuleId::Custom(1), 1)]
        );
        assert_eq!(r.redact(&out.text), None);
    }

    #[test]
    fn empty_custom_matches_are_ignored() {
        let r = Rules::new(&[], vec![custom("x", "x*")]);
        assert_eq!(r.redact("abc"), None);
        assert_eq!(r.redact("axxb").unwrap().text, "a[x]b");
        let r = Rules::new(&[], vec![custom("nothing", "")]);
        assert_eq!(r.redact("abc"), None);
    }

    #[test]
    fn secrets_only_leaves_other_pii() {
        let r = only(Detector::Secret);
        assert_kept(
            &r,
            "bob@example.com 555-123-4567 4111 1111 1111 1111 10.0.0.1",
        );
    }

    // --- idempotence and UTF-8 ----------------------------------------------

    #[test]
    fn placeholders_never_match() {
        let text = "[email] [phone] [card] [iban] [ip] [secret] password=[secret] \"token\": \"[secret]\" Bearer [secret] [[ip]]:443 [email]. ([phone])";
        assert_eq!(all().redact(text), None);
    }

    #[test]
    fn mixed_text_is_idempotent() {
        let text = format!(
            "Hi, I'm Ana (ana.lopez@example.es, +34 612 345 678). Card 4111-1111-1111-1111, \
             IBAN ES91 2100 0418 4502 0005 1332, server 203.0.113.7 / 2001:db8::42. \
             token={OPENAI_PROJ} and password: hunter2\n{JWT}"
        );
        let out = run(&all(), &text);
        assert_eq!(
            out,
            "Hi, I'm Ana ([email], [phone]). Card [card], \
             IBAN [iban], server [ip] / [ip]. \
             token=[secret] and password: [secret]\n[secret]"
        );
    }

    #[test]
    fn utf8_text_is_handled_on_char_boundaries() {
        let r = all();
        assert_redacts(
            &r,
            "Привет 👋 пишите на bob@example.com или звоните +7 495 123-45-67 ✓",
            "Привет 👋 пишите на [email] или звоните [phone] ✓",
        );
        assert_redacts(&r, "联系我：bob@example.com谢谢", "联系我：[email]谢谢");
        assert_redacts(&r, "電話番号は555-123-4567です", "電話番号は[phone]です");
        assert_redacts(
            &r,
            "café 🎉 password=ünïcödé1 ☕",
            "café 🎉 password=[secret] ☕",
        );
        assert_redacts(&r, "naïve 10.0.0.1 → 🚀", "naïve [ip] → 🚀");
        assert_kept(
            &r,
            "日本語のテキスト、絵文字 🎌 と accents éàü — nothing here.",
        );
        // Adjacent Latin letters are glue: no match inside words.
        assert_kept(&r, "é10.0.0.1");
    }

    #[test]
    fn generated_mixtures_are_idempotent_and_never_panic() {
        // Fragments that sit on detector boundaries, glued in random orders:
        // no panic on char boundaries, and a second pass finds nothing.
        const FRAGMENTS: [&str; 40] = [
            "bob@example.com",
            "@",
            ".",
            ":",
            "-",
            " ",
            "=",
            "\"",
            "'",
            "\n",
            "é",
            "日本",
            "👋",
            "4111 1111 1111 1111",
            "555-123-4567",
            "+1 555 123 4567",
            "(555) 123-4567",
            "DE89 3704 0044 0532 0130 00",
            "10.0.0.1",
            "2001:db8::1",
            "::",
            "1.2.3",
            "password",
            "token",
            "api_key",
            "Bearer ",
            "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t",
            "AKIAIOSFODNN7EXAMPLE",
            "eyJhbGciOi.eyJzdWIiOi.sig",
            "[email]",
            "[secret]",
            "x",
            "0",
            "12",
            "2024-01-15",
            "-----BEGIN PRIVATE KEY-----",
            "://u:p4ss@h",
            "hunter2",
            "030 1234567",
            "git@github.com:o/r",
        ];
        let r = all();
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..3000 {
            let mut text = String::new();
            // At most six pieces: chains of glued matches stay within the
            // re-scan cap.
            for _ in 0..(seed % 6 + 1) {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                text.push_str(FRAGMENTS[(seed >> 33) as usize % FRAGMENTS.len()]);
            }
            if let Some(first) = r.redact(&text) {
                assert_eq!(r.redact(&first.text), None, "{text:?} -> {:?}", first.text);
            }
        }
    }

    #[test]
    fn adversarial_input_is_linear_and_safe() {
        let r = all();
        let mut s = String::new();
        for i in 0..20_000 {
            s.push_str(["@", "1", ".", ":", "-", " ", "a", "é", "sk-", "=", "\""][i % 11]);
        }
        let _ = r.redact(&s);
        let digits = "1".repeat(100_000);
        assert_eq!(r.redact(&digits), None);
        let colons = "a:".repeat(50_000);
        assert_eq!(r.redact(&colons), None);
    }
}
