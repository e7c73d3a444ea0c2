//! Pages of a list RPC (`page_size`, `page_token`, `next_page_token`), read by keyset: a token
//! carries the sort key of the last entry served, so a page costs an index range scan however
//! deep it is, and entries added meanwhile are neither skipped nor repeated.
//!
//! A token is bound to the query that produced it: the caller's scope (its tenant) and filters.
//! Replayed with another scope or other filters it is refused as INVALID_ARGUMENT, so a token
//! never carries one tenant's position into another tenant's list. It is not signed: a caller
//! who forges one can only move within the query it is already allowed to run, because every
//! page is filtered by the authorised scope, not by anything in the token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ServiceError;

/// Entries per page when the caller asks for none.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The most entries a page holds; larger requests are lowered to it (AIP-158's coercion).
pub const MAX_PAGE_SIZE: u32 = 1000;

const VERSION: &str = "p1";
/// Separators that cannot occur in ODS codes, UUIDs or measure codes.
const FIELD: char = '\u{1f}';
const RECORD: char = '\u{1e}';

/// One page asked for: how many entries, and after which sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    size: usize,
    after: Vec<String>,
    query: String,
}

impl Page {
    /// `query` names everything the list depends on (scope and filters); `key_len` is the number
    /// of columns in the list's sort key.
    pub fn parse(
        page_size: u32,
        page_token: &str,
        query: &str,
        key_len: usize,
    ) -> Result<Page, ServiceError> {
        let size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            size => size.min(MAX_PAGE_SIZE),
        } as usize;
        let after = if page_token.is_empty() {
            vec![String::new(); key_len]
        } else {
            decode(page_token, query, key_len)?
        };
        Ok(Page {
            size,
            after,
            query: query.to_owned(),
        })
    }

    /// The sort key to continue after: empty strings on the first page, which sort before any
    /// real key because every list's first key column is never empty.
    pub fn after(&self) -> &[String] {
        &self.after
    }

    /// Rows to fetch: one more than the page holds, to learn whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.size as i64 + 1
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Cuts `rows` (fetched with [`fetch_limit`](Self::fetch_limit), in key order) to the page
    /// and returns the next page's token, empty when this is the last page.
    pub fn finish<T>(&self, rows: &mut Vec<T>, key: impl Fn(&T) -> Vec<String>) -> String {
        if rows.len() <= self.size {
            return String::new();
        }
        rows.truncate(self.size);
        rows.last()
            .map(|last| encode(&self.query, &key(last)))
            .unwrap_or_default()
    }
}

fn encode(query: &str, key: &[String]) -> String {
    let mut text = String::from(VERSION);
    text.push(RECORD);
    text.push_str(query);
    text.push(RECORD);
    text.push_str(&key.join(&FIELD.to_string()));
    URL_SAFE_NO_PAD.encode(text)
}

fn decode(token: &str, query: &str, key_len: usize) -> Result<Vec<String>, ServiceError> {
    let malformed = || {
        ServiceError::invalid_field(
            "page_token",
            "is not a token this list gave: pass the previous page's next_page_token unchanged",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| malformed())?;
    let text = String::from_utf8(bytes).map_err(|_| malformed())?;
    let mut records = text.split(RECORD);
    let (Some(VERSION), Some(token_query), Some(key), None) = (
        records.next(),
        records.next(),
        records.next(),
        records.next(),
    ) else {
        return Err(malformed());
    };
    if token_query != query {
        return Err(ServiceError::invalid_field(
            "page_token",
            "belongs to another scope or other filters: start again without a page_token",
        ));
    }
    let key: Vec<String> = key.split(FIELD).map(str::to_owned).collect();
    if key.len() != key_len {
        return Err(malformed());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn keys(range: std::ops::Range<u32>) -> Vec<String> {
        range.map(|n| format!("k{n:04}")).collect()
    }

    #[test]
    fn pages_walk_a_list_without_gaps_or_repeats() {
        let all = keys(0..25);
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let page = Page::parse(10, &token, "ics:QWO", 1).unwrap();
            let mut rows: Vec<String> = all
                .iter()
                .filter(|key| key.as_str() > page.after()[0].as_str())
                .take(page.fetch_limit() as usize)
                .cloned()
                .collect();
            token = page.finish(&mut rows, |row| vec![row.clone()]);
            assert!(rows.len() <= 10);
            seen.extend(rows);
            if token.is_empty() {
                break;
            }
        }
        assert_eq!(seen, all);
    }

    #[test]
    fn sizes_default_and_are_capped() {
        assert_eq!(Page::parse(0, "", "q", 1).unwrap().size(), 100);
        assert_eq!(Page::parse(5000, "", "q", 1).unwrap().size(), 1000);
        assert_eq!(Page::parse(7, "", "q", 1).unwrap().size(), 7);
    }

    #[test]
    fn a_token_of_another_query_is_refused_naming_the_field() {
        let page = Page::parse(1, "", "ics:QWO", 2).unwrap();
        let mut rows = vec![1, 2];
        let token = page.finish(&mut rows, |n| vec![n.to_string(), "x".into()]);
        assert!(!token.is_empty());
        assert!(Page::parse(1, &token, "ics:QWO", 2).is_ok());
        for (query, len) in [("ics:QOX", 2), ("ics:QWO|trust:RTP", 2), ("ics:QWO", 3)] {
            match Page::parse(1, &token, query, len) {
                Err(ServiceError::InvalidArgument(violations)) => {
                    assert_eq!(violations[0].field, "page_token")
                }
                other => panic!("{query}: {other:?}"),
            }
        }
        for garbage in ["!!", "aGVsbG8", ""] {
            let parsed = Page::parse(1, garbage, "ics:QWO", 2);
            assert_eq!(garbage.is_empty(), parsed.is_ok(), "{garbage}");
        }
    }
}
