//! What a response body must hold besides a matching status: a substring, or a JSON
//! field's value (the `body_contains` and `body_json` settings). Pure: no I/O.

use serde::Serialize;

/// A condition on the body of a response whose status matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyExpectation {
    /// The body contains this text.
    Contains(String),
    /// The body is JSON and the field at this dotted path (`status`,
    /// `checks.database.status`) has this value (a string, or a number or boolean written
    /// as JSON).
    JsonField {
        /// Dotted path of object keys.
        path: String,
        /// The expected value.
        value: String,
    },
}

impl BodyExpectation {
    /// Parses `path=value` for [`BodyExpectation::JsonField`].
    ///
    /// # Errors
    /// A message when there is no `=` or the path is empty.
    pub fn json_field(text: &str) -> Result<Self, String> {
        match text.split_once('=') {
            Some((path, value)) if !path.trim().is_empty() => Ok(Self::JsonField {
                path: path.trim().to_owned(),
                value: value.trim().to_owned(),
            }),
            _ => Err("expected path=value, for example status=pass".into()),
        }
    }

    /// `Ok` when `body` satisfies the condition, else what was found instead.
    ///
    /// # Errors
    /// A sentence saying what the body lacks.
    pub fn check(&self, body: &str) -> Result<(), String> {
        match self {
            Self::Contains(text) if body.contains(text.as_str()) => Ok(()),
            Self::Contains(text) => Err(format!("the body does not contain {text:?}")),
            Self::JsonField { path, value } => {
                let json: serde_json::Value = serde_json::from_str(body)
                    .map_err(|_| format!("the body is not JSON, so it has no field {path}"))?;
                let found = path.split('.').try_fold(&json, |v, key| v.get(key));
                match found {
                    None => Err(format!("the JSON body has no field {path}")),
                    Some(serde_json::Value::String(s)) if s == value => Ok(()),
                    Some(v)
                        if !v.is_string()
                            && serde_json::from_str::<serde_json::Value>(value)
                                .ok()
                                .as_ref()
                                == Some(v) =>
                    {
                        Ok(())
                    }
                    Some(v) => Err(format!("the JSON field {path} is {v}, not {value:?}")),
                }
            }
        }
    }
}
