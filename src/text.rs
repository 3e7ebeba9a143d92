//! Bounded text: what comes from an app, an event or AWS is clipped before it is kept in a
//! record, a message or an event. Pure.

/// `s` cut to at most `max` characters (not bytes), with `…` appended when cut.
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((end, _)) => {
            let mut t = s[..end].to_owned();
            t.push('…');
            t
        }
    }
}

/// `url` without what may carry a secret: its query and fragment (an OAuth `code=`, a
/// presigned signature) become `?…`, and a password in its user info `***`. Anything that
/// is not a URL is left as it is.
pub fn redact_url(url: &str) -> String {
    let (base, cut) = match url.find(['?', '#']) {
        Some(i) => (&url[..i], true),
        None => (url, false),
    };
    let mut out = mask_user_info(base);
    if cut {
        out.push_str("?…");
    }
    out
}

/// Words in a key that name a secret: its value is masked by [`mask_secrets`].
const SECRET_WORDS: [&str; 9] = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "credential",
    "signature",
];

/// `text` (an app's answer) with what looks like a credential masked as `***`: the value
/// of a `key=value`, `key: value` or `"key": "value"` whose key names a secret
/// (`password`, `token`, `secret`, ...), the password of a connection URL
/// (`postgres://user:***@host`), and AWS access key ids (`AKIA...`, `ASIA...`).
pub fn mask_secrets(text: &str) -> String {
    let text = mask_user_info(text);
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        // An AWS access key id: AKIA or ASIA and 16 more capitals or digits.
        if i + 20 <= chars.len()
            && (chars[i..i + 4] == ['A', 'K', 'I', 'A'] || chars[i..i + 4] == ['A', 'S', 'I', 'A'])
            && chars[i + 4..i + 20]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && (i == 0 || !chars[i - 1].is_ascii_alphanumeric())
        {
            out.push_str("***");
            i += 20;
            continue;
        }
        let c = chars[i];
        out.push(c);
        i += 1;
        if !(c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            continue;
        }
        // At the end of a word: is it a key naming a secret, followed by its value?
        if i < chars.len()
            && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '-')
        {
            continue;
        }
        let start = chars[..i]
            .iter()
            .rposition(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
            .map_or(0, |p| p + 1);
        let key: String = chars[start..i]
            .iter()
            .collect::<String>()
            .to_ascii_lowercase();
        if !SECRET_WORDS.iter().any(|w| key.contains(w)) {
            continue;
        }
        // the separator: `=`, `:`, or `": "` after a quoted key
        let mut j = i;
        if j < chars.len() && chars[j] == '"' {
            j += 1;
        }
        while j < chars.len() && chars[j] == ' ' {
            j += 1;
        }
        if j >= chars.len() || !(chars[j] == '=' || chars[j] == ':') {
            continue;
        }
        j += 1;
        while j < chars.len() && chars[j] == ' ' {
            j += 1;
        }
        let quoted = j < chars.len() && (chars[j] == '"' || chars[j] == '\'');
        if quoted {
            j += 1;
        }
        let end = (j..chars.len())
            .find(|&k| {
                let c = chars[k];
                if quoted {
                    c == '"' || c == '\''
                } else {
                    c.is_whitespace() || matches!(c, '&' | ';' | ',' | '}' | ']' | ')' | '<')
                }
            })
            .unwrap_or(chars.len());
        if end > j {
            out.extend(&chars[i..j]);
            out.push_str("***");
            i = end;
        }
    }
    out
}

/// `scheme://user:password@` becomes `scheme://user:***@`, wherever it occurs.
fn mask_user_info(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon + 1]);
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::{clip, mask_secrets, redact_url};

    #[test]
    fn a_url_keeps_no_query_and_no_password() {
        assert_eq!(
            redact_url("https://login.example.com/cb?code=abc123&state=x"),
            "https://login.example.com/cb?…"
        );
        assert_eq!(
            redact_url("https://b.s3.amazonaws.com/k?X-Amz-Signature=f00"),
            "https://b.s3.amazonaws.com/k?…"
        );
        assert_eq!(redact_url("https://u:pw@host/p"), "https://u:***@host/p");
        assert_eq!(redact_url("/health/"), "/health/");
    }

    #[test]
    fn credentials_in_an_apps_answer_are_masked() {
        let body = r#"OperationalError: connection to postgres://shop:s3cr3t@db.internal:5432/shop failed; DB_PASSWORD=hunter2 token: abc.def {"api_key": "k-123", "status": "fail"} AKIAIOSFODNN7EXAMPLE"#;
        let masked = mask_secrets(body);
        for secret in [
            "s3cr3t",
            "hunter2",
            "abc.def",
            "k-123",
            "AKIAIOSFODNN7EXAMPLE",
        ] {
            assert!(!masked.contains(secret), "{secret} in {masked}");
        }
        assert!(
            masked.contains("postgres://shop:***@db.internal:5432/shop"),
            "{masked}"
        );
        assert!(masked.contains(r#""status": "fail""#), "{masked}");
        assert!(masked.contains("DB_PASSWORD=***"), "{masked}");
        // what names no secret is kept
        assert_eq!(
            mask_secrets("migrations: 1 unapplied"),
            "migrations: 1 unapplied"
        );
        assert_eq!(mask_secrets("tokens left 5"), "tokens left 5");
    }

    #[test]
    fn clips_by_characters_and_marks_the_cut() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "abc…");
        assert_eq!(clip("ééééé", 2), "éé…");
        assert_eq!(clip("", 0), "");
        assert_eq!(clip("a", 0), "…");
    }
}
