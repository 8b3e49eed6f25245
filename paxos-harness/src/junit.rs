//! JUnit XML for CI systems.

use std::fmt::Write as _;

/// One test case's result.
#[derive(Clone, Debug)]
pub struct JunitCase {
    /// Suite name.
    pub suite: String,
    /// Case name (scenario and seed).
    pub name: String,
    /// Run time in seconds (simulated under turmoil).
    pub seconds: f64,
    /// The failure message, if it failed.
    pub failure: Option<String>,
}

/// A whole run's cases.
#[derive(Clone, Debug, Default)]
pub struct JunitReport {
    /// Every case, in run order.
    pub cases: Vec<JunitCase>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl JunitReport {
    /// The report as JUnit XML, one `<testsuite>` per suite.
    pub fn to_xml(&self) -> String {
        let mut suites: Vec<&str> = self.cases.iter().map(|c| c.suite.as_str()).collect();
        suites.dedup();
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
        for suite in suites {
            let cases: Vec<&JunitCase> = self.cases.iter().filter(|c| c.suite == suite).collect();
            let failures = cases.iter().filter(|c| c.failure.is_some()).count();
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">",
                escape(suite),
                cases.len()
            );
            for c in cases {
                let _ = write!(
                    out,
                    "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                    escape(suite),
                    escape(&c.name),
                    c.seconds
                );
                match &c.failure {
                    None => out.push_str("/>\n"),
                    Some(f) => {
                        let _ = writeln!(
                            out,
                            ">\n      <failure message=\"{}\"/>\n    </testcase>",
                            escape(f)
                        );
                    }
                }
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }
}
