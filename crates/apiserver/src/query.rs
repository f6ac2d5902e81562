//! The query parameters of the REST verbs, parsed once per request.

use api::ApiError;

/// Decodes `application/x-www-form-urlencoded` text (`%XX` and `+`).
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// All parameters as decoded pairs, in order (repeated keys kept, as exec's `command`).
pub fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (url_decode(k), url_decode(v)),
            None => (url_decode(p), String::new()),
        })
        .collect()
}

#[derive(Debug, Default, Clone)]
pub struct Query {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: i64,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub watch: bool,
    pub allow_watch_bookmarks: bool,
    pub timeout_seconds: Option<u64>,
    pub send_initial_events: Option<bool>,
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub field_validation: Option<String>,
    pub force: bool,
    pub propagation_policy: Option<String>,
    pub grace_period_seconds: Option<i64>,
    pub include_object: Option<String>,
}

fn boolean(k: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "" | "true" | "1" | "True" => Ok(true),
        "false" | "0" | "False" => Ok(false),
        _ => Err(ApiError::bad_request(format!("invalid boolean value {v:?} for parameter {k}"))),
    }
}

fn integer(k: &str, v: &str) -> Result<i64, ApiError> {
    v.parse().map_err(|_| ApiError::bad_request(format!("invalid integer value {v:?} for parameter {k}")))
}

impl Query {
    pub fn parse(query: Option<&str>) -> Result<Query, ApiError> {
        let mut q = Query::default();
        for (k, v) in pairs(query) {
            match k.as_str() {
                "labelSelector" => q.label_selector = Some(v),
                "fieldSelector" => q.field_selector = Some(v),
                "limit" => q.limit = integer(&k, &v)?.max(0),
                "continue" => q.continue_token = Some(v).filter(|s| !s.is_empty()),
                "resourceVersion" => q.resource_version = Some(v).filter(|s| !s.is_empty()),
                "resourceVersionMatch" => q.resource_version_match = Some(v).filter(|s| !s.is_empty()),
                "watch" => q.watch = boolean(&k, &v)?,
                "allowWatchBookmarks" => q.allow_watch_bookmarks = boolean(&k, &v)?,
                "timeoutSeconds" => q.timeout_seconds = Some(integer(&k, &v)?.max(0) as u64),
                "sendInitialEvents" => q.send_initial_events = Some(boolean(&k, &v)?),
                "dryRun" => {
                    if v != "All" && !v.is_empty() {
                        return Err(ApiError::bad_request(format!(
                            "Invalid dry run value: {v:?}: supported values: \"All\""
                        )));
                    }
                    q.dry_run = true
                }
                "fieldManager" => q.field_manager = Some(v).filter(|s| !s.is_empty()),
                "fieldValidation" => {
                    if !matches!(v.as_str(), "" | "Strict" | "Warn" | "Ignore") {
                        return Err(ApiError::bad_request(format!(
                            "fieldValidation: Invalid value: {v:?}: fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\""
                        )));
                    }
                    q.field_validation = Some(v).filter(|s| !s.is_empty())
                }
                "force" => q.force = boolean(&k, &v)?,
                "propagationPolicy" => q.propagation_policy = Some(v),
                "gracePeriodSeconds" => q.grace_period_seconds = Some(integer(&k, &v)?),
                "includeObject" => q.include_object = Some(v),
                _ => {}
            }
        }
        Ok(q)
    }

    /// `Strict` unless the client asked otherwise; upstream's default since 1.25 is
    /// `Warn` for clients that say nothing, `Strict` for kubectl, which always says.
    pub fn validation(&self) -> &str {
        self.field_validation.as_deref().unwrap_or("Warn")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_selectors_and_flags() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29&limit=500&watch=true&fieldSelector=metadata.name%3Dx",
        ))
        .unwrap();
        assert_eq!(q.label_selector.as_deref(), Some("app=web,tier in (a,b)"));
        assert_eq!(q.field_selector.as_deref(), Some("metadata.name=x"));
        assert_eq!(q.limit, 500);
        assert!(q.watch);
        assert!(Query::parse(Some("limit=abc")).is_err());
        assert!(Query::parse(Some("fieldValidation=Loose")).is_err());
        assert_eq!(url_decode("%zz%41"), "%zzA");
        assert_eq!(url_decode("100%"), "100%");
    }
}
