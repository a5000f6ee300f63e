//! The dashboard (`GET /ui`) in a real browser: Debian's headless chromium, driven through
//! chromedriver's WebDriver API, against a real 3-node cluster.
//!
//! One story, step by step: the page, served by a follower, lists 3 members with exactly one
//! leader; after kill -9 of the leader a different leader shows within 2 s, without a reload;
//! the "transfer leadership here" button moves leadership; a put from the keys view is
//! readable through the REST API, and a key written through REST appears in the view live;
//! the keys view browses the hierarchy (a folder with its key count, a click descends, the
//! breadcrumbs go up, a click on a key shows its value); the services view shows groups
//! registered through REST, its drain button takes a farm member out of the REST API's picks,
//! and its resign button hands a group to its next standby; nothing overflows a 420 px window; the browser logged no error
//! (no script error, no asset 404); and when the node the page came from dies, the page goes
//! on through another member.
//! Screenshots of each view are saved under the target directory (and under
//! `DASHBOARD_SCREENSHOTS`, when set, to refresh `docs/screenshots/`).
//!
//! Without chromium and chromedriver the test prints a notice and passes, unless `CI` is set:
//! then it fails, since `.ci/run` installs both.

mod common;
#[path = "dashboard/webdriver.rs"]
mod webdriver;

use common::{TestCluster, get_retrying, request};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use webdriver::{Browser, browser_tools, screenshot};

const ELECTION_WAIT: Duration = Duration::from_secs(15);
/// How soon the page must show a new leader after kill -9 of the old one.
const NEW_LEADER_SHOWN_WITHIN: Duration = Duration::from_secs(2);
const NARROW_WIDTH: u32 = 420;

/// Polls `probe` every 50 ms until it gives a value or `timeout` passes.
fn wait_for<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The cluster view's rows as the page shows them.
#[derive(Debug)]
struct MemberRow {
    id: u64,
    leader: bool,
    unreachable: bool,
}

fn member_rows(browser: &Browser) -> Vec<MemberRow> {
    let rows = browser.execute(
        "return Array.from(document.querySelectorAll('#members tbody tr')).map(row => ({
            id: Number(row.dataset.id),
            leader: row.classList.contains('leader'),
            unreachable: row.classList.contains('unreachable'),
        }));",
        json!([]),
    );
    rows.as_array()
        .into_iter()
        .flatten()
        .map(|row| MemberRow {
            id: row["id"].as_u64().unwrap_or(0),
            leader: row["leader"] == json!(true),
            unreachable: row["unreachable"] == json!(true),
        })
        .collect()
}

/// The one leader the page shows, if exactly one.
fn shown_leader(browser: &Browser) -> Option<u64> {
    let leaders: Vec<u64> = member_rows(browser)
        .iter()
        .filter(|row| row.leader)
        .map(|row| row.id)
        .collect();
    (leaders.len() == 1).then(|| leaders[0])
}

fn open_view(browser: &Browser, view: &str) {
    browser.click(&browser.find(&format!("button.tab[data-view=\"{view}\"]")));
    wait_for(
        Duration::from_secs(5),
        &format!("the {view} view shows"),
        || {
            let shown = browser.execute(
                "return !document.getElementById(arguments[0]).hidden;",
                json!([format!("view-{view}")]),
            );
            (shown == json!(true)).then_some(())
        },
    );
}

