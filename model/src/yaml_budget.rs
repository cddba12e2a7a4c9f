//! Limits on the shape of a YAML document, checked before it is turned into a tree.
//!
//! A small YAML text can stand for a huge tree: an alias (`*a`) repeats its whole
//! anchored node, and aliases of aliases multiply (the "billion laughs"). The
//! manifest parser builds a `serde_yaml::Value`, so a bomb would be expanded in
//! memory before any check could run. [`check`] walks the document's events
//! first, counting every node *as expanded* (each use of an alias counts its whole
//! node again) and the nesting depth, and stops at the first limit crossed, having
//! built nothing. The text's size is limited by the caller.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};

/// A limit the document crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// More nodes than allowed, counting each alias use as its whole expansion.
    Nodes(usize),
    /// Nested deeper than allowed.
    Depth(usize),
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exceeded::Nodes(limit) => write!(
                f,
                "the manifest has more than {limit} YAML nodes once its aliases are expanded \
                 (each use of an alias `*name` counts its whole anchored node again); the limit is {limit} nodes"
            ),
            Exceeded::Depth(limit) => write!(
                f,
                "the manifest nests mappings and lists more than {limit} levels deep; the limit is {limit} levels"
            ),
        }
    }
}

/// Checks that `yaml` stays within `max_nodes` (aliases expanded) and `max_depth`.
/// Syntax errors are not reported here (`Ok`): the real parse reports them with
/// their position.
pub fn check(yaml: &str, max_nodes: usize, max_depth: usize) -> Result<(), Exceeded> {
    let state = State { nodes: Cell::new(0), max_nodes, max_depth, exceeded: Cell::new(None) };
    let result = match serde_yaml::Deserializer::from_str(yaml).next() {
        Some(document) => Counter { state: &state, depth: 0 }.deserialize(document),
        None => Ok(()),
    };
    match (state.exceeded.get(), result) {
        (Some(e), _) => Err(e),
        // serde_yaml's own guard against alias repetition fired before ours.
        (None, Err(e)) if e.to_string().contains("repetition limit") => Err(Exceeded::Nodes(max_nodes)),
        _ => Ok(()),
    }
}

struct State {
    nodes: Cell<usize>,
    max_nodes: usize,
    max_depth: usize,
    exceeded: Cell<Option<Exceeded>>,
}

/// Visits one node (and everything below it), counting.
#[derive(Clone, Copy)]
struct Counter<'a> {
    state: &'a State,
    depth: usize,
}

impl Counter<'_> {
    fn count<E: de::Error>(&self) -> Result<(), E> {
        let n = self.state.nodes.get() + 1;
        self.state.nodes.set(n);
        if n > self.state.max_nodes {
            return self.stop(Exceeded::Nodes(self.state.max_nodes));
        }
        Ok(())
    }

    /// Counts a mapping or list and gives the counter of its children.
    fn enter<E: de::Error>(&self) -> Result<Self, E> {
        self.count()?;
        if self.depth + 1 > self.state.max_depth {
            return self.stop(Exceeded::Depth(self.state.max_depth));
        }
        Ok(Counter { state: self.state, depth: self.depth + 1 })
    }

    fn stop<T, E: de::Error>(&self, e: Exceeded) -> Result<T, E> {
        self.state.exceeded.set(Some(e));
        Err(E::custom(e))
    }
}

impl<'de> DeserializeSeed<'de> for Counter<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Counter<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.count()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.count()
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.count()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.count()
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.count()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.count()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.count()
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<(), E> {
        self.count()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.count()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.count()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let child = self.enter()?;
        while seq.next_element_seed(child)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let child = self.enter()?;
        while map.next_key_seed(child)?.is_some() {
            map.next_value_seed(child)?;
        }
        Ok(())
    }

    /// A tagged value (`!tag value`): the tag is one node, the value the rest.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        let child = self.enter()?;
        let ((), variant) = data.variant_seed(child)?;
        variant.newtype_variant_seed(child)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `levels` levels of aliases, each repeating the previous one ten times.
    fn laughs(levels: usize) -> String {
        let mut yaml = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..=levels {
            let p = i - 1;
            yaml.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        yaml
    }

    #[test]
    fn an_alias_bomb_stops_at_the_node_limit() {
        assert_eq!(check(&laughs(9), 10_000, 32), Err(Exceeded::Nodes(10_000)));
    }

    #[test]
    fn a_few_aliases_within_the_budget_are_fine() {
        assert_eq!(check(&laughs(2), 10_000, 32), Ok(()));
        assert_eq!(check("base: &b {image: x}\nother: *b\n", 10, 32), Ok(()));
    }

    #[test]
    fn deep_nesting_stops_at_the_depth_limit() {
        let deep = format!("{}x{}", "[".repeat(40), "]".repeat(40));
        assert_eq!(check(&deep, 10_000, 32), Err(Exceeded::Depth(32)));
        let ok = format!("{}x{}", "[".repeat(10), "]".repeat(10));
        assert_eq!(check(&ok, 10_000, 32), Ok(()));
    }

    #[test]
    fn syntax_errors_are_left_to_the_parser() {
        assert_eq!(check("a: [unclosed", 10, 32), Ok(()));
        assert_eq!(check("", 10, 32), Ok(()));
    }

    #[test]
    fn the_message_names_the_limit() {
        assert!(Exceeded::Nodes(10_000).to_string().contains("the limit is 10000 nodes"));
        assert!(Exceeded::Depth(32).to_string().contains("the limit is 32 levels"));
    }
}
