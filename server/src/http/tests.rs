use super::*;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::sync::Mutex;

/// Echoes what it got: `METHOD TARGET body=<bytes>`; refusals carry the error's status.
struct Echo;

impl Handler for Echo {
    fn handle(&self, request: Request) -> Response {
        let text = format!(
            "{} {} body={}",
            request.method,
            request.target,
            String::from_utf8_lossy(&request.body)
        );
        Response {
            status: 200,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: text.into_bytes(),
        }
    }

    fn refuse(&self, error: &HttpError) -> Response {
        Response {
            status: error.status(),
            headers: Vec::new(),
            body: error.to_string().into_bytes(),
        }
    }
}

fn server(limits: Limits) -> HttpServer {
    HttpServer::start("127.0.0.1:0".parse().unwrap(), limits, Arc::new(Echo)).unwrap()
}

fn connect(server: &HttpServer) -> TcpStream {
    let stream = TcpStream::connect(server.local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// Reads one response: (status, headers lowercased, body).
fn response(reader: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>, String) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap();
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status, headers, String::from_utf8(body).unwrap())
}

fn closed(reader: &mut BufReader<TcpStream>) -> bool {
    let mut rest = Vec::new();
    matches!(reader.read_to_end(&mut rest), Ok(0))
}

fn exchange(server: &HttpServer, bytes: &[u8]) -> (u16, Vec<(String, String)>, String) {
    let mut stream = connect(server);
    stream.write_all(bytes).unwrap();
    response(&mut BufReader::new(stream))
}