/// Registers a master/standby group and a farm through the REST API, as services would.
fn register_service_groups(base: &str) {
    let join = |group: &str, body: Value| {
        let url = format!("{base}/v1/services{group}/members");
        let (status, answer) = request("POST", &url, body.to_string().as_bytes());
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    };
    let address = |address: &str| json!({"http": address});
    join(
        "/billing/web",
        json!({"instance": "web-1", "ttl_ms": 600_000, "addresses": address("10.0.0.5:8080")}),
    );
    join(
        "/billing/web",
        json!({"instance": "web-2", "ttl_ms": 600_000, "addresses": address("10.0.0.6:8080")}),
    );
    let farm_member = |instance: &str, weight: u32, draining: bool| {
        json!({"instance": instance, "ttl_ms": 600_000, "mode": "farm", "weight": weight,
               "draining": draining, "addresses": address("10.0.1.7:9000")})
    };
    join("/search", farm_member("search-1", 2, false));
    join("/search", farm_member("search-2", 1, true));
    join("/search", farm_member("search-3", 1, false));
    let url = format!("{base}/v1/services/search/members/search-1");
    let (status, answer) = request("PUT", &url, br#"{"load": 3}"#);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
}

/// The instances `GET /v1/services/search/pick` gives over a few round robin and Monte Carlo
/// picks.
fn search_picks(base: &str) -> std::collections::BTreeSet<String> {
    let mut picked = std::collections::BTreeSet::new();
    for strategy in ["round_robin", "monte_carlo"] {
        for _ in 0..6 {
            let url = format!("{base}/v1/services/search/pick?strategy={strategy}&n=3");
            let (status, answer) = request("GET", &url, b"");
            let answer: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
            assert_eq!(status, 200, "{answer}");
            for member in answer["members"].as_array().into_iter().flatten() {
                picked.insert(member["instance"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    picked
}

/// The text of the first element `selector` matches ('' when none), read in one script: the
/// views re-render, which would make an element found in one call stale by the next.
fn text_of(browser: &Browser, selector: &str) -> String {
    let text = browser.execute(
        "const element = document.querySelector(arguments[0]);
         return element ? element.innerText : '';",
        json!([selector]),
    );
    text.as_str().unwrap_or_default().to_owned()
}

/// Clicks the first element `selector` matches, in one script (see [`text_of`]); whether one
/// was there.
fn click_now(browser: &Browser, selector: &str) -> bool {
    let clicked = browser.execute(
        "const element = document.querySelector(arguments[0]);
         if (element) element.click();
         return Boolean(element);",
        json!([selector]),
    );
    clicked == json!(true)
}

/// The console's errors so far (failed loads, script errors), as `level: message` lines.
fn console_errors(browser: &Browser) -> Vec<String> {
    browser
        .console_log()
        .iter()
        .filter(|entry| entry["level"] == json!("SEVERE"))
        .map(|entry| format!("{}: {}", entry["level"], entry["message"]))
        .collect()
}

/// Nothing wider than the window: the page never scrolls sideways (wide tables scroll inside
/// their own box).
fn assert_fits_the_window(browser: &Browser, view: &str) {
    let widths = browser.execute(
        "return [document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth];",
        json!([]),
    );
    let width = |index: usize| widths[index].as_u64().unwrap_or(u64::MAX);
    let (document_width, body_width, window_width) = (width(0), width(1), width(2));
    assert!(
        window_width <= u64::from(NARROW_WIDTH),
        "the window is {window_width} px wide, not narrow"
    );
    assert!(
        document_width <= window_width && body_width <= window_width,
        "the {view} view overflows a {window_width} px window: document {document_width} px, body {body_width} px"
    );
}

#[test]
fn the_dashboard_follows_failover_transfers_leadership_writes_keys_and_shows_services() {
    let Some((chromium, chromedriver)) = browser_tools("dashboard") else {
        return;
    };
    let mut cluster = TestCluster::start(3);
    let first_leader = cluster.wait_for_leader(ELECTION_WAIT);
    // The page comes from a follower, so its writes go to another origin (the leader's).
    let home = (1..=3).find(|&id| id != first_leader).unwrap();
    let home_url = cluster.node(home).url();
    register_service_groups(&home_url);

    let driver_port = common::free_address_pair().0.port();
    let browser = Browser::start(&chromedriver, &chromium, driver_port, 1200, 900);
    browser.navigate(&format!("{home_url}/ui"));

    // 1. Three members, exactly one leader: the one the cluster elected.
    let shown = wait_for(Duration::from_secs(10), "3 members with one leader", || {
        let rows = member_rows(&browser);
        (rows.len() == 3).then(|| shown_leader(&browser)).flatten()
    });
    assert_eq!(shown, first_leader);
    screenshot(&browser, "cluster");

    // 2. kill -9 of the leader: another leader shows within 2 s, the dead node in red.
    cluster.node_mut(first_leader).kill();
    let killed_at = Instant::now();
    let second_leader = wait_for(NEW_LEADER_SHOWN_WITHIN, "a new leader shown", || {
        let rows = member_rows(&browser);
        let dead_shown = rows
            .iter()
            .any(|row| row.id == first_leader && row.unreachable);
        let leader = shown_leader(&browser)?;
        (dead_shown && leader != first_leader).then_some(leader)
    });
    eprintln!(
        "new leader {second_leader} shown {} ms after kill -9 of {first_leader}",
        killed_at.elapsed().as_millis()
    );
    screenshot(&browser, "cluster-after-kill");

    // 3. The transfer button of the other live follower makes it leader.
    let target = (1..=3)
        .find(|&id| id != first_leader && id != second_leader)
        .unwrap();
    browser.click(&browser.find(&format!("button.transfer[data-id=\"{target}\"]")));
    wait_for(Duration::from_secs(10), "the transfer shown", || {
        (shown_leader(&browser) == Some(target)).then_some(())
    });
    let status = cluster.node(target).status().expect("the target answers");
    assert_eq!(status["role"], json!("leader"), "{status}");

    // 4. A put from the keys view is readable through the REST API.
    open_view(&browser, "keys");
    let key_input = browser.find("#put-key");
    browser.clear(&key_input);
    browser.type_text(&key_input, "/dashboard/greeting");
    browser.type_text(&browser.find("#put-value"), "hello from the browser");
    browser.click(&browser.find("#put-form button[type=submit]"));
    let message = browser.find("#keys-message");
    wait_for(Duration::from_secs(10), "the put answered", || {
        let text = browser.text(&message);
        assert!(!text.contains("failed"), "{text}");
        text.contains("version 1").then_some(())
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, value) = get_retrying(&home_url, "/dashboard/greeting", deadline);
    assert_eq!(
        (status, value.as_slice()),
        (200, b"hello from the browser".as_slice())
    );
    // The listing (the key's folder, opened by the put) shows it, and a click on it shows its
    // value and revisions.
    let row = wait_for(Duration::from_secs(5), "the key listed", || {
        browser
            .find_all("#keys tbody tr[data-key=\"/dashboard/greeting\"]")
            .into_iter()
            .next()
    });
    browser.click(&row);
    wait_for(Duration::from_secs(5), "the key's value shown", || {
        let detail = text_of(&browser, "#key-detail");
        (detail.contains("hello from the browser") && detail.contains("modified at revision"))
            .then_some(())
    });
    // With "live" on, a key written elsewhere appears without a click: the watch long poll.
    common::put_retrying(
        &home_url,
        "/dashboard/from-rest",
        "written by curl",
        deadline,
    );
    wait_for(
        Duration::from_secs(5),
        "the key written through REST listed",
        || {
            let rows = browser.find_all("#keys tbody tr[data-key=\"/dashboard/from-rest\"]");
            (!rows.is_empty()).then_some(())
        },
    );
    // Folder by folder: from the root, /dashboard is a folder holding 3 keys; a click descends
    // into it, again into deep/ and inner/, and a click on the key there shows its value; the
    // breadcrumbs go back up.
    common::put_retrying(
        &home_url,
        "/dashboard/deep/inner/leaf",
        "a value three folders down",
        deadline,
    );
    assert!(click_now(
        &browser,
        "#breadcrumbs button.crumb[data-folder=\"/\"]"
    ));
    wait_for(
        Duration::from_secs(5),
        "/dashboard as a folder of 3 keys",
        || {
            let row = text_of(
                &browser,
                "#keys tbody tr.folder[data-folder=\"/dashboard\"]",
            );
            (row.contains("dashboard/") && row.contains('3')).then_some(())
        },
    );
    for folder in ["/dashboard", "/dashboard/deep", "/dashboard/deep/inner"] {
        let selector = format!("#keys tbody tr.folder[data-folder=\"{folder}\"]");
        wait_for(Duration::from_secs(5), &format!("{folder} listed"), || {
            click_now(&browser, &selector).then_some(())
        });
        wait_for(Duration::from_secs(5), &format!("{folder} opened"), || {
            let current = text_of(&browser, "#breadcrumbs [aria-current=location]");
            (current == folder.rsplit('/').next().unwrap_or_default()).then_some(())
        });
    }
    wait_for(Duration::from_secs(5), "the leaf listed", || {
        click_now(
            &browser,
            "#keys tbody tr[data-key=\"/dashboard/deep/inner/leaf\"]",
        )
        .then_some(())
    });
    wait_for(Duration::from_secs(5), "the leaf's value shown", || {
        let detail = text_of(&browser, "#key-detail");
        detail.contains("a value three folders down").then_some(())
    });
    let crumbs = text_of(&browser, "#breadcrumbs");
    assert!(
        crumbs.contains("dashboard") && crumbs.contains("inner"),
        "{crumbs}"
    );
    assert!(click_now(
        &browser,
        "#breadcrumbs button.crumb[data-folder=\"/dashboard\"]"
    ));
    wait_for(Duration::from_secs(5), "back up in /dashboard", || {
        let deep = text_of(
            &browser,
            "#keys tbody tr.folder[data-folder=\"/dashboard/deep\"]",
        );
        let greeting = text_of(&browser, "#keys tbody tr[data-key=\"/dashboard/greeting\"]");
        (deep.contains("deep/") && greeting.contains("greeting")).then_some(())
    });
    // The folder's listing is live: a row clicked just as it is drawn again may lose the
    // click, so the wait clicks again until the detail shows.
    wait_for(Duration::from_secs(5), "the greeting shown again", || {
        let shown = text_of(&browser, "#key-detail").contains("hello from the browser");
        if !shown {
            click_now(&browser, "#keys tbody tr[data-key=\"/dashboard/greeting\"]");
        }
        shown.then_some(())
    });
    screenshot(&browser, "keys");

    // 5. The services view shows the groups registered through REST.
    open_view(&browser, "services");
    let billing = wait_for(Duration::from_secs(10), "the groups shown", || {
        let groups = browser.find_all(".group[data-name=\"/billing/web\"]");
        let farms = browser.find_all(".group[data-name=\"/search\"]");
        (!groups.is_empty() && !farms.is_empty()).then(|| groups[0].clone())
    });
    let billing = browser.text(&billing);
    assert!(billing.contains("master_standby"), "{billing}");
    assert!(billing.contains("web-1"), "{billing}");
    assert!(billing.contains("web-2"), "{billing}");
    let farm = text_of(&browser, ".group[data-name=\"/search\"]");
    assert!(farm.contains("farm"), "{farm}");
    assert!(farm.contains("drained by self"), "{farm}");
    // The drain button of search-1 takes it out of the picks: the REST API no longer picks it,
    // and the page says the operator drained it, with an undrain button.
    assert!(search_picks(&home_url).contains("search-1"));
    assert!(click_now(
        &browser,
        ".group[data-name=\"/search\"] button.drain[data-instance=\"search-1\"]"
    ));
    wait_for(Duration::from_secs(10), "search-1 shown drained", || {
        let row = text_of(
            &browser,
            ".group[data-name=\"/search\"] tr[data-instance=\"search-1\"]",
        );
        (row.contains("drained by operator") && row.contains("undrain")).then_some(())
    });
    let picked = search_picks(&home_url);
    assert_eq!(
        picked.into_iter().collect::<Vec<_>>(),
        ["search-3"],
        "search-1 drained by the operator, search-2 by itself"
    );
    let (status, group) = request("GET", &format!("{home_url}/v1/services/search"), b"");
    let group: Value = serde_json::from_slice(&group).unwrap_or(Value::Null);
    assert_eq!(status, 200, "{group}");
    assert_eq!(group["drained_by_operator"], json!(["search-1"]), "{group}");
    screenshot(&browser, "services");
    // Its resign button hands the group to the next standby, with a new epoch.
    browser.click(&browser.find(".group[data-name=\"/billing/web\"] button.resign"));
    wait_for(Duration::from_secs(10), "the new master shown", || {
        // Read in one script: the view re-renders every 2 s, which would make an element
        // found in one call stale by the next.
        let card = browser.execute(
            "const card = document.querySelector(arguments[0]);
             return card ? card.innerText : '';",
            json!([".group[data-name=\"/billing/web\"]"]),
        );
        card.as_str()?.contains("resign web-2").then_some(())
    });
    let (status, group) = request("GET", &format!("{home_url}/v1/services/billing/web"), b"");
    let group: Value = serde_json::from_slice(&group).unwrap_or(Value::Null);
    assert_eq!(status, 200, "{group}");
    assert_eq!(group["master"]["instance"], json!("web-2"), "{group}");
    assert_eq!(group["epoch"], json!(2), "{group}");

    // 6. A narrow window: no view scrolls sideways.
    browser.set_window_size(NARROW_WIDTH, 900);
    for view in ["cluster", "keys", "services"] {
        open_view(&browser, view);
        std::thread::sleep(Duration::from_millis(300));
        assert_fits_the_window(&browser, view);
    }
    open_view(&browser, "cluster");
    screenshot(&browser, "cluster-narrow");

    // 7. No console errors so far: no script error, no asset or API call that failed. The
    // test writes one error itself first, so a log channel that reads nothing cannot pass.
    browser.execute("console.error('dashboard test probe');", json!([]));
    let mut errors = console_errors(&browser);
    let probes = errors.len();
    errors.retain(|error| !error.contains("dashboard test probe"));
    assert_eq!(probes - errors.len(), 1, "the probe was not logged");
    assert!(errors.is_empty(), "console errors: {errors:#?}");

    // 8. The node the page came from dies: the page goes on through another member.
    cluster.node_mut(home).kill();
    let connection = browser.find("#connection");
    wait_for(Duration::from_secs(3), "the page on another member", || {
        let text = browser.text(&connection);
        let home_down = member_rows(&browser)
            .iter()
            .any(|row| row.id == home && row.unreachable);
        (text.contains("does not answer; via") && home_down).then_some(())
    });
}

#[test]
fn on_a_cluster_with_tenants_the_dashboard_asks_for_a_token_and_shows_tenants_against_caps() {
    // Proves the dashboard respects auth: the page of a cluster started with
    // --admin-token-file asks for a token (its API calls are refused 401 without one); with the
    // admin token it shows the cluster and, in the tenants view, each tenant's usage against
    // its caps; with a tenant's token it shows that tenant alone; no error once a token is in.
    let Some((chromium, chromedriver)) = browser_tools("dashboard") else {
        return;
    };
    const ADMIN: &str = "admin-token-for-the-dashboard-0123456789";
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("admin.token");
    std::fs::write(&token_file, ADMIN).unwrap();
    let extra = [
        "--admin-token-file".to_owned(),
        token_file.display().to_string(),
    ];
    let cluster = TestCluster::start_with(3, &extra);
    let base = cluster.node(1).url();
    let admin = [("Authorization", format!("Bearer {ADMIN}"))];
    let body = json!({"name": "team-a", "caps": {"keys": 10, "watches": 4}}).to_string();
    let deadline = Instant::now() + ELECTION_WAIT;
    let created = loop {
        let url = format!("{base}/v1/tenants");
        let (status, answer) = common::request_with_headers("POST", &url, &admin, body.as_bytes());
        if status == 201 {
            break serde_json::from_slice::<Value>(&answer).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{status} {}",
            String::from_utf8_lossy(&answer)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let tenant_token = created["token"].as_str().unwrap().to_owned();
    let as_tenant = [("Authorization", format!("Bearer {tenant_token}"))];
    // The node learns the new token when it applies the tenant's creation.
    loop {
        let url = format!("{base}/v1/kv/a");
        let (status, answer) = common::request_with_headers("PUT", &url, &as_tenant, b"1");
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{status} {}",
            String::from_utf8_lossy(&answer)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let driver_port = common::free_address_pair().0.port();
    let browser = Browser::start(&chromedriver, &chromium, driver_port, 1200, 900);
    browser.navigate(&format!("{base}/ui"));
    let form = browser.find("#token-form");
    wait_for(Duration::from_secs(10), "the page asks for a token", || {
        let hidden = browser.execute(
            "return arguments[0].hidden;",
            json!([{
                "element-6066-11e4-a52e-4f735466cecf": form
            }]),
        );
        (hidden == json!(false)).then_some(())
    });
    screenshot(&browser, "token");
    browser.type_text(&browser.find("#token"), ADMIN);
    browser.click(&browser.find("#token-form button[type=submit]"));
    wait_for(Duration::from_secs(10), "3 members with one leader", || {
        let rows = member_rows(&browser);
        (rows.len() == 3).then(|| shown_leader(&browser)).flatten()
    });
    // The refusals before the token was given are expected; none after.
    let _before = browser.console_log();

    open_view(&browser, "tenants");
    let row = wait_for(Duration::from_secs(10), "team-a listed", || {
        browser
            .find_all("#tenants tbody tr[data-name=\"team-a\"]")
            .into_iter()
            .next()
    });
    let asking = browser.execute(
        "return getComputedStyle(document.getElementById('token-form')).display !== 'none';",
        json!([]),
    );
    assert_eq!(asking, json!(false), "the token was taken: no more asking");
    let text = browser.text(&row);
    assert!(text.contains("team-a") && text.contains("1 / 10"), "{text}");
    let stored = browser.execute(
        "return sessionStorage.getItem('rafting.token') === arguments[0]
            && !location.href.includes(arguments[0]);",
        json!([ADMIN]),
    );
    assert_eq!(
        stored,
        json!(true),
        "the token lives in session storage, never the URL"
    );
    screenshot(&browser, "tenants");
    assert_eq!(console_errors(&browser), Vec::<String>::new());

    // A tenant's own token shows that tenant alone.
    browser.click(&browser.find("#forget-token"));
    browser.execute(
        "sessionStorage.setItem('rafting.token', arguments[0]); location.reload();",
        json!([tenant_token]),
    );
    wait_for(Duration::from_secs(10), "the tenant's own row", || {
        let rows = browser.find_all("#tenants tbody tr");
        let names = browser.execute(
            "return Array.from(document.querySelectorAll('#tenants tbody tr')).map(r => r.dataset.name);",
            json!([]),
        );
        (rows.len() == 1 && names == json!(["team-a"])).then_some(())
    });
}
