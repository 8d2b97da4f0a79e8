//! Circles in a module graph, by the rule of [`super`]: uses lifted to
//! siblings, circles the sibling sets that reach one another.

use std::collections::{BTreeMap, BTreeSet};

use super::graph::parent;

/// Sibling modules that reach one another.
#[derive(Debug)]
pub(super) struct Circle {
    parent: String,
    members: Vec<String>,
    /// One way round, as the uses that make it (`a::x → b, b::y → a`).
    pub example: String,
}

impl Circle {
    pub(super) fn name(&self) -> String {
        let short: Vec<&str> = self
            .members
            .iter()
            .map(|m| m.rsplit("::").next().unwrap_or(m))
            .collect();
        format!("{}: {}", self.parent, short.join(", "))
    }
}

/// The circles of `edges` by the rule at the top of `source_layout.rs`.
pub(super) fn circles(edges: &BTreeSet<(String, String)>) -> Vec<Circle> {
    // Each use lifted to the children of the two modules' closest common
    // ancestor, keeping one use that made it, for the message.
    let mut lifted: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (from, to) in edges {
        let (a, b) = (lineage(from), lineage(to));
        let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let (Some(a_side), Some(b_side)) = (a.get(common), b.get(common)) else {
            continue; // one is the other's ancestor
        };
        lifted
            .entry(a_side.clone())
            .or_default()
            .entry(b_side.clone())
            .or_insert_with(|| format!("{from} → {to}"));
    }
    let nodes: BTreeSet<String> = lifted
        .iter()
        .flat_map(|(from, tos)| std::iter::once(from.clone()).chain(tos.keys().cloned()))
        .collect();
    let mut circles = Vec::new();
    let mut placed = BTreeSet::new();
    for node in &nodes {
        if placed.contains(node) {
            continue;
        }
        let forward = reachable(&lifted, node);
        let members: Vec<String> = forward
            .iter()
            .filter(|other| reachable(&lifted, other).contains(node))
            .cloned()
            .collect();
        if members.len() < 2 {
            continue;
        }
        placed.extend(members.iter().cloned());
        circles.push(Circle {
            parent: parent(&members[0]).unwrap_or_default(),
            example: example_cycle(&lifted, &members),
            members,
        });
    }
    circles.sort_by_key(Circle::name);
    circles
}

/// `a::b::c` → [`a`, `a::b`, `a::b::c`].
fn lineage(module: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = String::new();
    for part in module.split("::") {
        at = if at.is_empty() {
            part.to_owned()
        } else {
            format!("{at}::{part}")
        };
        out.push(at.clone());
    }
    out
}

/// Every node reachable from `start` (itself included only through a cycle).
fn reachable(graph: &BTreeMap<String, BTreeMap<String, String>>, start: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![start.to_owned()];
    while let Some(node) = stack.pop() {
        for next in graph.get(&node).into_iter().flat_map(BTreeMap::keys) {
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    seen
}

/// One way round a circle, from its first member back to it, named by the
/// uses that make each step.
fn example_cycle(graph: &BTreeMap<String, BTreeMap<String, String>>, members: &[String]) -> String {
    let start = &members[0];
    // Breadth-first within the circle for the shortest way back.
    let mut came_from: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.clone()]);
    while let Some(node) = queue.pop_front() {
        for next in graph.get(&node).into_iter().flat_map(BTreeMap::keys) {
            if !members.contains(next) || came_from.contains_key(next) {
                continue;
            }
            came_from.insert(next.clone(), node.clone());
            if next == start {
                queue.clear();
                break;
            }
            queue.push_back(next.clone());
        }
    }
    let mut steps = Vec::new();
    let mut at = start.clone();
    while let Some(from) = came_from.get(&at) {
        steps.push(graph[from][&at].clone());
        at = from.clone();
        if at == *start {
            break;
        }
    }
    steps.reverse();
    steps.join(", ")
}
