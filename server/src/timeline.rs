//! `rafting sim replay SCENARIO --seed S --html FILE`: one seed as a self-contained HTML page.
//!
//! The seed's JSON-lines trace (see `rafting_sim::trace`) is read back into a compact model:
//! each kind of event becomes one flat array of numbers with a fixed stride, names are
//! interned in tables, and faults become spans (a node down from its crash to its restart,
//! paused for its pause, the network faulted from a partition to its heal). The model goes
//! into the page as JSON beside the viewer's script and style (`server/timeline/`), so the
//! file opens anywhere with no network. The viewer draws a lane per node on a canvas: roles
//! and terms as bands, messages as arrows (dropped ones marked), spans shaded, commits and
//! client operations as marks, the violation highlighted; it zooms, pans, filters, and
//! aggregates messages into counts when too many are in view.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;

const TEMPLATE: &str = include_str!("../timeline/timeline.html");
const SCRIPT: &str = include_str!("../timeline/timeline.js");
const STYLE: &str = include_str!("../timeline/timeline.css");

/// Numbers per message in [`Timeline::messages`]: sent, arrived (or lost), from, to, kind,
/// term, fate (0 delivered, else 1 + the index of its reason), entries carried.
pub const MESSAGE_STRIDE: usize = 8;
/// Numbers per role change in [`Timeline::roles`]: time, node, role, term.
pub const ROLE_STRIDE: usize = 4;
/// Numbers per commit in [`Timeline::commits`]: time, node, index.
pub const COMMIT_STRIDE: usize = 3;
/// Numbers per client event in [`Timeline::clients`]: time, client, operation, event, node.
pub const CLIENT_STRIDE: usize = 5;

/// One seed, ready to draw.
#[derive(Debug, Default, Serialize)]
pub struct Timeline {
    pub scenario: String,
    pub seed: u64,
    pub nodes: u64,
    pub end_us: u64,
    pub events: u64,
    /// Numbers per record in each flat array (the viewer reads them from here).
    pub strides: Strides,
    /// Names behind the numbers of the flat arrays.
    pub message_kinds: Vec<String>,
    pub reasons: Vec<String>,
    pub role_names: Vec<String>,
    pub client_events: Vec<String>,
    pub messages: Vec<u64>,
    pub roles: Vec<u64>,
    pub commits: Vec<u64>,
    pub clients: Vec<u64>,
    pub faults: Vec<Fault>,
    pub spans: Vec<Span>,
    pub violation: Option<ViolationMark>,
}

/// See [`MESSAGE_STRIDE`] and the others.
#[derive(Debug, Serialize)]
pub struct Strides {
    pub message: usize,
    pub role: usize,
    pub commit: usize,
    pub client: usize,
}

impl Default for Strides {
    fn default() -> Strides {
        Strides {
            message: MESSAGE_STRIDE,
            role: ROLE_STRIDE,
            commit: COMMIT_STRIDE,
            client: CLIENT_STRIDE,
        }
    }
}

/// A fault as the simulator logged it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Fault {
    pub t_us: u64,
    pub what: String,
}

/// A stretch of time under a fault: a node `down` or `paused`, or the `network` faulted
/// (`node` 0: every lane).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Span {
    pub kind: &'static str,
    pub node: u64,
    pub from_us: u64,
    pub to_us: u64,
    pub label: String,
}

/// The broken property, where it broke.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ViolationMark {
    #[serde(rename = "at_us")]
    pub t_us: u64,
    pub check: String,
    pub detail: String,
    pub nodes: Vec<u64>,
}

/// One trace line, as far as the timeline reads it.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Line {
    Start {
        scenario: String,
        seed: u64,
        params: StartParams,
    },
    Deliver {
        from: u64,
        to: u64,
        sent_us: u64,
        message: String,
        term: u64,
        #[serde(default)]
        append: Option<Append>,
    },
    Drop {
        from: u64,
        to: u64,
        sent_us: u64,
        message: String,
        term: u64,
        reason: String,
    },
    Role {
        node: u64,
        role: String,
        term: u64,
    },
    Commit {
        node: u64,
        index: u64,
    },
    Fault {
        what: String,
    },
    Client {
        client: u64,
        op: u64,
        event: String,
        node: u64,
    },
    Violation {
        violation: ViolationMark,
    },
    End {
        events: u64,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StartParams {
    nodes: u64,
}

#[derive(Deserialize)]
struct Append {
    entries: u64,
}

/// Names to small numbers, in order of first use.
#[derive(Default)]
struct Interner {
    names: Vec<String>,
    index: BTreeMap<String, u64>,
}

impl Interner {
    fn of(&mut self, name: &str) -> u64 {
        if let Some(&known) = self.index.get(name) {
            return known;
        }
        let next = self.names.len() as u64;
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), next);
        next
    }
}

