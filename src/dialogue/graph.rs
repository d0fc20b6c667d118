//! A flow as a diagram: Mermaid (for Markdown viewers) or Graphviz dot.

use super::check::targets_of_step;
use super::{Action, Flow, Target};
use crate::text::ITALIAN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mermaid,
    Dot,
}

fn node_id(flow: &Flow, target: &Target) -> String {
    if target.flow == flow.id {
        sanitize(&target.step)
    } else {
        sanitize(&format!("{}__{}", target.flow, target.step))
    }
}

fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn quote(text: &str, format: Format) -> String {
    let short: String = text.chars().take(40).collect();
    let short = if text.chars().count() > 40 {
        format!("{short}…")
    } else {
        short
    };
    match format {
        Format::Mermaid => short
            .replace('"', "'")
            .replace(['[', ']', '{', '}', '(', ')', '|'], " "),
        Format::Dot => short.replace('\\', "\\\\").replace('"', "\\\""),
    }
}

/// The diagram of one flow: steps as nodes (handover and end marked), choices as
/// labelled edges, jumps to other flows as nodes of their own.
pub fn render(flow: &Flow, format: Format) -> String {
    let mut out = String::new();
    let mut edges: Vec<(String, String, Option<String>)> = Vec::new();
    let mut external: Vec<(String, String)> = Vec::new();
    match format {
        Format::Mermaid => out.push_str("flowchart TD\n"),
        Format::Dot => out.push_str(&format!(
            "digraph \"{}\" {{\n  rankdir=TB;\n  node [shape=box, style=rounded];\n",
            quote(&flow.id, format)
        )),
    }
    for step in &flow.steps {
        let id = sanitize(&step.id);
        let label = quote(&format!("{} ({})", step.id, step.action.kind()), format);
        let line = match (&step.action, format) {
            (Action::Handover { .. }, Format::Mermaid) => format!("  {id}{{{{\"👤 {label}\"}}}}\n"),
            (Action::End, Format::Mermaid) => format!("  {id}([\"■ {label}\"])\n"),
            (_, Format::Mermaid) => format!("  {id}[\"{label}\"]\n"),
            (Action::Handover { .. }, Format::Dot) => {
                format!("  {id} [label=\"👤 {label}\", shape=hexagon];\n")
            }
            (Action::End, Format::Dot) => {
                format!("  {id} [label=\"■ {label}\", shape=doublecircle];\n")
            }
            (_, Format::Dot) => format!("  {id} [label=\"{label}\"];\n"),
        };
        out.push_str(&line);
        let mut push_edge = |target: &Target, label: Option<String>| {
            if target.step.is_empty() {
                return;
            }
            let to = node_id(flow, target);
            if target.flow != flow.id && !external.iter().any(|(known, _)| *known == to) {
                external.push((to.clone(), format!("{}.{}", target.flow, target.step)));
            }
            edges.push((id.clone(), to, label));
        };
        match &step.action {
            Action::Choices {
                choices, otherwise, ..
            } => {
                for choice in choices {
                    if let Some(next) = &choice.next {
                        let label = choice
                            .label
                            .by_lang
                            .get(ITALIAN)
                            .cloned()
                            .unwrap_or_else(|| choice.id.clone());
                        push_edge(next, Some(label));
                    }
                }
                if let Some(otherwise) = otherwise {
                    push_edge(otherwise, Some("altrimenti".into()));
                }
            }
            Action::Branch { arms, otherwise } => {
                for (condition, target) in arms {
                    let label = match &condition.equals {
                        Some(value) => format!("{} = {value}", condition.var),
                        None => condition.var.clone(),
                    };
                    push_edge(target, Some(label));
                }
                if let Some(otherwise) = otherwise {
                    push_edge(otherwise, Some("else".into()));
                }
            }
            _ => {
                for target in targets_of_step(step) {
                    push_edge(target, None);
                }
            }
        }
    }
    for (id, name) in &external {
        let label = quote(&format!("→ {name}"), format);
        match format {
            Format::Mermaid => out.push_str(&format!("  {id}>\"{label}\"]\n")),
            Format::Dot => out.push_str(&format!("  {id} [label=\"{label}\", shape=cds];\n")),
        }
    }
    for (from, to, label) in edges {
        match (format, label) {
            (Format::Mermaid, Some(label)) => out.push_str(&format!(
                "  {from} -->|\"{}\"| {to}\n",
                quote(&label, format)
            )),
            (Format::Mermaid, None) => out.push_str(&format!("  {from} --> {to}\n")),
            (Format::Dot, Some(label)) => out.push_str(&format!(
                "  {from} -> {to} [label=\"{}\"];\n",
                quote(&label, format)
            )),
            (Format::Dot, None) => out.push_str(&format!("  {from} -> {to};\n")),
        }
    }
    if format == Format::Dot {
        out.push_str("}\n");
    }
    out
}
