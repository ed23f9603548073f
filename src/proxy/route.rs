//! Which requests are intercepted, decided on the path as an upstream would read it.
//!
//! Gateways normalise paths before routing (nginx `merge_slashes`, Starlette decoding
//! percent-escapes, frameworks resolving dot segments), so `//v1/chat/completions` or
//! `/v1/x/../chat/completions` is a chat completion to them. Routing on the raw path would let
//! such a request past the memory checks with its `memory_id` still in the body.

use std::borrow::Cow;

use pingora::http::RequestHeader;

use crate::proxy::api::ApiShape;

#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// A request of an API shape memgate remembers on. `path_and_query` is the normalised
    /// path (and the raw query), which is what goes upstream, so memgate and the upstream
    /// agree on what the request is.
    Intercepted {
        shape: ApiShape,
        path_and_query: String,
    },
    /// A path that is an intercepted route only to an upstream that also ignores case,
    /// decodes reserved escapes (`%2F`) or trailing slashes. Whether the upstream serves it
    /// as such cannot be known: memory fields on it are refused, anything else passes as it
    /// came. `shape` is the one it looks like, for the shape of memgate's errors.
    Lookalike { shape: ApiShape },
    /// Everything else: proxied untouched.
    Other,
}

impl Route {
    /// The shape memgate's own errors take on this route.
    pub fn error_shape(&self) -> ApiShape {
        match self {
            Route::Intercepted { shape, .. } | Route::Lookalike { shape } => *shape,
            Route::Other => ApiShape::ChatCompletions,
        }
    }
}

pub fn classify(request: &RequestHeader) -> Route {
    if request.method != http::Method::POST {
        return Route::Other;
    }
    let raw = request.uri.path();
    let path = normalise(raw, false);
    let shape = ApiShape::ALL
        .into_iter()
        .find(|shape| shape.paths().contains(&path.as_ref()));
    if let Some(shape) = shape {
        let path_and_query = match request.uri.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.into_owned(),
        };
        return Route::Intercepted {
            shape,
            path_and_query,
        };
    }
    let loose = normalise(raw, true);
    let loose = loose.trim_end_matches('/');
    let lookalike = ApiShape::ALL
        .into_iter()
        .find(|shape| shape.paths().iter().any(|p| p.eq_ignore_ascii_case(loose)));
    match lookalike {
        Some(shape) => Route::Lookalike { shape },
        None => Route::Other,
    }
}

/// RFC 3986 normalisation of a path: percent-escapes of unreserved characters decoded
/// (`decode_all` decodes every escape, as some frameworks do), repeated slashes merged and dot
/// segments removed. Borrows the path when it is already normal, which is the common case.
fn normalise(path: &str, decode_all: bool) -> Cow<'_, str> {
    let already_normal = !path.contains('%')
        && !path.contains("//")
        && !path
            .split('/')
            .any(|segment| segment == "." || segment == "..");
    if already_normal {
        return Cow::Borrowed(path);
    }
    let decoded = decode_escapes(path, decode_all);
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut normal = String::with_capacity(decoded.len());
    for segment in &segments {
        normal.push('/');
        normal.push_str(segment);
    }
    if normal.is_empty() || decoded.ends_with('/') {
        normal.push('/');
    }
    Cow::Owned(normal)
}

fn decode_escapes(path: &str, decode_all: bool) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                let unreserved = byte.is_ascii_alphanumeric() || b"-._~".contains(&byte);
                if decode_all || unreserved {
                    out.push(byte);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str) -> Route {
        classify(&RequestHeader::build(method, path.as_bytes(), None).unwrap())
    }

    fn chat(path_and_query: &str) -> Route {
        Route::Intercepted {
            shape: ApiShape::ChatCompletions,
            path_and_query: path_and_query.into(),
        }
    }

    #[test]
    fn canonical_and_aliased_chat_paths_are_intercepted_on_their_normal_form() {
        assert_eq!(
            route("POST", "/v1/chat/completions"),
            chat("/v1/chat/completions")
        );
        assert_eq!(
            route("POST", "/chat/completions"),
            chat("/chat/completions")
        );
        for alias in [
            "//v1/chat/completions",
            "/v1//chat///completions",
            "/v1/x/../chat/completions",
            "/v1/./chat/completions",
            "/v1/%63hat/completions",
            "/%76%31/chat/%63ompletions",
            "/../v1/chat/completions",
        ] {
            assert_eq!(
                route("POST", alias),
                chat("/v1/chat/completions"),
                "{alias}"
            );
        }
        assert_eq!(
            route("POST", "//v1/chat/completions?api-version=1"),
            chat("/v1/chat/completions?api-version=1")
        );
    }

    #[test]
    fn paths_only_a_lenient_upstream_serves_as_chat_are_lookalikes() {
        for lookalike in [
            "/V1/chat/completions",
            "/v1/Chat/Completions",
            "/v1/chat%2Fcompletions",
            "/v1/chat/completions/",
            "//V1/CHAT/completions/",
        ] {
            assert_eq!(
                route("POST", lookalike),
                Route::Lookalike {
                    shape: ApiShape::ChatCompletions
                },
                "{lookalike}"
            );
        }
    }

    #[test]
    fn responses_and_messages_are_intercepted_with_and_without_v1() {
        for (path, shape) in [
            ("/v1/responses", ApiShape::Responses),
            ("/responses", ApiShape::Responses),
            ("/v1/messages", ApiShape::Messages),
            ("/messages", ApiShape::Messages),
        ] {
            assert_eq!(
                route("POST", &format!("/{path}?beta=true")),
                Route::Intercepted {
                    shape,
                    path_and_query: format!("{path}?beta=true")
                }
            );
        }
        assert_eq!(
            route("POST", "/v1/Messages"),
            Route::Lookalike {
                shape: ApiShape::Messages
            }
        );
        assert_eq!(
            route("POST", "/v1/responses/"),
            Route::Lookalike {
                shape: ApiShape::Responses
            }
        );
        // Retrieving or cancelling a stored response is not a new one.
        assert_eq!(route("POST", "/v1/responses/resp_1/cancel"), Route::Other);
        assert_eq!(route("GET", "/v1/responses/resp_1"), Route::Other);
        assert_eq!(route("POST", "/v1/messages/count_tokens"), Route::Other);
    }

    #[test]
    fn other_requests_pass() {
        assert_eq!(route("GET", "/v1/chat/completions"), Route::Other);
        assert_eq!(route("POST", "/v1/completions"), Route::Other);
        assert_eq!(route("POST", "/v1/chat/completions/x"), Route::Other);
        assert_eq!(route("POST", "/v1/chat/completions%"), Route::Other);
        assert_eq!(route("POST", "/v1/embeddings"), Route::Other);
        assert!(matches!(normalise("/v1/models", false), Cow::Borrowed(_)));
    }
}
