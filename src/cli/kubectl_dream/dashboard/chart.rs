//! Memory size per revision as an SVG bar chart, drawn on the server: no chart library, no
//! script, and only presentation attributes (the Content-Security-Policy forbids inline style).

use maud::{Markup, html};

/// One bar: a revision and its estimated tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    pub revision: u64,
    pub tokens: u64,
    pub current: bool,
}

const WIDTH: u64 = 640;
const HEIGHT: u64 = 180;
const TOP: u64 = 16;
const BOTTOM: u64 = 24;

/// Bars of tokens per revision (oldest left) against the budget line, with a text alternative.
/// A budget far above the memory would flatten every bar: then the scale follows the memory
/// and the budget is named above the plot instead of drawn.
pub fn size_chart(bars: &[Bar], budget: u64) -> Markup {
    let biggest = bars.iter().map(|b| b.tokens).max().unwrap_or(0);
    let budget_drawn = budget <= biggest.saturating_mul(2) || biggest == 0;
    let top = if budget_drawn {
        biggest.max(budget)
    } else {
        biggest + biggest / 4
    }
    .max(1);
    let plot = HEIGHT - TOP - BOTTOM;
    let slot = WIDTH / (bars.len() as u64).max(1);
    let bar_width = (slot * 7 / 10).max(2);
    let y = |tokens: u64| TOP + plot - tokens * plot / top;
    let summary = bars
        .iter()
        .map(|b| format!("revision {}: {} tokens", b.revision, b.tokens))
        .collect::<Vec<_>>()
        .join(", ");
    html! {
        svg.chart role="img" viewBox={"0 0 " (WIDTH) " " (HEIGHT)} aria-label={"Memory size per revision against a budget of " (budget) " tokens: " (summary)} {
            @if budget_drawn {
                line.budget x1="0" x2=(WIDTH) y1=(y(budget)) y2=(y(budget)) {}
                text.budget-label x="4" y=(y(budget).saturating_sub(4)) { "budget " (budget) }
            } @else {
                text.budget-label x="4" y="12" { "budget " (budget) " tokens, far above" }
            }
            @for (i, bar) in bars.iter().enumerate() {
                @let x = i as u64 * slot + (slot - bar_width) / 2;
                rect class=(if bar.current { "bar current" } else { "bar" }) x=(x) y=(y(bar.tokens)) width=(bar_width) height=(TOP + plot - y(bar.tokens)) {
                    title { "revision " (bar.revision) ": " (bar.tokens) " tokens" }
                }
                text.axis x=(x + bar_width / 2) y=(HEIGHT - 6) text-anchor="middle" { "r" (bar.revision) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_larger_of_budget_and_biggest_revision() {
        let bars = [
            Bar {
                revision: 1,
                tokens: 100,
                current: false,
            },
            Bar {
                revision: 2,
                tokens: 400,
                current: true,
            },
        ];
        let svg = size_chart(&bars, 200).into_string();
        // The tallest bar fills the plot (140 high from y=16); the budget line is at half.
        assert!(
            svg.contains(r#"class="bar current" x="368" y="16" width="224" height="140""#),
            "{svg}"
        );
        assert!(svg.contains(r#"y1="86""#), "{svg}");
        assert!(svg.contains("revision 1: 100 tokens, revision 2: 400 tokens"), "{svg}");
        assert!(!svg.contains("style"), "{svg}");
    }

    #[test]
    fn a_budget_far_above_the_memory_does_not_flatten_it() {
        let bars = [Bar {
            revision: 1,
            tokens: 400,
            current: true,
        }];
        let svg = size_chart(&bars, 16_000).into_string();
        assert!(!svg.contains("<line"), "{svg}");
        assert!(svg.contains("budget 16000 tokens, far above"), "{svg}");
        // 400 of a 500-token scale: the bar is 4/5 of the plot (112 of 140).
        assert!(svg.contains(r#"height="112""#), "{svg}");
    }

    #[test]
    fn no_revisions_draws_only_the_budget() {
        let svg = size_chart(&[], 1000).into_string();
        assert!(!svg.contains("<rect"), "{svg}");
        assert!(svg.contains("budget 1000"), "{svg}");
    }
}
