//! Baggage: key-value items that a trace carries to the spans below the one that set
//! them, in this process and, through the [carriers](crate::propagation), in others.

use std::error::Error;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The most items a [`Baggage`] holds (the W3C Baggage minimum a platform must carry).
pub const MAX_ITEMS: usize = 64;

/// The most bytes a [`Baggage`] holds, counting each item's key and value (the W3C
/// Baggage header's limit).
pub const MAX_BYTES: usize = 8192;

/// The baggage items of a span, in the order they were first set.
///
/// Two baggages are equal when they hold the same items, in whatever order: carriers
/// such as a sorted text map give them back in another order than they were set in.
///
/// Bounded: at most [`MAX_ITEMS`] items and [`MAX_BYTES`] bytes of keys and values.
/// Keys are HTTP tokens (letters, digits and ``!#$%&'*+-.^_`|~``), so that every carrier
/// can write them; values are any text (the carriers percent-encode them).
///
/// Cloning is cheap (the items are shared until one side changes them), so a child span
/// takes its parent's baggage at no cost; what a child sets later is its own and its
/// descendants'.
///
/// # Examples
///
/// ```
/// use trace_client::Span;
///
/// let mut root = Span::root("checkout");
/// root.set_baggage_item("tenant", "acme")?;
/// let mut child = root.child("charge");
/// child.set_baggage_item("attempt", "2")?;
/// assert_eq!(child.baggage_item("tenant"), Some("acme"));
/// assert_eq!(root.baggage_item("attempt"), None);
/// assert_eq!(child.baggage().iter().collect::<Vec<_>>(), [("tenant", "acme"), ("attempt", "2")]);
/// # root.set_finish_on_drop(false);
/// # child.set_finish_on_drop(false);
/// # Ok::<(), trace_client::BaggageError>(())
/// ```
#[derive(Clone, Default)]
pub struct Baggage {
    items: Option<Arc<Vec<(String, String)>>>,
}

impl PartialEq for Baggage {
    /// The same items, in any order (keys are unique in each).
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl Eq for Baggage {}

impl Hash for Baggage {
    /// Independent of the items' order, as equality is.
    fn hash<H: Hasher>(&self, state: &mut H) {
        let combined = self.iter().fold(0u64, |sum, item| {
            let mut h = std::hash::DefaultHasher::new();
            item.hash(&mut h);
            sum.wrapping_add(h.finish())
        });
        (self.len(), combined).hash(state);
    }
}

impl Baggage {
    /// No items.
    pub const fn new() -> Self {
        Baggage { items: None }
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.items.as_ref().is_none_or(|items| items.is_empty())
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.items.as_ref().map_or(0, |items| items.len())
    }

    /// The bytes of keys and values, the measure [`MAX_BYTES`] bounds.
    pub fn byte_len(&self) -> usize {
        self.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// The value of item `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The items, in the order they were first set.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.items
            .iter()
            .flat_map(|items| items.iter())
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Sets item `key` to `value`, replacing an earlier value (which keeps its place).
    ///
    /// # Errors
    ///
    /// [`BaggageError::InvalidKey`] when `key` is not an HTTP token;
    /// [`BaggageError::TooManyItems`] or [`BaggageError::TooLarge`] when the item would
    /// take the baggage over its limits. The baggage is unchanged then.
    pub fn set(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), BaggageError> {
        let (key, value) = (key.into(), value.into());
        if !is_key(&key) {
            return Err(BaggageError::InvalidKey);
        }
        let found = self
            .iter()
            .enumerate()
            .find(|(_, (k, _))| *k == key)
            .map(|(i, (k, v))| (i, k.len() + v.len()));
        let (existing, old_len) = (found.map(|(i, _)| i), found.map_or(0, |(_, n)| n));
        if existing.is_none() && self.len() >= MAX_ITEMS {
            return Err(BaggageError::TooManyItems { limit: MAX_ITEMS });
        }
        if self.byte_len() - old_len + key.len() + value.len() > MAX_BYTES {
            return Err(BaggageError::TooLarge { limit: MAX_BYTES });
        }
        let items = Arc::make_mut(self.items.get_or_insert_with(Default::default));
        match existing {
            Some(i) => items[i].1 = value,
            None => items.push((key, value)),
        }
        Ok(())
    }

    /// Removes item `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let i = self.iter().position(|(k, _)| k == key)?;
        let items = Arc::make_mut(self.items.as_mut()?);
        Some(items.remove(i).1)
    }
}

impl fmt::Debug for Baggage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Whether `key` can name a baggage item: a non-empty HTTP token (RFC 9110).
pub fn is_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(is_tchar)
}

const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~')
}

