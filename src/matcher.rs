//! The HTTP success-code matcher, in the syntax of an ELB target group's `Matcher.HttpCode`:
//! a code (`200`), a list (`200,204`), a range (`200-299`), or a list of both
//! (`200-204,301`). Codes are 200-499, as for an Application Load Balancer
//! (<https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html>).
//! Pure: no I/O.

use std::fmt;
use std::str::FromStr;

/// A set of HTTP status codes that count as a passing probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    ranges: Vec<(u16, u16)>,
    text: String,
}

/// Why a matcher string is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "matcher {text:?} is invalid: {why} (expected ELB syntax such as 200, 200,204 or 200-299, with codes 200-499)"
)]
pub struct MatcherError {
    text: String,
    why: String,
}

impl Matcher {
    /// True when `status` is one of the matcher's codes.
    pub fn matches(&self, status: u16) -> bool {
        self.ranges
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&status))
    }
}

impl Default for Matcher {
    /// `200`, the ELB default.
    fn default() -> Self {
        Self {
            ranges: vec![(200, 200)],
            text: "200".into(),
        }
    }
}

impl FromStr for Matcher {
    type Err = MatcherError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |why: String| MatcherError {
            text: text.to_owned(),
            why,
        };
        let code = |s: &str| -> Result<u16, MatcherError> {
            let c: u16 = s
                .trim()
                .parse()
                .map_err(|_| err(format!("{:?} is not a status code", s.trim())))?;
            if (200..=499).contains(&c) {
                Ok(c)
            } else {
                Err(err(format!("{c} is outside 200-499")))
            }
        };
        if text.trim().is_empty() {
            return Err(err("it is empty".into()));
        }
        let mut ranges = Vec::new();
        for part in text.split(',') {
            let range = match part.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (code(lo)?, code(hi)?);
                    if lo > hi {
                        return Err(err(format!("the range {lo}-{hi} is reversed")));
                    }
                    (lo, hi)
                }
                None => {
                    let c = code(part)?;
                    (c, c)
                }
            };
            ranges.push(range);
        }
        Ok(Self {
            ranges,
            text: text.trim().to_owned(),
        })
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for Matcher {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elb_syntax() {
        let table: &[(&str, &[u16], &[u16])] = &[
            ("200", &[200], &[201, 204, 301, 400]),
            ("200,204", &[200, 204], &[201, 203]),
            ("200-299", &[200, 250, 299], &[300, 199]),
            ("200-204,301", &[200, 204, 301], &[205, 302]),
            (" 200 , 302 ", &[200, 302], &[301]),
            ("499", &[499], &[498]),
        ];
        for (text, yes, no) in table {
            let m: Matcher = text.parse().unwrap();
            for s in *yes {
                assert!(m.matches(*s), "{text} should match {s}");
            }
            for s in *no {
                assert!(!m.matches(*s), "{text} should not match {s}");
            }
        }
    }

    #[test]
    fn bad_matchers_say_why() {
        for (text, why) in [
            ("", "empty"),
            ("ok", "\"ok\" is not a status code"),
            ("500", "500 is outside 200-499"),
            ("199", "outside"),
            ("299-200", "reversed"),
            ("200,", "\"\" is not a status code"),
            ("200-", "\"\" is not a status code"),
        ] {
            let e = text.parse::<Matcher>().unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
