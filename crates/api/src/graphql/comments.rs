//! Pasted Buy with Prime examples carry `// Optional` and `// Required` lines, which are not
//! GraphQL. They are removed before parsing: `//` up to the end of the line, outside
//! strings, block strings and `#` comments. The newline stays, so the line and column of
//! everything else (and of any syntax error) are those of the text as sent.

pub fn strip_line_comments(query: &str) -> std::borrow::Cow<'_, str> {
    if !query.contains("//") {
        return std::borrow::Cow::Borrowed(query);
    }
    let bytes = query.as_bytes();
    let mut out = String::with_capacity(query.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i = (i + 3).min(bytes.len());
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(bytes.len());
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                out.push_str(&query[copied..i]);
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&query[copied..]);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::strip_line_comments;

    #[test]
    fn strips_comment_lines_but_not_urls_or_strings() {
        let q = "mutation {\n  x(input: {\n  // Optional\n  a: \"https://e.com/p//q\", # c // d\n  b: \"\"\"x // y\"\"\" // tail\n}) }";
        let s = strip_line_comments(q);
        assert_eq!(
            s,
            "mutation {\n  x(input: {\n  \n  a: \"https://e.com/p//q\", # c // d\n  b: \"\"\"x // y\"\"\" \n}) }"
        );
        assert_eq!(s.lines().count(), q.lines().count());
    }

    #[test]
    fn untouched_without_slashes() {
        assert!(matches!(
            strip_line_comments("{ a }"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn escaped_quote_in_string() {
        let q = "{ a(s: \"x\\\"//y\") // z\n}";
        assert_eq!(strip_line_comments(q), "{ a(s: \"x\\\"//y\") \n}");
    }
}
