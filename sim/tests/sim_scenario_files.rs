//! Scenario files are parsed strictly: unknown keys and bad values are errors that name the key
//! and the file; and scripted expectations really fail when the story does not hold.

use rafting_sim::{Scenario, run_seed};
use std::path::Path;

const MINIMAL: &str = r#"
name = "minimal"
profile = "brief"
nodes = 3
duration_ms = 8000
"#;

fn parse(text: &str) -> Result<Scenario, String> {
    Scenario::parse(text, Path::new("scenarios/test.toml")).map_err(|error| error.to_string())
}

// A misspelt key is refused, and the message names the key and the file.
#[test]
fn unknown_key_names_key_and_file() {
    let error = parse(&format!("{MINIMAL}\n[network]\nlos_probability = 0.1\n")).unwrap_err();
    assert!(error.contains("los_probability"), "{error}");
    assert!(error.contains("scenarios/test.toml"), "{error}");
    let error = parse(&format!("{MINIMAL}\nfoo = 1\n")).unwrap_err();
    assert!(error.contains("foo"), "{error}");
    let event = "[[events]]\naction = \"crash\"\nat_ms = 1\nnode = 1\nnodee = 2\n";
    let error = parse(&format!("{MINIMAL}\n{event}")).unwrap_err();
    assert!(error.contains("nodee"), "{error}");
}

// Bad values name their key: a probability above 1, a node that does not exist, and
// relaxed-only faults (duplication, the attacker, a scripted wipe) in a brief scenario.
#[test]
fn bad_values_name_their_key() {
    let error = parse(&format!(
        "{MINIMAL}\n[network]\nloss_probability = [0.1, 1.5]\n"
    ))
    .unwrap_err();
    assert!(error.contains("network.loss_probability"), "{error}");
    let event = "[[events]]\naction = \"crash\"\nat_ms = 1\nnode = 4\n";
    let error = parse(&format!("{MINIMAL}\n{event}")).unwrap_err();
    assert!(error.contains("events[0]"), "{error}");
    let error = parse(&format!(
        "{MINIMAL}\n[network]\nduplicate_probability = 0.1\n"
    ))
    .unwrap_err();
    assert!(error.contains("network.duplicate_probability"), "{error}");
    assert!(error.contains("brief"), "{error}");
    // The brief assumes a network no one attacks.
    let error = parse(&format!("{MINIMAL}\n[attacker]\nper_second = 10\n")).unwrap_err();
    assert!(error.contains("attacker.per_second"), "{error}");
    assert!(error.contains("brief"), "{error}");
    // A scripted crash that wipes the disk, like the drawn wipes, is for relaxed scenarios.
    let wipe = "[[events]]\naction = \"crash\"\nat_ms = 1\nnode = 2\nwipe = true\n";
    let error = parse(&format!("{MINIMAL}\n{wipe}")).unwrap_err();
    assert!(error.contains("events[0].wipe"), "{error}");
    assert!(error.contains("brief"), "{error}");
    let relaxed = MINIMAL.replace("\"brief\"", "\"relaxed\"");
    assert!(parse(&format!("{relaxed}\n{wipe}")).is_ok());
}

// Membership keys: spares exist only below `nodes`, `add_node` takes a spare, once.
#[test]
fn membership_keys_are_checked() {
    let five = MINIMAL.replace("nodes = 3", "nodes = 5");
    let add = |node: u64| format!("[[events]]\naction = \"add_node\"\nat_ms = 1\nnode = {node}\n");
    let text = format!("{five}\ninitial_voters = 3\n{}{}", add(4), add(5));
    let scenario = parse(&text).expect("a valid growth");
    assert_eq!(scenario.initial_voters, Some(3));
    let error = parse(&format!("{five}\ninitial_voters = 6\n")).unwrap_err();
    assert!(error.contains("initial_voters"), "{error}");
    let error = parse(&format!("{five}\ninitial_voters = 3\n{}", add(3))).unwrap_err();
    assert!(error.contains("events[0].node"), "{error}");
    let error = parse(&format!("{five}\ninitial_voters = 3\n{}{}", add(4), add(4))).unwrap_err();
    assert!(error.contains("events[1].node"), "{error}");
    let remove = "[[events]]\naction = \"remove_node\"\nat_ms = 1\n";
    assert!(parse(&format!("{five}\n{remove}")).is_ok());
}

// An expectation that cannot hold (no leader at all 6 s into a calm run) is reported under its
// name, which shows that expectations are really evaluated.
#[test]
fn false_expectation_is_reported() {
    let text = format!("{MINIMAL}\n[[expect]]\ncheck = \"no_leader\"\nat_ms = 6000\n");
    let scenario = parse(&text).expect("valid scenario");
    let report = run_seed(&scenario, 1, None).expect("runs").report;
    let violation = report.violation.expect("the expectation fails");
    assert_eq!(violation.check, "expect_no_leader");
}

// With a minority cut off for the whole run and a bound far too short, liveness is reported.
#[test]
fn unreachable_liveness_is_reported() {
    let text = format!(
        "{MINIMAL}\n[liveness]\nbound_ms = 1\n[[events]]\naction = \"crash_all\"\nat_ms = 7999\n"
    );
    let scenario = parse(&text).expect("valid scenario");
    let report = run_seed(&scenario, 1, None).expect("runs").report;
    let violation = report.violation.expect("liveness fails");
    assert_eq!(violation.check, "liveness");
}

// Every shipped scenario file parses and validates.
#[test]
fn shipped_scenarios_parse() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for entry in std::fs::read_dir(folder).expect("scenarios folder") {
        let path = entry.expect("entry").path();
        let is_scenario = path.extension().is_some_and(|ext| ext == "toml")
            && path
                .file_name()
                .is_some_and(|name| name != "regressions.toml");
        if is_scenario {
            Scenario::load(&path).unwrap_or_else(|error| panic!("{error}"));
        }
    }
}
