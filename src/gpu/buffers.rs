use wgpu::util::DeviceExt;

use super::{Context, GpuError, Result};

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl Context {
    /// Refuses a storage buffer larger than the device allows, naming the limit.
    pub fn check_storage_size(&self, what: &str, bytes: u64) -> Result<()> {
        let limits = &self.report.limits;
        for (limit, allowed) in [
            (
                "max_storage_buffer_binding_size",
                limits.max_storage_buffer_binding_size,
            ),
            ("max_buffer_size", limits.max_buffer_size),
        ] {
            if bytes > allowed {
                return Err(GpuError::LimitExceeded {
                    limit,
                    what: what.to_string(),
                    requested: bytes,
                    allowed,
                });
            }
        }
        Ok(())
    }

    /// A storage buffer holding `data` (at least one element, since empty bindings are invalid).
    pub fn storage<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> Result<wgpu::Buffer> {
        if data.is_empty() {
            return self.zeros(label, 1);
        }
        let bytes: &[u8] = bytemuck::cast_slice(data);
        self.check_storage_size(label, bytes.len() as u64)?;
        Ok(self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytes,
                usage: STORAGE,
            }))
    }

    /// A zero-filled storage buffer of `len` 32-bit words (at least one).
    pub fn zeros(&self, label: &str, len: usize) -> Result<wgpu::Buffer> {
        let bytes = 4 * len.max(1) as u64;
        self.check_storage_size(label, bytes)?;
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: STORAGE,
            mapped_at_creation: false,
        }))
    }

    /// A uniform buffer with the kernel parameters `params`.
    pub fn uniform<T: bytemuck::Pod>(&self, label: &str, params: &T) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::bytes_of(params),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// Overwrites the start of `buffer` with `data` (ordered before the next submit).
    pub fn write<T: bytemuck::Pod>(&self, buffer: &wgpu::Buffer, data: &[T]) {
        self.queue
            .write_buffer(buffer, 0, bytemuck::cast_slice(data));
    }

    /// Copies `buffer` back to the host. Never blocks in the browser: the future resolves
    /// when the browser has mapped the copy. Natively it waits for the queue.
    pub async fn read<T: bytemuck::Pod>(&self, buffer: &wgpu::Buffer) -> Result<Vec<T>> {
        let staging = self.staging("readback", buffer.size());
        self.read_via(buffer, &staging).await
    }

    /// A mappable buffer of `bytes` for [`Context::read_via`], to keep and reuse for reads
    /// repeated every few steps (such as the training metrics).
    pub fn staging(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// [`Context::read`] through a given `staging` buffer (from [`Context::staging`], at
    /// least as large as `buffer`, and not in use by another read).
    pub async fn read_via<T: bytemuck::Pod>(
        &self,
        buffer: &wgpu::Buffer,
        staging: &wgpu::Buffer,
    ) -> Result<Vec<T>> {
        self.check_alive()?;
        let size = buffer.size();
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, 0, staging, 0, size);
        self.queue.submit([encoder.finish()]);

        let (sender, receiver) = futures_channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |result| {
            let _ = sender.send(result);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        match receiver.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.check_alive()?;
                return Err(GpuError::Readback(e.to_string()));
            }
            Err(_) => {
                self.check_alive()?;
                return Err(GpuError::Readback("the map request was dropped".into()));
            }
        }
        let values = {
            let view = staging
                .get_mapped_range(..size)
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            bytemuck::pod_collect_to_vec(&view)
        };
        staging.unmap();
        Ok(values)
    }
}
