//! The timeline of a simulated seed (`rafting sim replay --html`, `rafting sim timeline`) in a
//! real browser: Debian's headless chromium through chromedriver.
//!
//! A 60 s chaos seed with 5 nodes opens from its file with no console error, shows 5 lanes,
//! counts its messages per slice when zoomed out and draws arrows when zoomed in, and a click
//! on an arrow shows the message; the page's size and the time it takes to open are printed
//! (they are the README's figures). A seed that a planted bug breaks shows its violation:
//! the banner with the checker's explanation, and a button that zooms to it. Screenshots are
//! saved beside the dashboard's (`DASHBOARD_SCREENSHOTS` to refresh `docs/screenshots/`).
//!
//! Without chromium and chromedriver the test prints a notice and passes, unless `CI` is set.

mod common;
#[path = "dashboard/webdriver.rs"]
#[allow(dead_code)] // the dashboard's test types into forms; this one does not
mod webdriver;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use webdriver::{Browser, browser_tools, screenshot};

fn rafting(arguments: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_rafting"))
        .args(arguments)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "rafting {arguments:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn scenario_text(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn wait_until_ready(browser: &Browser) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while browser.execute("return document.body.dataset.ready || null;", json!([])) != json!("true")
    {
        assert!(Instant::now() < deadline, "the timeline never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn console_errors(browser: &Browser) -> Vec<String> {
    browser
        .console_log()
        .iter()
        .filter(|entry| entry["level"] == json!("SEVERE"))
        .map(|entry| entry["message"].to_string())
        .collect()
}

/// A seed of `disk_wipe.toml` that the planted forgetful voter breaks, written as a trace.
fn planted_violation_trace(directory: &Path) -> PathBuf {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/disk_wipe.toml");
    let mut scenario = rafting_sim::Scenario::load(&file).unwrap();
    scenario.expect.clear();
    scenario.crashes.planted_wiped_node_votes = true;
    for seed in 1..=40 {
        let mut trace = Vec::new();
        let outcome = rafting_sim::run_seed(&scenario, seed, Some(&mut trace)).unwrap();
        if outcome.report.violation.is_some() {
            let path = directory.join(format!("planted-{seed}.jsonl"));
            std::fs::write(&path, trace).unwrap();
            return path;
        }
    }
    panic!("no seed of 40 caught the planted bug");
}

#[test]
fn a_seed_timeline_opens_from_its_file_zooms_shows_messages_and_marks_the_violation() {
    let Some((chromium, chromedriver)) = browser_tools("timeline") else {
        return;
    };
    let directory = tempfile::tempdir().unwrap();
    let chaos = directory.path().join("chaos60.toml");
    let text = scenario_text("chaos.toml").replace("duration_ms = 30000", "duration_ms = 60000");
    assert!(text.contains("duration_ms = 60000"), "chaos.toml runs 30 s");
    std::fs::write(&chaos, text).unwrap();
    let page = directory.path().join("chaos.html");
    let started = Instant::now();
    rafting(&[
        "sim",
        "replay",
        chaos.to_str().unwrap(),
        "--seed",
        "7",
        "--html",
        page.to_str().unwrap(),
    ]);
    let written_in = started.elapsed();
    let bytes = std::fs::metadata(&page).unwrap().len();
    let planted = planted_violation_trace(directory.path());
    let planted_page = directory.path().join("planted.html");
    rafting(&[
        "sim",
        "timeline",
        planted.to_str().unwrap(),
        "--html",
        planted_page.to_str().unwrap(),
    ]);

    let driver_port = common::free_address_pair().0.port();
    let browser = Browser::start(&chromedriver, &chromium, driver_port, 1300, 800);
    browser.navigate(&format!("file://{}", page.display()));
    wait_until_ready(&browser);
    let open_ms = browser.execute("return Number(document.body.dataset.openMs);", json!([]));
    eprintln!(
        "timeline of a 60 s 5-node chaos seed: {bytes} bytes, written in {written_in:?}, \
         open (script done) {open_ms} ms after navigation start"
    );
    assert!(bytes < 8 * 1024 * 1024, "{bytes} bytes is too large a page");
    assert_eq!(browser.find_all(".lane-label").len(), 5);
    assert_eq!(
        browser.execute("return timeline.data.end_us >= 60000000;", json!([])),
        json!(true)
    );
    assert_eq!(
        browser.execute("return document.body.dataset.aggregated;", json!([])),
        json!("true"),
        "a whole 60 s chaos run is too many messages for arrows: counted instead"
    );
    assert!(browser.find_all("#violation:not([hidden])").is_empty());
    screenshot(&browser, "timeline-whole");

    // Zoomed in on the first leader's heartbeats and appends: arrows, one of which shows its
    // message when clicked.
    let arrow = browser.execute(
        "const d = timeline.data, s = d.strides.message;
         for (let i = 0; i < d.messages.length; i += s) {
           if (d.messages[i + 6] === 0 && d.messages[i + 1] - d.messages[i] > 2000
               && d.messages[i] > 2000000 && d.message_kinds[d.messages[i + 4]] === 'AppendEntries') {
             return [d.messages[i], d.messages[i + 1], d.messages[i + 2], d.messages[i + 3]];
           }
         }
         return null;",
        json!([]),
    );
    let [sent, arrived, from, to] = [0, 1, 2, 3].map(|k| arrow[k].as_f64().unwrap());
    browser.execute(
        "timeline.setWindow(arguments[0], arguments[1]);",
        json!([sent - 20_000.0, arrived + 20_000.0]),
    );
    assert_eq!(
        browser.execute("return document.body.dataset.aggregated;", json!([])),
        json!("false"),
        "zoomed in to 40 ms: each message is an arrow"
    );
    // The middle of the arrow, in page coordinates (lanes are 56 px under a 28 px axis; the
    // band takes the top 14 px of a lane).
    let point = browser.execute(
        "const canvas = document.getElementById('canvas');
         const rect = canvas.getBoundingClientRect();
         const x = t => (t - timeline.view.t0) / (timeline.view.t1 - timeline.view.t0) * canvas.clientWidth;
         const y = node => 28 + (node - 1) * 56 + 14 + (56 - 14) / 2;
         return [rect.left + (x(arguments[0]) + x(arguments[1])) / 2,
                 rect.top + (y(arguments[2]) + y(arguments[3])) / 2];",
        json!([sent, arrived, from, to]),
    );
    browser.execute(
        "const [x, y] = arguments;
         const canvas = document.getElementById('canvas');
         for (const type of ['pointerdown', 'pointerup']) {
           canvas.dispatchEvent(new PointerEvent(type, {clientX: x, clientY: y, bubbles: true, pointerId: 1}));
         }",
        point,
    );
    let details = browser.text(&browser.find("#details"));
    assert!(
        details.contains("AppendEntries") && details.contains(&format!("n{from}")),
        "the click shows the message: {details}"
    );
    screenshot(&browser, "timeline-zoomed");
    assert_eq!(console_errors(&browser), Vec::<String>::new());

    browser.navigate(&format!("file://{}", planted_page.display()));
    wait_until_ready(&browser);
    let banner = browser.text(&browser.find("#violation"));
    assert!(banner.starts_with("Violation: "), "{banner}");
    let to_violation = browser.find("#to-violation");
    browser.click(&to_violation);
    let window: Value = browser.execute(
        "return [timeline.view.t0, timeline.view.t1, timeline.data.violation.at_us];",
        json!([]),
    );
    let (t0, t1, at) = (
        window[0].as_f64().unwrap(),
        window[1].as_f64().unwrap(),
        window[2].as_f64().unwrap(),
    );
    assert!(t0 <= at && at <= t1 && t1 - t0 <= 400_000.0, "{window}");
    let details = browser.text(&browser.find("#details"));
    assert!(details.contains("violation"), "{details}");
    screenshot(&browser, "timeline-violation");
    browser.set_window_size(420, 800);
    let fits = browser.execute(
        "return document.documentElement.scrollWidth <= window.innerWidth;",
        json!([]),
    );
    assert_eq!(fits, json!(true), "the page fits a narrow window");
    assert_eq!(console_errors(&browser), Vec::<String>::new());
}