#[test]
fn requests_on_one_connection_are_answered_in_turn_and_pipelined_ones_in_order() {
    let server = server(Limits::default());
    let mut stream = connect(&server);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    stream
        .write_all(b"PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        .unwrap();
    let (status, headers, body) = response(&mut reader);
    assert_eq!((status, body.as_str()), (200, "PUT /v1/kv/a body=abc"));
    assert!(
        !headers.iter().any(|(n, _)| n == "connection"),
        "kept alive"
    );
    stream
        .write_all(b"GET /one HTTP/1.1\r\n\r\nGET /two?x=1 HTTP/1.1\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut reader).2, "GET /one body=");
    assert_eq!(response(&mut reader).2, "GET /two?x=1 body=");
    assert_eq!(server.connections(), 1);
}

#[test]
fn a_request_trickled_a_byte_at_a_time_is_read_whole() {
    let server = server(Limits::default());
    let mut stream = connect(&server);
    let request = b"PUT /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok";
    for byte in request {
        stream.write_all(&[*byte]).unwrap();
        stream.flush().unwrap();
    }
    let (status, _, body) = response(&mut BufReader::new(stream));
    assert_eq!((status, body.as_str()), (200, "PUT /slow body=ok"));
}

/// A `HEAD` answer carries the head of the `GET` answer, its `Content-Length` included, and
/// no body: the next answer on the connection starts right after the head.
#[test]
fn a_head_request_gets_the_head_without_the_body() {
    let server = server(Limits::default());
    let mut stream = connect(&server);
    stream
        .write_all(b"HEAD /h HTTP/1.1\r\n\r\nGET /g HTTP/1.1\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "HTTP/1.1 200 OK\r\n");
    let mut length = None;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(value) = line.strip_prefix("Content-Length: ") {
            length = value.trim().parse::<usize>().ok();
        }
    }
    assert_eq!(length, Some("HEAD /h body=".len()));
    assert_eq!(response(&mut reader).2, "GET /g body=");
}

#[test]
fn a_chunked_body_is_decoded() {
    let server = server(Limits::default());
    let (status, _, body) = exchange(
        &server,
        b"POST /t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n",
    );
    assert_eq!((status, body.as_str()), (200, "POST /t body=abcde"));
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let server = server(Limits::default());
    let mut stream = connect(&server);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    stream
        .write_all(b"PUT /k HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        .unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
    reader.read_line(&mut line).unwrap();
    stream.write_all(b"hi").unwrap();
    assert_eq!(response(&mut reader).2, "PUT /k body=hi");
}

#[test]
fn a_body_over_the_limit_is_refused_without_reading_it() {
    let limits = Limits {
        body_bytes_max: 10,
        ..Limits::default()
    };
    let server = server(limits);
    let mut stream = connect(&server);
    stream
        .write_all(b"PUT /k HTTP/1.1\r\nContent-Length: 11\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream);
    let (status, headers, _) = response(&mut reader);
    assert_eq!(status, 413);
    assert!(headers.contains(&("connection".into(), "close".into())));
    assert!(closed(&mut reader));
    let chunked = exchange(
        &server,
        b"PUT /k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n",
    );
    assert_eq!(chunked.0, 413);
}

/// A client that sends its whole body without waiting (no `Expect`) is not reset halfway: the
/// server reads and drops the rest for a moment after its 413, so the client finishes writing
/// and then reads why it was refused.
#[test]
fn a_client_still_sending_a_refused_body_is_not_reset() {
    let limits = Limits {
        body_bytes_max: 1024,
        ..Limits::default()
    };
    let server = server(limits);
    let mut stream = connect(&server);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let sender = std::thread::spawn(move || {
        stream.write_all(b"PUT /k HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n")?;
        stream.write_all(&vec![b'x'; 2_000_000])
    });
    let sent = sender.join().unwrap();
    assert!(sent.is_ok(), "the client was reset while sending: {sent:?}");
    let (status, headers, _) = response(&mut reader);
    assert_eq!(status, 413);
    assert!(headers.contains(&("connection".into(), "close".into())));
}

#[test]
fn malformed_heads_are_refused_and_the_connection_closed() {
    let server = server(Limits::default());
    for (bytes, status) in [
        (&b"\x16\x03\x01 not http at all\r\n\r\n"[..], 400),
        (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (
            b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (
            b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
        ),
        (b"PUT / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
        ),
    ] {
        let mut stream = connect(&server);
        stream.write_all(bytes).unwrap();
        let mut reader = BufReader::new(stream);
        assert_eq!(
            response(&mut reader).0,
            status,
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
        assert!(closed(&mut reader));
    }
}

#[test]
fn a_head_over_the_limit_is_refused() {
    let limits = Limits {
        head_bytes_max: 1024,
        ..Limits::default()
    };
    let server = server(limits);
    let mut request = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 2000));
    request.extend_from_slice(b"\r\n\r\n");
    assert_eq!(exchange(&server, &request).0, 431);
    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(exchange(&server, &many).0, 431);
}

/// 65 small headers are refused for their number, and the answer says so (not that the head
/// is too many bytes, which it is not).
#[test]
fn too_many_headers_are_refused_for_their_count() {
    let server = server(Limits::default());
    let mut request = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..65 {
        request.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let (status, _, body) = exchange(&server, &request);
    assert_eq!(status, 431);
    assert!(body.contains("more than 64 headers"), "{body}");
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() {
    let server = server(Limits::default());
    let mut stream = connect(&server);
    stream.write_all(b"GET /old HTTP/1.0\r\n\r\n").unwrap();
    let mut reader = BufReader::new(stream);
    let (_, headers, _) = response(&mut reader);
    assert!(headers.contains(&("connection".into(), "close".into())));
    assert!(closed(&mut reader));
    let (_, headers, _) = exchange(&server, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(headers.contains(&("connection".into(), "close".into())));
}

/// With every slot busy (a request head in progress, so nothing is idle), a new connection
/// is answered 503 and closed.
#[test]
fn connections_beyond_the_limit_are_turned_away_when_none_is_idle() {
    let limits = Limits {
        connections_max: 1,
        ..Limits::default()
    };
    let server = server(limits);
    let mut busy = connect(&server);
    busy.write_all(b"GET /a HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let (status, _, _) = exchange(&server, b"GET /b HTTP/1.1\r\n\r\n");
    assert_eq!(status, 503);
    busy.write_all(b"\r\n").unwrap();
    assert_eq!(response(&mut BufReader::new(busy)).0, 200);
}

/// At the cap, a newcomer evicts an idle connection instead of being refused: first one that
/// connected and never sent a request (even though a keep-alive client has waited longer),
/// then the keep-alive connection waiting longest after its answer. Each evicted client sees
/// its connection closed; every newcomer is served. (Eviction picks among the connections of
/// the newcomer's event loop; one loop here makes the order global.)
#[test]
fn an_idle_connection_is_evicted_when_a_new_one_arrives_at_the_cap() {
    let limits = Limits {
        connections_max: 2,
        event_loops: 1,
        ..Limits::default()
    };
    let server = server(limits);
    let mut kept_alive = connect(&server);
    kept_alive.write_all(b"GET /a HTTP/1.1\r\n\r\n").unwrap();
    let mut kept_alive = BufReader::new(kept_alive);
    assert_eq!(response(&mut kept_alive).0, 200);
    std::thread::sleep(Duration::from_millis(100));
    let silent = connect(&server);
    std::thread::sleep(Duration::from_millis(100));

    let mut newcomer = connect(&server);
    newcomer.write_all(b"GET /b HTTP/1.1\r\n\r\n").unwrap();
    let mut newcomer = BufReader::new(newcomer);
    assert_eq!(response(&mut newcomer).0, 200);
    assert!(closed(&mut BufReader::new(silent)), "the silent one stays");
    std::thread::sleep(Duration::from_millis(100));

    let (status, _, _) = exchange(&server, b"GET /c HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    assert!(closed(&mut kept_alive), "the older keep-alive one stays");
    newcomer
        .get_mut()
        .write_all(b"GET /d HTTP/1.1\r\n\r\n")
        .unwrap();
    assert_eq!(
        response(&mut newcomer).0,
        200,
        "the younger one was evicted"
    );
}

/// A slowloris client that trickles its head a byte every 100 ms never completes it within
/// the head timeout (300 ms here): it is answered 408 and closed well before the request
/// timeout, which alone would have held the connection for 30 s.
#[test]
fn a_head_trickled_slower_than_the_head_timeout_is_closed_with_408() {
    let limits = Limits {
        head_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let server = server(limits);
    let mut stream = connect(&server);
    let started = Instant::now();
    stream.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").unwrap();
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(100));
        // The server may already have closed; the answer is read below either way.
        let _ = stream.write_all(b"a");
    }
    let mut reader = BufReader::new(stream);
    let (status, headers, _) = response(&mut reader);
    assert_eq!(status, 408);
    assert!(headers.contains(&("connection".into(), "close".into())));
    assert!(closed(&mut reader));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn stop_closes_idle_connections_and_ends_the_server() {
    let server = server(Limits::default());
    let mut stream = connect(&server);
    stream.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut reader = BufReader::new(stream);
    assert_eq!(response(&mut reader).0, 200);
    let address = server.local_addr();
    let started = Instant::now();
    server.stop(Duration::from_secs(5));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stop waited for the idle connection"
    );
    assert!(closed(&mut reader));
    assert!(TcpStream::connect(address).is_err(), "still listening");
}

proptest::proptest! {
    /// Whatever arrives, parsing a head answers without panicking.
    #[test]
    fn arbitrary_heads_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        let _ = parse_head(&bytes, 256);
    }
}

/// Answers every request whose target starts with `/refused` from its head alone, with 429.
struct Screening;

impl Handler for Screening {
    fn screen(&self, head: &RequestHead<'_>, state: &mut ConnectionState) -> Option<Screened> {
        let seen = state.get_or_insert_with(|| Box::new(0u32));
        let seen = seen.downcast_mut::<u32>().unwrap();
        *seen += 1;
        if head.target == "/count" {
            return Some(Screened {
                response: Response {
                    status: 200,
                    headers: Vec::new(),
                    body: format!("{seen} requests on this connection").into_bytes(),
                },
                close: false,
                delay: Duration::ZERO,
            });
        }
        head.target.starts_with("/refused").then(|| Screened {
            response: Response {
                status: 429,
                headers: Vec::new(),
                body: format!("refused, body of {:?} bytes unread", head.body_bytes).into_bytes(),
            },
            close: head.target == "/refused/close",
            delay: if head.target == "/refused/slow" {
                Duration::from_millis(300)
            } else {
                Duration::ZERO
            },
        })
    }

    fn handle(&self, request: Request) -> Response {
        Echo.handle(request)
    }

    fn refuse(&self, error: &HttpError) -> Response {
        Echo.refuse(error)
    }
}

fn screening_server() -> HttpServer {
    HttpServer::start(
        "127.0.0.1:0".parse().unwrap(),
        Limits::default(),
        Arc::new(Screening),
    )
    .unwrap()
}

#[test]
fn a_screened_request_is_answered_before_its_body_arrives_and_the_body_is_then_dropped() {
    let server = screening_server();
    let mut stream = connect(&server);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    stream
        .write_all(b"PUT /refused HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    let (status, headers, body) = response(&mut reader);
    assert_eq!(
        (status, body.as_str()),
        (429, "refused, body of Some(100000) bytes unread")
    );
    assert!(
        !headers.iter().any(|(n, _)| n == "connection"),
        "kept alive: {headers:?}"
    );
    stream.write_all(&vec![b'x'; 100_000]).unwrap();
    stream
        .write_all(b"PUT /next HTTP/1.1\r\nContent-Length: 2\r\n\r\nok")
        .unwrap();
    let (status, _, body) = response(&mut reader);
    assert_eq!(
        (status, body.as_str()),
        (200, "PUT /next body=ok"),
        "the dropped body was not taken for a request"
    );
}

#[test]
fn a_screened_request_whose_body_would_not_be_read_closes_its_connection() {
    let server = screening_server();
    for head in [
        "PUT /refused HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "PUT /refused HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        "PUT /refused HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n",
        "GET /refused/close HTTP/1.1\r\n\r\n",
    ] {
        let mut stream = connect(&server);
        stream.write_all(head.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let (status, headers, _) = response(&mut reader);
        assert_eq!(status, 429, "{head:?}");
        assert!(
            headers.contains(&("connection".into(), "close".into())),
            "{head:?}: {headers:?}"
        );
        assert!(closed(&mut reader), "{head:?}");
    }
}

#[test]
fn the_handler_keeps_its_state_per_connection() {
    let server = screening_server();
    let mut first = connect(&server);
    let mut first_reader = BufReader::new(first.try_clone().unwrap());
    first
        .write_all(b"GET /a HTTP/1.1\r\n\r\nGET /count HTTP/1.1\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut first_reader).2, "GET /a body=");
    assert_eq!(
        response(&mut first_reader).2,
        "2 requests on this connection"
    );
    let mut second = connect(&server);
    second.write_all(b"GET /count HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(
        response(&mut BufReader::new(second)).2,
        "1 requests on this connection"
    );
}

#[test]
fn a_screened_answer_may_be_held_and_reads_nothing_meanwhile() {
    let server = screening_server();
    let mut stream = connect(&server);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let asked = Instant::now();
    stream
        .write_all(b"PUT /refused/slow HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
        .unwrap();
    let (status, _, _) = response(&mut reader);
    assert_eq!(status, 429);
    assert!(
        asked.elapsed() >= Duration::from_millis(300),
        "{:?}",
        asked.elapsed()
    );
    stream.write_all(b"GET /next HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(
        response(&mut reader).2,
        "GET /next body=",
        "kept alive after the hold"
    );
}

/// Answers `/big` with 4 MiB, `/later` through a responder kept for the test to complete, and
/// anything else at once.
#[derive(Default)]
struct Deferring {
    kept: Mutex<Vec<Responder>>,
}

impl Handler for Deferring {
    fn handle(&self, request: Request) -> Response {
        if request.target == "/big" {
            return Response {
                status: 200,
                headers: Vec::new(),
                body: vec![b'x'; 4 << 20],
            };
        }
        Echo.handle(request)
    }

    fn serve(&self, request: Request, responder: Responder) {
        if request.target == "/later" {
            self.kept.lock().unwrap().push(responder);
            return;
        }
        responder.send(self.handle(request));
    }

    fn refuse(&self, error: &HttpError) -> Response {
        Echo.refuse(error)
    }
}

/// Proves that a long poll holds no thread: with a single worker, 200 requests whose answers
/// the handler keeps for later do not stop a plain request from being answered at once; the
/// 200 are answered when the test sends their answers, each on its own connection.
#[test]
fn answers_sent_later_hold_no_worker() {
    let limits = Limits {
        workers: 1,
        ..Limits::default()
    };
    let handler = Arc::new(Deferring::default());
    let server =
        HttpServer::start("127.0.0.1:0".parse().unwrap(), limits, handler.clone()).unwrap();
    let mut waiting = Vec::new();
    for _ in 0..200 {
        let mut stream = connect(&server);
        stream.write_all(b"GET /later HTTP/1.1\r\n\r\n").unwrap();
        waiting.push(BufReader::new(stream));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while handler.kept.lock().unwrap().len() < 200 {
        assert!(
            Instant::now() < deadline,
            "the handler never got every request"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let asked = Instant::now();
    let (status, _, body) = exchange(&server, b"GET /now HTTP/1.1\r\n\r\n");
    assert_eq!((status, body.as_str()), (200, "GET /now body="));
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    let kept = std::mem::take(&mut *handler.kept.lock().unwrap());
    for (number, responder) in kept.into_iter().enumerate() {
        responder.send(Response {
            status: 200,
            headers: Vec::new(),
            body: format!("answer {number}").into_bytes(),
        });
    }
    for reader in &mut waiting {
        let (status, _, body) = response(reader);
        assert_eq!(status, 200);
        assert!(body.starts_with("answer "), "{body}");
    }
}

/// Waits until the handler holds `count` requests' responders.
fn kept_responders(handler: &Deferring, count: usize) -> Vec<Responder> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while handler.kept.lock().unwrap().len() < count {
        assert!(
            Instant::now() < deadline,
            "the handler never got the request"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::mem::take(&mut *handler.kept.lock().unwrap())
}

/// A long poll whose client hangs up does not keep its place under the cap until the poll
/// ends: at the cap, a newcomer evicts it (before this, the newcomer was answered 503).
#[test]
fn a_client_that_hangs_up_while_its_answer_waits_gives_its_place_to_a_newcomer() {
    let limits = Limits {
        connections_max: 1,
        event_loops: 1,
        ..Limits::default()
    };
    let handler = Arc::new(Deferring::default());
    let server =
        HttpServer::start("127.0.0.1:0".parse().unwrap(), limits, handler.clone()).unwrap();
    let mut gone = connect(&server);
    gone.write_all(b"GET /later HTTP/1.1\r\n\r\n").unwrap();
    let kept = kept_responders(&handler, 1);
    drop(gone);
    std::thread::sleep(Duration::from_millis(100));
    let (status, _, body) = exchange(&server, b"GET /now HTTP/1.1\r\n\r\n");
    assert_eq!((status, body.as_str()), (200, "GET /now body="));
    // The evicted poll's answer, when it comes, goes nowhere and harms no one.
    for responder in kept {
        responder.send(Response {
            status: 200,
            headers: Vec::new(),
            body: b"late".to_vec(),
        });
    }
    let (status, _, _) = exchange(&server, b"GET /again HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
}

/// A client may shut its side after sending its request and still wait for the answer: the
/// node notices the shutdown but writes the answer, then closes.
#[test]
fn a_client_that_half_closes_after_its_request_still_gets_its_answer() {
    let handler = Arc::new(Deferring::default());
    let server = HttpServer::start(
        "127.0.0.1:0".parse().unwrap(),
        Limits::default(),
        handler.clone(),
    )
    .unwrap();
    let mut stream = connect(&server);
    stream.write_all(b"GET /later HTTP/1.1\r\n\r\n").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let kept = kept_responders(&handler, 1);
    std::thread::sleep(Duration::from_millis(100));
    for responder in kept {
        responder.send(Response {
            status: 200,
            headers: Vec::new(),
            body: b"answer".to_vec(),
        });
    }
    let mut reader = BufReader::new(stream);
    let (status, headers, body) = response(&mut reader);
    assert_eq!((status, body.as_str()), (200, "answer"));
    assert!(
        headers
            .iter()
            .any(|(name, value)| name == "connection" && value == "close"),
        "{headers:?}"
    );
    assert!(closed(&mut reader));
}

/// Proves that a client that never reads its answers blocks no one: it pipelines requests
/// for 4 MiB answers and reads nothing, so its answer cannot be written; meanwhile 50
/// requests of another client are each answered at once, and the stalled connection is
/// closed once its answer has made no progress for the write timeout (300 ms here).
#[test]
fn a_client_that_never_reads_is_closed_and_blocks_no_one() {
    let limits = Limits {
        write_timeout: Duration::from_millis(300),
        workers: 2,
        ..Limits::default()
    };
    let server = HttpServer::start(
        "127.0.0.1:0".parse().unwrap(),
        limits,
        Arc::new(Deferring::default()),
    )
    .unwrap();
    let mut stalled = connect(&server);
    stalled
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    for _ in 0..20 {
        // The server stops reading once an answer is stuck; the client's sends may then time out.
        if stalled.write_all(b"GET /big HTTP/1.1\r\n\r\n").is_err() {
            break;
        }
    }
    let mut other = connect(&server);
    let mut reader = BufReader::new(other.try_clone().unwrap());
    for number in 0..50 {
        let asked = Instant::now();
        other
            .write_all(format!("GET /quick/{number} HTTP/1.1\r\n\r\n").as_bytes())
            .unwrap();
        let (status, _, body) = response(&mut reader);
        assert_eq!((status, body), (200, format!("GET /quick/{number} body=")));
        assert!(
            asked.elapsed() < Duration::from_millis(500),
            "{:?}",
            asked.elapsed()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.connections() > 1 {
        assert!(
            Instant::now() < deadline,
            "the stalled connection is still open"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // What the stalled client finally reads ends early: its connection was closed.
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut everything = Vec::new();
    let _ = stalled.read_to_end(&mut everything);
    assert!(
        everything.len() < 20 * (4 << 20),
        "read {} bytes",
        everything.len()
    );
}

/// Holds its one worker on `/blocked` until the test releases it, and passes `/passed-on` to
/// a thread of its own that answers it, telling the event loop so
/// ([`Handler::serves_without_waiting`]).
struct PassingOn {
    holding: AtomicBool,
    released: Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Handler for PassingOn {
    fn serves_without_waiting(&self, request: &Request) -> bool {
        request.target == "/passed-on"
    }

    fn handle(&self, request: Request) -> Response {
        if request.target == "/blocked" {
            self.holding.store(true, Ordering::Relaxed);
            let released = self.released.lock().unwrap();
            let _ = released.recv_timeout(Duration::from_secs(10));
        }
        Echo.handle(request)
    }

    fn serve(&self, request: Request, responder: Responder) {
        if request.target == "/passed-on" {
            std::thread::spawn(move || responder.send(Echo.handle(request)));
            return;
        }
        responder.send(self.handle(request));
    }

    fn refuse(&self, error: &HttpError) -> Response {
        Echo.refuse(error)
    }
}

/// Proves that a request the handler serves without waiting needs no worker: with the only
/// worker held by another request, it is answered at once, served by the event loop and
/// answered from the handler's own thread; the held request is answered once released.
#[test]
fn a_request_served_without_waiting_is_answered_while_every_worker_is_busy() {
    let limits = Limits {
        workers: 1,
        ..Limits::default()
    };
    let (release, released) = std::sync::mpsc::channel();
    let handler = Arc::new(PassingOn {
        holding: AtomicBool::new(false),
        released: Mutex::new(released),
    });
    let server =
        HttpServer::start("127.0.0.1:0".parse().unwrap(), limits, handler.clone()).unwrap();
    let mut blocked = connect(&server);
    blocked.write_all(b"GET /blocked HTTP/1.1\r\n\r\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !handler.holding.load(Ordering::Relaxed) {
        assert!(
            Instant::now() < deadline,
            "the worker never took the request"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let asked = Instant::now();
    let (status, _, body) = exchange(&server, b"GET /passed-on HTTP/1.1\r\n\r\n");
    assert_eq!((status, body.as_str()), (200, "GET /passed-on body="));
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    release.send(()).unwrap();
    let (status, _, body) = response(&mut BufReader::new(blocked));
    assert_eq!((status, body.as_str()), (200, "GET /blocked body="));
}