/// Reads a trace (JSON lines) into a timeline.
pub fn build(trace: &[u8]) -> Result<Timeline> {
    let mut timeline = Timeline::default();
    let (mut kinds, mut reasons, mut roles, mut events) = (
        Interner::default(),
        Interner::default(),
        Interner::default(),
        Interner::default(),
    );
    let mut spans = Spans::default();
    for (number, line) in trace.split(|&byte| byte == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        #[derive(Deserialize)]
        struct Timed {
            t_us: u64,
        }
        let Timed { t_us } = serde_json::from_slice(line)
            .with_context(|| format!("trace line {} has no time", number + 1))?;
        let event: Line = serde_json::from_slice(line)
            .with_context(|| format!("trace line {} is not a trace event", number + 1))?;
        timeline.end_us = timeline.end_us.max(t_us);
        match event {
            Line::Start {
                scenario,
                seed,
                params,
            } => {
                timeline.scenario = scenario;
                timeline.seed = seed;
                timeline.nodes = params.nodes;
            }
            Line::Deliver {
                from,
                to,
                sent_us,
                message,
                term,
                append,
            } => timeline.messages.extend([
                sent_us,
                t_us,
                from,
                to,
                kinds.of(&message),
                term,
                0,
                append.map_or(0, |append| append.entries),
            ]),
            Line::Drop {
                from,
                to,
                sent_us,
                message,
                term,
                reason,
            } => timeline.messages.extend([
                sent_us,
                t_us,
                from,
                to,
                kinds.of(&message),
                term,
                1 + reasons.of(&reason),
                0,
            ]),
            Line::Role { node, role, term } => {
                timeline.roles.extend([t_us, node, roles.of(&role), term]);
            }
            Line::Commit { node, index } => timeline.commits.extend([t_us, node, index]),
            Line::Fault { what } => {
                spans.fault(t_us, &what);
                timeline.faults.push(Fault { t_us, what });
            }
            Line::Client {
                client,
                op,
                event,
                node,
            } => timeline
                .clients
                .extend([t_us, client, op, events.of(&event), node]),
            Line::Violation { violation } => timeline.violation = Some(violation),
            Line::End { events } => timeline.events = events,
            Line::Other => {}
        }
    }
    if timeline.nodes == 0 {
        bail!("the trace has no start line naming its nodes");
    }
    timeline.spans = spans.finish(timeline.end_us);
    timeline.message_kinds = kinds.names;
    timeline.reasons = reasons.names;
    timeline.role_names = roles.names;
    timeline.client_events = events.names;
    Ok(timeline)
}

/// Faults opened and not yet closed, turned into spans as they close.
#[derive(Default)]
struct Spans {
    down: BTreeMap<u64, (u64, String)>,
    network: Option<(u64, String)>,
    done: Vec<Span>,
}

impl Spans {
    /// Reads one fault line of the simulator (`sim/src/faults.rs` writes them).
    fn fault(&mut self, t_us: u64, what: &str) {
        let node_of = |text: &str| -> Option<u64> {
            let digits: String = text
                .trim_start_matches('n')
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        };
        if let Some(rest) = what.strip_prefix("crash ") {
            if let Some(node) = node_of(rest) {
                self.down.insert(node, (t_us, what.to_owned()));
            }
        } else if let Some(rest) = what.strip_prefix("restart ") {
            if let Some(node) = node_of(rest)
                && let Some((from_us, label)) = self.down.remove(&node)
            {
                self.done.push(Span {
                    kind: "down",
                    node,
                    from_us,
                    to_us: t_us,
                    label,
                });
            }
        } else if let Some(rest) = what.strip_prefix("pause ") {
            // "pause nN for D ms"
            let duration_ms = rest
                .split_whitespace()
                .nth(2)
                .and_then(|text| text.parse::<u64>().ok());
            if let (Some(node), Some(duration_ms)) = (node_of(rest), duration_ms) {
                self.done.push(Span {
                    kind: "paused",
                    node,
                    from_us: t_us,
                    to_us: t_us + duration_ms * 1_000,
                    label: what.to_owned(),
                });
            }
        } else if what == "heal" {
            self.close_network(t_us);
        } else if ["partition", "isolate", "cut ", "one-way"]
            .iter()
            .any(|prefix| what.starts_with(prefix))
        {
            self.close_network(t_us);
            self.network = Some((t_us, what.to_owned()));
        }
    }

    fn close_network(&mut self, t_us: u64) {
        if let Some((from_us, label)) = self.network.take() {
            self.done.push(Span {
                kind: "network",
                node: 0,
                from_us,
                to_us: t_us,
                label,
            });
        }
    }

