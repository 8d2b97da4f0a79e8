//! The socket protocol: the line reader and the request decoder.

use super::*;

/// What `read_line` must return for `input`, line after line.
fn expected_lines(input: &[u8], limit: usize) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let (line, after) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => rest.split_at(i + 1),
            None => (rest, &[][..]),
        };
        lines.push(if line.len() > limit {
            Line::TooLong
        } else {
            Line::Complete(line.to_vec())
        });
        rest = after;
    }
    lines.push(Line::Eof);
    lines
}

/// Bytes that look like request lines, or do not.
fn protocol_bytes() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(br#"{"op":"token","provider":"demo","min_valid":60}"#.to_vec()),
        Just(br#"{"op":"status"}"#.to_vec()),
        Just(br#"{"op":"login","provider":"x"}"#.to_vec()),
        "[ -~]{0,80}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..120),
        (1usize..400).prop_map(|n| vec![b'a'; n]),
    ];
    proptest::collection::vec((line, any::<bool>()), 0..8).prop_map(|lines| {
        let mut bytes = Vec::new();
        for (line, newline) in lines {
            bytes.extend(line);
            if newline {
                bytes.push(b'\n');
            }
        }
        bytes
    })
}

fn run<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

proptest! {
    #![proptest_config(config(2048))]

    /// Whatever the bytes and however they are split into reads, lines come
    /// out as the model says: bounded, in order, the overlong ones dropped.
    #[test]
    fn the_line_reader_keeps_lines_whole_and_bounded(
        input in protocol_bytes(),
        capacity in 1usize..64,
        limit in 1usize..200,
    ) {
        let got = run(async {
            let mut reader = tokio::io::BufReader::with_capacity(capacity, &input[..]);
            let mut lines = Vec::new();
            loop {
                let line = read_line(&mut reader, limit).await.unwrap();
                let end = line == Line::Eof;
                lines.push(line);
                if end {
                    return lines;
                }
            }
        });
        prop_assert_eq!(got, expected_lines(&input, limit));
    }

    /// The decoder answers every line with a request or a message, and the
    /// message never repeats the line (it could hold a token).
    #[test]
    fn the_request_decoder_never_panics_or_echoes(input in protocol_bytes()) {
        for line in input.split(|&b| b == b'\n') {
            if let Err(message) = parse_request(line) {
                prop_assert!(!message.is_empty());
                prop_assert!(message.len() < 400, "{message}");
            }
        }
    }

    /// Requests round-trip, whatever their strings.
    #[test]
    fn requests_round_trip(provider in ".{0,40}", min_valid in proptest::option::of(any::<u64>())) {
        let request = tokend::protocol::Request::Token {
            provider,
            min_valid,
            refused: None,
        };
        let line = serde_json::to_vec(&request).unwrap();
        prop_assert!(line.len() <= MAX_REQUEST_LINE);
        prop_assert_eq!(parse_request(&line).unwrap(), request);
    }
}

// ----- the config loader -------------------------------------------------
