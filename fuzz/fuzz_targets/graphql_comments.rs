//! `strip_line_comments`, the `//` remover GraphQL queries go through before parsing
//! (crates/api/src/graphql/comments.rs), on any text.
#![no_main]

use std::borrow::Cow;

use hookrelay_api::graphql::comments::strip_line_comments;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let stripped = strip_line_comments(query);
    if !query.contains("//") {
        assert!(matches!(stripped, Cow::Borrowed(_)));
        assert_eq!(stripped, query);
        return;
    }
    // Only the text of comments goes: every line stays where it was, so the positions
    // of syntax errors are those of the query as sent.
    assert!(stripped.len() <= query.len());
    assert_eq!(count(&stripped, '\n'), count(query, '\n'));
    assert_eq!(count(&stripped, '\r'), count(query, '\r'));
    // What was taken out is whole comments: `//` up to the end of its line.
    assert!(
        is_query_less_comments(query, &stripped),
        "{query:?} -> {stripped:?}"
    );
    // What is left has no comment to take out.
    assert_eq!(strip_line_comments(&stripped), stripped);
});

fn count(text: &str, c: char) -> usize {
    text.chars().filter(|&x| x == c).count()
}

/// Whether `stripped` is `query` with some runs removed, each starting with `//` and
/// holding no line break.
fn is_query_less_comments(query: &str, stripped: &str) -> bool {
    let (q, s) = (query.as_bytes(), stripped.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < q.len() {
        if j < s.len() && q[i] == s[j] {
            i += 1;
            j += 1;
            continue;
        }
        // A removed comment starts here and runs to the next line break.
        if !q[i..].starts_with(b"//") {
            return false;
        }
        while i < q.len() && q[i] != b'\n' && q[i] != b'\r' {
            i += 1;
        }
    }
    j == s.len()
}
