//! What is redacted from a turn before it is kept or sent to a model: the server's
//! `[memory.redaction]` and a session's `config.redaction` are written in these terms. The
//! detectors themselves live in `crate::redaction`; this is only the vocabulary, checked.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::FieldError;

/// The built-in detectors' names, as config keys, metric labels and placeholders
/// (`[email]`) spell them.
pub const BUILTIN_DETECTORS: [&str; 6] = ["email", "phone", "card", "iban", "ip", "secret"];

/// Custom rules at most, per session and in the server's config.
pub const MAX_CUSTOM_RULES: usize = 16;
/// Longest custom pattern, in bytes.
pub const MAX_PATTERN_LEN: usize = 1_000;
/// Compiled size a custom pattern may take: big enough for any sane rule, small enough
/// that a session's config cannot make memgate build a huge automaton.
pub const MAX_COMPILED_PATTERN_BYTES: usize = 1 << 20;

/// A rule of the user's own: every match becomes `[label]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomRedaction {
    /// `[a-z][a-z0-9_]{0,31}`, not a built-in detector's name; the placeholder is `[label]`.
    #[schema(pattern = "^[a-z][a-z0-9_]{0,31}$")]
    pub label: String,
    /// A regular expression (Rust `regex` syntax: linear time, no look-around or
    /// back-references).
    #[schema(max_length = 1000)]
    pub pattern: String,
}

/// A session's redaction: each detector on, off, or as the server's `[memory.redaction]`
/// says (null). Custom rules add to the server's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SessionRedaction {
    /// E-mail addresses → `[email]`.
    pub email: Option<bool>,
    /// Phone numbers → `[phone]`.
    pub phone: Option<bool>,
    /// Payment card numbers that pass the Luhn check → `[card]`.
    pub card: Option<bool>,
    /// IBANs that pass the mod-97 check → `[iban]`.
    pub iban: Option<bool>,
    /// IPv4 and IPv6 addresses → `[ip]`.
    pub ip: Option<bool>,
    /// Provider API keys, bearer tokens, JWTs, private key blocks, `password=…` values →
    /// `[secret]`.
    pub secret: Option<bool>,
    #[schema(max_items = 16)]
    pub custom: Vec<CustomRedaction>,
}

impl SessionRedaction {
    /// The session's choice for a built-in detector, by name.
    pub fn choice(&self, detector: &str) -> Option<bool> {
        match detector {
            "email" => self.email,
            "phone" => self.phone,
            "card" => self.card,
            "iban" => self.iban,
            "ip" => self.ip,
            "secret" => self.secret,
            _ => None,
        }
    }

    pub fn validate(&self, param: &str) -> Result<(), FieldError> {
        check_custom_rules(&self.custom, &format!("{param}.custom"))
    }
}

/// Refuses a custom rule list that would not compile, or whose labels are unusable.
pub fn check_custom_rules(rules: &[CustomRedaction], param: &str) -> Result<(), FieldError> {
    if rules.len() > MAX_CUSTOM_RULES {
        return Err(FieldError::invalid(
            param,
            format!("at most {MAX_CUSTOM_RULES} rules"),
        ));
    }
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("{param}[{i}]");
        if !is_valid_label(&rule.label) {
            return Err(FieldError::invalid(
                format!("{at}.label"),
                "must match [a-z][a-z0-9_]{0,31}",
            ));
        }
        if BUILTIN_DETECTORS.contains(&rule.label.as_str()) {
            return Err(FieldError::invalid(
                format!("{at}.label"),
                format!("`{}` is a built-in detector's name", rule.label),
            ));
        }
        if rules[..i].iter().any(|r| r.label == rule.label) {
            return Err(FieldError::invalid(
                format!("{at}.label"),
                format!("`{}` is used twice", rule.label),
            ));
        }
        compile_pattern(&rule.pattern)
            .map_err(|reason| FieldError::invalid(format!("{at}.pattern"), reason))?;
    }
    Ok(())
}

/// A custom pattern, compiled under the size limits, or why it cannot be.
pub fn compile_pattern(pattern: &str) -> Result<regex::Regex, String> {
    if pattern.is_empty() {
        return Err("must not be empty".into());
    }
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(format!("longer than {MAX_PATTERN_LEN} bytes"));
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(MAX_COMPILED_PATTERN_BYTES)
        .dfa_size_limit(MAX_COMPILED_PATTERN_BYTES)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => "compiles too big; simplify it".to_string(),
            // The syntax error's own text points at the offending spot over several lines.
            other => format!(
                "not a valid regular expression: {}",
                one_line(&other.to_string())
            ),
        })
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_valid_label(label: &str) -> bool {
    let mut bytes = label.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && label.len() <= 32
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(label: &str, pattern: &str) -> CustomRedaction {
        CustomRedaction {
            label: label.into(),
            pattern: pattern.into(),
        }
    }

    #[test]
    fn custom_rules_are_checked_with_their_path() {
        assert!(
            check_custom_rules(&[rule("ticket", r"TCK-\d{6}")], "config.redaction.custom").is_ok()
        );
        let cases = [
            (rule("Ticket", "x"), "config.redaction.custom[0].label"),
            (rule("email", "x"), "config.redaction.custom[0].label"),
            (rule("ticket", "("), "config.redaction.custom[0].pattern"),
            (rule("ticket", ""), "config.redaction.custom[0].pattern"),
            (
                rule("ticket", &"a".repeat(1001)),
                "config.redaction.custom[0].pattern",
            ),
            (
                rule("ticket", r"\w{1000}\w{1000}"),
                "config.redaction.custom[0].pattern",
            ),
        ];
        for (bad, param) in cases {
            let e = check_custom_rules(std::slice::from_ref(&bad), "config.redaction.custom")
                .unwrap_err();
            assert_eq!(e.param, param, "{bad:?}: {}", e.message);
            assert!(!e.message.contains('\n'), "{}", e.message);
        }
        let twice = [rule("ticket", "a"), rule("ticket", "b")];
        let e = check_custom_rules(&twice, "c").unwrap_err();
        assert_eq!(e.param, "c[1].label");
        let many: Vec<_> = (0..17).map(|i| rule(&format!("r{i}"), "a")).collect();
        assert_eq!(check_custom_rules(&many, "c").unwrap_err().param, "c");
    }
}
