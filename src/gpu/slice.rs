//! A view of part of a storage buffer: what a kernel binds. The executor keeps all
//! parameters (and gradients, and BatchNorm state) in one flat buffer each and binds each
//! tensor as a slice of it; a whole buffer converts into a slice covering it, so launchers
//! taking `impl Into<Slice>` accept both.

/// `len` f32 (or u32) words of `buffer` from byte `offset`. The offset must be a multiple of
/// the device's `min_storage_buffer_offset_alignment` (256 bytes on every WebGPU device),
/// which the parameter tables guarantee (every tensor starts at a multiple of 64 words).
#[derive(Clone, Copy, Debug)]
pub struct Slice<'a> {
    pub buffer: &'a wgpu::Buffer,
    /// Start, in bytes.
    pub offset: u64,
    /// Length, in 32-bit words.
    pub len: usize,
}

impl<'a> Slice<'a> {
    /// Words `start .. start + len` of `buffer` (`start` in words).
    ///
    /// # Panics
    /// When the range does not lie inside the buffer (a programming error).
    pub fn new(buffer: &'a wgpu::Buffer, start: usize, len: usize) -> Slice<'a> {
        assert!(
            4 * (start + len) as u64 <= buffer.size(),
            "slice {start}..{} of a buffer of {} bytes",
            start + len,
            buffer.size()
        );
        Slice {
            buffer,
            offset: 4 * start as u64,
            len,
        }
    }

    /// The whole buffer?
    fn is_whole(&self) -> bool {
        self.offset == 0 && 4 * self.len as u64 == self.buffer.size()
    }

    /// The binding resource: the whole buffer, or the byte range of the slice.
    pub fn binding(&self) -> wgpu::BindingResource<'a> {
        if self.is_whole() {
            return self.buffer.as_entire_binding();
        }
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer,
            offset: self.offset,
            size: wgpu::BufferSize::new(4 * self.len.max(1) as u64),
        })
    }

    /// A slice that keeps its buffer alive (for launchers that store operands).
    pub fn owned(&self) -> OwnedSlice {
        OwnedSlice {
            buffer: self.buffer.clone(),
            offset: self.offset,
            len: self.len,
        }
    }
}

impl<'a> From<&'a wgpu::Buffer> for Slice<'a> {
    fn from(buffer: &'a wgpu::Buffer) -> Slice<'a> {
        Slice {
            buffer,
            offset: 0,
            len: (buffer.size() / 4) as usize,
        }
    }
}

impl<'a> From<&'a OwnedSlice> for Slice<'a> {
    fn from(s: &'a OwnedSlice) -> Slice<'a> {
        Slice {
            buffer: &s.buffer,
            offset: s.offset,
            len: s.len,
        }
    }
}

/// A [`Slice`] holding its own handle of the buffer.
#[derive(Clone, Debug)]
pub struct OwnedSlice {
    pub buffer: wgpu::Buffer,
    pub offset: u64,
    pub len: usize,
}
