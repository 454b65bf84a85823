//! A GraphQL request body as `POST /graphql` decodes it before the schema sees it
//! (crates/api/src/handler.rs `decode_request`): JSON, Postman's string `variables`, the
//! `//` comment stripper and async-graphql's parser; and the syntax-error answer.
#![no_main]

use hookrelay_api::fuzzing::{decode_request, syntax_error, Refused};
use hookrelay_api::graphql::comments::strip_line_comments;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    match decode_request(data) {
        Ok(request) => {
            // The query as sent, less its comments, parsed.
            let sent: Value = serde_json::from_slice(data).expect("decoded but not JSON");
            let query = sent["query"]
                .as_str()
                .expect("decoded without a query string");
            assert!(!query.trim().is_empty());
            assert_eq!(request.query, strip_line_comments(query));
            assert_eq!(
                request.query.matches('\n').count(),
                query.matches('\n').count()
            );
        }
        Err(Refused::Syntax(e)) => {
            let body = syntax_error(&e);
            let error = &body["errors"][0];
            let message = error["message"].as_str().expect("a message");
            assert!(message.starts_with("Syntax error"), "{message}");
            assert_eq!(error["extensions"]["code"], "InvalidSyntax", "{body}");
            assert_eq!(
                error["locations"].as_array().map(Vec::len),
                Some(e.locations.len())
            );
        }
        Err(Refused::NotJson(_) | Refused::NoQuery) => {}
    }
});