/// Why a baggage item was not set, or a carrier's baggage was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BaggageError {
    /// A key is empty or not an HTTP token.
    InvalidKey,
    /// More than `limit` items.
    TooManyItems {
        /// [`MAX_ITEMS`].
        limit: usize,
    },
    /// More than `limit` bytes of keys and values, or a header longer than that.
    TooLarge {
        /// [`MAX_BYTES`].
        limit: usize,
    },
    /// A `baggage` header that does not follow the W3C syntax.
    Malformed,
    /// A value whose percent-encoding is broken or does not decode to UTF-8.
    InvalidEncoding,
}

impl fmt::Display for BaggageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BaggageError::InvalidKey => f.write_str("baggage key is empty or not an http token"),
            BaggageError::TooManyItems { limit } => {
                write!(f, "baggage refused: more than {limit} items")
            }
            BaggageError::TooLarge { limit } => write!(f, "baggage refused: over {limit} bytes"),
            BaggageError::Malformed => f.write_str("baggage refused: malformed baggage header"),
            BaggageError::InvalidEncoding => {
                f.write_str("baggage refused: bad percent-encoding or not utf-8")
            }
        }
    }
}

impl Error for BaggageError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_replace_remove_keep_order() {
        let mut b = Baggage::new();
        assert!(b.is_empty() && b.byte_len() == 0);
        assert_eq!(b.len(), 0);
        b.set("a", "1").unwrap();
        b.set("b", "2").unwrap();
        b.set("a", "3").unwrap();
        assert_eq!(b.iter().collect::<Vec<_>>(), [("a", "3"), ("b", "2")]);
        assert_eq!(
            (b.get("a"), b.get("c"), b.len(), b.byte_len()),
            (Some("3"), None, 2, 4)
        );
        assert_eq!(b.remove("a").as_deref(), Some("3"));
        assert_eq!(b.remove("a"), None);
        assert_eq!(format!("{b:?}"), r#"{"b": "2"}"#);
    }

    #[test]
    fn clones_are_independent() {
        let mut parent = Baggage::new();
        parent.set("k", "v").unwrap();
        let mut child = parent.clone();
        child.set("k", "w").unwrap();
        child.set("x", "y").unwrap();
        assert_eq!(parent.get("k"), Some("v"));
        assert_eq!(parent.len(), 1);
        assert_eq!(child.get("k"), Some("w"));
        assert_ne!(parent, child);
    }

    #[test]
    fn equality_and_hash_ignore_order() {
        use std::hash::BuildHasher;
        let (mut a, mut b) = (Baggage::new(), Baggage::new());
        a.set("x", "1").unwrap();
        a.set("y", "2").unwrap();
        b.set("y", "2").unwrap();
        b.set("x", "1").unwrap();
        assert_eq!(a, b);
        let state = std::hash::RandomState::new();
        assert_eq!(state.hash_one(&a), state.hash_one(&b));
        b.set("x", "other").unwrap();
        assert_ne!(a, b);
        b.remove("x");
        assert_ne!(a, b);
        assert_eq!(Baggage::new(), Baggage::default());
    }

    #[test]
    fn keys_must_be_tokens() {
        let mut b = Baggage::new();
        for bad in ["", "a b", "a=b", "a,b", "é", "a;b", "a\"b"] {
            assert_eq!(b.set(bad, "v"), Err(BaggageError::InvalidKey), "{bad:?}");
        }
        b.set("Tenant-ID_2.x~", "any value, even = and ;").unwrap();
        assert!(b.get("Tenant-ID_2.x~").is_some());
    }

    #[test]
    fn limits() {
        let mut b = Baggage::new();
        for i in 0..MAX_ITEMS {
            b.set(format!("k{i}"), "v").unwrap();
        }
        assert_eq!(
            b.set("one-more", "v"),
            Err(BaggageError::TooManyItems { limit: MAX_ITEMS })
        );
        // Replacing an item is not adding one.
        b.set("k0", "w").unwrap();
        let before = b.clone();
        let big = "x".repeat(MAX_BYTES);
        assert_eq!(
            b.set("k1", big),
            Err(BaggageError::TooLarge { limit: MAX_BYTES })
        );
        assert_eq!(b, before);

        let mut b = Baggage::new();
        b.set("k", "x".repeat(MAX_BYTES - 1)).unwrap();
        assert_eq!(b.byte_len(), MAX_BYTES);
        // A replacement is measured without the value it replaces.
        b.set("k", "y".repeat(MAX_BYTES - 1)).unwrap();
        assert!(b.set("j", "").is_err());
    }

    #[test]
    fn messages_are_lowercase() {
        for e in [
            BaggageError::InvalidKey,
            BaggageError::TooManyItems { limit: 1 },
            BaggageError::TooLarge { limit: 1 },
            BaggageError::Malformed,
            BaggageError::InvalidEncoding,
        ] {
            let msg = e.to_string();
            assert!(msg.starts_with(char::is_lowercase), "{msg}");
        }
    }
}
