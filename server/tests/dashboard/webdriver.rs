//! A small client of the W3C WebDriver HTTP API, enough to drive Debian's headless chromium
//! through `chromedriver`: open a session, navigate, find elements, click, type, run
//! scripts, take screenshots and read the browser's console log.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key under which WebDriver names an element.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where `name` is on `PATH`, if anywhere.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|directory| directory.join(name))
        .find(|candidate| candidate.is_file())
}

/// Chromium and chromedriver, or `None` (with a notice that the `what` test is skipped) when
/// the machine lacks them. Under `CI` they are required (`.ci/run` installs both).
pub fn browser_tools(what: &str) -> Option<(PathBuf, PathBuf)> {
    let chromium = find_on_path("chromium").or_else(|| find_on_path("chromium-browser"));
    let chromedriver = find_on_path("chromedriver");
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) => Some((chromium, chromedriver)),
        _ if std::env::var_os("CI").is_some() => panic!(
            "chromium and chromedriver are required under CI (.ci/run installs them: \
             apt-get install -y chromium chromium-driver)"
        ),
        _ => {
            eprintln!(
                "SKIPPED {what} browser test: chromium or chromedriver not on PATH \
                 (apt-get install -y chromium chromium-driver)"
            );
            None
        }
    }
}

/// Saves what the browser shows as `name`.png, as a test artifact.
pub fn screenshot(browser: &Browser, name: &str) {
    let png = browser.screenshot_png();
    assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    let mut directories = vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard")];
    directories.extend(std::env::var_os("DASHBOARD_SCREENSHOTS").map(PathBuf::from));
    for directory in directories {
        std::fs::create_dir_all(&directory).unwrap();
        let path = directory.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
}

/// A chromedriver process and one browser session in it; both end when it is dropped.
pub struct Browser {
    driver: Child,
    session_url: String,
    agent: ureq::Agent,
}

impl Browser {
    /// Starts `chromedriver` on `port` and a headless chromium session `width` × `height`.
    pub fn start(
        chromedriver: &Path,
        chromium: &Path,
        port: u16,
        width: u32,
        height: u32,
    ) -> Browser {
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .build();
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            driver,
            session_url: String::new(),
            agent,
        };
        browser.wait_until_ready(&base);
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    format!("--window-size={width},{height}"),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let session = browser.call("POST", &format!("{base}/session"), Some(capabilities));
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {session}"));
        browser.session_url = format!("{base}/session/{id}");
        browser
    }

    fn wait_until_ready(&self, base: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(response) = self.agent.get(&format!("{base}/status")).call()
                && let Ok(status) = response.into_json::<Value>()
                && status["value"]["ready"] == json!(true)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("chromedriver did not become ready within 20 s");
    }

    /// One WebDriver command; returns its `value`, panics on an error answer.
    fn call(&self, method: &str, url: &str, body: Option<Value>) -> Value {
        let request = self.agent.request(method, url);
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let answer: Value = match result {
            Ok(response) => response.into_json().unwrap_or(Value::Null),
            Err(ureq::Error::Status(status, response)) => {
                let body = response.into_string().unwrap_or_default();
                panic!("WebDriver {method} {url}: {status} {body}");
            }
            Err(error) => panic!("WebDriver {method} {url}: {error}"),
        };
        answer["value"].clone()
    }

    fn session(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("{}{path}", self.session_url), body)
    }

    pub fn navigate(&self, url: &str) {
        self.session("POST", "/url", Some(json!({"url": url})));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns what it returns.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.session(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The elements matching a CSS selector, as WebDriver element ids.
    pub fn find_all(&self, css: &str) -> Vec<String> {
        let found = self.session(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        found
            .as_array()
            .map(|elements| {
                elements
                    .iter()
                    .filter_map(|element| element[ELEMENT_KEY].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The one element matching `css`; panics naming the selector when there is none.
    pub fn find(&self, css: &str) -> String {
        self.find_all(css)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element matches {css:?}"))
    }

    pub fn text(&self, element: &str) -> String {
        let text = self.session("GET", &format!("/element/{element}/text"), None);
        text.as_str().unwrap_or_default().to_owned()
    }

    /// A real click: the browser moves the pointer to the element and presses it.
    pub fn click(&self, element: &str) {
        self.session(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    pub fn clear(&self, element: &str) {
        self.session(
            "POST",
            &format!("/element/{element}/clear"),
            Some(json!({})),
        );
    }

    pub fn type_text(&self, element: &str, text: &str) {
        self.session(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        );
    }

    pub fn set_window_size(&self, width: u32, height: u32) {
        self.session(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }

    /// The page as it is drawn now, as PNG bytes.
    pub fn screenshot_png(&self) -> Vec<u8> {
        let encoded = self.session("GET", "/screenshot", None);
        decode_base64(encoded.as_str().expect("a screenshot is a base64 string"))
    }

    /// The console messages since the last call (chromedriver's `se/log`, type `browser`):
    /// each has a `level` (`SEVERE` for errors and failed loads) and a `message`.
    pub fn console_log(&self) -> Vec<Value> {
        let entries = self.session("POST", "/se/log", Some(json!({"type": "browser"})));
        entries.as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session_url.is_empty() {
            let _ = self.agent.delete(&self.session_url).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (screenshots), ignoring padding and line breaks.
fn decode_base64(text: &str) -> Vec<u8> {
    let value_of = |byte: u8| -> Option<u32> {
        match byte {
            b'A'..=b'Z' => Some(u32::from(byte - b'A')),
            b'a'..=b'z' => Some(u32::from(byte - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(byte - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let mut bytes = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for value in text.bytes().filter_map(value_of) {
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    bytes
}

#[test]
fn base64_decodes_the_rfc_vectors() {
    assert_eq!(decode_base64("Zm9vYmFy"), b"foobar");
    assert_eq!(decode_base64("Zm9vYg=="), b"foob");
    assert_eq!(decode_base64("Zg=="), b"f");
}