    /// The spans, with what is still open closed at the end of the run.
    fn finish(mut self, end_us: u64) -> Vec<Span> {
        self.close_network(end_us);
        for (node, (from_us, label)) in std::mem::take(&mut self.down) {
            self.done.push(Span {
                kind: "down",
                node,
                from_us,
                to_us: end_us,
                label,
            });
        }
        self.done.sort_by_key(|span| (span.from_us, span.node));
        self.done
    }
}

/// Writes the page: the template with the style, the script and the timeline inlined.
pub fn write_html(timeline: &Timeline, out: &mut impl Write) -> Result<()> {
    let data = serde_json::to_string(timeline)?;
    // Inside <script>, only "</" could end the element early; JSON allows "<\/".
    let data = data.replace("</", "<\\/");
    let title = format!("{} seed {}", timeline.scenario, timeline.seed);
    let page = TEMPLATE
        .replace("{{TITLE}}", &html_escape(&title))
        .replace("{{STYLE}}", STYLE)
        .replace("{{SCRIPT}}", SCRIPT)
        .replace("{{DATA}}", &data);
    out.write_all(page.as_bytes())?;
    Ok(())
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> rafting_sim::Scenario {
        rafting_sim::Scenario::parse(text, std::path::Path::new("chaos.toml")).unwrap()
    }

    fn trace_of(scenario: &rafting_sim::Scenario, seed: u64) -> Vec<u8> {
        let mut trace = Vec::new();
        rafting_sim::run_seed(scenario, seed, Some(&mut trace)).unwrap();
        trace
    }

    #[test]
    fn a_chaos_seed_reads_back_whole_into_the_model() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scenarios/chaos.toml"
        ))
        .unwrap();
        let trace = trace_of(&scenario(&text), 3);
        let timeline = build(&trace).unwrap();
        let lines: Vec<serde_json::Value> = trace
            .split(|&byte| byte == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).unwrap())
            .collect();
        let count = |kind: &str| lines.iter().filter(|line| line["kind"] == kind).count();
        assert_eq!(timeline.nodes, 5);
        assert_eq!(
            timeline.messages.len() / MESSAGE_STRIDE,
            count("deliver") + count("drop")
        );
        assert_eq!(timeline.roles.len() / ROLE_STRIDE, count("role"));
        assert_eq!(timeline.commits.len() / COMMIT_STRIDE, count("commit"));
        assert_eq!(timeline.clients.len() / CLIENT_STRIDE, count("client"));
        assert_eq!(timeline.faults.len(), count("fault"));
        assert!(timeline.end_us >= 30_000_000, "{}", timeline.end_us);
        assert!(
            timeline
                .messages
                .chunks(MESSAGE_STRIDE)
                .all(|message| message[0] <= message[1]),
            "a message arrives after it is sent"
        );
        let crashes = timeline
            .faults
            .iter()
            .filter(|fault| fault.what.starts_with("crash"))
            .count();
        let down = timeline.spans.iter().filter(|span| span.kind == "down");
        assert_eq!(
            down.count(),
            crashes,
            "each crash is a span until its restart"
        );
        assert!(timeline.violation.is_none());
    }

    #[test]
    fn faults_become_spans_and_the_page_is_one_file_with_the_data_inlined() {
        let mut spans = Spans::default();
        spans.fault(10, "crash n2 (torn)");
        spans.fault(20, "partition: isolate n1");
        spans.fault(30, "pause n3 for 5 ms");
        spans.fault(40, "restart n2");
        spans.fault(50, "heal");
        spans.fault(60, "crash n4");
        let spans = spans.finish(100);
        let shapes: Vec<(&str, u64, u64, u64)> = spans
            .iter()
            .map(|span| (span.kind, span.node, span.from_us, span.to_us))
            .collect();
        assert_eq!(
            shapes,
            [
                ("down", 2, 10, 40),
                ("network", 0, 20, 50),
                ("paused", 3, 30, 5_030),
                ("down", 4, 60, 100)
            ]
        );

        let timeline = Timeline {
            scenario: "</script><b>".into(),
            nodes: 3,
            ..Timeline::default()
        };
        let mut page = Vec::new();
        write_html(&timeline, &mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(!page.contains("{{"), "every placeholder filled");
        assert!(
            !page.contains("</script><b>"),
            "the data cannot end its element"
        );
        assert!(
            page.contains("&lt;/script&gt;&lt;b&gt; seed 0"),
            "the title is escaped"
        );
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no network"
        );
    }

    #[test]
    fn a_trace_that_is_not_one_is_refused_with_its_line() {
        let error = build(b"{\"t_us\":0,\"kind\":\"start\"}\nnot json\n").unwrap_err();
        assert!(format!("{error:#}").contains("line 1"), "{error:#}");
        let error = build(b"{\"t_us\":0,\"kind\":\"timer\",\"node\":1}\n").unwrap_err();
        assert!(format!("{error:#}").contains("no start line"), "{error:#}");
    }
}
