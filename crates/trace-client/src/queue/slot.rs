//! The queue's slots: where a span is encoded when it is recorded, and its frame copied
//! out when a backend takes it.

use crate::encode::INLINE;
use crate::message::{Message, ReceiptSender};

/// One slot of the queue, allocated when the client is built and reused for good. An
/// encoded span takes a few fields (its frame encoded into `frame` when it is recorded
/// and copied out of it when a backend takes it), so that moving it in and out of the slot
/// copies little more than the frame; a span or a flush marker goes in `other`.
pub(crate) struct Slot {
    kind: Kind,
    /// The length of the frame in `frame` (0 when the frame is on the heap).
    len: u16,
    frame: [u8; INLINE],
    heap: Option<Box<[u8]>>,
    receipt: Option<ReceiptSender>,
    other: Option<Message>,
}

/// What [`Slot::write_frame`]'s encoder wrote.
#[derive(Debug)]
pub(crate) enum Written {
    /// A frame of this many bytes (at most [`INLINE`]) into the slot.
    Inline(usize),
    /// A frame too large for the slot.
    Heap(Box<[u8]>),
    /// Nothing to queue.
    Nothing,
}

/// What a [`Slot`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Nothing (taken, or never filled).
    Empty,
    /// An encoded span: `len`, `frame`, `heap`, `receipt`.
    Frame,
    /// `other`.
    Other,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            kind: Kind::Empty,
            len: 0,
            frame: [0; INLINE],
            heap: None,
            receipt: None,
            other: None,
        }
    }
}

impl Slot {
    /// Fills an empty entry with `msg` and, for an encoded span, its inline frame.
    #[inline]
    pub(super) fn fill(&mut self, msg: Message, inline: &[u8]) {
        match msg {
            Message::Frame { heap, receipt } => self.fill_frame(heap, receipt, inline),
            other => {
                self.other = Some(other);
                self.kind = Kind::Other;
            }
        }
    }

    /// Fills the slot with an encoded span's frame: `inline` (at most [`INLINE`] bytes)
    /// copied in, or `heap`, with `receipt`. As [`Slot::fill`] for a
    /// [`Message::Frame`], without the message's moves.
    #[inline]
    pub(super) fn fill_frame(
        &mut self,
        mut heap: Option<Box<[u8]>>,
        receipt: Option<ReceiptSender>,
        inline: &[u8],
    ) {
        // Callers give at most `INLINE` bytes; more would be a bug, which must cost an
        // allocation, not the frame (nor a panic while the slot is claimed).
        match self.frame.get_mut(..inline.len()) {
            Some(dst) => {
                dst.copy_from_slice(inline);
                self.len = inline.len() as u16;
            }
            None => heap = Some(inline.into()),
        }
        // An emptied slot holds neither (see `take`): a span without them leaves both
        // alone, so that the fill only writes to the slot's lines, which the backend that
        // emptied it last touched (a read would wait for them to come from its core).
        if heap.is_some() {
            self.heap = heap;
        }
        if receipt.is_some() {
            self.receipt = receipt;
        }
        self.kind = Kind::Frame;
    }

    /// Fills the slot with an encoded span that `write` encodes straight into its
    /// frame (or on the heap, when it does not fit), with `receipt`. When `write` says
    /// [`Written::Nothing`] (the span is not to be queued) the slot is left empty, which
    /// a backend skips, and `receipt` is handed back.
    #[inline]
    pub(super) fn write_frame(
        &mut self,
        receipt: Option<ReceiptSender>,
        write: impl FnOnce(&mut [u8; INLINE]) -> Written,
    ) -> Result<(), Option<ReceiptSender>> {
        match write(&mut self.frame) {
            Written::Inline(len) if len <= INLINE => self.len = len as u16,
            Written::Heap(heap) => {
                self.len = 0;
                self.heap = Some(heap);
            }
            Written::Inline(_) | Written::Nothing => return Err(receipt),
        }
        // As in `fill_frame`: an emptied slot holds no receipt.
        if receipt.is_some() {
            self.receipt = receipt;
        }
        self.kind = Kind::Frame;
        Ok(())
    }

    /// Empties the entry: its message and, for an encoded span, its inline frame (empty
    /// otherwise), valid until the entry is filled again.
    #[inline]
    pub(super) fn take(&mut self) -> Option<(Message, &[u8])> {
        let kind = std::mem::replace(&mut self.kind, Kind::Empty);
        let len = usize::from(std::mem::take(&mut self.len));
        match kind {
            Kind::Empty => None,
            Kind::Frame => Some((
                Message::Frame {
                    heap: self.heap.take(),
                    receipt: self.receipt.take(),
                },
                self.frame.get(..len).unwrap_or_default(),
            )),
            Kind::Other => self.other.take().map(|m| (m, &[][..])),
        }
    }
}
